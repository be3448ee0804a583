"""The read side of the custody log: checkpoints, entries, proofs and custody chains, each
bounded by a signed checkpoint so everything served can be checked against it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from custody_audit.errors import NotFound, OutOfRange
from custody_audit.log import repository
from custody_audit.log.checkpoint import verifier_key
from custody_audit.log.entry import parse_leaf
from custody_audit.log.merkle import consistency_nodes, consistency_proof, inclusion_nodes, inclusion_proof
from custody_audit.log.repository import StoredCheckpoint
from custody_common.auth import Principal

MAX_ENTRIES = 1000
"""The most entries one page may hold."""

CHAIN_READERS = ("auditor", "admin")
"""Roles that read every item's custody chain; prosecutors read those of their own cases."""


@dataclass(frozen=True)
class ChainEvent:
    """One custody event of an item, with its inclusion proof."""

    index: int
    leaf: bytes
    entry: dict[str, Any]
    inclusion: list[bytes]


@dataclass(frozen=True)
class CustodyChain:
    """Every logged event of one evidence item, all proven against ``checkpoint``."""

    checkpoint: StoredCheckpoint
    events: list[ChainEvent]


class CustodyLog:
    """Reads the log; never writes."""

    def __init__(self, engine: AsyncEngine, origin: str, log_public_key: Ed25519PublicKey) -> None:
        self._engine = engine
        self.origin = origin
        self.verifier_key = verifier_key(origin, log_public_key)
        self._known_size = 0
        """The largest checkpoint size read so far. The log only grows (its tables refuse
        UPDATE and DELETE), so a proof within it needs no query for the latest checkpoint."""

    async def _latest(self, conn: AsyncConnection) -> StoredCheckpoint:
        checkpoint = await repository.latest_checkpoint(conn)
        if checkpoint is None:
            raise NotFound("the log has no checkpoint yet; it is signed when the audit service first starts")
        self._known_size = max(self._known_size, checkpoint.size)
        return checkpoint

    async def _size_covering(self, conn: AsyncConnection, size: int) -> int:
        """A checkpointed size of at least ``size`` if the log has one, else the latest size."""
        return self._known_size if size <= self._known_size else (await self._latest(conn)).size

    async def latest_checkpoint(self) -> StoredCheckpoint:
        """The newest signed checkpoint."""
        async with self._engine.connect() as conn:
            return await self._latest(conn)

    async def checkpoint(self, size: int) -> StoredCheckpoint:
        """The stored checkpoint of exactly ``size`` entries."""
        async with self._engine.connect() as conn:
            latest = await self._latest(conn)
            if not 1 <= size <= latest.size:
                raise OutOfRange(f"tree_size {size} is outside 1 to {latest.size}, the latest checkpoint's size")
            found = latest if size == latest.size else await repository.checkpoint_of_size(conn, size)
        if found is None:
            raise NotFound(
                f"the log has no checkpoint of size {size}: one is signed after each batch, so not every size has one"
            )
        return found

    async def entries(self, start: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` entries from ``start``, within the latest checkpoint."""
        if not 1 <= limit <= MAX_ENTRIES:
            raise OutOfRange(f"limit must be between 1 and {MAX_ENTRIES}")
        async with self._engine.connect() as conn:
            size = (await self._latest(conn)).size
            if not 0 <= start < size:
                raise OutOfRange(f"start {start} is outside the log's {size} entries (0 to {size - 1})")
            return await repository.leaf_range(conn, start, min(start + limit, size))

    async def inclusion(self, index: int, tree_size: int) -> list[bytes]:
        """The inclusion proof of entry ``index`` in the tree of ``tree_size`` entries."""
        async with self._engine.connect() as conn:
            size = await self._size_covering(conn, tree_size)
            if not 1 <= tree_size <= size:
                raise OutOfRange(f"tree_size {tree_size} is outside 1 to {size}, the latest checkpoint's size")
            if not 0 <= index < tree_size:
                raise OutOfRange(f"index {index} is outside a tree of {tree_size} entries")
            hashes = await repository.fetch_hashes(conn, inclusion_nodes(index, tree_size))
        return inclusion_proof(index, tree_size, hashes)

    async def consistency(self, first: int, second: int) -> list[bytes]:
        """The consistency proof from the tree of ``first`` entries to that of ``second``."""
        async with self._engine.connect() as conn:
            size = await self._size_covering(conn, second)
            if not 1 <= second <= size:
                raise OutOfRange(f"second {second} is outside 1 to {size}, the latest checkpoint's size")
            if not 1 <= first <= second:
                raise OutOfRange(f"first {first} must be between 1 and second ({second})")
            hashes = await repository.fetch_hashes(conn, consistency_nodes(first, second))
        return consistency_proof(first, second, hashes)

    async def custody_chain(self, evidence_id: str, principal: Principal, tree_size: int | None = None) -> CustodyChain:
        """Every event of an item logged within the checkpoint of ``tree_size`` (default the
        latest), each with its inclusion proof. An item the caller may not see is NotFound,
        exactly like an unknown one."""
        unknown = NotFound(f"no custody events of evidence item {evidence_id} are visible to you")
        try:
            evidence_id = str(uuid.UUID(evidence_id))
        except ValueError:
            raise unknown from None
        async with self._engine.connect() as conn:
            checkpoint = await self._latest(conn)
            if tree_size is not None and tree_size != checkpoint.size:
                if not 1 <= tree_size <= checkpoint.size:
                    raise OutOfRange(f"tree_size {tree_size} is outside 1 to {checkpoint.size}, the latest checkpoint's size")
                found = await repository.checkpoint_of_size(conn, tree_size)
                if found is None:
                    raise OutOfRange(f"the log has no checkpoint of size {tree_size}")
                checkpoint = found
            stored = await repository.item_leaves(conn, evidence_id, checkpoint.size)
            if not stored or not self._may_read(principal, {leaf.case for leaf in stored}):
                raise unknown
            wanted = set().union(*(inclusion_nodes(leaf.index, checkpoint.size) for leaf in stored))
            hashes = await repository.fetch_hashes(conn, wanted)
        events = [
            ChainEvent(
                index=leaf.index,
                leaf=leaf.leaf,
                entry=parse_leaf(leaf.leaf),
                inclusion=inclusion_proof(leaf.index, checkpoint.size, hashes),
            )
            for leaf in stored
        ]
        return CustodyChain(checkpoint, events)

    @staticmethod
    def _may_read(principal: Principal, cases: set[str | None]) -> bool:
        if principal.has_role(*CHAIN_READERS):
            return True
        return all(case is not None and principal.sees_case(case, "prosecutor") for case in cases)
