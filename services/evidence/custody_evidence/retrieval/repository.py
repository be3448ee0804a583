"""Queries of retrieval: the record of every access to an item's bytes."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Row, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from custody_common.ids import uuid7

from custody_evidence.tables import evidence_accesses as accesses


async def record_access(
    session: AsyncSession,
    *,
    evidence_id: uuid.UUID,
    event_id: str,
    request_id: str,
    sub: str,
    byte_range: str,
    sealed_purpose: str,
    at: datetime,
) -> None:
    """Keep one access, its stated purpose sealed under the item's data key."""
    await session.execute(
        insert(accesses).values(
            access_id=str(uuid7()),
            evidence_id=str(evidence_id),
            event_id=event_id,
            request_id=request_id,
            sub=sub,
            byte_range=byte_range,
            purpose=sealed_purpose,
            accessed_at=at,
        )
    )


async def accesses_of(session: AsyncSession, evidence_id: uuid.UUID) -> list[Row]:
    """Every recorded access to the item, oldest first."""
    rows = await session.execute(
        select(accesses).where(accesses.c.evidence_id == str(evidence_id)).order_by(accesses.c.accessed_at)
    )
    return list(rows)
