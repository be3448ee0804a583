"""Rebuilding the index from the object store's signed manifests."""

from __future__ import annotations

import os
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody_common.auth import Principal
from custody_common.crypto.stream import HEADER, SEGMENT, TAG
from custody_common.manifest import (
    EvidenceManifest,
    HoldRecord,
    case_hold_key,
    damage_key,
    manifest_key,
    parse_statement,
)
from custody_evidence.fixity.service import FixityService
from custody_evidence.holds import repository as holds
from custody_evidence.holds.service import HoldService
from custody_evidence.index.rebuild import rebuild_index
from custody_evidence.items import repository as items
from custody_evidence.seal.schemas import SealOutcome
from custody_evidence.tables import case_holds, evidence_items
from services.evidence.tests.conftest import FIXITY_INTERVAL, forge_index_entry

ADMIN = Principal(sub="ada", roles=frozenset({"admin"}), cases=frozenset({"*"}))


def _objects(submission) -> list[str]:  # type: ignore[no-untyped-def]
    return [part.key for part in submission.statement.parts] + [manifest_key(submission.evidence_id, 1)]


async def _lose_the_database(vault) -> None:  # type: ignore[no-untyped-def]
    async with vault.transaction() as session:
        await session.execute(evidence_items.delete())
        await session.execute(case_holds.delete())


async def _item(vault, evidence_id: uuid.UUID):  # type: ignore[no-untyped-def]
    async with vault.sessions() as session:
        return await items.get(session, evidence_id)


async def _case_held(vault, case: str) -> bool:  # type: ignore[no-untyped-def]
    async with vault.sessions() as session:
        return await holds.case_on_hold(session, case)


async def _index(vault) -> dict:  # type: ignore[no-untyped-def]
    async with vault.sessions() as session:
        rows = (await session.execute(evidence_items.select())).all()
        return {row.evidence_id: await items.get(session, row.evidence_id) for row in rows}


async def test_a_lost_index_is_rebuilt_from_the_store(vault, sealer, intake) -> None:
    submissions = [intake.submit(os.urandom(1000)), intake.submit(os.urandom(2000), case="CASE-2")]
    rejected = intake.submit(os.urandom(10), declared_sha256="1" * 64)
    for submission in submissions:
        assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    assert await sealer.seal(rejected.payload) == SealOutcome.REJECTED
    before = await _index(vault)
    async with vault.transaction() as session:
        await session.execute(evidence_items.delete())

    report = await rebuild_index(vault)

    assert (report.items, report.indexed, report.updated, report.refused, report.unreadable) == (3, 3, 0, [], [])
    after = await _index(vault)
    assert after.keys() == before.keys()
    for key, item in before.items():
        rebuilt = after[key]
        for name in (
            "case",
            "status",
            "reason",
            "sha256",
            "declared_sha256",
            "size",
            "manifest_bytes",
            "sealed_at",
            "retain_until",
        ):
            assert getattr(rebuilt, name) == getattr(item, name), name
    # rebuilt sealed items are due for a fixity check at once
    assert all(item.next_fixity_at is not None for item in after.values() if item.status.value == "sealed")
    # a second run finds nothing to do
    again = await rebuild_index(vault)
    assert (again.indexed, again.updated) == (0, 0)


async def test_a_manifest_not_signed_by_the_service_is_refused(vault, sealer, intake) -> None:
    submission = intake.submit(os.urandom(1000))
    assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    genuine = parse_statement(EvidenceManifest, vault.store.read_all(manifest_key(submission.evidence_id, 1)))
    # an intruder writes a "newer" manifest pointing at their own key and calling the item rejected
    forged = genuine.model_copy(update={"version": 2, "status": "rejected", "reason": "forged", "sig": None})
    vault.store.put(manifest_key(submission.evidence_id, 2), forged.signed(Ed25519PrivateKey.generate()).to_bytes())
    async with vault.transaction() as session:
        await session.execute(evidence_items.delete())

    report = await rebuild_index(vault)

    assert report.refused == [manifest_key(submission.evidence_id, 2)]
    [item] = (await _index(vault)).values()
    assert (item.status.value, item.manifest_version, item.reason) == ("sealed", 1, None)


