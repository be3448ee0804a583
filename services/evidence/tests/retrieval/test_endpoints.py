"""Retrieval over real HTTP (uvicorn), on SQLite + a local folder and PostgreSQL + Ceph RGW."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from urllib.parse import quote

import httpx
import pytest

from custody_common.crypto.stream import HEADER, SEGMENT, TAG
from custody_common.events import check_commitment, verify_event
from custody_common.manifest import open_json
from custody_evidence.items import repository as items
from custody_evidence.retrieval.repository import accesses_of
from custody_evidence.seal.schemas import SealOutcome

PURPOSE = "Trial preparation, case against the commander of the Kherson camp"


@pytest.fixture
async def sealed(running, served_intake):  # type: ignore[no-untyped-def]
    """A sealed item of CASE-1: five segments and a bit, in two parts."""
    plaintext = os.urandom(5 * SEGMENT + 321)
    submission = served_intake.submit(plaintext, part_sizes=[2 * SEGMENT + 5, 3 * SEGMENT + 316])
    assert await running.sealer.seal(submission.payload) == SealOutcome.SEALED
    return submission


@pytest.fixture
def prosecutor(running):  # type: ignore[no-untyped-def]
    return running.client(running.token("petra", ["prosecutor"], ["CASE-1"]))


def _content(evidence_id, purpose: str | None = PURPOSE) -> str:  # type: ignore[no-untyped-def]
    query = f"?purpose={quote(purpose)}" if purpose is not None else ""
    return f"/v1/evidence/{evidence_id}/content{query}"


async def _item(running, evidence_id):  # type: ignore[no-untyped-def]
    async with running.vault.sessions() as session:
        return await items.get(session, evidence_id)


async def test_content_is_the_original_with_its_digest_and_the_access_on_record(
    running, sealed, prosecutor, events
) -> None:
    async with prosecutor:
        answer = await prosecutor.get(_content(sealed.evidence_id), headers={"X-Request-ID": "req-42"})

    assert answer.status_code == 200
    assert answer.content == sealed.plaintext
    digest = base64.b64encode(hashlib.sha256(sealed.plaintext).digest()).decode()
    assert answer.headers["repr-digest"] == f"sha-256=:{digest}:"
    assert answer.headers["content-length"] == str(len(sealed.plaintext))
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["accept-ranges"] == "bytes"
    assert (
        answer.headers["content-disposition"] == f"attachment; filename*=UTF-8''{quote('école — photo 1.jpg', safe='')}"
    )
    assert answer.headers["cache-control"] == "no-store"

    [accessed] = await events(running.vault, "accessed")
    assert verify_event(accessed, running.vault.public_key)
    assert accessed["actor"] == {"sub": "petra", "roles": ["prosecutor"]}
    assert accessed["details"] == {"request_id": "req-42", "range": "full"}
    assert set(accessed["commitments"]) == {"purpose"}
    assert PURPOSE not in str(accessed) and "Kherson" not in str(accessed)
    # the purpose is kept sealed beside the access, and opens to what the commitment says
    async with running.vault.sessions() as session:
        [access] = await accesses_of(session, sealed.evidence_id)
    assert PURPOSE not in access.purpose
    opened = open_json(sealed.dek, sealed.evidence_id, "purpose", access.purpose)
    assert opened["purpose"] == PURPOSE
    assert check_commitment(opened["salt"], PURPOSE, accessed["commitments"]["purpose"])
    assert (access.event_id, access.request_id, access.sub) == (accessed["id"], "req-42", "petra")


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 1),
        (f"bytes={SEGMENT - 10}-{SEGMENT + 9}", SEGMENT - 10, SEGMENT + 10),  # across a segment boundary
        (f"bytes={2 * SEGMENT}-{2 * SEGMENT + 10}", 2 * SEGMENT, 2 * SEGMENT + 11),  # across the part boundary
        ("bytes=-1", 5 * SEGMENT + 320, 5 * SEGMENT + 321),  # the last byte
        (f"bytes={3 * SEGMENT}-", 3 * SEGMENT, 5 * SEGMENT + 321),
        ("bytes=100-99999999", 100, 5 * SEGMENT + 321),
    ],
)
async def test_ranges_are_slices_of_the_original(running, sealed, prosecutor, events, header, start, end) -> None:
    size = len(sealed.plaintext)
    async with prosecutor:
        answer = await prosecutor.get(_content(sealed.evidence_id), headers={"Range": header})

    assert answer.status_code == 206
    assert answer.content == sealed.plaintext[start:end]
    assert answer.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
    assert answer.headers["content-length"] == str(end - start)
    digest = base64.b64encode(hashlib.sha256(sealed.plaintext).digest()).decode()
    assert answer.headers["repr-digest"] == f"sha-256=:{digest}:"  # of the whole representation
    [accessed] = await events(running.vault, "accessed")
    assert accessed["details"]["range"] == f"bytes {start}-{end - 1}/{size}"


async def test_if_range_with_another_etag_sends_the_whole_item(running, sealed, prosecutor) -> None:
    async with prosecutor:
        stale = await prosecutor.get(_content(sealed.evidence_id), headers={"Range": "bytes=0-9", "If-Range": '"abc"'})
        current = await prosecutor.get(
            _content(sealed.evidence_id), headers={"Range": "bytes=0-9", "If-Range": stale.headers["etag"]}
        )
    assert (stale.status_code, stale.content) == (200, sealed.plaintext)
    assert (current.status_code, current.content) == (206, sealed.plaintext[:10])


async def test_an_unsatisfiable_range_is_416_and_not_an_access(running, sealed, prosecutor, events) -> None:
    async with prosecutor:
        answer = await prosecutor.get(
            _content(sealed.evidence_id), headers={"Range": f"bytes={len(sealed.plaintext)}-"}
        )
    assert answer.status_code == 416
    assert answer.headers["content-range"] == f"bytes */{len(sealed.plaintext)}"
    assert await events(running.vault, "accessed") == []


async def test_a_purpose_is_required(running, sealed, prosecutor, events) -> None:
    async with prosecutor:
        missing = await prosecutor.get(_content(sealed.evidence_id, None))
        blank = await prosecutor.get(_content(sealed.evidence_id, "   "))
        too_long = await prosecutor.get(_content(sealed.evidence_id, "x" * 501))
        longest = await prosecutor.get(_content(sealed.evidence_id, "x" * 500))
    for answer in (missing, blank, too_long):
        assert answer.status_code == 422
        assert "purpose" in answer.json()["detail"]
        assert answer.content != sealed.plaintext
    assert longest.status_code == 200
    assert len(await events(running.vault, "accessed")) == 1


async def test_who_may_see_what(running, sealed) -> None:
    evidence_id = sealed.evidence_id
    other_case = running.client(running.token("olga", ["prosecutor"], ["CASE-2"]))
    star = running.client(running.token("stan", ["prosecutor"], ["*"]))
    investigator = running.client(running.token("ivan", ["investigator"], ["CASE-1"]))  # the submitter
    colleague = running.client(running.token("ines", ["investigator"], ["CASE-1"]))
    moved_on = running.client(running.token("ivan", ["investigator"], ["CASE-2"]))  # the submitter, off the case
    auditor = running.client(running.token("aud", ["auditor"], ["*"]))
    anonymous = running.client()
    unknown = uuid.uuid4()
    async with other_case, star, investigator, colleague, moved_on, auditor, anonymous:
        for client in (other_case, star):
            for path in (f"/v1/evidence/{evidence_id}", _content(evidence_id), f"/v1/evidence/{evidence_id}/status"):
                answer = await client.get(path)
                assert answer.status_code == 404, path
                # the same answer as for an item that does not exist
                missing = await client.get(path.replace(str(evidence_id), str(unknown)))
                assert missing.status_code == 404
                assert answer.json()["detail"] == missing.json()["detail"].replace(str(unknown), str(evidence_id))
            assert (await client.get("/v1/evidence", params={"case": "CASE-1"})).status_code == 403

        assert (await investigator.get(_content(evidence_id))).status_code == 403
        assert (await investigator.get(f"/v1/evidence/{evidence_id}")).status_code == 403
        status = await investigator.get(f"/v1/evidence/{evidence_id}/status")
        assert status.json() == {"evidence_id": str(evidence_id), "status": "sealed"}
        assert (await investigator.get(f"/v1/evidence/{unknown}/status")).status_code == 404
        assert (await colleague.get(f"/v1/evidence/{evidence_id}/status")).status_code == 404
        assert (await moved_on.get(f"/v1/evidence/{evidence_id}/status")).status_code == 404
        assert (await auditor.get(_content(evidence_id))).status_code == 403
        assert (await auditor.get(f"/v1/evidence/{evidence_id}/status")).status_code == 403
        assert (await anonymous.get(_content(evidence_id))).status_code == 401
        assert (await anonymous.get("/v1/evidence", params={"case": "CASE-1"})).status_code == 401


async def test_an_item_with_its_metadata(running, sealed, prosecutor) -> None:
    async with prosecutor:
        answer = await prosecutor.get(f"/v1/evidence/{sealed.evidence_id}")
        status = await prosecutor.get(f"/v1/evidence/{sealed.evidence_id}/status")
    assert answer.status_code == 200
    item = answer.json()
    assert item["evidence_id"] == str(sealed.evidence_id)
    assert (item["case"], item["status"], item["size"]) == ("CASE-1", "sealed", len(sealed.plaintext))
    assert item["sha256"] == hashlib.sha256(sealed.plaintext).hexdigest()
    assert item["reason"] is None and item["sealed_at"] and item["created_at"]
    assert item["metadata"]["filename"] == "école — photo 1.jpg"
    assert item["metadata"]["title"] == "Deportation of children"
    assert (item["metadata"]["lat"], item["metadata"]["lon"]) == (48.5, 37.9)
    assert status.json() == {"evidence_id": str(sealed.evidence_id), "status": "sealed"}


async def test_listing_a_case_page_by_page(running, served_intake, prosecutor) -> None:
    ids = []
    for n in range(5):
        submission = served_intake.submit(os.urandom(10 + n))
        assert await running.sealer.seal(submission.payload) == SealOutcome.SEALED
        ids.append(str(submission.evidence_id))
    other = served_intake.submit(os.urandom(10), case="CASE-2")
    await running.sealer.seal(other.payload)

    seen, cursor = [], None
    async with prosecutor:
        while True:
            params = {"case": "CASE-1", "limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await prosecutor.get("/v1/evidence", params=params)).json()
            seen += [entry["evidence_id"] for entry in page["items"]]
            assert len(page["items"]) <= 2
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert (await prosecutor.get("/v1/evidence", params={"case": "CASE-1", "limit": 0})).status_code == 422
        assert (await prosecutor.get("/v1/evidence", params={"case": "CASE-1", "limit": 1001})).status_code == 422
        assert (await prosecutor.get("/v1/evidence", params={"case": "CASE-1", "cursor": "x"})).status_code == 422
        everything = (await prosecutor.get("/v1/evidence", params={"case": "CASE-1"})).json()
    assert seen == sorted(ids)
    assert [entry["evidence_id"] for entry in everything["items"]] == sorted(ids)
    assert everything["next_cursor"] is None
    assert "metadata" not in everything["items"][0]


async def test_a_rejected_item_is_never_served(running, served_intake, prosecutor, events) -> None:
    submission = served_intake.submit(os.urandom(1000), declared_sha256="0" * 64)
    assert await running.sealer.seal(submission.payload) == SealOutcome.REJECTED
    async with prosecutor:
        answer = await prosecutor.get(_content(submission.evidence_id), headers={"Range": "bytes=0-10"})
        status = await prosecutor.get(f"/v1/evidence/{submission.evidence_id}/status")
        item = (await prosecutor.get(f"/v1/evidence/{submission.evidence_id}")).json()
    assert answer.status_code == 409
    assert "rejected" in answer.json()["detail"] and "hash_mismatch" in answer.json()["detail"]
    assert submission.plaintext[:10] not in answer.content
    assert status.json()["status"] == "rejected"
    assert item["status"] == "rejected" and item["reason"].startswith("hash_mismatch")
    assert await events(running.vault, "accessed") == []


async def test_a_stored_part_of_the_wrong_size_is_caught_before_any_header(
    running, sealed, prosecutor, events, tamper
) -> None:
    part = sealed.statement.parts[1]
    tamper(running.vault.store, part.key, lambda stored: stored[: -(SEGMENT + TAG)])

    async with prosecutor:
        answer = await prosecutor.get(_content(sealed.evidence_id))
        again = await prosecutor.get(_content(sealed.evidence_id))

    assert answer.status_code == 500
    assert "damaged" in answer.json()["detail"] and "nothing was served" in answer.json()["detail"]
    assert again.status_code == 409  # damaged items are not served
    item = await _item(running, sealed.evidence_id)
    assert item.status.value == "damaged"
    assert item.reason.startswith("stored_size_mismatch")
    [damaged] = await events(running.vault, "damaged")
    assert damaged["details"]["finding"] == "stored_size_mismatch" and damaged["details"]["part"] == 1
    assert await events(running.vault, "accessed") == []


async def test_a_tampered_segment_stops_the_stream_before_any_of_its_bytes(
    running, served_intake, prosecutor, events, tamper
) -> None:
    plaintext = os.urandom(40 * SEGMENT)  # 2.5 MiB: several writes of the response body
    submission = served_intake.submit(plaintext)
    assert await running.sealer.seal(submission.payload) == SealOutcome.SEALED
    bad_segment = 33
    part = submission.statement.parts[0]

    def flip(stored: bytes) -> bytes:
        at = HEADER + bad_segment * (SEGMENT + TAG) + 7
        return stored[:at] + bytes([stored[at] ^ 0x04]) + stored[at + 1 :]

    tamper(running.vault.store, part.key, flip)

    received = bytearray()
    async with prosecutor:
        with pytest.raises(httpx.RemoteProtocolError):
            async with prosecutor.stream("GET", _content(submission.evidence_id)) as answer:
                assert answer.status_code == 200
                assert answer.headers["content-length"] == str(len(plaintext))
                async for chunk in answer.aiter_raw():
                    received += chunk

    assert len(received) < bad_segment * SEGMENT
    assert bytes(received) == plaintext[: len(received)]
    item = await _item(running, submission.evidence_id)
    assert item.status.value == "damaged"
    [damaged] = await events(running.vault, "damaged")
    assert damaged["details"]["finding"] == "authentication_failed"
    assert damaged["details"]["check"] == "retrieval"
    # the access was recorded before the first byte
    assert len(await events(running.vault, "accessed")) == 1
