"""RFC 6962 Merkle tree hashing and RFC 9162 proof verification, the one implementation that
audit (before it signs a checkpoint), evidence (building a court package) and the client
(checking one, trusting nothing but a pinned key) share.

Leaf hash ``SHA-256(0x00 ‖ leaf)``, node hash ``SHA-256(0x01 ‖ left ‖ right)``; arguments in
the order RFC 9162 §2.1.3.2 and §2.1.4.2 list them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from custody_common.errors import IntegrityError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) — the root of the empty tree."""


class ProofError(IntegrityError):
    """A Merkle proof does not prove what it claims; the log or the proof was altered."""


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 ‖ leaf)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hashes(what: str, *hashes: bytes) -> None:
    for value in hashes:
        if len(value) != HASH_SIZE:
            raise ProofError(f"{what}: a hash has {len(value)} bytes instead of {HASH_SIZE}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` yields for leaf hash ``leaf`` at ``index`` of the tree of ``size``
    leaves; raises ProofError if the proof cannot belong to such a tree."""
    if not 0 <= index < size:
        raise ProofError(f"inclusion proof: leaf index {index} is outside a tree of size {size}")
    _check_hashes("inclusion proof", leaf, *proof)
    fn, sn = index, size - 1
    result = leaf
    for element in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(element, result)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return result


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ProofError unless ``proof`` shows leaf hash ``leaf`` at ``index`` of the tree of
    ``size`` leaves whose root is ``root``."""
    _check_hashes("inclusion proof", root)
    if not hmac.compare_digest(root_from_inclusion(index, size, leaf, proof), root):
        raise ProofError(f"inclusion proof of leaf {index} does not lead to the root of the tree of size {size}")


def verify_consistency(first: int, second: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> None:
    """Raise ProofError unless ``proof`` shows the tree of ``first`` leaves with ``root1`` is a
    prefix of the tree of ``second`` leaves with ``root2``."""
    if first <= 0:
        raise ProofError("a consistency proof needs two non-empty trees: the empty tree commits to nothing")
    if first > second:
        raise ProofError(f"consistency proof: size {first} cannot grow into size {second}")
    if first == second:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if not hmac.compare_digest(root1, root2):
            raise ProofError(f"two trees of size {first} have different roots: the log forked")
        return
    _check_hashes("consistency proof", root1, root2, *proof)
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, root1)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for element in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the trees are deep")
        if fn & 1 or fn == sn:
            fr = node_hash(element, fr)
            sr = node_hash(element, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the trees are deep")
    if not hmac.compare_digest(fr, root1):
        raise ProofError(f"consistency proof does not lead to the root of size {first}")
    if not hmac.compare_digest(sr, root2):
        raise ProofError(f"consistency proof does not lead to the root of size {second}: the log forked")
