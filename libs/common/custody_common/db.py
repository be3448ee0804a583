"""Databases: one per service, SQLite by default, PostgreSQL at scale; schema by Alembic."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import traceback
import zlib
from pathlib import Path

from sqlalchemy import Connection, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from custody_common.errors import CustodyError
from custody_common.settings import Settings


class MigrationFailed(CustodyError):
    """The schema could not be brought up to date; the reason is in the log."""


def _sync_url(async_url: str) -> str:
    url = make_url(async_url)
    if url.drivername == "sqlite+aiosqlite":
        return url.set(drivername="sqlite").render_as_string(hide_password=False)
    return async_url  # psycopg 3 serves both sync and async under the same URL


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(settings: Settings, service: str) -> AsyncEngine:
    """The async engine of ``service``'s database."""
    url = settings.database_url_for(service)
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # Plan every execution for its parameters: psycopg prepares a statement after 5 runs, and
    # PostgreSQL would keep a generic plan made while a table was small (a sequential scan of
    # the custody log for every batch once it has grown).
    return create_async_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        connect_args={"options": "-c plan_cache_mode=force_custom_plan"},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def run_migrations(settings: Settings, service: str, script_location: Path) -> None:
    """Bring ``service``'s schema to the newest revision (blocking; call before serving)."""
    from alembic import command  # imported here: a service migrates in a child process (migrate_apart)
    from alembic.config import Config

    url = _sync_url(settings.database_url_for(service))
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("version_table", f"alembic_version_{service}")
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Replicas starting together: one migrates, the others wait and find it done.
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(f"migrate-{service}".encode())})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def migrate_apart(settings: Settings, service: str, script_location: Path) -> None:
    """:func:`run_migrations` in a forked child process, so that Alembic and the SQLAlchemy
    dialects it loads (about 12 MiB) never stay in the memory of a long-running service.

    Call it before any thread starts. Raises MigrationFailed if the child fails (it logs why).
    """
    if not hasattr(os, "fork"):
        run_migrations(settings, service, script_location)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    child = os.fork()
    if child == 0:
        status = 1
        try:
            _die_with(parent)
            run_migrations(settings, service, script_location)
            status = 0
        except BaseException:  # noqa: BLE001 — reported here, judged by the parent from the exit status
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    _, wait_status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(wait_status)
    if code != 0:
        raise MigrationFailed(
            f"the {service} database schema could not be brought up to date (migration exit status {code}); "
            "the reason is logged above"
        )


def _die_with(parent: int) -> None:
    """End this process when ``parent`` ends (Linux), as a migration in the parent itself would."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def run_alembic_environment(metadata: MetaData, service: str) -> None:
    """The body of every service's Alembic ``env.py``: migrate on the connection the caller
    hands in (``config.attributes["connection"]``), or on ``sqlalchemy.url`` when run by hand."""
    from alembic import context

    config = context.config
    version_table = config.get_main_option("version_table") or f"alembic_version_{service}"

    def run(connection: Connection) -> None:
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
        run(given)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.begin() as connection:
            run(connection)
    finally:
        engine.dispose()
