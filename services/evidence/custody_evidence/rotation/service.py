"""``custody-evidence rotate-kek``: introduce a new KEK version and re-wrap every item's data key.

For each item a new manifest version (N+1) is written beside the locked one, with the data key
wrapped under the new KEK, signed, and protected like the item (locked until its retention, or
held); the index then points at it, with a ``key_rotated`` custody event in the same transaction.
The run is resumable: an unfinished rotation is continued rather than started again, a manifest
already written for an item is adopted, and items already under the new KEK are passed over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import insert, select, update

from custody_common.errors import IntegrityError
from custody_common.ids import uuid7
from custody_common.manifest import EvidenceManifest, manifest_key, parse_statement
from custody_common.objectstore import ObjectNotFound, ObjectStoreUnavailable

from custody_evidence.holds import repository as holds
from custody_evidence.items import repository as items
from custody_evidence.items.schemas import ItemRecord
from custody_evidence.protection import protect
from custody_evidence.tables import kek_rotations
from custody_evidence.vault import Vault, dek_context

log = logging.getLogger(__name__)

BATCH = 100


@dataclass(frozen=True)
class RotationReport:
    """What a rotation run did."""

    kek_id: str
    resumed: bool
    rewrapped: int
    failed: dict[str, str] = field(default_factory=dict)
    """Items whose data key could not be re-wrapped, and why; the rotation stays unfinished."""


async def rotate_kek(vault: Vault) -> RotationReport:
    """Rotate the KEK (or continue an unfinished rotation) and re-wrap every data key under it."""
    async with vault.sessions() as session:
        unfinished = (await session.execute(select(kek_rotations).where(kek_rotations.c.finished_at.is_(None)))).first()
    resumed = unfinished is not None
    if unfinished is None:
        kek_id = await vault.blocking(vault.keys.rotate)
        rotation_id = str(uuid7())
        async with vault.transaction() as session:
            await session.execute(
                insert(kek_rotations).values(rotation_id=rotation_id, kek_id=kek_id, started_at=datetime.now(UTC))
            )
    else:
        rotation_id = unfinished.rotation_id
    # The provider's current KEK is the target, even if it moved on since the rotation began.
    kek_id = vault.keys.current_kek_id()
    rewrapped = 0
    failed: dict[str, str] = {}
    after = ""
    while True:
        async with vault.sessions() as session:
            batch = await items.not_under_kek(session, kek_id, BATCH, after)
        if not batch:
            break
        for item in batch:
            try:
                await _rewrap(vault, item)
            except ObjectStoreUnavailable:
                raise  # an outage: stop, and a run once it is over resumes here
            except Exception as exc:  # noqa: BLE001 — one item must not keep the others under the old KEK
                log.exception("KEK rotation: the data key of item %s was not re-wrapped", item.evidence_id)
                failed[str(item.evidence_id)] = f"{type(exc).__name__}: {exc}"
            else:
                rewrapped += 1
        after = str(batch[-1].evidence_id)
    if failed:
        log.error("KEK rotation to %s left %d item(s) under older KEKs; it stays unfinished", kek_id, len(failed))
        return RotationReport(kek_id=kek_id, resumed=resumed, rewrapped=rewrapped, failed=failed)
    async with vault.transaction() as session:
        await session.execute(
            update(kek_rotations)
            .where(kek_rotations.c.rotation_id == rotation_id)
            .values(finished_at=datetime.now(UTC))
        )
        await vault.record(session, "key_rotated", details={"kek_id": kek_id, "items": rewrapped, "resumed": resumed})
    log.info("KEK rotated to %s: %d data keys re-wrapped", kek_id, rewrapped)
    return RotationReport(kek_id=kek_id, resumed=resumed, rewrapped=rewrapped)


async def _rewrap(vault: Vault, item: ItemRecord) -> None:
    # Under the case's lock, so a hold placed meanwhile covers the new manifest version too.
    async with vault.case_lock(item.case):
        await _rewrap_held(vault, item)


async def _rewrap_held(vault: Vault, item: ItemRecord) -> None:
    async with vault.sessions() as session:
        item = await items.get(session, item.evidence_id) or item
        held = item.legal_hold or await holds.case_on_hold(session, item.case)
    current = vault.manifest_of(item)
    successor = await vault.blocking(_written_successor, vault, current)
    if successor is None:
        dek = await vault.unwrap(item.evidence_id, current.wrapped_dek)
        wrapped = await vault.blocking(vault.keys.wrap, dek, dek_context(item.evidence_id))
        successor = current.model_copy(
            update={"version": current.version + 1, "wrapped_dek": wrapped, "sig": None}
        ).signed(vault.signing_key)
        await vault.blocking(vault.store.put, manifest_key(item.evidence_id, successor.version), successor.to_bytes())
    await vault.blocking(
        protect, vault.store, successor, [manifest_key(item.evidence_id, successor.version)], held=held
    )
    async with vault.transaction() as session:
        await items.replace_manifest(session, successor)
        await vault.record(
            session,
            "key_rotated",
            evidence_id=item.evidence_id,
            case=item.case,
            details={
                "from_kek": current.wrapped_dek.kek_id,
                "to_kek": successor.wrapped_dek.kek_id,
                "manifest_version": successor.version,
            },
        )


def _written_successor(vault: Vault, current: EvidenceManifest) -> EvidenceManifest | None:
    """The next manifest version, if an interrupted run already stored it (it may be locked:
    adopt it; if it wraps under an older KEK, the next batch moves the item on again)."""
    key = manifest_key(current.evidence_id, current.version + 1)
    try:
        raw = vault.store.read_all(key)
    except ObjectNotFound:
        return None
    successor = parse_statement(EvidenceManifest, raw)
    try:
        successor.verify(vault.public_key)
    except IntegrityError:
        raise IntegrityError(f"{key} exists but is not signed by this service; inspect it before rotating") from None
    if successor.evidence_id != current.evidence_id or successor.version != current.version + 1:
        raise IntegrityError(f"{key} describes item {successor.evidence_id} version {successor.version}")
    return successor
