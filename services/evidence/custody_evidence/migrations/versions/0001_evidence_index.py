"""The evidence index: items, accesses, set-aside submissions, announced keys, case holds,
KEK rotations and the outbox.

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
    big_id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
    op.create_table(
        "outbox",
        sa.Column("seq", big_id, primary_key=True, autoincrement=True),
        sa.Column("msg_id", sa.String(64), nullable=False, unique=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])
    op.create_table(
        "evidence_items",
        sa.Column("evidence_id", sa.String(36), primary_key=True),
        sa.Column("case_name", sa.String(64), nullable=False),
        sa.Column("submitter", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("declared_sha256", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("manifest_version", sa.Integer, nullable=False),
        sa.Column("manifest", sa.LargeBinary, nullable=False),
        sa.Column("kek_id", sa.String(100), nullable=False),
        sa.Column("legal_hold", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("damaged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_fixity_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("evidence_items_case", "evidence_items", ["case_name", "evidence_id"])
    op.create_index("evidence_items_fixity", "evidence_items", ["next_fixity_at"])
    op.create_index("evidence_items_kek", "evidence_items", ["kek_id"])
    op.create_table(
        "evidence_accesses",
        sa.Column("access_id", sa.String(36), primary_key=True),
        sa.Column("evidence_id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("sub", sa.String(255), nullable=False),
        sa.Column("byte_range", sa.String(64), nullable=True),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("accessed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_evidence_accesses_evidence_id", "evidence_accesses", ["evidence_id"])
    op.create_table(
        "set_aside_submissions",
        sa.Column("seq", big_id, primary_key=True, autoincrement=True),
        sa.Column("payload_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("evidence_id", sa.String(36), nullable=True),
        sa.Column("stream_sequence", sa.BigInteger, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("set_aside_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "announced_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "case_holds",
        sa.Column("case_name", sa.String(64), primary_key=True),
        sa.Column("set_by", sa.String(255), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "kek_rotations",
        sa.Column("rotation_id", sa.String(36), primary_key=True),
        sa.Column("kek_id", sa.String(100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    for table in (
        "kek_rotations",
        "case_holds",
        "announced_keys",
        "set_aside_submissions",
        "evidence_accesses",
        "evidence_items",
        "outbox",
    ):
        op.drop_table(table)
