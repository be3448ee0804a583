"""One sequencer at a time. On PostgreSQL the sequencer holds a session advisory lock on the
connection it writes through, so if its process or connection dies, the lock goes with it
and a waiting replica takes over; on SQLite (one machine) a lock file beside the database."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)


def lock_key(namespace: str) -> int:
    """The advisory lock id of the sequencer of ``namespace`` (a signed 64-bit integer)."""
    digest = hashlib.sha256(f"custody-audit-sequencer\n{namespace}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _try_flock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@asynccontextmanager
async def sequencer_connection(
    engine: AsyncEngine, namespace: str, poll_seconds: float = 1.0
) -> AsyncIterator[AsyncConnection]:
    """Wait until this process may sequence, then yield the connection to write through; the
    right to sequence lasts as long as that connection."""
    conn = await engine.connect()
    lock_fd: int | None = None
    try:
        if conn.dialect.name == "postgresql":
            key = lock_key(namespace)
            waiting_logged = False
            while True:
                acquired = (await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})).scalar()
                await conn.commit()
                if acquired:
                    break
                if not waiting_logged:
                    log.info("another audit process is sequencing; standing by to take over")
                    waiting_logged = True
                await asyncio.sleep(poll_seconds)
        else:
            database = engine.url.database
            if database and database != ":memory:":
                path = Path(database).with_name(Path(database).name + ".sequencer.lock")
                while (lock_fd := await asyncio.to_thread(_try_flock, path)) is None:
                    await asyncio.sleep(poll_seconds)
        log.info("this process now sequences the custody log")
        yield conn
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
        try:
            if conn.dialect.name == "postgresql" and not conn.invalidated:
                # Release now, not when the server notices the session has gone.
                await conn.rollback()
                await conn.execute(text("SELECT pg_advisory_unlock_all()"))
                await conn.commit()
        except Exception:  # noqa: BLE001 — a dead connection has released it already
            log.debug("sequencer connection was already gone")
        try:
            # Discard the session rather than pool it.
            await conn.invalidate()
            await conn.close()
        except Exception:  # noqa: BLE001
            log.debug("sequencer connection was already gone")