async def test_an_index_entry_altered_in_place_is_restored_from_the_store(vault, sealer, intake) -> None:
    submissions = [intake.submit(os.urandom(300 + n)) for n in range(2)]
    for submission in submissions:
        assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    altered = submissions[0].evidence_id
    await forge_index_entry(vault, altered)  # the same manifest version, no longer as signed

    report = await rebuild_index(vault)

    assert (report.indexed, report.updated, report.refused) == (0, 1, [])
    async with vault.sessions() as session:
        item = await items.get(session, altered)
    assert item.manifest_bytes == vault.store.read_all(manifest_key(altered, 1))
    vault.manifest_of(item)  # verifies again


async def test_a_case_hold_survives_a_lost_database_and_holds_items_sealed_later(vault, sealer, intake) -> None:
    case_only, also_alone, elsewhere = (
        intake.submit(os.urandom(100)),
        intake.submit(os.urandom(100)),
        intake.submit(os.urandom(100), case="CASE-2"),
    )
    for submission in (case_only, also_alone, elsewhere):
        assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    service = HoldService(vault)
    await service.hold_item(ADMIN, str(also_alone.evidence_id), True, "r1")
    await service.hold_case(ADMIN, "CASE-1", True, "r2")
    await _lose_the_database(vault)

    report = await rebuild_index(vault)

    assert await _case_held(vault, "CASE-1") and not await _case_held(vault, "CASE-2")
    # an item held only with its case does not come back held by itself
    assert [(await _item(vault, s.evidence_id)).legal_hold for s in (case_only, also_alone, elsewhere)] == [
        False,
        True,
        False,
    ]
    later = intake.submit(os.urandom(100))
    assert await sealer.seal(later.payload) == SealOutcome.SEALED
    assert all(vault.store.legal_hold(key) for key in _objects(later))
    assert (report.indexed, report.case_holds, report.item_holds, report.refused) == (3, 1, 1, [])
    # releasing the case frees what only the case held, never the item held by itself
    assert (await service.hold_case(ADMIN, "CASE-1", False, "r3")).changed
    assert not any(vault.store.legal_hold(key) for key in _objects(case_only) + _objects(later))
    assert all(vault.store.legal_hold(key) for key in _objects(also_alone))
    await _lose_the_database(vault)
    again = await rebuild_index(vault)
    assert again.case_holds == 0 and not await _case_held(vault, "CASE-1")
    assert (await _item(vault, also_alone.evidence_id)).legal_hold


async def test_a_forged_or_unsigned_release_does_not_lift_a_case_hold(vault, sealer, intake) -> None:
    submission = intake.submit(os.urandom(100))
    assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    await HoldService(vault).hold_case(ADMIN, "CASE-1", True, "r1")
    genuine = parse_statement(HoldRecord, vault.store.read_all(case_hold_key("CASE-1", 1)))
    # an intruder writes "newer" releases: one signed by their own key, one not signed at all,
    # and a genuine release of another case copied under this one's name
    forged = genuine.model_copy(update={"version": 2, "held": False, "sig": None})
    vault.store.put(case_hold_key("CASE-1", 2), forged.signed(Ed25519PrivateKey.generate()).to_bytes())
    vault.store.put(case_hold_key("CASE-1", 3), forged.model_copy(update={"version": 3}).to_bytes())
    service = HoldService(vault)
    await service.hold_case(ADMIN, "CASE-2", True, "r2")
    await service.hold_case(ADMIN, "CASE-2", False, "r3")
    vault.store.put(case_hold_key("CASE-1", 4), vault.store.read_all(case_hold_key("CASE-2", 2)))
    await _lose_the_database(vault)

    report = await rebuild_index(vault)

    assert await _case_held(vault, "CASE-1") and not await _case_held(vault, "CASE-2")
    assert report.refused == [case_hold_key("CASE-1", n) for n in (4, 3, 2)]
    assert report.case_holds == 1
    assert not (await _item(vault, submission.evidence_id)).legal_hold


