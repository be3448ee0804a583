"""The services' database engines against a real PostgreSQL server."""

from __future__ import annotations

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
