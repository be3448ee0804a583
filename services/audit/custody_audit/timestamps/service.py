"""Time-stamps of checkpoints: stored ones are served; a checkpoint without one is time-stamped
on request by the configured authority, so a court package can carry a token over the very
checkpoint it holds. Each request checks the stored checkpoint's signature first: a note
altered in the database is never given a trusted time."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from custody_audit.errors import LogDamaged, NotFound, OutOfRange
from custody_audit.log import repository as log_repository
from custody_audit.log.checkpoint import CheckpointError, verify_checkpoint
from custody_audit.log.repository import StoredCheckpoint
from custody_audit.timestamps import repository
from custody_audit.timestamps.authority import TimestampAuthority
from custody_audit.timestamps.repository import StoredTimestamp

log = logging.getLogger(__name__)

MAX_SIZE = 2**63 - 1
CONCURRENT_REQUESTS = 2
"""Requests to the authority under way at once, whoever asks."""


class CheckpointTimestamps:
    """Reads and makes the time-stamps of the log's checkpoints."""

    def __init__(
        self,
        engine: AsyncEngine,
        authority: TimestampAuthority | None,
        verifier_key: str,
        origin: str,
    ) -> None:
        self._engine = engine
        self.authority = authority
        """None when no authority is configured: only stored tokens are served."""
        self._verifier_key = verifier_key
        self._origin = origin
        self._slots = asyncio.Semaphore(CONCURRENT_REQUESTS)
        self._pending: dict[int, asyncio.Task[StoredTimestamp]] = {}

    async def latest(self) -> StoredTimestamp:
        """The time-stamp of the largest time-stamped checkpoint."""
        async with self._engine.connect() as conn:
            stored = await repository.latest_timestamp(conn)
        if stored is None:
            raise NotFound(
                "no checkpoint has a time-stamp yet"
                + ("" if self.authority else ": this log has no time-stamping authority (CUSTODY_TSA_URL)")
            )
        return stored

    async def of_size(self, size: int) -> StoredTimestamp:
        """The time-stamp of the checkpoint of ``size``: the stored one, or, with an authority
        configured, one requested now. Raises OutOfRange, NotFound, TimestampFailed, LogDamaged."""
        if not 1 <= size <= MAX_SIZE:
            raise OutOfRange(f"tree_size {size} is out of range: give the size of a checkpoint (1 or more)")
        async with self._engine.connect() as conn:
            stored = await repository.timestamp_of_size(conn, size)
            if stored is not None:
                return stored
            checkpoint = await log_repository.checkpoint_of_size(conn, size)
            latest = await log_repository.latest_checkpoint(conn) if checkpoint is None else None
        if checkpoint is None:
            if latest is None or size > latest.size:
                raise OutOfRange(f"tree_size {size} is beyond the log's latest checkpoint ({latest.size if latest else 0})")
            raise NotFound(
                f"the log has no checkpoint of size {size}: one is signed after each batch, so not every size has "
                "one; GET /v1/log/checkpoint names the latest"
            )
        if self.authority is None:
            raise NotFound(
                f"checkpoint {size} has no time-stamp, and this log has no time-stamping authority (CUSTODY_TSA_URL)"
            )
        return await self.stamp(checkpoint)

    async def stamp(self, checkpoint: StoredCheckpoint) -> StoredTimestamp:
        """The time-stamp of ``checkpoint``, requested from the authority unless one is stored;
        callers asking for the same checkpoint at once share one request."""
        task = self._pending.get(checkpoint.size)
        if task is None:
            task = asyncio.create_task(self._stamp(checkpoint), name=f"custody-log-timestamp-{checkpoint.size}")
            self._pending[checkpoint.size] = task
            task.add_done_callback(self._done)
        # A caller that goes away does not cancel what others wait for.
        return await asyncio.shield(task)

    def _done(self, task: asyncio.Task[StoredTimestamp]) -> None:
        for size, pending in list(self._pending.items()):
            if pending is task:
                del self._pending[size]
        if not task.cancelled():
            task.exception()  # retrieved here, raised to whoever awaits it

    async def _stamp(self, checkpoint: StoredCheckpoint) -> StoredTimestamp:
        assert self.authority is not None
        try:
            signed = verify_checkpoint(checkpoint.note, self._verifier_key, self._origin)
        except CheckpointError as exc:
            raise LogDamaged(f"stored checkpoint {checkpoint.size} does not verify, so it is not time-stamped: {exc}") from None
        if signed.size != checkpoint.size or signed.root != checkpoint.root:
            raise LogDamaged(f"stored checkpoint {checkpoint.size}'s note states another size or root than its row")
        async with self._slots:
            async with self._engine.connect() as conn:
                stored = await repository.timestamp_of_size(conn, checkpoint.size)
            if stored is not None:  # made meanwhile, here or by another replica
                return stored
            stamp = await self.authority.stamp(signed.body().encode())
            async with self._engine.begin() as conn:
                await repository.insert_timestamp(
                    conn, StoredTimestamp(checkpoint.size, stamp.response, stamp.gen_time, datetime.now(UTC))
                )
                kept = await repository.timestamp_of_size(conn, checkpoint.size)
        assert kept is not None
        log.info("checkpoint %d time-stamped by %s at %s", checkpoint.size, self.authority.name, stamp.gen_time.isoformat())
        return kept
