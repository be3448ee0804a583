"""Queries of exports: the record of each item's export, and the sealed purposes of an item's
accesses and exports, so entitled readers see why each happened."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from custody_evidence.tables import evidence_accesses, evidence_exports


async def record_export(
    session: AsyncSession,
    *,
    event_id: str,
    package_id: uuid.UUID,
    evidence_id: uuid.UUID,
    request_id: str,
    sub: str,
    manifest_sha256: str,
    sealed_purpose: str,
    at: datetime,
) -> None:
    """Keep one item's export, its stated purpose sealed under the item's data key."""
    await session.execute(
        insert(evidence_exports).values(
            event_id=event_id,
            package_id=str(package_id),
            evidence_id=str(evidence_id),
            request_id=request_id,
            sub=sub,
            manifest_sha256=manifest_sha256,
            purpose=sealed_purpose,
            exported_at=at,
        )
    )


async def sealed_purposes(session: AsyncSession, evidence_id: uuid.UUID, event_ids: Iterable[str]) -> dict[str, str]:
    """{event id: sealed purpose} of the item's accesses and exports among ``event_ids``."""
    wanted = list(event_ids)
    found: dict[str, str] = {}
    for table in (evidence_accesses, evidence_exports):
        rows = await session.execute(
            select(table.c.event_id, table.c.purpose).where(
                table.c.evidence_id == str(evidence_id), table.c.event_id.in_(wanted)
            )
        )
        found.update({row.event_id: row.purpose for row in rows})
    return found
