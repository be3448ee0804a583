"""The queries of checkpoint time-stamps. The table only grows: the first token stored for a
checkpoint is the one kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from custody_audit.log.tables import timestamps


@dataclass(frozen=True)
class StoredTimestamp:
    """The RFC 3161 time-stamp of one checkpoint, as kept."""

    size: int
    """Size of the checkpoint it time-stamps."""
    response: bytes
    """DER ``TimeStampResp`` over SHA-256 of that checkpoint's body."""
    gen_time: datetime
    stored_at: datetime


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _stored(row: Any) -> StoredTimestamp:
    return StoredTimestamp(int(row.size), bytes(row.response), _utc(row.gen_time), _utc(row.stored_at))


async def timestamp_of_size(conn: AsyncConnection, size: int) -> StoredTimestamp | None:
    """The time-stamp of the checkpoint of ``size``, if one is stored."""
    row = (await conn.execute(select(timestamps).where(timestamps.c.size == size))).first()
    return _stored(row) if row else None


async def latest_timestamp(conn: AsyncConnection) -> StoredTimestamp | None:
    """The time-stamp of the largest time-stamped checkpoint."""
    row = (await conn.execute(select(timestamps).order_by(timestamps.c.size.desc()).limit(1))).first()
    return _stored(row) if row else None


async def all_timestamps(conn: AsyncConnection) -> list[StoredTimestamp]:
    """Every stored time-stamp, smallest checkpoint first."""
    rows = (await conn.execute(select(timestamps).order_by(timestamps.c.size))).all()
    return [_stored(row) for row in rows]


async def insert_timestamp(conn: AsyncConnection, stamp: StoredTimestamp) -> None:
    """Keep ``stamp`` unless the checkpoint has a time-stamp already (then that one stays)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(
        dialect.insert(timestamps)
        .values(size=stamp.size, response=stamp.response, gen_time=stamp.gen_time, stored_at=stamp.stored_at)
        .on_conflict_do_nothing(index_elements=[timestamps.c.size])
    )
