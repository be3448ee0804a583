"""Queries on the evidence index (``evidence_items``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from custody_common.manifest import EvidenceManifest

from custody_evidence.items.schemas import ItemRecord, ItemStatus
from custody_evidence.tables import evidence_items as items


def aware(moment: datetime | None) -> datetime | None:
    """``moment`` with its UTC zone (SQLite hands back naive datetimes)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _record(row: Row) -> ItemRecord:
    return ItemRecord(
        evidence_id=uuid.UUID(row.evidence_id),
        case=row.case_name,
        submitter=row.submitter,
        status=ItemStatus(row.status),
        reason=row.reason,
        declared_sha256=row.declared_sha256,
        sha256=row.sha256,
        size=row.size,
        manifest_version=row.manifest_version,
        manifest_bytes=bytes(row.manifest),
        kek_id=row.kek_id,
        legal_hold=bool(row.legal_hold),
        created_at=aware(row.created_at),  # type: ignore[arg-type]
        received_at=aware(row.received_at),  # type: ignore[arg-type]
        sealed_at=aware(row.sealed_at),  # type: ignore[arg-type]
        retain_until=aware(row.retain_until),
        damaged_at=aware(row.damaged_at),
        verified_at=aware(row.verified_at),
        next_fixity_at=aware(row.next_fixity_at),
    )


async def get(session: AsyncSession, evidence_id: uuid.UUID, *, for_update: bool = False) -> ItemRecord | None:
    """The item ``evidence_id``, or None."""
    query = select(items).where(items.c.evidence_id == str(evidence_id))
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return _record(row) if row else None


async def insert_item(
    session: AsyncSession,
    manifest: EvidenceManifest,
    *,
    legal_hold: bool = False,
    status: ItemStatus | None = None,
    next_fixity_at: datetime | None = None,
) -> None:
    """Index ``manifest``'s item (raises sqlalchemy's IntegrityError if it is indexed already)."""
    await session.execute(
        insert(items).values(
            evidence_id=str(manifest.evidence_id),
            case_name=manifest.case,
            submitter=manifest.submitter,
            status=(status or ItemStatus(manifest.status)).value,
            reason=manifest.reason,
            declared_sha256=manifest.declared_sha256,
            sha256=manifest.sha256,
            size=manifest.size,
            manifest_version=manifest.version,
            manifest=manifest.to_bytes(),
            kek_id=manifest.wrapped_dek.kek_id,
            legal_hold=legal_hold,
            created_at=manifest.created_at,
            received_at=manifest.received_at,
            sealed_at=manifest.sealed_at,
            retain_until=manifest.retain_until,
            next_fixity_at=next_fixity_at,
        )
    )


async def page(session: AsyncSession, case: str, after: str | None, limit: int) -> list[ItemRecord]:
    """Up to ``limit`` items of ``case`` with ids after ``after``, in id order."""
    query = select(items).where(items.c.case_name == case)
    if after is not None:
        query = query.where(items.c.evidence_id > after)
    rows = await session.execute(query.order_by(items.c.evidence_id).limit(limit))
    return [_record(row) for row in rows]


async def in_case(session: AsyncSession, case: str) -> list[ItemRecord]:
    """Every item of ``case``, in id order."""
    rows = await session.execute(select(items).where(items.c.case_name == case).order_by(items.c.evidence_id))
    return [_record(row) for row in rows]


async def mark_damaged(session: AsyncSession, evidence_id: uuid.UUID, reason: str, at: datetime) -> bool:
    """Move a sealed item to ``damaged``; False if it was not sealed (already damaged, or rejected)."""
    result = await session.execute(
        update(items)
        .where(items.c.evidence_id == str(evidence_id), items.c.status == ItemStatus.SEALED.value)
        .values(status=ItemStatus.DAMAGED.value, reason=reason, damaged_at=at)
    )
    return result.rowcount == 1


async def mark_verified(
    session: AsyncSession, evidence_id: uuid.UUID, at: datetime, next_fixity_at: datetime | None
) -> None:
    """Record a fixity check that found the item intact."""
    await session.execute(
        update(items)
        .where(items.c.evidence_id == str(evidence_id))
        .values(verified_at=at, next_fixity_at=next_fixity_at)
    )


async def due_for_fixity(session: AsyncSession, now: datetime, limit: int) -> list[ItemRecord]:
    """Sealed items whose next fixity check is due, oldest first."""
    rows = await session.execute(
        select(items)
        .where(items.c.status == ItemStatus.SEALED.value, items.c.next_fixity_at <= now)
        .order_by(items.c.next_fixity_at)
        .limit(limit)
    )
    return [_record(row) for row in rows]


async def claim_fixity(session: AsyncSession, evidence_id: uuid.UUID, seen: datetime | None, until: datetime) -> bool:
    """Take the fixity check of an item for this process (several replicas sweep at once)."""
    result = await session.execute(
        update(items)
        .where(items.c.evidence_id == str(evidence_id), items.c.next_fixity_at == seen)
        .values(next_fixity_at=until)
    )
    return result.rowcount == 1


async def set_item_hold(session: AsyncSession, evidence_id: uuid.UUID, on: bool) -> None:
    """Record an admin's hold on (or release of) one item."""
    await session.execute(update(items).where(items.c.evidence_id == str(evidence_id)).values(legal_hold=on))


async def replace_manifest(session: AsyncSession, manifest: EvidenceManifest) -> None:
    """Point the index at a newer manifest version of the same item (key rotation)."""
    await session.execute(
        update(items)
        .where(items.c.evidence_id == str(manifest.evidence_id))
        .values(manifest_version=manifest.version, manifest=manifest.to_bytes(), kek_id=manifest.wrapped_dek.kek_id)
    )


async def not_under_kek(session: AsyncSession, kek_id: str, limit: int, after: str = "") -> Sequence[ItemRecord]:
    """Items whose data key is wrapped by a KEK other than ``kek_id``, in evidence-id order
    from just after ``after``."""
    rows = await session.execute(
        select(items)
        .where(items.c.kek_id != kek_id, items.c.evidence_id > after)
        .order_by(items.c.evidence_id)
        .limit(limit)
    )
    return [_record(row) for row in rows]
