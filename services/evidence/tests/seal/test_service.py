"""Sealing against a real database and object store (SQLite + local folder, PostgreSQL + Ceph RGW)."""

from __future__ import annotations

import asyncio
import hashlib
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody_common.crypto.stream import HEADER, SEGMENT, TAG
from custody_common.events import verify_event
from custody_common.manifest import EvidenceManifest, manifest_key, parse_statement
from custody_evidence.items import repository as items
from custody_evidence.items.schemas import ItemStatus
from custody_evidence.seal.repository import set_aside_messages
from custody_evidence.seal.schemas import SealOutcome
from custody_evidence.seal.service import Sealer
from custody_evidence.tables import evidence_items, outbox

SEGMENT_STORED = SEGMENT + TAG


async def _item(vault, evidence_id):  # type: ignore[no-untyped-def]
    async with vault.sessions() as session:
        return await items.get(session, evidence_id)


async def test_a_good_submission_is_sealed_locked_and_recorded(vault, sealer, intake, events) -> None:
    plaintext = os.urandom(3 * SEGMENT + 1234)
    submission = intake.submit(plaintext, part_sizes=[SEGMENT + 7, 0, 2 * SEGMENT + 1227])

    assert await sealer.seal(submission.payload) == SealOutcome.SEALED

    item = await _item(vault, submission.evidence_id)
    assert item.status == ItemStatus.SEALED
    assert item.sha256 == hashlib.sha256(plaintext).hexdigest()
    assert item.size == len(plaintext)
    assert item.reason is None
    # every part and the manifest are locked until the retention date
    for part in submission.statement.parts:
        assert vault.store.retention(part.key) == item.retain_until
        assert not vault.store.legal_hold(part.key)
    key = manifest_key(submission.evidence_id, 1)
    assert vault.store.retention(key) == item.retain_until
    manifest = parse_statement(EvidenceManifest, vault.store.read_all(key))
    manifest.verify(vault.public_key)
    assert (manifest.status, manifest.version, manifest.sha256) == ("sealed", 1, item.sha256)
    assert manifest.parts == submission.statement.parts
    assert manifest.wrapped_dek == submission.statement.wrapped_dek

    sealed = await events(vault, "sealed")
    assert len(sealed) == 1
    event = sealed[0]
    assert verify_event(event, vault.public_key)
    assert event["evidence_id"] == str(submission.evidence_id)
    assert (event["case"], event["sha256"], event["size"]) == ("CASE-1", item.sha256, len(plaintext))
    assert event["actor"] == {"service": "evidence"}
    # no personal data leaves in the event: the filename and notes appear nowhere in it
    assert "école" not in str(event) and "witness" not in str(event)


async def test_redelivery_of_a_sealed_submission_changes_nothing(vault, sealer, intake, events) -> None:
    submission = intake.submit(os.urandom(1000))
    assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    before = await _item(vault, submission.evidence_id)

    assert await sealer.seal(submission.payload) == SealOutcome.ALREADY_RECORDED

    assert await _item(vault, submission.evidence_id) == before
    assert len(await events(vault, "sealed")) == 1


async def test_a_crash_after_the_manifest_was_stored_is_finished_by_the_redelivery(
    vault, sealer, intake, events
) -> None:
    submission = intake.submit(os.urandom(5000))
    assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    first = await _item(vault, submission.evidence_id)
    # the index entry and its event never committed (a crash just before): only the store holds the seal
    async with vault.transaction() as session:
        await session.execute(evidence_items.delete())
        await session.execute(outbox.delete())

    assert await sealer.seal(submission.payload) == SealOutcome.SEALED

    again = await _item(vault, submission.evidence_id)
    assert again.sealed_at == first.sealed_at  # the locked manifest was adopted, not rewritten
    assert again.retain_until == first.retain_until
    assert len(await events(vault, "sealed")) == 1


async def test_a_wrong_declared_hash_is_rejected_held_and_recorded(vault, sealer, intake, events) -> None:
    plaintext = os.urandom(2 * SEGMENT)
    declared = hashlib.sha256(b"what the device claimed").hexdigest()
    submission = intake.submit(plaintext, declared_sha256=declared, part_sizes=[SEGMENT, SEGMENT])

    assert await sealer.seal(submission.payload) == SealOutcome.REJECTED

    item = await _item(vault, submission.evidence_id)
    actual = hashlib.sha256(plaintext).hexdigest()
    assert item.status == ItemStatus.REJECTED
    assert item.reason.startswith("hash_mismatch:")
    assert declared in item.reason and actual in item.reason
    assert item.retain_until is None
    for part in submission.statement.parts:
        assert vault.store.legal_hold(part.key)
    key = manifest_key(submission.evidence_id, 1)
    assert vault.store.legal_hold(key)
    manifest = parse_statement(EvidenceManifest, vault.store.read_all(key))
    manifest.verify(vault.public_key)
    assert (manifest.status, manifest.reason) == ("rejected", item.reason)

    [event] = await events(vault, "rejected")
    assert verify_event(event, vault.public_key)
    details = event["details"]
    assert details["finding"] == "hash_mismatch"
    assert (details["declared_sha256"], details["actual_sha256"]) == (declared, actual)
    assert details["declared_size"] == details["actual_size"] == len(plaintext)
    assert await events(vault, "sealed") == []

    # and a redelivery does not reject twice
    assert await sealer.seal(submission.payload) == SealOutcome.ALREADY_RECORDED
    assert len(await events(vault, "rejected")) == 1


