"""The background time-stamper: every ``interval`` seconds it asks the authority for a token
over the newest checkpoint, unless that one has a token already.

Not every checkpoint gets one: checkpoints are signed after every batch, many a second under
load, and a token over the checkpoint of size N already dates every entry before N (each
earlier checkpoint is proven part of it by a consistency proof). So a quiet log costs no
requests, a busy one one request per interval, and exports ask for their own checkpoint's
token on demand (see :class:`CheckpointTimestamps`). It reads the log on its own connections
and never touches the sequencer's: an authority that is slow or down delays nothing but
itself. Outages are logged and waited out with a growing pause, never in a busy loop.
"""

from __future__ import annotations

import logging
from asyncio import CancelledError, sleep
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from custody_audit.errors import LogDamaged
from custody_audit.log import repository as log_repository
from custody_audit.timestamps import repository
from custody_audit.timestamps.repository import StoredTimestamp
from custody_audit.timestamps.service import CheckpointTimestamps

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 300.0


@dataclass
class StamperStats:
    """Counters since the process started."""

    stamped: int = 0
    """Tokens this stamper obtained and stored."""
    failures: int = 0
    """Rounds that ended without a token the newest checkpoint needed."""
    last_failure: str | None = None


class CheckpointStamper:
    """Time-stamps the newest checkpoint every so often, for as long as the process runs."""

    def __init__(
        self,
        engine: AsyncEngine,
        timestamps: CheckpointTimestamps,
        *,
        interval: float,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        if interval <= 0:
            raise ValueError("the time-stamping interval must be positive")
        self._engine = engine
        self._timestamps = timestamps
        self._interval = interval
        self._active = active
        self.stats = StamperStats()
        self.damage: str | None = None
        """Why time-stamping stopped for good: a stored checkpoint failed its signature check."""

    async def stamp_newest(self) -> StoredTimestamp | None:
        """Time-stamp the newest checkpoint if it has no token; returns the new token, or None
        when there was nothing to do."""
        async with self._engine.connect() as conn:
            newest = await log_repository.latest_checkpoint(conn)
            if newest is None or await repository.timestamp_of_size(conn, newest.size) is not None:
                return None
        stored = await self._timestamps.stamp(newest)
        self.stats.stamped += 1
        return stored

    async def run(self) -> None:
        """Stamp, pause, repeat. ``active`` says whether this process should stamp now (the one
        that sequences, so replicas do not all ask for the same token)."""
        retry: float | None = None
        while True:
            try:
                if self._active():
                    await self.stamp_newest()
            except CancelledError:
                raise
            except LogDamaged as exc:
                self.damage = str(exc)
                log.critical("checkpoint time-stamping stopped: %s", exc)
                return
            except Exception as exc:  # noqa: BLE001 — authority or database outages are waited out
                retry = min(retry * 2, MAX_RETRY_SECONDS) if retry else min(self._interval, FIRST_RETRY_SECONDS)
                self.stats.failures += 1
                self.stats.last_failure = f"{type(exc).__name__}: {exc}"
                log.warning("could not time-stamp the newest checkpoint (%s); trying again in %.1fs", self.stats.last_failure, retry)
                await sleep(retry)
                continue
            if retry is not None:
                log.info("checkpoint time-stamping works again")
                retry = None
            await sleep(self._interval)
