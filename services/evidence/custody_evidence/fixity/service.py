"""Fixity checks: one read pass over a sealed item compared with its seal, on request
(``POST /v1/evidence/{id}/verify``) and by a periodic sweep; and marking items damaged, which
retrieval does too when it finds stored bytes that no longer match."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from custody_common.auth import Principal
from custody_common.errors import IntegrityError
from custody_common.events import actor_person, actor_service
from custody_common.objectstore import ObjectLocked, ObjectStoreError

from custody_evidence.errors import Finding, ItemNotServable, StoredBytesDamaged
from custody_evidence.fixity import records
from custody_evidence.fixity.schemas import FixityReport
from custody_evidence.items import repository as items
from custody_evidence.items.schemas import ItemRecord, ItemStatus
from custody_evidence.items.service import visible_item
from custody_evidence.stored_parts import read_back
from custody_evidence.vault import SERVICE, Vault

log = logging.getLogger(__name__)


class FixityService:
    """Checks items against their seals and records what it finds."""

    def __init__(self, vault: Vault, interval: timedelta) -> None:
        """``interval``: how long after a check (or the seal) an item is due again."""
        self._vault = vault
        self._interval = interval

    async def mark_damaged(
        self,
        item: ItemRecord,
        damage: StoredBytesDamaged,
        *,
        actor: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        always_record: bool = False,
    ) -> str | None:
        """Mark a sealed item damaged and emit ``damaged``, in one transaction; returns the event id.
        The damage is first written to the store (:mod:`custody_evidence.fixity.records`), so a
        rebuilt index keeps the item damaged: the store never says less than the index.

        Only the move from sealed to damaged is recorded, unless ``always_record`` (an explicit
        check is a custody event of its own each time)."""
        now = datetime.now(UTC)
        reason = f"{damage.finding.value}: {damage}"
        found: dict[str, Any] = {"finding": damage.finding.value, "reason": str(damage)}
        if damage.part is not None:
            found["part"] = damage.part
        if item.status == ItemStatus.SEALED:
            await self._record_damage(item, reason, now)
        async with self._vault.transaction() as session:
            moved = await items.mark_damaged(session, item.evidence_id, reason, now)
            if not (moved or always_record):
                return None
            event = await self._vault.record(
                session,
                "damaged",
                actor=actor,
                evidence_id=item.evidence_id,
                case=item.case,
                sha256=item.sha256,
                size=item.size,
                details=found | (details or {}),
            )
        log.error("item %s is damaged: %s", item.evidence_id, reason)
        return event["id"]

    async def _record_damage(self, item: ItemRecord, reason: str, now: datetime) -> None:
        vault = self._vault
        try:
            await vault.blocking(records.write_damage, vault.store, vault.signing_key, item.evidence_id, reason, now)
        except ObjectLocked:
            pass  # recorded and held already, by an earlier check
        except ObjectStoreError as exc:
            # The index and the ledger will say so; only a rebuilt index would not know.
            log.error("item %s: the store's record of its damage could not be written: %s", item.evidence_id, exc)

    async def verify(self, principal: Principal, evidence_id: str, request_id: str) -> FixityReport:
        """A check asked for by the prosecutor of the item's case."""
        item = await visible_item(self._vault, principal, evidence_id, "prosecutor")
        actor = actor_person(principal.sub, sorted(principal.roles))
        return await self.check(item, actor=actor, origin="request", request_id=request_id)

    async def check(
        self,
        item: ItemRecord,
        *,
        actor: dict[str, Any] | None = None,
        origin: str,
        request_id: str | None = None,
    ) -> FixityReport:
        """Read ``item`` back once and compare it with its seal; records ``verified`` or ``damaged``.

        An index entry or a data key that does not verify is damage too: the stored bytes can no
        longer be checked against the seal. Raises ItemNotServable for a rejected item (it was
        never sealed), ObjectStoreError when the store cannot be read now (nothing is recorded
        then)."""
        if item.status == ItemStatus.REJECTED:
            raise ItemNotServable(
                f"item {item.evidence_id} was rejected at seal, so there is no seal to check: {item.reason}"
            )
        vault = self._vault
        now = datetime.now(UTC)
        manifest = found = damage = None
        try:
            try:
                manifest = vault.manifest_of(item)
            except IntegrityError as exc:
                raise StoredBytesDamaged(Finding.INDEX_ENTRY_INVALID, str(exc)) from None
            try:
                dek = await vault.unwrap(item.evidence_id, manifest.wrapped_dek)
            except IntegrityError as exc:
                raise StoredBytesDamaged(Finding.DATA_KEY_INVALID, str(exc)) from None
            found = await vault.read_pass(read_back, vault.store, dek, item.evidence_id, manifest.parts)
        except StoredBytesDamaged as exc:
            damage = exc
        sealed_sha256 = (manifest.sha256 if manifest else item.sha256) or item.declared_sha256
        sealed_size = manifest.size if manifest else item.size
        if found is not None and (found.sha256, found.size) != (sealed_sha256, sealed_size):
            damage = StoredBytesDamaged(
                Finding.HASH_MISMATCH if found.size == sealed_size else Finding.SIZE_MISMATCH,
                f"read back {found.size} bytes with sha256 {found.sha256}; "
                f"sealed {sealed_size} bytes with sha256 {sealed_sha256}",
            )
        read = {"sha256": found.sha256, "size": found.size} if found else {}
        context: dict[str, Any] = {"check": origin}
        if request_id:
            context["request_id"] = request_id
        if damage is not None:
            if read:
                context["read_back"] = read
            event_id = await self.mark_damaged(item, damage, actor=actor, details=context, always_record=True)
            return FixityReport(
                ok=False,
                evidence_id=item.evidence_id,
                status=ItemStatus.DAMAGED.value,
                sealed_sha256=sealed_sha256,
                sealed_size=sealed_size,
                finding=damage.finding.value,
                reason=str(damage),
                checked_at=now,
                event_id=event_id or "",
                **read,
            )
        async with vault.transaction() as session:
            await items.mark_verified(session, item.evidence_id, now, now + self._interval)
            event = await vault.record(
                session,
                "verified",
                actor=actor,
                evidence_id=item.evidence_id,
                case=item.case,
                sha256=found.sha256,  # type: ignore[union-attr]
                size=found.size,  # type: ignore[union-attr]
                details=context | {"ok": True},
            )
        current = await self._current_status(item)
        return FixityReport(
            ok=True,
            evidence_id=item.evidence_id,
            status=current,
            sealed_sha256=sealed_sha256,
            sealed_size=sealed_size,
            checked_at=now,
            event_id=event["id"],
            **read,
        )

    async def _current_status(self, item: ItemRecord) -> str:
        async with self._vault.sessions() as session:
            fresh = await items.get(session, item.evidence_id)
        return (fresh or item).status.value

    async def sweep_once(self, limit: int = 100) -> int:
        """Check the items that are due (each claimed first, so replicas share the work); returns how many."""
        now = datetime.now(UTC)
        async with self._vault.sessions() as session:
            due = await items.due_for_fixity(session, now, limit)
        checked = 0
        for item in due:
            async with self._vault.transaction() as session:
                claimed = await items.claim_fixity(session, item.evidence_id, item.next_fixity_at, now + self._interval)
            if not claimed:
                continue
            try:
                await self.check(item, actor=actor_service(SERVICE), origin="sweep")
            except Exception as exc:  # noqa: BLE001 — one item must not stop the sweep of the others
                if isinstance(exc, ObjectStoreError):
                    log.warning("fixity sweep: item %s could not be read now (%s); it stays due", item.evidence_id, exc)
                else:  # a key provider down, say: nothing was found about the item itself
                    log.exception("fixity sweep: item %s could not be checked; it stays due", item.evidence_id)
                async with self._vault.transaction() as session:
                    await items.claim_fixity(session, item.evidence_id, now + self._interval, item.next_fixity_at)
                continue
            checked += 1
        return checked

    async def run_sweep(self, pause: float = 60.0) -> None:
        """Sweep for as long as the service runs, pausing ``pause`` seconds when nothing is due."""
        while True:
            try:
                checked = await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 — the sweep keeps going; the next round retries
                log.exception("fixity sweep failed; retrying in %.0fs", pause)
                checked = 0
            if not checked:
                await asyncio.sleep(pause)