async def test_a_wrong_declared_size_is_rejected(vault, sealer, intake, events) -> None:
    plaintext = os.urandom(777)
    submission = intake.submit(plaintext, declared_size=778)

    assert await sealer.seal(submission.payload) == SealOutcome.REJECTED

    [event] = await events(vault, "rejected")
    assert event["details"]["finding"] == "size_mismatch"
    assert (event["details"]["declared_size"], event["details"]["actual_size"]) == (778, 777)


def _flip_a_byte_in_segment_1(stored: bytes) -> bytes:
    at = HEADER + SEGMENT_STORED + 100
    return stored[:at] + bytes([stored[at] ^ 0x01]) + stored[at + 1 :]


def _swap_segments_0_and_1(stored: bytes) -> bytes:
    first = stored[HEADER : HEADER + SEGMENT_STORED]
    second = stored[HEADER + SEGMENT_STORED : HEADER + 2 * SEGMENT_STORED]
    return stored[:HEADER] + second + first + stored[HEADER + 2 * SEGMENT_STORED :]


def _truncate_by_one_segment(stored: bytes) -> bytes:
    return stored[:-SEGMENT_STORED]


async def _rejected_for(vault, sealer, intake, events, damage, finding: str) -> None:  # type: ignore[no-untyped-def]
    plaintext = os.urandom(4 * SEGMENT + 10)
    submission = intake.submit(plaintext, part_sizes=[SEGMENT, 3 * SEGMENT + 10])
    damage(vault.store, submission.statement.parts[1].key)

    assert await sealer.seal(submission.payload) == SealOutcome.REJECTED

    item = await _item(vault, submission.evidence_id)
    assert item.status == ItemStatus.REJECTED
    assert item.reason.startswith(f"{finding}:")
    assert "part 1" in item.reason
    assert item.sha256 is None
    [event] = await events(vault, "rejected")
    assert event["details"]["finding"] == finding
    assert event["details"]["part"] == 1
    assert event["details"]["declared_sha256"] == hashlib.sha256(plaintext).hexdigest()
    assert "actual_sha256" not in event["details"]
    # held, parts that are still there included
    for part in submission.statement.parts:
        if damage is not _delete:
            assert vault.store.legal_hold(part.key)
    assert vault.store.legal_hold(submission.statement.parts[0].key)


def _rewrite(change):  # type: ignore[no-untyped-def]
    def rewrite(store, key) -> None:  # type: ignore[no-untyped-def]
        store.put(key, change(store.read_all(key)))

    return rewrite


def _delete(store, key) -> None:  # type: ignore[no-untyped-def]
    store.delete(key)


async def test_a_flipped_bit_in_a_stored_segment_is_rejected(vault, sealer, intake, events) -> None:
    await _rejected_for(vault, sealer, intake, events, _rewrite(_flip_a_byte_in_segment_1), "authentication_failed")


async def test_two_swapped_segments_are_rejected(vault, sealer, intake, events) -> None:
    await _rejected_for(vault, sealer, intake, events, _rewrite(_swap_segments_0_and_1), "authentication_failed")


async def test_a_truncated_part_is_rejected(vault, sealer, intake, events) -> None:
    await _rejected_for(vault, sealer, intake, events, _rewrite(_truncate_by_one_segment), "stored_size_mismatch")


async def test_a_missing_part_is_rejected(vault, sealer, intake, events) -> None:
    await _rejected_for(vault, sealer, intake, events, _delete, "missing_part")


async def test_parts_with_a_gap_are_rejected(vault, sealer, intake, events) -> None:
    submission = intake.submit(os.urandom(300), part_sizes=[100, 200])
    parts = list(submission.statement.parts)
    parts[1] = parts[1].model_copy(update={"offset": 101})
    forged = submission.statement.model_copy(update={"parts": parts, "sig": None}).signed(intake.intake_key)

    assert await sealer.seal(forged.to_bytes()) == SealOutcome.REJECTED

    [event] = await events(vault, "rejected")
    assert event["details"]["finding"] == "parts_inconsistent"


