"""Rotating the KEK: every data key re-wrapped, a new manifest version beside the locked one,
the data untouched and still served; an interrupted run is resumed."""

from __future__ import annotations

import os

import pytest

from custody_common.manifest import EvidenceManifest, manifest_key, parse_statement
from custody_common.objectstore import ObjectStoreUnavailable
from custody_evidence.items import repository as items
from custody_evidence.rotation.service import rotate_kek
from custody_evidence.seal.schemas import SealOutcome
from custody_evidence.stored_parts import read_back
from services.evidence.tests.conftest import forge_index_entry


async def _all_under(vault, submissions, kek_id: str, version: int) -> None:  # type: ignore[no-untyped-def]
    for submission in submissions:
        async with vault.sessions() as session:
            item = await items.get(session, submission.evidence_id)
        assert (item.kek_id, item.manifest_version) == (kek_id, version)
        manifest = vault.manifest_of(item)
        assert manifest.wrapped_dek.kek_id == kek_id
        # the data key unwraps under the new KEK and the stored bytes still read back to the seal
        dek = await vault.unwrap(item.evidence_id, manifest.wrapped_dek)
        assert dek == submission.dek
        assert read_back(vault.store, dek, item.evidence_id, manifest.parts).sha256 == item.sha256
        # both manifest versions are there, signed and protected like the item
        for v in range(1, version + 1):
            key = manifest_key(item.evidence_id, v)
            stored = parse_statement(EvidenceManifest, vault.store.read_all(key))
            stored.verify(vault.public_key)
            if item.status.value == "sealed":
                assert vault.store.retention(key) == item.retain_until
            else:
                assert vault.store.legal_hold(key)


async def test_rotation_rewraps_every_data_key(vault, sealer, intake, events) -> None:
    submissions = [intake.submit(os.urandom(500 + n)) for n in range(3)]
    submissions.append(intake.submit(os.urandom(10), declared_size=9))  # rejected items too
    for submission in submissions:
        assert await sealer.seal(submission.payload) in (SealOutcome.SEALED, SealOutcome.REJECTED)
    old = vault.keys.current_kek_id()

    report = await rotate_kek(vault)

    assert report.kek_id != old and report.rewrapped == 4 and not report.resumed
    await _all_under(vault, submissions, report.kek_id, 2)
    rotated = await events(vault, "key_rotated")
    assert len(rotated) == 5
    per_item = [e for e in rotated if "evidence_id" in e]
    assert {e["details"]["from_kek"] for e in per_item} == {old}
    assert {e["details"]["to_kek"] for e in per_item} == {report.kek_id}
    # the old KEK can go: nothing refers to it any more
    vault.keys.retire(old)
    await _all_under(vault, submissions, report.kek_id, 2)


async def test_an_interrupted_rotation_is_resumed(vault, sealer, intake) -> None:
    submissions = [intake.submit(os.urandom(300 + n)) for n in range(3)]
    for submission in submissions:
        assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    store = vault.store
    second = manifest_key(sorted(s.evidence_id for s in submissions)[1], 2)

    class FailingAfterWrite:
        """The store goes away right after the second item's new manifest is written."""

        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(store, name)

        def lock(self, key, until):  # type: ignore[no-untyped-def]
            if key == second:
                raise ObjectStoreUnavailable("the store went away")
            return store.lock(key, until)

    vault.store = FailingAfterWrite()
    with pytest.raises(ObjectStoreUnavailable):
        await rotate_kek(vault)
    vault.store = store

    report = await rotate_kek(vault)

    assert report.resumed and report.rewrapped == 2
    await _all_under(vault, submissions, report.kek_id, 2)


async def test_an_item_that_cannot_be_rewrapped_keeps_the_rotation_unfinished_not_the_others_old(
    vault, sealer, intake, events
) -> None:
    submissions = [intake.submit(os.urandom(500 + n)) for n in range(3)]
    for submission in submissions:
        assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    bad = min(submissions, key=lambda s: str(s.evidence_id))  # the first the rotation meets
    await forge_index_entry(vault, bad.evidence_id)

    report = await rotate_kek(vault)

    assert report.rewrapped == 2 and list(report.failed) == [str(bad.evidence_id)]
    await _all_under(vault, [s for s in submissions if s is not bad], report.kek_id, 2)
    assert [e for e in await events(vault, "key_rotated") if "evidence_id" not in e] == []  # not finished
