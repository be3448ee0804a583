"""Legal holds, set and released by admins, on one item or a whole case.

An item's objects are held while any reason holds: the admin's item hold, a hold on its
case, or its rejection (a rejected item stays held for good). Setting a hold touches the store
first and records it after (the objects are never less protected than the record says);
releasing records first and touches the store after, for the same reason. Each change, from
reading what is held to touching the store, happens under its case's lock
(:meth:`Vault.case_lock`), which the seal takes too: otherwise a release could clear the hold
another admin (or a new case hold) had just placed on the same objects.

Every change is also written to the store as a signed record (:mod:`custody_evidence.holds.records`)
by the same rule: a hold's record before its objects are held, a release's after it is recorded,
so the store never says less is held than the database. ``rebuild-index`` restores holds from
these records, telling an item held by itself from one held with its case.
"""

from __future__ import annotations

import uuid
from typing import Any

from custody_common.auth import Principal
from custody_common.events import actor_person

from custody_evidence.errors import CaseNotAssigned, ItemNotServable
from custody_evidence.holds import records, repository
from custody_evidence.holds.schemas import CaseHold, ItemHold
from custody_evidence.items import repository as items
from custody_evidence.items.schemas import ItemRecord, ItemStatus
from custody_evidence.items.service import visible_item
from custody_evidence.protection import protect, release_hold
from custody_evidence.vault import Vault

ADMIN = "admin"


class HoldService:
    """Places and lifts legal holds (see the module docstring)."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    async def hold_item(self, principal: Principal, evidence_id: str, on: bool, request_id: str) -> ItemHold:
        """Set (``on``) or release an admin's hold on one item; idempotent, one event per change."""
        vault = self._vault
        item = await visible_item(vault, principal, evidence_id, ADMIN)
        if item.status == ItemStatus.REJECTED and not on:
            raise ItemNotServable(f"item {item.evidence_id} was rejected at seal and stays under legal hold for good")
        async with vault.case_lock(item.case):
            return await self._hold_item(principal, await visible_item(vault, principal, evidence_id, ADMIN), on, request_id)

    async def _hold_item(self, principal: Principal, item: ItemRecord, on: bool, request_id: str) -> ItemHold:
        vault = self._vault
        async with vault.sessions() as session:
            case_held = await repository.case_on_hold(session, item.case)
        if item.legal_hold == on:
            await self._settle_record(item.case, item.evidence_id, on, principal.sub)
            return self._item_hold(item, on, case_held, changed=False)
        manifest = vault.manifest_of(item)
        if on:
            await self._write_record(item.case, item.evidence_id, True, principal.sub)
            await vault.blocking(protect, vault.store, manifest, held=True)
        async with vault.transaction() as session:
            await items.set_item_hold(session, item.evidence_id, on)
            await vault.record(
                session,
                "hold_set" if on else "hold_released",
                actor=actor_person(principal.sub, sorted(principal.roles)),
                evidence_id=item.evidence_id,
                case=item.case,
                sha256=item.sha256,
                size=item.size,
                details={"scope": "item", "request_id": request_id, "case_hold": case_held},
            )
        if not on:
            await self._write_record(item.case, item.evidence_id, False, principal.sub)
            if not case_held and item.status != ItemStatus.REJECTED:
                await vault.blocking(release_hold, vault.store, manifest)
        return self._item_hold(item, on, case_held, changed=True)

    async def _write_record(self, case: str, evidence_id: uuid.UUID | None, held: bool, by: str) -> None:
        vault = self._vault
        await vault.blocking(records.write_record, vault.store, vault.signing_key, case, evidence_id, held, by)

    async def _settle_record(self, case: str, evidence_id: uuid.UUID | None, held: bool, by: str) -> None:
        """Write the store's record of a hold the database already shows as ``held``, where the
        newest record says otherwise: a hold placed before the store kept records, or a release
        whose record a crash cut short."""
        vault = self._vault
        newest = await vault.blocking(records.newest_record, vault.store, vault.public_key, case, evidence_id)
        if (newest is not None and newest.held) != held:
            await self._write_record(case, evidence_id, held, by)

    @staticmethod
    def _item_hold(item: ItemRecord, item_hold: bool, case_hold: bool, changed: bool) -> ItemHold:
        return ItemHold(
            evidence_id=item.evidence_id,
            held=item_hold or case_hold or item.status == ItemStatus.REJECTED,
            item_hold=item_hold,
            case_hold=case_hold,
            changed=changed,
        )

    async def hold_case(self, principal: Principal, case: str, on: bool, request_id: str) -> CaseHold:
        """Set (``on``) or release the hold on every item of ``case``, now and sealed later."""
        if not principal.sees_case(case, ADMIN):
            raise CaseNotAssigned(f"you are not assigned case {case!r} as an admin")
        async with self._vault.case_lock(case):
            return await self._hold_case(principal, case, on, request_id)

    async def _hold_case(self, principal: Principal, case: str, on: bool, request_id: str) -> CaseHold:
        vault = self._vault
        async with vault.sessions() as session:
            held = await repository.case_on_hold(session, case)
            members = await items.in_case(session, case)
        if on:
            # Items held by themselves get a record of their own first (holds placed before the
            # store kept records have none), so a rebuilt index tells their holds from the case's;
            # putting a held case on hold again writes any such record still missing.
            for item in members:
                if item.legal_hold:
                    await self._settle_record(case, item.evidence_id, True, principal.sub)
        if held == on:
            await self._settle_record(case, None, on, principal.sub)
            return CaseHold(case=case, held=on, items=0, changed=False)
        actor = actor_person(principal.sub, sorted(principal.roles))
        # Only items whose objects change: rejected and item-held ones stay held either way.
        touched = [item for item in members if item.status != ItemStatus.REJECTED and not item.legal_hold]
        manifests = {item.evidence_id: vault.manifest_of(item) for item in touched}
        if on:
            await self._write_record(case, None, True, principal.sub)
            for manifest in manifests.values():
                await vault.blocking(protect, vault.store, manifest, held=True)
        async with vault.transaction() as session:
            changed = await (
                repository.hold_case(session, case, principal.sub) if on else repository.release_case(session, case)
            )
            if changed:
                action = "hold_set" if on else "hold_released"
                details: dict[str, Any] = {"scope": "case", "request_id": request_id}
                await vault.record(session, action, actor=actor, case=case, details=details | {"items": len(touched)})
                for item in touched:
                    await vault.record(
                        session,
                        action,
                        actor=actor,
                        evidence_id=item.evidence_id,
                        case=case,
                        sha256=item.sha256,
                        size=item.size,
                        details=details,
                    )
        if changed and not on:
            await self._write_record(case, None, False, principal.sub)
            for manifest in manifests.values():
                await vault.blocking(release_hold, vault.store, manifest)
        return CaseHold(case=case, held=on, items=len(touched) if changed else 0, changed=changed)
