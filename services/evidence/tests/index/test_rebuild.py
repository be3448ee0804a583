"""Rebuilding the index from the object store's signed manifests."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody_common.manifest import EvidenceManifest, manifest_key, parse_statement
from custody_evidence.index.rebuild import rebuild_index
from custody_evidence.items import repository as items
from custody_evidence.seal.schemas import SealOutcome
from custody_evidence.tables import evidence_items
from services.evidence.tests.conftest import forge_index_entry


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
