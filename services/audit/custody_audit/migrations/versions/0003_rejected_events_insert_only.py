"""On PostgreSQL, the events kept aside are insert-only like the log: a forgery or a poison
message is itself a record of what reached audit, and nobody may quietly remove or change it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE = "rejected_events"


def upgrade() -> None:
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
    raise RuntimeError("the custody log is never downgraded: the events kept aside are evidence too")
