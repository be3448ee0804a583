"""RFC 3161 time-stamps of checkpoints; on PostgreSQL, insert-only like the log itself.

Revision ID: 0002
Revises: 0001
Create Date: 2025-03-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE = "log_timestamps"


def upgrade() -> None:
    op.create_table(
        TABLE,
        # No foreign key to log_checkpoints: PostgreSQL would then refuse TRUNCATE there with
        # another error before the append-only trigger could speak.
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("response", sa.LargeBinary, nullable=False),
        sa.Column("gen_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # custody_log_append_only() is 0001's: the same refusal, the same message.
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_change BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION custody_log_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION custody_log_append_only()"
        )


def downgrade() -> None:
    raise RuntimeError("the custody log is never downgraded: its time-stamps are evidence")
