"""The client against in-memory fakes of intake and evidence: submission, waiting for the seal,
verified retrieval, and the errors each failure becomes."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from custody_client.api import CustodyClient, Progress, parse_repr_digest
from custody_client.errors import AuthError, InvalidRequest, NetworkError, NotFound, Rejected, VerificationFailed
from custody_client.resume import ResumeState
from custody_client.tus import Backoff


def _client(tmp_path: Path, transport: httpx.MockTransport, sleeps: list[float], token: str | None = "t0ken") -> CustodyClient:
    return CustodyClient(
        "http://intake",
        "http://evidence",
        "http://audit",
        token,
        resume=ResumeState(tmp_path / "state"),
        chunk_size=64 * 1024,
        backoff=Backoff(attempts=4),
        transport=transport,
        sleep=sleeps.append,
    )


# --- submitting ---------------------------------------------------------------------------


def test_submit_declares_the_hash_and_metadata_and_returns_the_evidence_id(
    tmp_path: Path, tus_server, router, sleeps
) -> None:
    path = tmp_path / "IMG_0042.jpg"
    data = os.urandom(200_000)
    path.write_bytes(data)
    seen: list[Progress] = []
    captured = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    with _client(tmp_path, router(intake=tus_server), sleeps) as client:
        evidence_id = client.submit(
            path, case="UA-2024-17", title="School, east wall", captured_at=captured, lat=49.99, lon=36.23,
            notes="line one\nline two", on_progress=seen.append,
        )
    stored = tus_server.only_upload()
    assert bytes(stored.data) == data
    assert stored.stated_sha256 == hashlib.sha256(data).hexdigest()
    assert stored.metadata == {
        "case": "UA-2024-17",
        "filename": "IMG_0042.jpg",
        "title": "School, east wall",
        "captured_at": "2024-05-01T10:00:00Z",
        "lat": "49.99",
        "lon": "36.23",
        "notes": "line one\nline two",
    }
    assert evidence_id in tus_server.uploads
    assert all(r.headers["Authorization"] == "Bearer t0ken" for r in tus_server.requests)
    assert {p.phase for p in seen} == {"uploading"}, "the file is hashed while it goes up, not before"
    assert seen[-1] == Progress("uploading", len(data), len(data))


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"case": "no spaces allowed"}, "not a case name"),
        ({"case": "C", "lat": 10.0}, "both --lat and --lon"),
        ({"case": "C", "captured_at": datetime.now(UTC) + timedelta(days=1)}, "future"),
        ({"case": "C", "title": "bell\x07"}, "control characters"),
    ],
)
def test_submit_refuses_bad_metadata_before_sending_a_byte(
    tmp_path: Path, tus_server, router, sleeps, kwargs, complaint
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x")
    with _client(tmp_path, router(intake=tus_server), sleeps) as client, pytest.raises(InvalidRequest, match=complaint):
        client.submit(path, **kwargs)
    assert tus_server.requests == []


def test_submit_without_a_token_says_how_to_get_one(tmp_path: Path, tus_server, router, sleeps) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x")
    with _client(tmp_path, router(intake=tus_server), sleeps, token=None) as client, pytest.raises(AuthError, match="CUSTODY_TOKEN"):
        client.submit(path, case="C")


def test_an_expired_token_is_an_auth_error_with_the_servers_sentence(tmp_path: Path, tus_server, router, faults, sleeps) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x")
    tus_server.faults.append(faults.status(401, "token has expired; get a new one"))
    with _client(tmp_path, router(intake=tus_server), sleeps) as client, pytest.raises(AuthError) as caught:
        client.submit(path, case="C")
    assert caught.value.detail == "token has expired; get a new one"
    assert "token has expired" in str(caught.value)


# --- waiting for the seal -----------------------------------------------------------------


def test_waiting_rides_out_not_found_and_outages_until_sealed(tmp_path: Path, evidence_server, router, sleeps) -> None:
    server = evidence_server(b"content")
    server.statuses = [(404, None), (404, None), (503, None), (200, {"status": "received"}), (200, {"status": "sealed"})]
    seen = []
    with _client(tmp_path, router(evidence=server), sleeps) as client:
        outcome = client.wait_sealed(server.evidence_id, on_status=seen.append)
    assert outcome.status == "sealed" and outcome.evidence_id == server.evidence_id
    assert [s.status for s in seen] == ["received", "sealed"]


def test_a_rejection_is_returned_with_its_reason(tmp_path: Path, evidence_server, router, sleeps) -> None:
    server = evidence_server(b"content")
    server.statuses = [(200, {"status": "rejected", "reason": "hash mismatch"})]
    with _client(tmp_path, router(evidence=server), sleeps) as client:
        outcome = client.wait_sealed(server.evidence_id)
    assert (outcome.status, outcome.reason) == ("rejected", "hash mismatch")


def test_seeing_the_outcome_clears_the_resume_entry(tmp_path: Path, tus_server, evidence_server, router, sleeps) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(1000))
    evidence = evidence_server(b"")
    with _client(tmp_path, router(intake=tus_server, evidence=evidence), sleeps) as client:
        evidence_id = client.submit(path, case="C")
        assert evidence_id in ResumeState(tmp_path / "state").path.read_text()
        again = client.submit(path, case="C")
        assert again == evidence_id, "a submission whose outcome was not seen is not sent twice"
        evidence.evidence_id = evidence_id
        client.wait_sealed(evidence_id)
        assert evidence_id not in ResumeState(tmp_path / "state").path.read_text()
        assert client.submit(path, case="C") != evidence_id, "after the outcome, submitting again is a new item"


# --- fetching -----------------------------------------------------------------------------


def test_fetch_never_writes_into_a_file_another_download_to_the_same_path_is_filling(
    tmp_path: Path, evidence_server, router, sleeps
) -> None:
    """Two fetches to one path each write a file of their own; before, the second truncated
    the first's, which then put a file with a hole of zeros in place as verified."""
    content = os.urandom(50_000)
    server = evidence_server(content)
    target = tmp_path / "item.bin"
    elsewhere = tmp_path / "item.bin.part"  # where every fetch to this path used to write
    elsewhere.write_bytes(b"another download's first bytes")
    with _client(tmp_path, router(evidence=server), sleeps) as client:
        client.fetch(server.evidence_id, target, purpose="preparing the indictment")
    assert target.read_bytes() == content
    assert elsewhere.read_bytes() == b"another download's first bytes"


