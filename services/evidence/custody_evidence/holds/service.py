"""Legal holds, set and released by admins, on one item or a whole case.

An item's objects are held while any reason holds: the admin's item hold, a hold on its
case, or its rejection (a rejected item stays held for good). Setting a hold touches the store
first and records it after (the objects are never less protected than the record says);
releasing records first and touches the store after, for the same reason. Each change, from
reading what is held to touching the store, happens under its case's lock
(:meth:`Vault.case_lock`), which the seal takes too: otherwise a release could clear the hold
another admin (or a new case hold) had just placed on the same objects.
"""

from __future__ import annotations

from typing import Any

from custody_common.auth import Principal
from custody_common.events import actor_person

from custody_evidence.errors import CaseNotAssigned, ItemNotServable
from custody_evidence.holds import repository
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
            return self._item_hold(item, on, case_held, changed=False)
        manifest = vault.manifest_of(item)
        if on:
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
        if not on and not case_held and item.status != ItemStatus.REJECTED:
            await vault.blocking(release_hold, vault.store, manifest)
        return self._item_hold(item, on, case_held, changed=True)

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
        if held == on:
            return CaseHold(case=case, held=on, items=0, changed=False)
        actor = actor_person(principal.sub, sorted(principal.roles))
        # Only items whose objects change: rejected and item-held ones stay held either way.
        touched = [item for item in members if item.status != ItemStatus.REJECTED and not item.legal_hold]
        manifests = {item.evidence_id: vault.manifest_of(item) for item in touched}
        if on:
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
            for manifest in manifests.values():
                await vault.blocking(release_hold, vault.store, manifest)
        return CaseHold(case=case, held=on, items=len(touched) if changed else 0, changed=changed)