async def test_an_item_found_damaged_stays_damaged_after_a_lost_database(vault, sealer, intake, tamper) -> None:
    intact, harmed = intake.submit(os.urandom(3 * SEGMENT)), intake.submit(os.urandom(3 * SEGMENT))
    for submission in (intact, harmed):
        assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    at = HEADER + (SEGMENT + TAG) + 3
    tamper(vault.store, harmed.statement.parts[0].key, lambda b: b[:at] + bytes([b[at] ^ 0x10]) + b[at + 1 :])
    fixity = FixityService(vault, FIXITY_INTERVAL)
    assert not (await fixity.check(await _item(vault, harmed.evidence_id), origin="request")).ok
    before = await _item(vault, harmed.evidence_id)
    await _lose_the_database(vault)

    report = await rebuild_index(vault)

    after = await _item(vault, harmed.evidence_id)
    assert (after.status.value, after.reason, after.damaged_at) == ("damaged", before.reason, before.damaged_at)
    assert (report.indexed, report.damaged, report.refused) == (2, 1, [])
    assert (await _item(vault, intact.evidence_id)).status.value == "sealed"
    assert vault.store.legal_hold(damage_key(harmed.evidence_id)), "the record of damage cannot be removed"


async def test_holding_a_held_case_again_records_an_item_hold_that_had_no_record(vault, sealer, intake) -> None:
    """A vault from before hold records: the item's own hold must not turn into its case's."""
    alone = intake.submit(os.urandom(100))
    assert await sealer.seal(alone.payload) == SealOutcome.SEALED
    service = HoldService(vault)
    await service.hold_item(ADMIN, str(alone.evidence_id), True, "r1")
    await service.hold_case(ADMIN, "CASE-1", True, "r2")
    for key in list(vault.store.list(f"evidence/{alone.evidence_id}/legal-hold/")):
        vault.store.set_legal_hold(key, False)
        vault.store.delete(key)

    assert not (await service.hold_case(ADMIN, "CASE-1", True, "r3")).changed
    await _lose_the_database(vault)
    await rebuild_index(vault)

    assert (await _item(vault, alone.evidence_id)).legal_hold
    await service.hold_case(ADMIN, "CASE-1", False, "r4")
    assert all(vault.store.legal_hold(key) for key in _objects(alone))


async def test_keys_planted_among_the_records_neither_block_a_hold_nor_lift_one(vault, sealer, intake) -> None:
    submission = intake.submit(os.urandom(100))
    assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    # An intruder with the bucket's credentials fills the next versions and a version no JSON
    # number can hold, and overwrites the only record of another case's hold.
    vault.store.put(case_hold_key("CASE-1", 1), b"not a record")
    vault.store.put("cases/CASE-1/legal-hold/9007199254740992.json", b"x")
    vault.store.put("evidence/000000000000000000000000000000000000/damaged.json", b"x")
    service = HoldService(vault)
    assert (await service.hold_case(ADMIN, "CASE-1", True, "r1")).changed
    assert vault.store.legal_hold(case_hold_key("CASE-1", 2))
    assert all(vault.store.legal_hold(key) for key in _objects(submission))
    vault.store.put(case_hold_key("CASE-3", 1), b"overwritten")
    await _lose_the_database(vault)

    report = await rebuild_index(vault)

    assert await _case_held(vault, "CASE-1"), "the newest record that verifies counts"
    assert await _case_held(vault, "CASE-3"), "records none of which verifies hold the case, to be safe"
    assert report.refused == [case_hold_key("CASE-3", 1)], "CASE-1's newest record verifies; older ones go unread"
