"""Court exports and single-use download URLs.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_exports",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("package_id", sa.String(36), nullable=False),
        sa.Column("evidence_id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("sub", sa.String(255), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("exported_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_evidence_exports_package_id", "evidence_exports", ["package_id"])
    op.create_index("ix_evidence_exports_evidence_id", "evidence_exports", ["evidence_id"])
    op.create_table(
        "evidence_downloads",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("evidence_id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("sub", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("uses", sa.Integer, nullable=False),
    )
    op.create_index("ix_evidence_downloads_evidence_id", "evidence_downloads", ["evidence_id"])


def downgrade() -> None:
    op.drop_table("evidence_downloads")
    op.drop_table("evidence_exports")
