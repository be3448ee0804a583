"""The audit database: the append-only log (leaves, stored subtree hashes, checkpoints), the
RFC 3161 time-stamps of checkpoints, and the events kept aside because they failed admission.

On PostgreSQL the migrations add triggers that refuse UPDATE, DELETE and TRUNCATE on the
three log tables, on the time-stamps and on the events kept aside: the log only grows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
)

metadata = MetaData()

_big_id = BigInteger().with_variant(Integer, "sqlite")

leaves = Table(
    "log_leaves",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False, comment="Position in the log, from 0."),
    Column("event_id", String(64), nullable=False, unique=True, comment="Appending an event twice is a no-op."),
    Column("service", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("evidence_id", String(64), nullable=True),
    Column("case_name", String(200), nullable=True),
    Column("item_seq", Integer, nullable=True, comment="1, 2, … per evidence item."),
    Column("prev_leaf", LargeBinary(32), nullable=True, comment="Leaf hash of the item's previous entry."),
    Column("leaf", LargeBinary, nullable=False, comment="RFC 8785 bytes of the entry."),
    Column("leaf_hash", LargeBinary(32), nullable=False, comment="SHA-256(0x00 ‖ leaf)."),
    Column("logged_at", DateTime(timezone=True), nullable=False),
    Index("log_leaves_item", "evidence_id", "item_seq", unique=True),
    Index("log_leaves_service_action", "service", "action"),
)

nodes = Table(
    "log_nodes",
    metadata,
    Column("level", SmallInteger, nullable=False, comment="1 and up; level-0 hashes are log_leaves.leaf_hash."),
    Column("idx", BigInteger, nullable=False, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    PrimaryKeyConstraint("level", "idx", name="log_nodes_pkey"),
)

checkpoints = Table(
    "log_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False, comment="The C2SP signed note as served."),
    Column("signed_at", DateTime(timezone=True), nullable=False),
)

timestamps = Table(
    "log_timestamps",
    metadata,
    Column(
        "size",
        BigInteger,
        primary_key=True,
        autoincrement=False,
        comment="Size of the time-stamped checkpoint (log_checkpoints.size); one token each, the first kept.",
    ),
    Column(
        "response",
        LargeBinary,
        nullable=False,
        comment="DER TimeStampResp (RFC 3161) as the authority sent it, over SHA-256 of the checkpoint's body.",
    ),
    Column("gen_time", DateTime(timezone=True), nullable=False, comment="The time the authority vouches for."),
    Column("stored_at", DateTime(timezone=True), nullable=False),
)

rejected_events = Table(
    "rejected_events",
    metadata,
    Column("id", _big_id, primary_key=True, autoincrement=True),
    Column("subject", String(200), nullable=False),
    Column("stream_seq", BigInteger, nullable=True),
    Column("payload", LargeBinary, nullable=False, comment="The message exactly as received."),
    Column("reason", String(500), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

LOG_TABLES = (leaves.name, nodes.name, checkpoints.name)
"""The log proper."""
INSERT_ONLY_TABLES = (*LOG_TABLES, timestamps.name, rejected_events.name)
"""Tables whose rows are never changed or removed once written."""
