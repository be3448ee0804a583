"""Alembic environment of the intake database: runs on the connection the caller hands in
(``config.attributes["connection"]``), or on ``sqlalchemy.url`` when run by hand."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from custody_intake.tables import metadata

config = context.config
version_table = config.get_main_option("version_table") or "alembic_version_intake"


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        _run(connection)
    engine.dispose()
