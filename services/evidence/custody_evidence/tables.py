"""The evidence database: the index of evidence items (rebuildable from the store's signed
manifests), the record of every access and export, download URLs, holds, rotations and the
outbox."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from custody_common.announcement import announced_keys_table
from custody_common.outbox import outbox_table

metadata = MetaData()

outbox = outbox_table(metadata)

evidence_items = Table(
    "evidence_items",
    metadata,
    Column("evidence_id", String(36), primary_key=True),
    Column("case_name", String(64), nullable=False),
    Column("submitter", String(255), nullable=False),
    Column("status", String(16), nullable=False, comment="sealed | rejected | damaged"),
    Column("reason", Text, nullable=True, comment="Why rejected or damaged; never personal data."),
    Column("declared_sha256", String(64), nullable=False),
    Column("sha256", String(64), nullable=True, comment="Of the plaintext as read back at seal."),
    Column("size", BigInteger, nullable=False, comment="Declared plaintext size."),
    Column("manifest_version", Integer, nullable=False),
    Column("manifest", LargeBinary, nullable=False, comment="The newest signed manifest, as stored."),
    Column("kek_id", String(100), nullable=False),
    Column("legal_hold", Boolean, nullable=False, comment="Held by an admin, item by item."),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("sealed_at", DateTime(timezone=True), nullable=False),
    Column("retain_until", DateTime(timezone=True), nullable=True),
    Column("damaged_at", DateTime(timezone=True), nullable=True),
    Column("verified_at", DateTime(timezone=True), nullable=True),
    Column("next_fixity_at", DateTime(timezone=True), nullable=True),
)
Index("evidence_items_case", evidence_items.c.case_name, evidence_items.c.evidence_id)
Index("evidence_items_fixity", evidence_items.c.next_fixity_at)
Index("evidence_items_kek", evidence_items.c.kek_id)

evidence_accesses = Table(
    "evidence_accesses",
    metadata,
    Column("access_id", String(36), primary_key=True),
    Column("evidence_id", String(36), nullable=False, index=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("request_id", String(64), nullable=False),
    Column("sub", String(255), nullable=False),
    Column("byte_range", String(64), nullable=True),
    Column("purpose", Text, nullable=False, comment="{salt, purpose} sealed under the item's data key."),
    Column("accessed_at", DateTime(timezone=True), nullable=False),
)

set_aside_submissions = Table(
    "set_aside_submissions",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("payload_sha256", String(64), nullable=False, unique=True),
    Column("evidence_id", String(36), nullable=True),
    Column("stream_sequence", BigInteger, nullable=True),
    Column("reason", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("set_aside_at", DateTime(timezone=True), nullable=False),
)

announced_keys = announced_keys_table(metadata)

case_holds = Table(
    "case_holds",
    metadata,
    Column("case_name", String(64), primary_key=True),
    Column("set_by", String(255), nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
)

kek_rotations = Table(
    "kek_rotations",
    metadata,
    Column("rotation_id", String(36), primary_key=True),
    Column("kek_id", String(100), nullable=False, comment="The KEK version every data key moves to."),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

evidence_exports = Table(
    "evidence_exports",
    metadata,
    Column("event_id", String(36), primary_key=True, comment="The item's ``exported`` custody event."),
    Column("package_id", String(36), nullable=False, index=True),
    Column("evidence_id", String(36), nullable=False, index=True),
    Column("request_id", String(64), nullable=False),
    Column("sub", String(255), nullable=False),
    Column("manifest_sha256", String(64), nullable=False, comment="SHA-256 of the package's manifest.json."),
    Column("purpose", Text, nullable=False, comment="{salt, purpose} sealed under the item's data key."),
    Column("exported_at", DateTime(timezone=True), nullable=False),
)

evidence_downloads = Table(
    "evidence_downloads",
    metadata,
    Column("token_sha256", String(64), primary_key=True, comment="SHA-256 of the URL's token; never the token."),
    Column("evidence_id", String(36), nullable=False, index=True),
    Column("event_id", String(36), nullable=False, unique=True, comment="The ``accessed`` event of its creation."),
    Column("sub", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("spent_at", DateTime(timezone=True), nullable=True, comment="When a whole-file GET used it up."),
    Column("uses", Integer, nullable=False, comment="GETs served with it (whole or ranges)."),
)
