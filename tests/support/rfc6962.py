"""RFC 6962's Merkle tree hash, audit path and consistency proof (MTH, PATH and PROOF, section
2.1), written out as the RFC defines them, so tests can build and check a log's answers without
the code under test."""

from __future__ import annotations

import hashlib


def _split(n: int) -> int:
    """The largest power of two below ``n``."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def tree_hash(hashes: list[bytes]) -> bytes:
    """MTH over the leaf hashes ``hashes``; of none, the hash of the empty string."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return hashlib.sha256(b"\x01" + tree_hash(hashes[:k]) + tree_hash(hashes[k:])).digest()


def audit_path(m: int, hashes: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the inclusion proof of leaf ``m`` among the leaf hashes ``hashes``."""
    if len(hashes) == 1:
        return []
    k = _split(len(hashes))
    if m < k:
        return audit_path(m, hashes[:k]) + [tree_hash(hashes[k:])]
    return audit_path(m - k, hashes[k:]) + [tree_hash(hashes[:k])]


def consistency_proof(m: int, hashes: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): the proof that the tree of the first ``m`` leaf hashes is a prefix of
    the tree of all of ``hashes`` (0 < m <= n)."""
    return _subproof(m, hashes, True)


def _subproof(m: int, hashes: list[bytes], whole: bool) -> list[bytes]:
    if m == len(hashes):
        return [] if whole else [tree_hash(hashes)]
    k = _split(len(hashes))
    if m <= k:
        return _subproof(m, hashes[:k], whole) + [tree_hash(hashes[k:])]
    return _subproof(m - k, hashes[k:], False) + [tree_hash(hashes[:k])]
