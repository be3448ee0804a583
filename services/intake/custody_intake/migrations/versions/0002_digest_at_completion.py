"""An upload may leave its SHA-256 to the PATCH that completes it (``Repr-Digest``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.alter_column("declared_sha256", existing_type=sa.String(64), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.alter_column("declared_sha256", existing_type=sa.String(64), nullable=False)
