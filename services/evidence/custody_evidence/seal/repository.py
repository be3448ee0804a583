"""Queries of sealing: messages set aside because they are not intake's statements."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from sqlalchemy import Row, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from custody_evidence.tables import set_aside_submissions as set_aside


async def set_aside_message(
    session: AsyncSession,
    payload: bytes,
    reason: str,
    evidence_id: uuid.UUID | None,
    stream_sequence: int | None,
) -> None:
    """Keep a message that will not be sealed, once (a redelivery finds it there)."""
    digest = hashlib.sha256(payload).hexdigest()
    found = await session.execute(select(set_aside.c.seq).where(set_aside.c.payload_sha256 == digest))
    if found.first() is not None:
        return
    await session.execute(
        insert(set_aside).values(
            payload_sha256=digest,
            evidence_id=str(evidence_id) if evidence_id else None,
            stream_sequence=stream_sequence,
            reason=reason,
            payload=payload,
            set_aside_at=datetime.now(UTC),
        )
    )


async def set_aside_messages(session: AsyncSession) -> list[Row]:
    """Every message set aside, oldest first."""
    return list(await session.execute(select(set_aside).order_by(set_aside.c.seq)))