def test_fetch_writes_the_file_only_after_both_digests_match(tmp_path: Path, evidence_server, router, sleeps) -> None:
    content = os.urandom(50_000)
    server = evidence_server(content)
    target = tmp_path / "out" / "item.bin"
    target.parent.mkdir()
    with _client(tmp_path, router(evidence=server), sleeps) as client:
        fetched = client.fetch(server.evidence_id, target, purpose="preparing the indictment")
    assert target.read_bytes() == content
    assert fetched.sha256 == hashlib.sha256(content).hexdigest() and fetched.size == len(content)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not list((tmp_path / "out").glob("item.bin*.part"))
    content_request = [r for r in server.requests if r.url.path.endswith("/content")][0]
    assert content_request.url.params["purpose"] == "preparing the indictment"


def test_fetch_resumes_a_broken_download_by_range(tmp_path: Path, evidence_server, router, sleeps) -> None:
    content = os.urandom(50_000)
    server = evidence_server(content)
    server.break_content_after = [20_000, 5_000]
    target = tmp_path / "item.bin"
    with _client(tmp_path, router(evidence=server), sleeps) as client:
        client.fetch(server.evidence_id, target, purpose="trial")
    assert target.read_bytes() == content
    ranges = [r.headers.get("Range") for r in server.requests if r.url.path.endswith("/content")]
    assert ranges == [None, "bytes=20000-", "bytes=25000-"]
    if_ranges = {r.headers.get("If-Range") for r in server.requests if "Range" in r.headers}
    assert if_ranges == {f'"{hashlib.sha256(content).hexdigest()}"'}, "a resumed range is only taken from the same item"


@pytest.mark.parametrize("content_range", ["bytes 0-49999/50000", "bytes 2" + "0" * 5000 + "-49999/50000"])
def test_fetch_refuses_a_resumed_range_that_starts_elsewhere(
    tmp_path: Path, evidence_server, router, sleeps, content_range: str
) -> None:
    """A number of thousands of digits is refused as any other wrong start, not by int()."""
    server = evidence_server(os.urandom(50_000))
    server.break_content_after = [20_000]
    server.content_range = content_range
    target = tmp_path / "item.bin"
    with _client(tmp_path, router(evidence=server), sleeps) as client:
        with pytest.raises(VerificationFailed, match="different range"):
            client.fetch(server.evidence_id, target, purpose="trial")
    assert not list(tmp_path.glob("item.bin*"))


@pytest.mark.parametrize("lie", ["announced", "recorded"])
def test_fetch_refuses_bytes_whose_digest_does_not_match_and_leaves_nothing(
    tmp_path: Path, evidence_server, router, sleeps, lie: str
) -> None:
    server = evidence_server(os.urandom(10_000))
    if lie == "announced":
        server.announced_digest = hashlib.sha256(b"something else").digest()
    else:
        server.recorded_sha256 = hashlib.sha256(b"something else").hexdigest()
    target = tmp_path / "item.bin"
    with _client(tmp_path, router(evidence=server), sleeps) as client, pytest.raises(VerificationFailed, match="hash to"):
        client.fetch(server.evidence_id, target, purpose="trial")
    assert list(tmp_path.glob("item.bin*")) == []


