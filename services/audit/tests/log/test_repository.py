"""The log's queries over a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from custody_audit.log import repository
from custody_common.ids import uuid7

ITEMS = 200
ENTRIES_PER_ITEM = 30


async def _fill(conn, items: list[str]) -> dict[str, tuple[int, bytes]]:  # type: ignore[no-untyped-def]
    """Every item gets ENTRIES_PER_ITEM entries, interleaved as a busy log has them; returns
    each item's last (item_seq, leaf_hash)."""
    rows, last = [], {}
    for index in range(len(items) * ENTRIES_PER_ITEM):
        item = items[index % len(items)]
        seq = index // len(items) + 1
        digest = hashlib.sha256(b"leaf %d" % index).digest()
        rows.append(
            {
                "idx": index,
                "event_id": str(uuid7()),
                "service": "intake",
                "action": "received",
                "evidence_id": item,
                "case_name": "C",
                "item_seq": seq,
                "prev_leaf": None,
                "leaf": b"{}",
                "leaf_hash": digest,
                "logged_at": datetime.now(UTC),
            }
        )
        last[item] = (seq, digest)
    await repository.insert_leaves(conn, rows)
    return last


async def test_item_heads_are_each_items_last_entry(engine) -> None:  # type: ignore[no-untyped-def]
    items = [str(uuid7()) for _ in range(ITEMS)]
    async with engine.begin() as conn:
        last = await _fill(conn, items)
    asked = items[::3] + [str(uuid7())]  # and an item the log has never seen
    async with engine.connect() as conn:
        heads = await repository.item_heads(conn, asked)
    assert heads == {item: last[item] for item in items[::3]}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_item_heads_read_the_index_not_the_whole_log(engine) -> None:  # type: ignore[no-untyped-def]
    items = [str(uuid7()) for _ in range(ITEMS)]
    async with engine.begin() as conn:
        last = await _fill(conn, items)
        await conn.execute(text("ANALYZE log_leaves"))
    async with engine.begin() as conn:
        heads = await repository.item_heads(conn, items)
        # Counts of this transaction alone: how the query read the log.
        seq_scans, index_scans = (
            await conn.execute(
                text("SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'log_leaves'")
            )
        ).one()
    assert heads == last
    assert index_scans > 0
    assert seq_scans == 0
