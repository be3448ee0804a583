"""The queries behind uploads. Every change of an upload's state is one conditional UPDATE, so
two intake processes (or two requests in one) can never both win the same change."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from custody_common.crypto.envelope import WrappedKey
from custody_common.manifest import StoredPart
from custody_intake.tables import parts, uploads
from custody_intake.uploads.schemas import UploadRecord


def _record(row: Any) -> UploadRecord:
    return UploadRecord(
        evidence_id=row.evidence_id,
        case=row.case_name,
        submitter=row.submitter,
        length=row.length,
        offset=row.received_bytes,
        declared_sha256=row.declared_sha256,
        status=row.status,
        wrapped_dek=WrappedKey.model_validate_json(row.wrapped_dek),
        sealed_metadata=row.sealed_metadata,
        sealed_disclosures=row.sealed_disclosures,
        next_part=row.next_part,
        created_at=row.created_at,
        expires_at=row.expires_at,
        finished_at=row.finished_at,
        lock_token=row.lock_token,
        lock_heartbeat=row.lock_heartbeat,
        request_id=row.request_id,
    )


def _lock_free(stale_before: datetime):  # type: ignore[no-untyped-def]
    return or_(uploads.c.lock_token.is_(None), uploads.c.lock_heartbeat < stale_before)


async def insert_upload(session: AsyncSession, record: UploadRecord) -> None:
    """Store a new upload."""
    await session.execute(
        insert(uploads).values(
            evidence_id=record.evidence_id,
            case_name=record.case,
            submitter=record.submitter,
            length=record.length,
            received_bytes=record.offset,
            declared_sha256=record.declared_sha256,
            status=record.status,
            wrapped_dek=record.wrapped_dek.model_dump_json(),
            sealed_metadata=record.sealed_metadata,
            sealed_disclosures=record.sealed_disclosures,
            next_part=record.next_part,
            created_at=record.created_at,
            expires_at=record.expires_at,
            finished_at=record.finished_at,
            request_id=record.request_id,
        )
    )


async def get_upload(session: AsyncSession, evidence_id: uuid.UUID) -> UploadRecord | None:
    """The upload, or None."""
    row = (await session.execute(select(uploads).where(uploads.c.evidence_id == evidence_id))).first()
    return _record(row) if row else None


async def take_lock(
    session: AsyncSession, evidence_id: uuid.UUID, token: str, offset: int, now: datetime, stale_before: datetime
) -> bool:
    """Lock the upload for one PATCH at ``offset``, unless another holds a lock that is still alive."""
    result = await session.execute(
        update(uploads)
        .where(
            uploads.c.evidence_id == evidence_id,
            uploads.c.status == "uploading",
            uploads.c.received_bytes == offset,
            _lock_free(stale_before),
        )
        .values(lock_token=token, lock_heartbeat=now)
    )
    return result.rowcount == 1


async def refresh_lock(session: AsyncSession, evidence_id: uuid.UUID, token: str, now: datetime) -> bool:
    """Mark the lock alive now; False if it is no longer ours."""
    result = await session.execute(
        update(uploads)
        .where(uploads.c.evidence_id == evidence_id, uploads.c.lock_token == token)
        .values(lock_heartbeat=now)
    )
    return result.rowcount == 1


async def release_lock(session: AsyncSession, evidence_id: uuid.UUID, token: str) -> None:
    """Give the lock up, if it is still ours."""
    await session.execute(
        update(uploads)
        .where(uploads.c.evidence_id == evidence_id, uploads.c.lock_token == token)
        .values(lock_token=None, lock_heartbeat=None)
    )


async def record_part(
    session: AsyncSession,
    evidence_id: uuid.UUID,
    token: str,
    part: StoredPart,
    now: datetime,
    expires_at: datetime,
    completes: bool,
    declared_sha256: str | None,
) -> bool:
    """Advance the offset past ``part``, record it and release the lock, all only if the lock is
    still ours and the upload still stands at the part's offset. ``completes`` marks it received,
    with the file's SHA-256 as ``declared_sha256`` states it."""
    values: dict[str, Any] = {
        "received_bytes": uploads.c.received_bytes + part.size,
        "next_part": uploads.c.next_part + 1,
        "lock_token": None,
        "lock_heartbeat": None,
        "expires_at": expires_at,
    }
    if completes:
        values.update(status="received", finished_at=now, declared_sha256=declared_sha256)
    result = await session.execute(
        update(uploads)
        .where(
            uploads.c.evidence_id == evidence_id,
            uploads.c.lock_token == token,
            uploads.c.status == "uploading",
            uploads.c.received_bytes == part.offset,
            uploads.c.next_part == part.index,
        )
        .values(**values)
    )
    if result.rowcount != 1:
        return False
    await session.execute(
        insert(parts).values(
            evidence_id=evidence_id,
            part_index=part.index,
            part_offset=part.offset,
            size=part.size,
            stored_size=part.stored_size,
            object_key=part.key,
            stored_at=now,
        )
    )
    return True


