"""Uploads, their stored parts, announced signing keys and the outbox.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    moment = sa.DateTime(timezone=True)
    op.create_table(
        "uploads",
        sa.Column("evidence_id", sa.Uuid(as_uuid=True), primary_key=True),
        sa.Column("case_name", sa.String(64), nullable=False),
        sa.Column("submitter", sa.String(255), nullable=False),
        sa.Column("length", sa.BigInteger, nullable=False),
        sa.Column("received_bytes", sa.BigInteger, nullable=False),
        sa.Column("declared_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("wrapped_dek", sa.Text, nullable=False, comment="WrappedKey as JSON"),
        sa.Column("sealed_metadata", sa.Text, nullable=False),
        sa.Column("sealed_disclosures", sa.Text, nullable=True),
        sa.Column("next_part", sa.Integer, nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("expires_at", moment, nullable=False),
        sa.Column("finished_at", moment, nullable=True),
        sa.Column("lock_token", sa.String(36), nullable=True),
        sa.Column("lock_heartbeat", moment, nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("parts_purged_at", moment, nullable=True),
    )
    op.create_index("uploads_status_expires", "uploads", ["status", "expires_at"])
    op.create_table(
        "parts",
        sa.Column("evidence_id", sa.Uuid(as_uuid=True), sa.ForeignKey("uploads.evidence_id"), nullable=False),
        sa.Column("part_index", sa.Integer, nullable=False),
        sa.Column("part_offset", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("stored_size", sa.BigInteger, nullable=False),
        sa.Column("object_key", sa.String(300), nullable=False),
        sa.Column("stored_at", moment, nullable=False),
        sa.PrimaryKeyConstraint("evidence_id", "part_index", name="parts_pkey"),
    )
    op.create_table(
        "announced_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("announced_at", moment, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("msg_id", sa.String(64), nullable=False, unique=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("published_at", moment, nullable=True),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])


def downgrade() -> None:
    for table in ("outbox", "announced_keys", "parts", "uploads"):
        op.drop_table(table)
