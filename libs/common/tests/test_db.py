"""The services' databases: engines against a real PostgreSQL server, and migrations."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import String

from custody_common.db import make_engine
from custody_common.settings import Settings


async def test_a_statement_run_again_and_again_is_planned_for_its_parameters_each_time(
    tmp_path: Path, postgres_url: str
) -> None:
    # psycopg prepares a statement after its fifth run; PostgreSQL would then settle on a
    # generic plan made while the table was small and keep scanning the table as it grows.
    engine = make_engine(Settings(home=tmp_path, database_url=postgres_url), "audit")
    lookup = text("SELECT id FROM growing WHERE id = ANY(:ids)").bindparams(bindparam("ids", type_=ARRAY(String)))
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE growing (id text PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO growing SELECT 'row-' || n FROM generate_series(1, 30) AS n"))
            await conn.execute(text("ANALYZE growing"))
            for run in range(12):
                found = (await conn.execute(lookup, {"ids": [f"row-{run + 1}", "absent"]})).scalars().all()
                assert found == [f"row-{run + 1}"]
            plans = (
                await conn.execute(
                    text("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE :s"),
                    {"s": "%FROM growing WHERE id = ANY%"},
                )
            ).all()
    finally:
        await engine.dispose()
    assert len(plans) == 1, "the lookup was never prepared, so this test shows nothing"
    generic, custom = plans[0]
    assert generic == 0 and custom >= 7


MIGRATE_APART = """
import sys
from pathlib import Path
from custody_common.db import migrate_apart
from custody_common.errors import CustodyError
from custody_common.settings import Settings
try:
    migrate_apart(Settings(home=Path(sys.argv[1])), "sample", Path(sys.argv[2]))
except CustodyError as exc:
    print(type(exc).__name__, exc)
print("alembic loaded" if "alembic" in sys.modules else "alembic not loaded")
"""


def sample_migrations(folder: Path, upgrade: str) -> Path:
    """A migrations folder whose one revision runs ``upgrade``."""
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(
        "from sqlalchemy import MetaData\n"
        "from custody_common.db import run_alembic_environment\n"
        'run_alembic_environment(MetaData(), "sample")\n'
    )
    (folder / "versions" / "0001_sample.py").write_text(
        textwrap.dedent(
            f"""
            import sqlalchemy as sa
            from alembic import op

            revision = "0001"
            down_revision = None
            branch_labels = None
            depends_on = None

            def upgrade():
                {upgrade}
            """
        )
    )
    return folder


def migrate_apart_in_a_fresh_process(home: Path, migrations: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", MIGRATE_APART, str(home), str(migrations)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_a_service_migrates_in_a_child_process_and_never_loads_alembic_itself(tmp_path: Path) -> None:
    create = 'op.create_table("sample", sa.Column("id", sa.Integer, primary_key=True))'
    migrations = sample_migrations(tmp_path / "migrations", create)

    printed = migrate_apart_in_a_fresh_process(tmp_path / "home", migrations)

    assert printed.splitlines() == ["alembic not loaded"]
    with sqlite3.connect(tmp_path / "home" / "sample.db") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"sample", "alembic_version_sample"} <= tables


def test_a_migration_that_fails_in_the_child_stops_the_service(tmp_path: Path) -> None:
    migrations = sample_migrations(tmp_path / "migrations", 'raise RuntimeError("the schema cannot change")')

    printed = migrate_apart_in_a_fresh_process(tmp_path / "home", migrations)

    assert printed.startswith("MigrationFailed the sample database schema could not be brought up to date")
