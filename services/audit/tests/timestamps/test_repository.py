"""The time-stamp table: the first token stored for a checkpoint is the one kept, and on
PostgreSQL no token can be changed or removed, even by the table's owner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from custody_audit.timestamps.repository import (
    StoredTimestamp,
    insert_timestamp,
    latest_timestamp,
    timestamp_of_size,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def test_the_first_token_of_a_checkpoint_is_kept(engine) -> None:
    first = StoredTimestamp(5, b"first token", NOW, NOW)
    async with engine.begin() as conn:
        await insert_timestamp(conn, first)
        await insert_timestamp(conn, StoredTimestamp(5, b"second token", NOW + timedelta(seconds=1), NOW))
        await insert_timestamp(conn, StoredTimestamp(3, b"older checkpoint", NOW, NOW))
    async with engine.connect() as conn:
        assert await timestamp_of_size(conn, 5) == first
        assert await timestamp_of_size(conn, 4) is None
        assert await latest_timestamp(conn) == first


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE log_timestamps SET response = response",
        "DELETE FROM log_timestamps",
        "TRUNCATE log_timestamps",
        "TRUNCATE log_timestamps CASCADE",
    ],
)
async def test_postgres_refuses_to_change_a_time_stamp(settings, engine, statement: str) -> None:
    async with engine.begin() as conn:
        await insert_timestamp(conn, StoredTimestamp(1, b"token", NOW, NOW))
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM log_timestamps").fetchone()[0] == 1
