"""The custody log: leaves, stored subtree hashes, checkpoints, rejected events; on
PostgreSQL, triggers that make the log tables append-only.

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

LOG_TABLES = ("log_leaves", "log_nodes", "log_checkpoints")

APPEND_ONLY_FUNCTION = """
CREATE FUNCTION custody_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the custody log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'entries are never changed or removed; append a new custody event instead';
END
$$
"""


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
    op.create_table(
        "log_leaves",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("evidence_id", sa.String(64), nullable=True),
        sa.Column("case_name", sa.String(200), nullable=True),
        sa.Column("item_seq", sa.Integer, nullable=True),
        sa.Column("prev_leaf", sa.LargeBinary(32), nullable=True),
        sa.Column("leaf", sa.LargeBinary, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("log_leaves_item", "log_leaves", ["evidence_id", "item_seq"], unique=True)
    op.create_index("log_leaves_service_action", "log_leaves", ["service", "action"])
    op.create_table(
        "log_nodes",
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name="log_nodes_pkey"),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "rejected_events",
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("stream_seq", sa.BigInteger, nullable=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_ONLY_FUNCTION)
        for table in LOG_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION custody_log_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION custody_log_append_only()"
            )


def downgrade() -> None:
    raise RuntimeError("the custody log is never downgraded: its entries are evidence")
