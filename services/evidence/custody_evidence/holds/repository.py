"""Queries of legal holds on whole cases (holds on single items live on the item's row)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from custody_evidence.tables import case_holds


async def case_on_hold(session: AsyncSession, case: str) -> bool:
    """Whether ``case`` is under a legal hold."""
    found = await session.execute(select(case_holds.c.case_name).where(case_holds.c.case_name == case))
    return found.first() is not None


async def held_cases(session: AsyncSession) -> set[str]:
    """Every case under a legal hold."""
    return set((await session.execute(select(case_holds.c.case_name))).scalars())


async def hold_case(session: AsyncSession, case: str, by: str, at: datetime | None = None) -> bool:
    """Put ``case`` on hold (by ``by``, at ``at`` or now); False if it already was."""
    if await case_on_hold(session, case):
        return False
    await session.execute(insert(case_holds).values(case_name=case, set_by=by, set_at=at or datetime.now(UTC)))
    return True


async def release_case(session: AsyncSession, case: str) -> bool:
    """Release ``case``'s hold; False if there was none."""
    result = await session.execute(delete(case_holds).where(case_holds.c.case_name == case))
    return result.rowcount == 1
