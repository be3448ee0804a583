"""The queries of the custody log. Every function takes the caller's connection, so the
sequencer can run a whole batch (leaves, hashes, checkpoint) in one transaction."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    any_,
    bindparam,
    cast,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from custody_audit.log.merkle import NodeId
from custody_audit.log.tables import checkpoints, leaves, nodes, rejected_events

# Keeps every statement under SQLite's and PostgreSQL's bound-parameter limits.
_CHUNK = 2000


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint as the log keeps it."""

    size: int
    root: bytes
    note: str
    signed_at: datetime


@dataclass(frozen=True)
class StoredLeaf:
    """One log entry with the columns indexed beside it."""

    index: int
    event_id: str
    service: str
    action: str
    evidence_id: str | None
    case: str | None
    item_seq: int | None
    prev_leaf: bytes | None
    leaf: bytes
    leaf_hash: bytes


def _member_of(conn: AsyncConnection, column: Any, values: Sequence[str]) -> Any:
    """``column IN values``; on PostgreSQL as ``= ANY(array)``, one parameter whatever the count,
    so the statement is prepared once rather than once per batch size."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(String)))
    return column.in_(values)


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


# One statement of fixed text for any set of nodes, so it is parsed and planned once per
# connection: the wanted nodes arrive as arrays (JSON on SQLite) joined to the primary keys.
# A statement shaped by the nodes (an ``IN`` list per level) cost SQLite ten times as much.
_HASHES_POSTGRESQL = text(
    """
    SELECT 0 AS level, l.idx, l.leaf_hash AS hash
      FROM log_leaves AS l WHERE l.idx = ANY(CAST(:leaves AS bigint[]))
    UNION ALL
    SELECT n.level, n.idx, n.hash
      FROM unnest(CAST(:levels AS smallint[]), CAST(:indexes AS bigint[])) AS w(level, idx)
      JOIN log_nodes AS n ON n.level = w.level AND n.idx = w.idx
    """
)
_HASHES_SQLITE = text(
    """
    SELECT 0 AS level, l.idx, l.leaf_hash AS hash
      FROM json_each(:leaves) AS w JOIN log_leaves AS l ON l.idx = w.value
    UNION ALL
    SELECT n.level, n.idx, n.hash
      FROM json_each(:nodes) AS w
      JOIN log_nodes AS n ON n.level = json_extract(w.value, '$[0]') AND n.idx = json_extract(w.value, '$[1]')
    """
)


async def fetch_hashes(conn: AsyncConnection, wanted: Iterable[NodeId]) -> dict[NodeId, bytes]:
    """The stored hashes of ``wanted`` perfect subtrees (leaf hashes for level 0), in one
    query whatever their number."""
    wanted = set(wanted)
    if not wanted:
        return {}
    leaf_ids = [node.index for node in wanted if node.level == 0]
    inner = [node for node in wanted if node.level > 0]
    if conn.dialect.name == "postgresql":
        statement = _HASHES_POSTGRESQL
        parameters = {
            "leaves": leaf_ids,
            "levels": [node.level for node in inner],
            "indexes": [node.index for node in inner],
        }
    else:
        statement = _HASHES_SQLITE
        parameters = {"leaves": json.dumps(leaf_ids), "nodes": json.dumps([[node.level, node.index] for node in inner])}
    rows = (await conn.execute(statement, parameters)).all()
    return {NodeId(int(level), int(index)): bytes(digest) for level, index, digest in rows}


async def log_size(conn: AsyncConnection) -> int:
    """How many leaves the log holds (its largest index plus one)."""
    largest = (await conn.execute(select(func.max(leaves.c.idx)))).scalar()
    return 0 if largest is None else int(largest) + 1


def _checkpoint(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(int(row.size), bytes(row.root), row.note, row.signed_at)


async def latest_checkpoint(conn: AsyncConnection) -> StoredCheckpoint | None:
    """The checkpoint of the largest size, or None for a log that never started."""
    row = (await conn.execute(select(checkpoints).order_by(checkpoints.c.size.desc()).limit(1))).first()
    return _checkpoint(row) if row else None


async def checkpoint_of_size(conn: AsyncConnection, size: int) -> StoredCheckpoint | None:
    """The stored checkpoint of exactly ``size`` leaves."""
    row = (await conn.execute(select(checkpoints).where(checkpoints.c.size == size))).first()
    return _checkpoint(row) if row else None


async def all_checkpoints(conn: AsyncConnection) -> list[StoredCheckpoint]:
    """Every stored checkpoint, smallest first."""
    rows = (await conn.execute(select(checkpoints).order_by(checkpoints.c.size))).all()
    return [_checkpoint(row) for row in rows]


def _leaf(row: Any) -> StoredLeaf:
    return StoredLeaf(
        index=int(row.idx),
        event_id=row.event_id,
        service=row.service,
        action=row.action,
        evidence_id=row.evidence_id,
        case=row.case_name,
        item_seq=row.item_seq,
        prev_leaf=bytes(row.prev_leaf) if row.prev_leaf is not None else None,
        leaf=bytes(row.leaf),
        leaf_hash=bytes(row.leaf_hash),
    )


async def leaf_range(conn: AsyncConnection, start: int, end: int) -> list[tuple[int, bytes]]:
    """(index, leaf bytes) of entries ``[start, end)``."""
    rows = await conn.execute(
        select(leaves.c.idx, leaves.c.leaf).where(leaves.c.idx >= start, leaves.c.idx < end).order_by(leaves.c.idx)
    )
    return [(int(index), bytes(leaf)) for index, leaf in rows.all()]


async def item_leaves(conn: AsyncConnection, evidence_id: str, below: int) -> list[StoredLeaf]:
    """The entries of one evidence item among the first ``below`` leaves, in log order."""
    rows = await conn.execute(
        select(leaves).where(leaves.c.evidence_id == evidence_id, leaves.c.idx < below).order_by(leaves.c.idx)
    )
    return [_leaf(row) for row in rows.all()]


async def item_heads(conn: AsyncConnection, evidence_ids: Iterable[str]) -> dict[str, tuple[int, bytes]]:
    """For each item already in the log: (its last item_seq, that entry's leaf hash)."""
    heads: dict[str, tuple[int, bytes]] = {}
    for chunk in _chunks(sorted(set(evidence_ids))):
        for evidence_id, seq, digest in (await conn.execute(_last_entries(conn, chunk))).all():
            heads[evidence_id] = (int(seq), bytes(digest))
    return heads


def _last_entries(conn: AsyncConnection, evidence_ids: Sequence[str]) -> Any:
    """(evidence_id, item_seq, leaf_hash) of the last entry of each of ``evidence_ids``."""
    if conn.dialect.name == "postgresql":
        # One step back on the (evidence_id, item_seq) index per item. Grouped and joined,
        # PostgreSQL reads every entry of the items, often by scanning the whole log.
        wanted = (
            func.unnest(bindparam(None, list(evidence_ids), type_=ARRAY(String)))
            .table_valued("evidence_id")
            .render_derived(name="wanted")
        )
        last = (
            select(leaves.c.item_seq, leaves.c.leaf_hash)
            .where(leaves.c.evidence_id == wanted.c.evidence_id)
            .order_by(leaves.c.item_seq.desc())
            .limit(1)
            .lateral("last")
        )
        return select(wanted.c.evidence_id, last.c.item_seq, last.c.leaf_hash)
    last = (
        select(leaves.c.evidence_id, func.max(leaves.c.item_seq).label("seq"))
        .where(leaves.c.evidence_id.in_(evidence_ids))
        .group_by(leaves.c.evidence_id)
        .subquery()
    )
    return select(leaves.c.evidence_id, leaves.c.item_seq, leaves.c.leaf_hash).join(
        last, (leaves.c.evidence_id == last.c.evidence_id) & (leaves.c.item_seq == last.c.seq)
    )


async def logged_events(conn: AsyncConnection, event_ids: Iterable[str]) -> dict[str, bytes]:
    """The leaves of those of ``event_ids`` already in the log."""
    found: dict[str, bytes] = {}
    for chunk in _chunks(sorted(set(event_ids))):
        rows = await conn.execute(
            select(leaves.c.event_id, leaves.c.leaf).where(_member_of(conn, leaves.c.event_id, chunk))
        )
        found.update((event_id, bytes(leaf)) for event_id, leaf in rows.all())
    return found


async def leaves_of_action(conn: AsyncConnection, action: str) -> list[StoredLeaf]:
    """Every entry of one action, whichever service's (e.g. every key announcement)."""
    rows = await conn.execute(select(leaves).where(leaves.c.action == action).order_by(leaves.c.idx))
    return [_leaf(row) for row in rows.all()]


async def leaves_of(conn: AsyncConnection, service: str, action: str) -> list[StoredLeaf]:
    """Every entry of one service and action (e.g. a service's key announcements)."""
    rows = await conn.execute(
        select(leaves).where(leaves.c.service == service, leaves.c.action == action).order_by(leaves.c.idx)
    )
    return [_leaf(row) for row in rows.all()]


async def stream_leaves(conn: AsyncConnection, batch: int = 5000) -> AsyncIterator[StoredLeaf]:
    """Every entry in log order, a page at a time (the whole log never sits in memory)."""
    after = -1
    while True:
        rows = (
            await conn.execute(select(leaves).where(leaves.c.idx > after).order_by(leaves.c.idx).limit(batch))
        ).all()
        if not rows:
            return
        for row in rows:
            yield _leaf(row)
        after = int(rows[-1].idx)


async def stream_nodes(conn: AsyncConnection, batch: int = 5000) -> AsyncIterator[tuple[NodeId, bytes]]:
    """Every stored node of level ≥ 1 in the order appends complete them: by the leaf that
    completes the node, then upward. Use a connection of its own: the rows stream."""
    completes = (nodes.c.idx + 1).op("<<")(cast(nodes.c.level, Integer))
    result = await conn.stream(select(nodes.c.level, nodes.c.idx, nodes.c.hash).order_by(completes, nodes.c.level))
    async for partition in result.partitions(batch):
        for level, index, digest in partition:
            yield NodeId(int(level), int(index)), bytes(digest)


def _postgres_type(column: Column[Any]) -> str:
    """The PostgreSQL type of ``column``, as binary COPY names it."""
    kind = column.type
    if isinstance(kind, BigInteger):
        return "int8"
    if isinstance(kind, SmallInteger):
        return "int2"
    if isinstance(kind, Integer):
        return "int4"
    if isinstance(kind, LargeBinary):
        return "bytea"
    if isinstance(kind, DateTime):
        return "timestamptz" if kind.timezone else "timestamp"
    if isinstance(kind, String):
        return "text"
    raise TypeError(f"no binary COPY type for {column}")


async def _copy(conn: AsyncConnection, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL COPY inside the caller's transaction: the fastest bulk append it has. Binary,
    so hashes and leaves go over as they are instead of spelled out in hex (less than half the
    CPU per row of the text form)."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    async with driver.cursor() as cursor:
        async with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([_postgres_type(table.c[name]) for name in columns])
            for row in rows:
                await copy.write_row(row)


async def insert_leaves(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append entries (``idx``, ``event_id`` … ``logged_at``) in bulk."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        columns = [column.name for column in leaves.columns]
        await _copy(conn, leaves, columns, ([row[name] for name in columns] for row in rows))
    else:
        await conn.execute(insert(leaves), list(rows))


async def insert_nodes(conn: AsyncConnection, new_nodes: Sequence[tuple[NodeId, bytes]]) -> None:
    """Store the perfect-subtree hashes an append completed."""
    if not new_nodes:
        return
    if conn.dialect.name == "postgresql":
        await _copy(conn, nodes, ["level", "idx", "hash"], ((n.level, n.index, digest) for n, digest in new_nodes))
    else:
        await conn.execute(
            insert(nodes), [{"level": node.level, "idx": node.index, "hash": digest} for node, digest in new_nodes]
        )


async def insert_checkpoint(conn: AsyncConnection, checkpoint: StoredCheckpoint) -> None:
    """Keep a signed checkpoint."""
    await conn.execute(
        insert(checkpoints).values(
            size=checkpoint.size, root=checkpoint.root, note=checkpoint.note, signed_at=checkpoint.signed_at
        )
    )


async def insert_rejected(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Keep aside messages that failed admission (``subject``, ``stream_seq``, ``payload``,
    ``reason``, ``received_at``)."""
    if rows:
        await conn.execute(insert(rejected_events), list(rows))


async def rejected_count(conn: AsyncConnection) -> int:
    """How many messages were kept aside."""
    return int((await conn.execute(select(func.count()).select_from(rejected_events))).scalar() or 0)