async def mark_received(session: AsyncSession, evidence_id: uuid.UUID, now: datetime) -> bool:
    """Mark an upload with nothing left to receive (an empty file) as received."""
    result = await session.execute(
        update(uploads)
        .where(
            uploads.c.evidence_id == evidence_id,
            uploads.c.status == "uploading",
            uploads.c.received_bytes == uploads.c.length,
        )
        .values(status="received", finished_at=now)
    )
    return result.rowcount == 1


async def stored_parts(session: AsyncSession, evidence_id: uuid.UUID) -> list[StoredPart]:
    """The upload's recorded parts, in order."""
    rows = await session.execute(select(parts).where(parts.c.evidence_id == evidence_id).order_by(parts.c.part_index))
    return [
        StoredPart(index=r.part_index, offset=r.part_offset, size=r.size, stored_size=r.stored_size, key=r.object_key)
        for r in rows
    ]


async def end_upload(
    session: AsyncSession, evidence_id: uuid.UUID, status: str, now: datetime, stale_before: datetime, due: bool
) -> bool:
    """Move an upload that is still uploading and not being written to ``status`` (terminated or
    expired). With ``due``, only if its expiry has passed."""
    conditions = [uploads.c.evidence_id == evidence_id, uploads.c.status == "uploading", _lock_free(stale_before)]
    if due:
        conditions.append(uploads.c.expires_at <= now)
    result = await session.execute(
        update(uploads).where(*conditions).values(status=status, finished_at=now, lock_token=None, lock_heartbeat=None)
    )
    return result.rowcount == 1


async def due_for_expiry(
    session: AsyncSession, now: datetime, stale_before: datetime, limit: int
) -> Sequence[uuid.UUID]:
    """Uploads past their expiry that nobody is writing to."""
    rows = await session.execute(
        select(uploads.c.evidence_id)
        .where(uploads.c.status == "uploading", uploads.c.expires_at <= now, _lock_free(stale_before))
        .order_by(uploads.c.expires_at)
        .limit(limit)
    )
    return list(rows.scalars())


async def awaiting_purge(session: AsyncSession, limit: int) -> Sequence[UploadRecord]:
    """Terminated or expired uploads whose stored parts are not yet deleted."""
    rows = await session.execute(
        select(uploads)
        .where(and_(uploads.c.status.in_(("terminated", "expired")), uploads.c.parts_purged_at.is_(None)))
        .order_by(uploads.c.finished_at)
        .limit(limit)
    )
    return [_record(row) for row in rows]


async def mark_purged(session: AsyncSession, evidence_id: uuid.UUID, now: datetime) -> None:
    """Note that an ended upload's stored parts are deleted."""
    await session.execute(update(uploads).where(uploads.c.evidence_id == evidence_id).values(parts_purged_at=now))
