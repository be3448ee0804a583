"""The Merkle tree of the custody log: RFC 6962 proofs built from stored subtree hashes
(hashing and RFC 9162 verification are ``custody_common.merkle``'s, shared with evidence and
the client).

The log stores, at append time, the hash of every *perfect* subtree: node ``(level, index)``
covers leaves ``[index·2^level, (index+1)·2^level)``. Every range the RFC 6962 recursion
visits splits into O(log n) such nodes, so a proof is built in two steps that never touch
the leaves themselves:

1. :func:`inclusion_nodes` / :func:`consistency_nodes` name the stored nodes a proof needs
   (fetch them in one query);
2. :func:`inclusion_proof` / :func:`consistency_proof` fold them into the proof.

:class:`CompactRange` is the right edge of the tree (one node per set bit of the size): the
sequencer appends leaves to it and stores the perfect nodes each append completes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from custody_common.merkle import (  # re-exported: the log's modules take them from here
    EMPTY_ROOT,
    ProofError,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)


class NodeId(NamedTuple):
    """A perfect subtree: ``level`` 0 is a leaf; it covers ``2**level`` leaves from
    ``index * 2**level``."""

    level: int
    index: int

    @property
    def start(self) -> int:
        """The first leaf the node covers."""
        return self.index << self.level

    @property
    def end(self) -> int:
        """One past the last leaf the node covers."""
        return (self.index + 1) << self.level


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes, by the RFC 6962 recursion (reference; O(n))."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(tree_hash(leaf_hashes[:k]), tree_hash(leaf_hashes[k:]))


def perfect_subtrees(start: int, end: int) -> list[NodeId]:
    """The perfect subtrees, largest first, whose right fold is MTH of leaves ``[start, end)``
    as the RFC 6962 recursion splits it. ``start`` must be aligned as the recursion aligns it
    (a multiple of the largest power of two below ``end - start``)."""
    if not 0 <= start < end:
        raise ValueError(f"empty or negative leaf range [{start}, {end})")
    nodes = []
    while True:
        n = end - start
        size = n if n & (n - 1) == 0 else _split(n)
        if start % size:
            raise ValueError(f"leaf range [{start}, {end}) is not one the RFC 6962 recursion visits")
        level = size.bit_length() - 1
        nodes.append(NodeId(level, start >> level))
        if size == n:
            return nodes
        start += size


def range_hash(start: int, end: int, hashes: Mapping[NodeId, bytes]) -> bytes:
    """MTH of leaves ``[start, end)`` from stored perfect-subtree hashes."""
    nodes = perfect_subtrees(start, end)
    try:
        result = hashes[nodes[-1]]
        for node in reversed(nodes[:-1]):
            result = node_hash(hashes[node], result)
    except KeyError as missing:
        raise ProofError(f"the log has no stored hash for subtree {missing.args[0]}") from None
    return result


def root_nodes(size: int) -> list[NodeId]:
    """The stored nodes whose fold is the root of the first ``size`` leaves."""
    return perfect_subtrees(0, size) if size else []


def root_hash(size: int, hashes: Mapping[NodeId, bytes]) -> bytes:
    """The root of the first ``size`` leaves from stored hashes."""
    return range_hash(0, size, hashes) if size else EMPTY_ROOT


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs form PATH(index, D[size]), from the leaf upward."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    ranges = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def _consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs form PROOF(first, D[second]) (RFC 6962 §2.1.2)."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    ranges = []
    start, end, whole = 0, second, True
    while first != end:
        k = _split(end - start)
        if first - start <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            whole = False
    if not whole:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def _nodes_of(ranges: Iterable[tuple[int, int]]) -> set[NodeId]:
    return {node for start, end in ranges for node in perfect_subtrees(start, end)}


def inclusion_nodes(index: int, size: int) -> set[NodeId]:
    """The stored nodes :func:`inclusion_proof` needs."""
    return _nodes_of(_inclusion_ranges(index, size))


def inclusion_proof(index: int, size: int, hashes: Mapping[NodeId, bytes]) -> list[bytes]:
    """PATH(index, D[size]) (RFC 6962 §2.1.1), from stored perfect-subtree hashes."""
    return [range_hash(start, end, hashes) for start, end in _inclusion_ranges(index, size)]


def consistency_nodes(first: int, second: int) -> set[NodeId]:
    """The stored nodes :func:`consistency_proof` needs."""
    return _nodes_of(_consistency_ranges(first, second))


def consistency_proof(first: int, second: int, hashes: Mapping[NodeId, bytes]) -> list[bytes]:
    """PROOF(first, D[second]) (RFC 6962 §2.1.2), from stored perfect-subtree hashes; empty
    when the sizes are equal."""
    return [range_hash(start, end, hashes) for start, end in _consistency_ranges(first, second)]


class CompactRange:
    """The right edge of a growing tree: the hashes of :func:`root_nodes` ``(size)``.

    :meth:`append` adds one leaf and returns the perfect nodes of level ≥ 1 it completes
    (each must be stored); :meth:`root` is the current MTH.
    """

    __slots__ = ("_edge", "size")

    def __init__(self, size: int = 0, edge: Sequence[bytes] = ()) -> None:
        if len(edge) != size.bit_count():
            raise ValueError(f"a tree of size {size} has {size.bit_count()} edge nodes, not {len(edge)}")
        self.size = size
        self._edge = list(edge)

    @classmethod
    def from_hashes(cls, size: int, hashes: Mapping[NodeId, bytes]) -> CompactRange:
        """The edge of a stored tree of ``size`` leaves, from its :func:`root_nodes`."""
        try:
            return cls(size, [hashes[node] for node in root_nodes(size)])
        except KeyError as missing:
            raise ProofError(f"the log has no stored hash for subtree {missing.args[0]}") from None

    def copy(self) -> CompactRange:
        """An independent copy (append to it, keep the original until a commit succeeds)."""
        return CompactRange(self.size, self._edge)

    def append(self, leaf: bytes) -> list[tuple[NodeId, bytes]]:
        """Add the leaf with hash ``leaf``; returns the new perfect nodes above level 0."""
        index = self.size
        completed = []
        current = leaf
        level = 0
        while index >> level & 1:
            current = node_hash(self._edge.pop(), current)
            level += 1
            completed.append((NodeId(level, index >> level), current))
        self._edge.append(current)
        self.size += 1
        return completed

    def root(self) -> bytes:
        """MTH of the leaves appended so far."""
        if not self._edge:
            return EMPTY_ROOT
        result = self._edge[-1]
        for node in reversed(self._edge[:-1]):
            result = node_hash(node, result)
        return result