async def test_a_part_truncated_inside_a_segment_whose_statement_agrees_is_rejected(
    vault, sealer, intake, events
) -> None:
    # intake's own statement declares the shorter size, so only authentication can tell
    plaintext = os.urandom(2 * SEGMENT + 500)
    submission = intake.submit(plaintext)
    part = submission.statement.parts[0]
    stored = vault.store.read_all(part.key)
    cut = stored[: HEADER + SEGMENT_STORED + 100 + TAG]  # the cut segment keeps a tag-sized tail
    vault.store.put(part.key, cut)
    short = part.model_copy(update={"size": SEGMENT + 100, "stored_size": len(cut)})
    forged = submission.statement.model_copy(update={"parts": [short], "size": SEGMENT + 100, "sig": None}).signed(
        intake.intake_key
    )

    assert await sealer.seal(forged.to_bytes()) == SealOutcome.REJECTED

    [event] = await events(vault, "rejected")
    assert event["details"]["finding"] == "authentication_failed"


async def test_a_statement_not_signed_by_intake_is_set_aside_not_sealed(vault, sealer, intake, events) -> None:
    unsigned = intake.submit(os.urandom(100), signed=False)
    forged = intake.submit(os.urandom(100), signed=False).statement.signed(Ed25519PrivateKey.generate())

    assert await sealer.seal(unsigned.payload) == SealOutcome.SET_ASIDE
    assert await sealer.seal(forged.to_bytes()) == SealOutcome.SET_ASIDE
    assert await sealer.seal(b"{not json") == SealOutcome.SET_ASIDE
    nested = b"[" * 30_000 + b"]" * 30_000  # deeper than Python's JSON parser goes
    assert await sealer.seal(nested) == SealOutcome.SET_ASIDE
    assert await sealer.seal(forged.to_bytes()) == SealOutcome.SET_ASIDE  # kept once

    assert await _item(vault, unsigned.evidence_id) is None
    assert await _item(vault, forged.evidence_id) is None
    async with vault.sessions() as session:
        kept = await set_aside_messages(session)
    assert [row.payload for row in kept] == [unsigned.payload, forged.to_bytes(), b"{not json", nested]
    assert all("signature" in row.reason for row in kept[:2])
    assert await events(vault) == []
    # nothing was locked or held
    assert vault.store.retention(forged.parts[0].key) is None
    assert not vault.store.legal_hold(forged.parts[0].key)


async def test_a_newly_deployed_intake_key_is_picked_up(vault, sealer, intake, settings, new_intake) -> None:
    assert await sealer.seal(intake.submit(os.urandom(100)).payload) == SealOutcome.SEALED
    # intake is redeployed with a new key: the sealer reloads the trusted keys on the first failure
    (settings.key_folder / "intake-signing.key").unlink()
    (settings.key_folder / "intake-signing.pub").unlink()
    redeployed = new_intake()

    assert await sealer.seal(redeployed.submit(os.urandom(100)).payload) == SealOutcome.SEALED
    # and statements signed by the retired key are no longer trusted
    assert await sealer.seal(intake.submit(os.urandom(100)).payload) == SealOutcome.SET_ASIDE


async def test_two_sealers_of_one_message_index_the_manifest_the_vault_holds(vault, sealer, intake) -> None:
    """A message delivered again while the first sealer is still at work: the second finishes
    its read pass after the first stored and locked its manifest, but before it indexed it.
    The second waits for the case's lock, then adopts the stored manifest."""
    submission = intake.submit(os.urandom(200_000))
    first, second = sealer, Sealer(vault, sealer._load_trusted, sealer._fixity_interval)
    first_stored, first_go, second_read, second_go = (asyncio.Event() for _ in range(4))

    async def index_later(*args, **kwargs):  # type: ignore[no-untyped-def]
        first_stored.set()
        await first_go.wait()
        return await Sealer._index(first, *args, **kwargs)

    async def examine_then_wait(statement, early):  # type: ignore[no-untyped-def]
        found = await Sealer._examine(second, statement, early)
        second_read.set()
        await second_go.wait()
        return found

    first._index, second._examine = index_later, examine_then_wait  # type: ignore[method-assign]
    later = asyncio.create_task(second.seal(submission.payload))
    await second_read.wait()
    earlier = asyncio.create_task(first.seal(submission.payload))
    await first_stored.wait()
    second_go.set()
    await asyncio.sleep(0.2)  # the second goes as far as it can: once, it indexed its own manifest here
    first_go.set()
    assert await earlier == SealOutcome.SEALED
    assert await later == SealOutcome.ALREADY_RECORDED

    stored = vault.store.read_all(manifest_key(submission.evidence_id, 1))
    async with vault.sessions() as session:
        indexed = (await items.get(session, submission.evidence_id)).manifest()
    assert indexed.to_bytes() == stored
