"""The migration: the same schema on SQLite and PostgreSQL, and on PostgreSQL log tables that
refuse UPDATE, DELETE and TRUNCATE, even to their owner, as do the time-stamps and the events
kept aside."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import inspect

from custody_audit.app import MIGRATIONS
from custody_audit.log.tables import INSERT_ONLY_TABLES, metadata, timestamps
from custody_common.db import run_migrations

NOW = datetime.now(UTC)


async def test_migration_builds_the_tables_the_code_uses(settings, engine) -> None:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        for table in metadata.sorted_tables:
            assert table.name in names
            columns = await conn.run_sync(lambda sync, t=table: {c["name"] for c in inspect(sync).get_columns(t.name)})
            assert columns == {c.name for c in table.columns}
    # Running the migrations again is a no-op.
    await asyncio.to_thread(run_migrations, settings, "audit", MIGRATIONS)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {table} SET {column} = {column}",
        "DELETE FROM {table}",
        "TRUNCATE {table}",
        "TRUNCATE {table} CASCADE",
    ],
)
async def test_postgres_refuses_to_change_the_log(settings, engine, append, signed, incoming, statement) -> None:
    await append(*(incoming(signed("intake")) for _ in range(3)), incoming(signed("intake", signer="evidence")))
    async with engine.connect() as conn:
        await conn.execute(timestamps.insert().values(size=3, response=b"token", gen_time=NOW, stored_at=NOW))
        await conn.commit()
    columns = {
        "log_leaves": "leaf",
        "log_nodes": "hash",
        "log_checkpoints": "note",
        "log_timestamps": "response",
        "rejected_events": "reason",
    }
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for table in INSERT_ONLY_TABLES:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement.format(table=table, column=columns[table]))
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0
