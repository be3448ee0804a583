"""The upload rules against a real database (SQLite and PostgreSQL) and a real local object
store: events and their commitments, completion in one transaction, interrupted and failed
PATCHes, the lock between concurrent PATCHes, termination and expiry."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid

import pytest
from sqlalchemy import insert, select

from custody_common.events import check_commitment, verify_event
from custody_common.keys import key_provider
from custody_common.manifest import open_json, open_metadata, part_key
from custody_intake.tables import outbox, uploads
from custody_intake.uploads.errors import (
    CaseNotAssigned,
    ChecksumMismatch,
    LockLost,
    OffsetMismatch,
    UploadFinished,
    UploadGone,
    UploadLocked,
    UploadNotFound,
    UploadTooLarge,
)
from custody_intake.uploads.protocol import parse_checksum
from custody_intake.uploads.schemas import NewSubmission
from services.intake.tests.harness import CASE, Body, Intake, investigator, plaintext_of
from tests.support.submissions import upload_checksum

MIB = 1024 * 1024


def submission(data: bytes, **fields: str) -> NewSubmission:
    pairs = {"case": CASE, "filename": "photo.jpg", "sha256": hashlib.sha256(data).hexdigest(), **fields}
    return NewSubmission.from_tus(pairs, len(data))


def checksum_of(data: bytes, algorithm: str = "sha256"):  # type: ignore[no-untyped-def]
    return parse_checksum(upload_checksum(data, algorithm))


async def append(intake: Intake, evidence_id: uuid.UUID, offset: int, body: Body, *, checksum=None, who=None):  # type: ignore[no-untyped-def]
    return await intake.service.append(
        who or investigator(), evidence_id, offset, body, content_length=None, checksum=checksum, request_id="req-1"
    )


async def test_creation_states_the_submission_with_commitments_only(intake: Intake) -> None:
    data = os.urandom(1000)
    declared = submission(
        data, title="Witness 4", notes="child's name here", lat="47.1", captured_at="2024-05-01T10:00:00Z"
    )
    record = await intake.service.create(investigator(), declared, "req-create")
    assert record.evidence_id.version == 7 and record.status == "uploading" and record.offset == 0

    [event] = await intake.events(record.evidence_id)
    assert verify_event(event, intake.signing_key.public_key())
    assert event["action"] == "submitted" and event["actor"] == {"sub": "alice", "roles": ["investigator"]}
    assert (event["case"], event["sha256"], event["size"]) == (CASE, declared.declared_sha256, 1000)
    assert event["details"] == {"request_id": "req-create"}
    assert set(event["commitments"]) == {"filename", "title", "notes", "lat", "captured_at"}
    text = str(event)
    for value in ("Witness 4", "child's name", "photo.jpg", "47.1"):
        assert value not in text

    # The metadata and the commitments' salts are sealed under the item's data key.
    stored = await intake.upload(record.evidence_id)
    dek = key_provider(intake.settings).unwrap(stored.wrapped_dek, record.evidence_id.bytes)
    assert open_metadata(dek, record.evidence_id, stored.sealed_metadata) == declared.metadata
    salts = open_json(dek, record.evidence_id, "disclosures", stored.sealed_disclosures or "")
    for field, text in declared.metadata.personal_fields().items():
        assert check_commitment(salts[field], text, event["commitments"][field])


async def test_only_an_investigator_of_the_case_may_submit(intake: Intake) -> None:
    data = b"x"
    with pytest.raises(CaseNotAssigned, match="not assigned case"):
        await intake.service.create(investigator(cases=["OTHER"]), submission(data), None)
    with pytest.raises(CaseNotAssigned, match="only an investigator"):
        await intake.service.create(investigator(roles=["prosecutor"]), submission(data), None)
    with pytest.raises(CaseNotAssigned):
        await intake.service.create(investigator(roles=["admin"], cases=["*"]), submission(data), None)
    assert await intake.events() == []


async def test_a_declared_length_over_the_limit_is_refused(intake: Intake) -> None:
    declared = NewSubmission.from_tus({"case": CASE, "filename": "f", "sha256": "0" * 64}, 0)
    declared = declared.model_copy(update={"length": intake.settings.max_upload_size + 1})
    with pytest.raises(UploadTooLarge, match="Tus-Max-Size"):
        await intake.service.create(investigator(), declared, None)
    assert await intake.events() == []


async def test_parts_in_order_complete_the_submission(intake: Intake) -> None:
    data = os.urandom(3 * MIB + 333)
    record = await intake.service.create(investigator(), submission(data, title="t"), None)
    offset = 0
    for size in (MIB, 1, 2 * MIB - 1, 333):
        updated = await append(intake, record.evidence_id, offset, Body([data[offset : offset + size]]))
        offset += size
        assert updated.offset == offset
    assert updated.status == "received"

    actions = [e["action"] for e in await intake.events(record.evidence_id)]
    assert actions == ["submitted", "received"]
    received = (await intake.events(record.evidence_id))[1]
    assert received["sha256"] == hashlib.sha256(data).hexdigest() and received["size"] == len(data)
    assert received["details"] == {"parts": 4, "request_id": "req-1"}

    completed = await intake.completed(record.evidence_id)
    assert completed is not None
    completed.verify(intake.signing_key.public_key())
    assert [(p.index, p.offset, p.size) for p in completed.parts] == [
        (0, 0, MIB),
        (1, MIB, 1),
        (2, MIB + 1, 2 * MIB - 1),
        (3, 3 * MIB, 333),
    ]
    assert completed.submitter == "alice" and completed.case == CASE and completed.disclosures
    assert plaintext_of(intake.store, intake.settings, completed) == data
    # The completion statement follows the received event, on the submissions subject.
    subjects = [(m, s) for m, s, _ in await intake.messages()]
    assert subjects[-1] == (f"completed-{record.evidence_id}", "unused.submissions.completed")

    with pytest.raises(UploadFinished):
        await append(intake, record.evidence_id, len(data), Body([b"more"]))


async def test_an_empty_file_is_received_at_creation(intake: Intake) -> None:
    record = await intake.service.create(investigator(), submission(b""), None)
    assert record.status == "received"
    assert [e["action"] for e in await intake.events(record.evidence_id)] == ["submitted", "received"]
    completed = await intake.completed(record.evidence_id)
    assert completed is not None and completed.parts == [] and completed.size == 0
    assert (await intake.upload(record.evidence_id)).status == "received"


async def test_completion_and_its_statements_commit_together(intake: Intake) -> None:
    data = os.urandom(5000)
    record = await intake.service.create(investigator(), submission(data), None)
    await append(intake, record.evidence_id, 0, Body([data[:1000]]))
    # Something already holds the completion's message id: its enqueue must fail at commit.
    async with intake.sessions.begin() as session:
        await session.execute(
            insert(outbox).values(
                msg_id=f"completed-{record.evidence_id}",
                subject="blocker",
                payload=b"{}",
                created_at=intake.clock(),
            )
        )
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        await append(intake, record.evidence_id, 1000, Body([data[1000:]]))

    after = await intake.upload(record.evidence_id)
    assert (after.status, after.offset, after.next_part, after.lock_token) == ("uploading", 1000, 1, None)
    assert [p.index for p in await intake.parts(record.evidence_id)] == [0]
    assert [e["action"] for e in await intake.events(record.evidence_id)] == ["submitted"]

    async with intake.sessions.begin() as session:
        await session.execute(outbox.delete().where(outbox.c.subject == "blocker"))
    done = await append(intake, record.evidence_id, 1000, Body([data[1000:]]))
    assert done.status == "received"
    completed = await intake.completed(record.evidence_id)
    assert completed is not None and plaintext_of(intake.store, intake.settings, completed) == data


async def test_a_wrong_offset_is_refused_and_keeps_nothing(intake: Intake) -> None:
    data = os.urandom(4000)
    record = await intake.service.create(investigator(), submission(data), None)
    await append(intake, record.evidence_id, 0, Body([data[:1000]]))
    with pytest.raises(OffsetMismatch, match="stands at 1000"):
        await append(intake, record.evidence_id, 500, Body([data[500:2000]]))
    with pytest.raises(OffsetMismatch):
        await append(intake, record.evidence_id, 2000, Body([data[2000:]]))
    assert (await intake.upload(record.evidence_id)).offset == 1000
    assert intake.keys_under(record.evidence_id) == [part.key for part in await intake.parts(record.evidence_id)]


async def test_an_interrupted_patch_without_checksum_keeps_what_arrived(intake: Intake) -> None:
    data = os.urandom(3 * MIB)
    record = await intake.service.create(investigator(), submission(data), None)
    arrived = data[: MIB + 12345]
    updated = await append(intake, record.evidence_id, 0, Body([arrived[:MIB], arrived[MIB:]], cut=True))
    assert updated.offset == len(arrived) and updated.status == "uploading"
    [part] = await intake.parts(record.evidence_id)
    assert (part.offset, part.size) == (0, len(arrived))
    await append(intake, record.evidence_id, len(arrived), Body([data[len(arrived) :]]))
    completed = await intake.completed(record.evidence_id)
    assert completed is not None and plaintext_of(intake.store, intake.settings, completed) == data


async def test_an_interrupted_patch_with_checksum_keeps_nothing(intake: Intake) -> None:
    data = os.urandom(2 * MIB)
    record = await intake.service.create(investigator(), submission(data), None)
    updated = await append(intake, record.evidence_id, 0, Body([data[: MIB + 7]], cut=True), checksum=checksum_of(data))
    assert updated.offset == 0
    after = await intake.upload(record.evidence_id)
    assert (after.offset, after.next_part, after.lock_token) == (0, 0, None)
    assert intake.keys_under(record.evidence_id) == []


@pytest.mark.parametrize("algorithm", ["crc32", "sha256", "sha1"])
async def test_a_checksum_mismatch_keeps_none_of_the_patch(intake: Intake, algorithm: str) -> None:
    data = os.urandom(MIB + 10)
    record = await intake.service.create(investigator(), submission(data), None)
    with pytest.raises(ChecksumMismatch):
        await append(intake, record.evidence_id, 0, Body([data]), checksum=checksum_of(data[:-1] + bytes([data[-1] ^ 1]), algorithm))
    after = await intake.upload(record.evidence_id)
    assert (after.offset, after.next_part, after.lock_token) == (0, 0, None)
    assert intake.keys_under(record.evidence_id) == []
    assert [e["action"] for e in await intake.events(record.evidence_id)] == ["submitted"]
    done = await append(intake, record.evidence_id, 0, Body([data]), checksum=checksum_of(data, algorithm))
    assert done.status == "received"


async def test_a_body_past_the_declared_length_keeps_nothing(intake: Intake) -> None:
    data = os.urandom(2000)
    record = await intake.service.create(investigator(), submission(data), None)
    with pytest.raises(UploadTooLarge):
        await append(intake, record.evidence_id, 0, Body([data, b"extra"]))
    with pytest.raises(UploadTooLarge):
        await intake.service.append(
            investigator(), record.evidence_id, 0, Body([data]), content_length=2001, checksum=None, request_id=None
        )
    after = await intake.upload(record.evidence_id)
    assert (after.offset, after.lock_token, after.status) == (0, None, "uploading")
    assert intake.keys_under(record.evidence_id) == []
    assert [e["action"] for e in await intake.events(record.evidence_id)] == ["submitted"]


async def test_an_empty_patch_changes_nothing(intake: Intake) -> None:
    record = await intake.service.create(investigator(), submission(b"abc"), None)
    updated = await append(intake, record.evidence_id, 0, Body([]))
    assert updated.offset == 0 and (await intake.upload(record.evidence_id)).lock_token is None
    assert intake.keys_under(record.evidence_id) == []


async def test_only_the_submitter_sees_the_upload(intake: Intake) -> None:
    data = os.urandom(100)
    record = await intake.service.create(investigator(), submission(data), None)
    strangers = [
        investigator(sub="mallory"),
        investigator(cases=["OTHER"]),  # alice, no longer assigned the case
        investigator(roles=["prosecutor"]),
        investigator(roles=["auditor"], cases=["*"]),
    ]
    for stranger in strangers:
        with pytest.raises(UploadNotFound):
            await intake.service.own(stranger, record.evidence_id)
        with pytest.raises(UploadNotFound):
            await append(intake, record.evidence_id, 0, Body([data]), who=stranger)
        with pytest.raises(UploadNotFound):
            await intake.service.terminate(stranger, record.evidence_id, None)
    with pytest.raises(UploadNotFound):
        await intake.service.own(investigator(), uuid.uuid4())
    assert (await intake.upload(record.evidence_id)).offset == 0


class StalledBody:
    """A body that sends its first chunk, then waits until the test lets it finish (with
    ``rest``, or, without it, cut off as a dropped connection cuts it)."""

    def __init__(self, first: bytes, rest: bytes | None) -> None:
        self.first, self.rest = first, rest
        self.stalled = asyncio.Event()
        self.resume = asyncio.Event()
        self.interrupted = False

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        yield self.first
        self.stalled.set()
        await self.resume.wait()
        if self.rest is None:
            self.interrupted = True
        else:
            yield self.rest


async def test_a_second_patch_meets_the_lock_until_the_first_stalls_too_long(intake: Intake) -> None:
    data = os.urandom(2 * MIB)
    record = await intake.service.create(investigator(), submission(data), None)
    first = StalledBody(data[:MIB], data[MIB:])
    slow = asyncio.create_task(append(intake, record.evidence_id, 0, first))
    await first.stalled.wait()

    with pytest.raises(UploadLocked, match="another PATCH"):
        await append(intake, record.evidence_id, 0, Body([data]))
    with pytest.raises(UploadLocked):
        await intake.service.terminate(investigator(), record.evidence_id, None)

    # Idle past the lock timeout: a new PATCH takes the upload over and completes it.
    intake.clock.advance(intake.settings.upload_lock_timeout + 1)
    taken = await append(intake, record.evidence_id, 0, Body([data]))
    assert taken.status == "received"

    # The stalled PATCH wakes up: it lost the upload, keeps nothing and spoils nothing.
    first.resume.set()
    with pytest.raises(LockLost, match="nothing of it was kept"):
        await slow
    completed = await intake.completed(record.evidence_id)
    assert completed is not None and plaintext_of(intake.store, intake.settings, completed) == data
    assert [e["action"] for e in await intake.events(record.evidence_id)] == ["submitted", "received"]


@pytest.mark.parametrize("ending", ["cut-off-with-checksum", "longer-than-the-upload", "cancelled"])
async def test_a_patch_that_stalled_past_its_lock_never_takes_the_part_of_the_one_that_took_over(
    intake: Intake, ending: str
) -> None:
    data = os.urandom(4 * MIB)
    record = await intake.service.create(investigator(), submission(data), None)
    first = StalledBody(os.urandom(MIB + 10), None if ending == "cut-off-with-checksum" else os.urandom(4 * MIB))
    checksum = checksum_of(os.urandom(10)) if ending == "cut-off-with-checksum" else None
    slow = asyncio.create_task(append(intake, record.evidence_id, 0, first, checksum=checksum))
    await first.stalled.wait()
    await asyncio.sleep(0.2)  # its part is being written

    intake.clock.advance(intake.settings.upload_lock_timeout + 1)
    assert (await append(intake, record.evidence_id, 0, Body([data[: 2 * MIB]]))).offset == 2 * MIB
    if ending == "cancelled":
        slow.cancel()
    else:
        first.resume.set()
    await asyncio.gather(slow, return_exceptions=True)

    assert (await append(intake, record.evidence_id, 2 * MIB, Body([data[2 * MIB :]]))).status == "received"
    completed = await intake.completed(record.evidence_id)
    assert completed is not None and plaintext_of(intake.store, intake.settings, completed) == data
    assert intake.keys_under(record.evidence_id) == [part.key for part in completed.parts]


async def test_termination_records_the_event_then_deletes_the_parts(intake: Intake) -> None:
    data = os.urandom(3 * MIB)
    record = await intake.service.create(investigator(), submission(data), None)
    await append(intake, record.evidence_id, 0, Body([data[:MIB]]))
    await append(intake, record.evidence_id, MIB, Body([data[MIB : 2 * MIB]]))
    # An unrecorded part, as a PATCH killed mid-write leaves it.
    intake.store.put(part_key(record.evidence_id, 2, "crashed"), b"ciphertext of a crashed PATCH")
    assert len(intake.keys_under(record.evidence_id)) == 3

    await intake.service.terminate(investigator(), record.evidence_id, "req-del")
    assert intake.keys_under(record.evidence_id) == []
    after = await intake.upload(record.evidence_id)
    assert after.status == "terminated" and after.finished_at == intake.clock()
    terminated = (await intake.events(record.evidence_id))[-1]
    assert terminated["action"] == "terminated" and terminated["actor"]["sub"] == "alice"
    assert terminated["details"] == {"received_bytes": 2 * MIB, "parts": 2, "request_id": "req-del"}
    assert "sha256" not in terminated and "size" not in terminated

    with pytest.raises(UploadGone):
        await append(intake, record.evidence_id, 2 * MIB, Body([data[2 * MIB :]]))
    with pytest.raises(UploadGone):
        await intake.service.terminate(investigator(), record.evidence_id, None)


async def test_a_received_submission_cannot_be_terminated(intake: Intake) -> None:
    data = os.urandom(10)
    record = await intake.service.create(investigator(), submission(data), None)
    await append(intake, record.evidence_id, 0, Body([data]))
    with pytest.raises(UploadFinished, match="only an upload still in progress"):
        await intake.service.terminate(investigator(), record.evidence_id, None)
    assert len(intake.keys_under(record.evidence_id)) == 1
    assert [e["action"] for e in await intake.events(record.evidence_id)] == ["submitted", "received"]


async def test_idle_uploads_expire_with_an_event_before_their_parts_go(intake: Intake) -> None:
    data = os.urandom(2 * MIB)
    idle = await intake.service.create(investigator(), submission(data), None)
    await append(intake, idle.evidence_id, 0, Body([data[:MIB]]))
    intake.clock.advance(intake.settings.upload_expiry.total_seconds() / 2)
    busy = await intake.service.create(investigator(), submission(data), None)
    done = await intake.service.create(investigator(), submission(b"z"), None)
    await append(intake, done.evidence_id, 0, Body([b"z"]))

    assert await intake.service.expire_due() == 0
    intake.clock.advance(intake.settings.upload_expiry.total_seconds() / 2 + 1)
    assert await intake.service.expire_due() == 1

    after = await intake.upload(idle.evidence_id)
    assert after.status == "expired" and intake.keys_under(idle.evidence_id) == []
    expired = (await intake.events(idle.evidence_id))[-1]
    assert expired["action"] == "expired" and expired["actor"] == {"service": "intake"}
    assert expired["details"]["received_bytes"] == MIB and expired["details"]["parts"] == 1
    assert (await intake.upload(busy.evidence_id)).status == "uploading"
    assert (await intake.upload(done.evidence_id)).status == "received"
    assert len(intake.keys_under(done.evidence_id)) == 1

    with pytest.raises(UploadGone):
        await append(intake, idle.evidence_id, MIB, Body([data[MIB:]]))
    # A PATCH extends the expiry: the second upload, active now, outlives its first deadline.
    await append(intake, busy.evidence_id, 0, Body([data[:10]]))
    intake.clock.advance(intake.settings.upload_expiry.total_seconds() / 2 + 1)
    assert await intake.service.expire_due() == 0
    assert await intake.service.expire_due() == 0  # nothing twice


async def test_a_locked_upload_does_not_expire_under_its_patch(intake: Intake) -> None:
    data = os.urandom(2 * MIB)
    record = await intake.service.create(investigator(), submission(data), None)
    body = StalledBody(data[:MIB], data[MIB:])
    patch = asyncio.create_task(append(intake, record.evidence_id, 0, body))
    await body.stalled.wait()
    # Past the expiry, but the lock is fresh in the clock's eyes: the sweep leaves it.
    async with intake.sessions.begin() as session:
        await session.execute(
            uploads.update().where(uploads.c.evidence_id == record.evidence_id).values(expires_at=intake.clock())
        )
    assert await intake.service.expire_due() == 0
    body.resume.set()
    assert (await patch).status == "received"


async def test_the_sweep_deletes_parts_left_by_a_crash_after_the_event(intake: Intake) -> None:
    data = os.urandom(MIB)
    record = await intake.service.create(investigator(), submission(data), None)
    await append(intake, record.evidence_id, 0, Body([data[:100]]))
    # As if the process died right after committing the termination.
    async with intake.sessions.begin() as session:
        await session.execute(
            uploads.update()
            .where(uploads.c.evidence_id == record.evidence_id)
            .values(status="terminated", finished_at=intake.clock())
        )
    assert len(intake.keys_under(record.evidence_id)) == 1
    assert await intake.service.purge_ended() == 1
    assert intake.keys_under(record.evidence_id) == []
    async with intake.sessions() as session:
        purged = (
            await session.execute(select(uploads.c.parts_purged_at).where(uploads.c.evidence_id == record.evidence_id))
        ).scalar_one()
    assert purged is not None
    assert await intake.service.purge_ended() == 0


async def test_the_submitter_reads_back_the_declared_metadata(intake: Intake) -> None:
    declared = submission(b"abc", title="Witness", lat="47.5")
    record = await intake.service.create(investigator(), declared, None)
    pairs = await intake.service.declared_metadata(record)
    assert pairs == {
        "case": CASE,
        "sha256": declared.declared_sha256,
        "filename": "photo.jpg",
        "title": "Witness",
        "lat": "47.5",
    }
