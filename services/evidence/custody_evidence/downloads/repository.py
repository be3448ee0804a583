"""Queries of download URLs; only the SHA-256 of a URL's token is ever stored."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from custody_evidence.items.repository import aware
from custody_evidence.tables import evidence_downloads as links


@dataclass(frozen=True)
class StoredLink:
    """A download URL as recorded."""

    evidence_id: uuid.UUID
    expires_at: datetime
    spent_at: datetime | None


async def insert_link(
    session: AsyncSession,
    *,
    token_sha256: str,
    evidence_id: uuid.UUID,
    event_id: str,
    sub: str,
    created_at: datetime,
    expires_at: datetime,
) -> None:
    """Record a new URL (its token's hash) and the access event that made it."""
    await session.execute(
        insert(links).values(
            token_sha256=token_sha256,
            evidence_id=str(evidence_id),
            event_id=event_id,
            sub=sub,
            created_at=created_at,
            expires_at=expires_at,
            spent_at=None,
            uses=0,
        )
    )


async def find_link(session: AsyncSession, token_sha256: str) -> StoredLink | None:
    """The URL whose token hashes to ``token_sha256``, or None."""
    row = (await session.execute(select(links).where(links.c.token_sha256 == token_sha256))).first()
    if row is None:
        return None
    return StoredLink(uuid.UUID(row.evidence_id), aware(row.expires_at), aware(row.spent_at))  # type: ignore[arg-type]


async def use_link(session: AsyncSession, token_sha256: str, now: datetime, *, spend: bool) -> bool:
    """Count one GET on a URL that is still live (unexpired, not spent), spending it when
    ``spend``; False if it was not live any more (a concurrent GET may have spent it)."""
    values: dict[str, object] = {"uses": links.c.uses + 1}
    if spend:
        values["spent_at"] = now
    result = await session.execute(
        update(links)
        .where(links.c.token_sha256 == token_sha256, links.c.expires_at > now, links.c.spent_at.is_(None))
        .values(**values)
    )
    return result.rowcount == 1
