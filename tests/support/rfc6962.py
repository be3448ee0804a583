"""RFC 6962's Merkle tree hash and audit path (MTH and PATH, section 2.1), written out as the
RFC defines them, so tests can build a log's answers without the code under test."""

from __future__ import annotations

import hashlib


def _split(n: int) -> int:
    """The largest power of two below ``n``."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def tree_hash(hashes: list[bytes]) -> bytes:
    """MTH over the leaf hashes ``hashes`` (at least one)."""
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
