"""Intake's database: uploads in progress and finished, their stored parts, the signing keys
already announced, and the outbox. Upload state lives here only, so any intake process can
continue any upload."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
)

from custody_common.announcement import announced_keys_table
from custody_common.outbox import outbox_table


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every engine (SQLite keeps no zone, so it is added back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # type: ignore[no-untyped-def]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("intake stores aware datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # type: ignore[no-untyped-def]
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

uploads = Table(
    "uploads",
    metadata,
    Column("evidence_id", Uuid(as_uuid=True), primary_key=True),
    Column("case_name", String(64), nullable=False),
    Column("submitter", String(255), nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("received_bytes", BigInteger, nullable=False),
    Column("declared_sha256", String(64), nullable=True),  # NULL until the completing PATCH states it
    Column("status", String(16), nullable=False),
    Column("wrapped_dek", Text, nullable=False, comment="WrappedKey as JSON"),
    Column("sealed_metadata", Text, nullable=False),
    Column("sealed_disclosures", Text, nullable=True),
    Column("next_part", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("lock_token", String(36), nullable=True),
    Column("lock_heartbeat", UtcDateTime, nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("parts_purged_at", UtcDateTime, nullable=True),
)
Index("uploads_status_expires", uploads.c.status, uploads.c.expires_at)

parts = Table(
    "parts",
    metadata,
    Column("evidence_id", Uuid(as_uuid=True), ForeignKey("uploads.evidence_id"), nullable=False),
    Column("part_index", Integer, nullable=False),
    Column("part_offset", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("stored_size", BigInteger, nullable=False),
    Column("object_key", String(300), nullable=False),
    Column("stored_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("evidence_id", "part_index", name="parts_pkey"),
)

announced_keys = announced_keys_table(metadata)

outbox = outbox_table(metadata)