def test_fetch_refuses_a_response_without_repr_digest(tmp_path: Path, router, sleeps) -> None:
    evidence_id = "0190a7c2-0000-7000-8000-000000000001"
    content = b"bytes"

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/content"):
            return httpx.Response(200, content=content)
        return httpx.Response(200, json={"status": "sealed", "sha256": hashlib.sha256(content).hexdigest()})

    with _client(tmp_path, router(evidence=server), sleeps) as client, pytest.raises(VerificationFailed, match="no Repr-Digest"):
        client.fetch(evidence_id, tmp_path / "x", purpose="trial")
    assert list(tmp_path.glob("x*")) == []


def test_fetch_never_overwrites_unless_asked(tmp_path: Path, evidence_server, router, sleeps) -> None:
    server = evidence_server(b"new")
    target = tmp_path / "item.bin"
    target.write_bytes(b"old")
    with _client(tmp_path, router(evidence=server), sleeps) as client:
        with pytest.raises(InvalidRequest, match="exists already"):
            client.fetch(server.evidence_id, target, purpose="trial")
        assert target.read_bytes() == b"old"
        client.fetch(server.evidence_id, target, purpose="trial", overwrite=True)
    assert target.read_bytes() == b"new"


def test_fetch_needs_a_purpose(tmp_path: Path, evidence_server, router, sleeps) -> None:
    server = evidence_server(b"x")
    with _client(tmp_path, router(evidence=server), sleeps) as client, pytest.raises(InvalidRequest, match="purpose"):
        client.fetch(server.evidence_id, tmp_path / "x", purpose="  ")
    assert server.requests == []


def test_fetch_of_a_rejected_item_is_refused(tmp_path: Path, evidence_server, router, sleeps) -> None:
    server = evidence_server(b"x")
    server.record_status = "rejected"
    with _client(tmp_path, router(evidence=server), sleeps) as client, pytest.raises(Rejected):
        client.fetch(server.evidence_id, tmp_path / "x", purpose="trial")


def test_fetch_of_a_damaged_item_fails_verification(tmp_path: Path, evidence_server, router, sleeps) -> None:
    server = evidence_server(b"x")
    server.record_status = "damaged"
    with _client(tmp_path, router(evidence=server), sleeps) as client, pytest.raises(VerificationFailed, match="damaged"):
        client.fetch(server.evidence_id, tmp_path / "x", purpose="trial")
    assert list(tmp_path.glob("x*")) == []


def test_content_refused_as_not_servable_is_a_rejection(tmp_path: Path, evidence_server, router, sleeps) -> None:
    server = evidence_server(b"x")

    def rejected_between_record_and_content(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/content"):
            server.record_status = "rejected"
        return server(request)

    with _client(tmp_path, router(evidence=rejected_between_record_and_content), sleeps) as client:
        with pytest.raises(Rejected, match="never served"):
            client.fetch(server.evidence_id, tmp_path / "x", purpose="trial")
    assert list(tmp_path.glob("x*")) == []


def test_failures_map_to_named_errors(tmp_path: Path, router, sleeps) -> None:
    evidence_id = "0190a7c2-0000-7000-8000-000000000001"
    answers = {
        403: (AuthError, "not assigned to this case"),
        404: (NotFound, "no such item"),
        503: (NetworkError, "failed 4 times"),
    }
    for code, (error, sentence) in answers.items():
        detail = "not assigned to this case" if code == 403 else "no such item"
        answer = router(evidence=lambda r, c=code, d=detail: httpx.Response(c, json={"detail": d}))
        with _client(tmp_path, answer, sleeps) as client, pytest.raises(error, match=sentence):
            client.item(evidence_id)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with _client(tmp_path, router(audit=refuse), sleeps) as client, pytest.raises(NetworkError, match="ConnectError"):
        client.chain(evidence_id)
    with _client(tmp_path, router(), sleeps) as client, pytest.raises(InvalidRequest, match="not an evidence id"):
        client.item("../../etc/passwd")


def test_repr_digest_is_read_among_other_members() -> None:
    digest = hashlib.sha256(b"x").digest()
    b64 = base64.b64encode(digest).decode()
    assert parse_repr_digest(f"sha-256=:{b64}:") == digest
    assert parse_repr_digest(f"sha-512=:{base64.b64encode(b'0' * 64).decode()}:, sha-256=:{b64}:") == digest
    for bad in ["sha-256=abc", "sha-512=:AAAA:", f"sha-256=:{b64[:-4]}:", ""]:
        with pytest.raises(VerificationFailed):
            parse_repr_digest(bad)
