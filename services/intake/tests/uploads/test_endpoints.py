"""tus 1.0.0 against a real ``custody-intake`` process (SQLite, a local folder, the shared NATS):
every answer and error status, and for each refusal that no custody event claims the refused
bytes or declaration as evidence."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from custody_common.bus import Topology
from custody_common.manifest import PartStored
from tests.support.nats import NATS_URL, Listener, provision_namespace, remove_namespace
from tests.support.stack import Stack
from tests.support.submissions import upload_checksum
from services.intake.tests.harness import CASE, stack_events, stack_upload, tus_metadata

MIB = 1024 * 1024
MAX_SIZE = 16 * MIB
TUS = {"Tus-Resumable": "1.0.0"}
STREAM = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One intake process for the whole module, on its own namespace and home."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    provision_namespace(NATS_URL, namespace)
    home = tmp_path_factory.mktemp("intake") / "home"
    home.mkdir()
    stack = Stack(home=home, namespace=namespace, extra_env={"CUSTODY_MAX_UPLOAD_SIZE": str(MAX_SIZE)})
    try:
        stack.start("intake")
        yield stack
    finally:
        stack.stop()
        remove_namespace(NATS_URL, namespace)


@pytest.fixture(scope="module")
def alice(running: Stack) -> str:
    return running.token("alice", ["investigator"], [CASE])


def declaration(data: bytes, **fields: str | None) -> dict[str, str]:
    """The metadata of ``data``; a field given as None is left out."""
    pairs = {"case": CASE, "filename": "photo.jpg", "sha256": hashlib.sha256(data).hexdigest(), **fields}
    return {key: value for key, value in pairs.items() if value is not None}


def create(
    stack: Stack, token: str | None, data: bytes, *, body: bytes | None = None, headers=None, **fields: str | None
) -> httpx.Response:  # type: ignore[no-untyped-def]
    sent = {**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": tus_metadata(**declaration(data, **fields))}
    if body is not None:
        sent.update(STREAM)
    sent.update(headers or {})
    with stack.client("intake", token) as client:
        return client.post("/v1/uploads", headers={k: v for k, v in sent.items() if v is not None}, content=body)


def created(stack: Stack, token: str, data: bytes, **fields: str | None) -> str:
    response = create(stack, token, data, **fields)
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def patch(stack: Stack, token: str | None, url: str, offset: int, body: bytes, **headers: str) -> httpx.Response:
    sent = {**TUS, **STREAM, "Upload-Offset": str(offset), **headers}
    with stack.client("intake", token) as client:
        return client.patch(url, content=body, headers={k.replace("_", "-"): v for k, v in sent.items()})


def head(stack: Stack, token: str | None, url: str) -> httpx.Response:
    with stack.client("intake", token) as client:
        return client.head(url, headers=TUS)


def evidence_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[1]


def actions(stack: Stack, url: str) -> list[str]:
    return [e["action"] for e in stack_events(stack, evidence_id(url))]


def events_of_request(stack: Stack, request_id: str) -> list[dict]:
    return [e for e in stack_events(stack) if e.get("details", {}).get("request_id") == request_id]


def part_keys(stack: Stack, url: str) -> list[Path]:
    folder = stack.home / "objects" / "evidence" / evidence_id(url) / "parts"
    return sorted(folder.iterdir()) if folder.exists() else []


def wait_for(condition, what: str, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


class OpenPatch:
    """A PATCH whose body the test sends piece by piece over a raw connection."""

    def __init__(self, stack: Stack, token: str, url: str, offset: int, length: int, **headers: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.connection.putrequest("PATCH", parts.path)
        for name, value in {
            **TUS,
            **STREAM,
            "Upload-Offset": str(offset),
            "Content-Length": str(length),
            "Authorization": f"Bearer {token}",
            **headers,
        }.items():
            self.connection.putheader(name, value)
        self.connection.endheaders()

    def send(self, data: bytes) -> None:
        self.connection.send(data)

    def response(self) -> http.client.HTTPResponse:
        return self.connection.getresponse()

    def cut(self) -> None:
        self.connection.close()


# --- discovery and the protocol version -------------------------------------------------------


def test_options_needs_no_token_and_describes_the_server(running: Stack) -> None:
    with running.client("intake") as client:
        for path in ("/v1/uploads", f"/v1/uploads/{uuid.uuid4()}"):
            answer = client.options(path)
            assert answer.status_code == 204
            assert answer.headers["Tus-Resumable"] == "1.0.0"
            assert answer.headers["Tus-Version"] == "1.0.0"
            assert answer.headers["Tus-Extension"] == "creation,creation-with-upload,checksum,termination,expiration"
            assert answer.headers["Tus-Max-Size"] == str(MAX_SIZE)
            assert answer.headers["Tus-Checksum-Algorithm"] == "crc32,sha256,sha1"


def test_an_unsupported_tus_version_is_412_and_changes_nothing(running: Stack, alice: str) -> None:
    data = os.urandom(100)
    url = created(running, alice, data)
    rid = f"rid-{uuid.uuid4()}"
    for version in ("0.2.2", None):
        answer = create(running, alice, data, headers={"Tus-Resumable": version, "X-Request-ID": rid})
        assert answer.status_code == 412 and answer.headers["Tus-Version"] == "1.0.0"
        assert answer.headers["Tus-Resumable"] == "1.0.0"
    with running.client("intake", alice) as client:
        old = {"Tus-Resumable": "0.2.2"}
        assert client.head(url, headers=old).status_code == 412
        assert client.patch(url, content=data, headers={**old, **STREAM, "Upload-Offset": "0"}).status_code == 412
        assert client.delete(url, headers=old).status_code == 412
    assert events_of_request(running, rid) == []
    assert actions(running, url) == ["submitted"]
    assert head(running, alice, url).headers["Upload-Offset"] == "0"


# --- creation ---------------------------------------------------------------------------------


def test_creation_answers_201_with_location_and_expiry(running: Stack, alice: str) -> None:
    data = os.urandom(10)
    before = datetime.now(UTC)
    answer = create(running, alice, data, title="t")
    assert answer.status_code == 201 and answer.headers["Tus-Resumable"] == "1.0.0"
    location = answer.headers["Location"]
    assert location.startswith(running.url("intake") + "/v1/uploads/")
    assert uuid.UUID(evidence_id(location)).version == 7
    assert answer.headers["Upload-Offset"] == "0"
    expires = parsedate_to_datetime(answer.headers["Upload-Expires"])
    assert before + timedelta(days=7) - timedelta(seconds=5) <= expires <= datetime.now(UTC) + timedelta(days=7)
    [submitted] = stack_events(running, evidence_id(location))
    assert (
        submitted["action"] == "submitted"
        and submitted["size"] == 10
        and set(submitted["commitments"]) == {"filename", "title"}
    )


def test_without_a_token_creation_is_401(running: Stack) -> None:
    answer = create(running, None, b"abc", headers={"X-Request-ID": "rid-anonymous"})
    assert answer.status_code == 401 and answer.headers["Tus-Resumable"] == "1.0.0"
    assert events_of_request(running, "rid-anonymous") == []


@pytest.mark.parametrize(
    "roles, cases",
    [
        (["prosecutor"], [CASE]),
        (["auditor"], ["*"]),
        (["admin"], ["*"]),
        (["investigator"], ["OTHER-CASE"]),
        (["investigator"], ["*"]),
    ],
)
def test_only_an_investigator_assigned_the_case_may_create(running: Stack, roles: list[str], cases: list[str]) -> None:
    rid = f"rid-{uuid.uuid4()}"
    answer = create(running, running.token("mallory", roles, cases), b"abc", headers={"X-Request-ID": rid})
    assert answer.status_code == 403, answer.text
    assert events_of_request(running, rid) == []


@pytest.mark.parametrize(
    "headers, field",
    [
        ({"Upload-Length": None}, "Upload-Length"),
        ({"Upload-Length": "-5"}, "Upload-Length"),
        ({"Upload-Length": "ten"}, "Upload-Length"),
        ({"Upload-Defer-Length": "1"}, "Upload-Length"),
        ({"Upload-Metadata": None}, "'case'"),
        ({"Upload-Metadata": tus_metadata(filename="a", sha256="0" * 64)}, "'case'"),
        ({"Upload-Metadata": tus_metadata(case="bad case", filename="a", sha256="0" * 64)}, "'case'"),
        ({"Upload-Metadata": tus_metadata(case=CASE, sha256="0" * 64)}, "'filename'"),
        ({"Upload-Metadata": tus_metadata(case=CASE, filename="../etc/passwd", sha256="0" * 64)}, "'filename'"),
        ({"Upload-Metadata": tus_metadata(case=CASE, filename="a"), "Upload-Length": "0"}, "'sha256'"),
        ({"Upload-Metadata": tus_metadata(case=CASE, filename="a", sha256="A" * 64)}, "'sha256'"),
        ({"Upload-Metadata": tus_metadata(case=CASE, filename="a", sha256="0" * 63)}, "'sha256'"),
        (
            {"Upload-Metadata": tus_metadata(case=CASE, filename="a", sha256="0" * 64, captured_at="2024-05-01 10:00")},
            "'captured_at'",
        ),
        (
            {
                "Upload-Metadata": tus_metadata(
                    case=CASE, filename="a", sha256="0" * 64, captured_at="2999-01-01T00:00:00Z"
                )
            },
            "'captured_at'",
        ),
        ({"Upload-Metadata": tus_metadata(case=CASE, filename="a", sha256="0" * 64, lat="123")}, "'lat'"),
        ({"Upload-Metadata": tus_metadata(case=CASE, filename="a", sha256="0" * 64, lon="east")}, "'lon'"),
        ({"Upload-Metadata": tus_metadata(case=CASE, filename="a", sha256="0" * 64, title="x" * 501)}, "'title'"),
        ({"Upload-Metadata": tus_metadata(case=CASE, filename="a", sha256="0" * 64, notes="x" * 10_001)}, "'notes'"),
        ({"Upload-Metadata": tus_metadata(case=CASE, filename="a", sha256="0" * 64, device="phone")}, "'device'"),
        ({"Upload-Metadata": "case %%%"}, "base64"),
    ],
)
def test_each_malformed_declaration_is_400_naming_the_field(
    running: Stack, alice: str, headers: dict, field: str
) -> None:
    rid = f"rid-{uuid.uuid4()}"
    answer = create(running, alice, b"some bytes", headers={**headers, "X-Request-ID": rid})
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["detail"] and answer.headers["Tus-Resumable"] == "1.0.0"
    assert events_of_request(running, rid) == []


def test_a_declared_length_over_the_limit_is_413(running: Stack, alice: str) -> None:
    rid = f"rid-{uuid.uuid4()}"
    answer = create(running, alice, b"", headers={"Upload-Length": str(MAX_SIZE + 1), "X-Request-ID": rid})
    assert answer.status_code == 413 and "Tus-Max-Size" in answer.json()["detail"]
    assert events_of_request(running, rid) == []


def test_creation_with_upload_stores_the_first_bytes(running: Stack, alice: str) -> None:
    data = os.urandom(MIB + 5)
    answer = create(running, alice, data, body=data[:1000], headers={"Upload-Checksum": upload_checksum(data[:1000])})
    assert answer.status_code == 201 and answer.headers["Upload-Offset"] == "1000"
    url = answer.headers["Location"]
    assert patch(running, alice, url, 1000, data[1000:]).status_code == 204
    assert actions(running, url) == ["submitted", "received"]

    whole = create(running, alice, data, body=data)
    assert whole.status_code == 201 and whole.headers["Upload-Offset"] == str(len(data))
    assert "Upload-Expires" not in whole.headers
    assert actions(running, whole.headers["Location"]) == ["submitted", "received"]


def test_creation_with_a_failing_checksum_is_460_and_resumable(running: Stack, alice: str) -> None:
    data = os.urandom(5000)
    answer = create(running, alice, data, body=data, headers={"Upload-Checksum": upload_checksum(b"other")})
    assert answer.status_code == 460
    url = answer.headers["Location"]
    assert head(running, alice, url).headers["Upload-Offset"] == "0" and part_keys(running, url) == []
    assert actions(running, url) == ["submitted"]
    assert patch(running, alice, url, 0, data).status_code == 204


def test_an_empty_file_is_received_at_creation(running: Stack, alice: str) -> None:
    answer = create(running, alice, b"")
    assert answer.status_code == 201 and answer.headers["Upload-Offset"] == "0"
    assert actions(running, answer.headers["Location"]) == ["submitted", "received"]


# --- core: HEAD and PATCH ---------------------------------------------------------------------


def test_head_reports_offset_length_and_the_declaration(running: Stack, alice: str) -> None:
    data = os.urandom(3000)
    url = created(running, alice, data, title="Witness 4", lat="47.1")
    assert patch(running, alice, url, 0, data[:1000]).status_code == 204
    answer = head(running, alice, url)
    assert answer.status_code == 200 and answer.content == b""
    assert answer.headers["Upload-Offset"] == "1000" and answer.headers["Upload-Length"] == "3000"
    assert answer.headers["Cache-Control"] == "no-store" and answer.headers["Tus-Resumable"] == "1.0.0"
    assert parsedate_to_datetime(answer.headers["Upload-Expires"]) > datetime.now(UTC)
    from custody_intake.uploads.protocol import parse_metadata

    assert parse_metadata(answer.headers["Upload-Metadata"]) == {
        **declaration(data),
        "title": "Witness 4",
        "lat": "47.1",
    }


def test_patch_answers_the_new_offset(running: Stack, alice: str) -> None:
    data = os.urandom(2 * MIB + 1)
    url = created(running, alice, data)
    first = patch(running, alice, url, 0, data[:MIB], Upload_Checksum=upload_checksum(data[:MIB], "sha1"))
    assert first.status_code == 204 and first.headers["Upload-Offset"] == str(MIB)
    assert first.headers["Tus-Resumable"] == "1.0.0" and "Upload-Expires" in first.headers
    last = patch(running, alice, url, MIB, data[MIB:])
    assert last.status_code == 204 and last.headers["Upload-Offset"] == str(len(data))
    assert actions(running, url) == ["submitted", "received"]


def test_a_wrong_offset_is_409_and_keeps_nothing(running: Stack, alice: str) -> None:
    data = os.urandom(4000)
    url = created(running, alice, data)
    assert patch(running, alice, url, 0, data[:1000]).status_code == 204
    for offset in (0, 999, 1001):
        answer = patch(running, alice, url, offset, data[offset:])
        assert answer.status_code == 409 and "stands at 1000" in answer.json()["detail"]
    assert head(running, alice, url).headers["Upload-Offset"] == "1000"
    assert len(part_keys(running, url)) == 1 and actions(running, url) == ["submitted"]


def test_a_patch_that_is_not_offset_octet_stream_is_415(running: Stack, alice: str) -> None:
    data = os.urandom(100)
    url = created(running, alice, data)
    answer = patch(running, alice, url, 0, data, Content_Type="application/octet-stream")
    assert answer.status_code == 415
    assert head(running, alice, url).headers["Upload-Offset"] == "0" and actions(running, url) == ["submitted"]


@pytest.mark.parametrize("algorithm", ["crc32", "sha256", "sha1"])
def test_a_checksum_mismatch_is_460_and_keeps_none_of_the_patch(running: Stack, alice: str, algorithm: str) -> None:
    data = os.urandom(2 * MIB)
    url = created(running, alice, data)
    answer = patch(running, alice, url, 0, data, Upload_Checksum=upload_checksum(data[:-1] + bytes([data[-1] ^ 1]), algorithm))
    assert answer.status_code == 460 and "nothing of it was kept" in answer.json()["detail"]
    assert head(running, alice, url).headers["Upload-Offset"] == "0"
    assert part_keys(running, url) == [] and actions(running, url) == ["submitted"]
    assert patch(running, alice, url, 0, data, Upload_Checksum=upload_checksum(data, algorithm)).status_code == 204


def test_an_unsupported_checksum_algorithm_is_400(running: Stack, alice: str) -> None:
    data = os.urandom(100)
    url = created(running, alice, data)
    md5 = f"md5 {base64.b64encode(hashlib.md5(data).digest()).decode()}"
    answer = patch(running, alice, url, 0, data, Upload_Checksum=md5)
    assert answer.status_code == 400 and "sha256" in answer.json()["detail"]
    assert head(running, alice, url).headers["Upload-Offset"] == "0"


def test_a_patch_longer_than_declared_is_413_and_keeps_nothing(running: Stack, alice: str) -> None:
    data = os.urandom(3000)
    url = created(running, alice, data)
    assert patch(running, alice, url, 0, data[:1000]).status_code == 204
    too_long = patch(running, alice, url, 1000, data[1000:] + b"extra bytes")
    assert too_long.status_code == 413
    # Without Content-Length (chunked), the excess is noticed while the body streams in.
    with running.client("intake", alice) as client:
        chunked = client.patch(
            url,
            content=iter([data[1000:2000], data[2000:], b"beyond the end"]),
            headers={**TUS, **STREAM, "Upload-Offset": "1000"},
        )
    assert chunked.status_code == 413, chunked.text
    assert head(running, alice, url).headers["Upload-Offset"] == "1000"
    assert len(part_keys(running, url)) == 1 and actions(running, url) == ["submitted"]
    assert patch(running, alice, url, 1000, data[1000:]).status_code == 204


def test_a_patch_after_completion_is_409(running: Stack, alice: str) -> None:
    data = os.urandom(100)
    url = created(running, alice, data)
    assert patch(running, alice, url, 0, data).status_code == 204
    for offset in (0, 100):
        assert patch(running, alice, url, offset, b"more").status_code == 409
    assert head(running, alice, url).headers["Upload-Offset"] == "100"
    assert actions(running, url) == ["submitted", "received"]


def test_a_concurrent_patch_is_423(running: Stack, alice: str) -> None:
    data = os.urandom(3 * MIB)
    url = created(running, alice, data)
    first = OpenPatch(running, alice, url, 0, len(data))
    first.send(data[:MIB])
    wait_for(lambda: stack_upload(running, evidence_id(url))["lock_token"], "the first PATCH to hold the upload")

    second = patch(running, alice, url, 0, data)
    assert second.status_code == 423 and "another PATCH" in second.json()["detail"]
    with running.client("intake", alice) as client:
        assert client.delete(url, headers=TUS).status_code == 423
    assert head(running, alice, url).headers["Upload-Offset"] == "0"

    first.send(data[MIB:])
    answer = first.response()
    assert answer.status == 204 and answer.getheader("Upload-Offset") == str(len(data))
    assert actions(running, url) == ["submitted", "received"]


def test_an_interrupted_patch_keeps_what_arrived(running: Stack, alice: str) -> None:
    data = os.urandom(6 * MIB)
    url = created(running, alice, data)
    cut = OpenPatch(running, alice, url, 0, len(data))
    cut.send(data[: 3 * MIB])
    wait_for(lambda: stack_upload(running, evidence_id(url))["lock_token"], "the PATCH to hold the upload")
    cut.cut()
    row = wait_for(
        lambda: (r := stack_upload(running, evidence_id(url)))["lock_token"] is None and r,
        "the interrupted PATCH to end",
    )
    # What reached the application is kept (the server may not have read the last few KiB).
    kept = row["received_bytes"]
    assert 2 * MIB < kept <= 3 * MIB
    assert int(head(running, alice, url).headers["Upload-Offset"]) == kept
    assert patch(running, alice, url, kept, data[kept:]).status_code == 204
    assert actions(running, url) == ["submitted", "received"]


def test_an_interrupted_patch_with_a_checksum_keeps_nothing(running: Stack, alice: str) -> None:
    data = os.urandom(4 * MIB)
    url = created(running, alice, data)
    cut = OpenPatch(running, alice, url, 0, len(data), **{"Upload-Checksum": upload_checksum(data)})
    cut.send(data[: 3 * MIB])
    wait_for(lambda: stack_upload(running, evidence_id(url))["lock_token"], "the PATCH to hold the upload")
    cut.cut()
    wait_for(lambda: stack_upload(running, evidence_id(url))["lock_token"] is None, "the interrupted PATCH to end")
    assert head(running, alice, url).headers["Upload-Offset"] == "0"
    assert part_keys(running, url) == [] and actions(running, url) == ["submitted"]


# --- parts announced to evidence while the upload goes up ---------------------------------


def test_each_part_of_an_upload_in_progress_is_announced(running: Stack, alice: str) -> None:
    """A hint on core NATS, so that evidence may read the part back before the seal: every
    part but the one that completes the upload, with the upload's wrapped data key."""
    data = os.urandom(3000)
    url = created(running, alice, data)
    with Listener(Topology(running.namespace).part_stored_subject) as listener:
        for start, end in ((0, 1000), (1000, 2500), (2500, 3000)):
            assert patch(running, alice, url, start, data[start:end]).status_code == 204
        listener.wait_for(2)
        time.sleep(0.3)  # nothing more comes
    heard = [PartStored.model_validate_json(payload) for payload in listener.heard]
    assert [(n.part.index, n.part.offset, n.part.size) for n in heard] == [(0, 0, 1000), (1, 1000, 1500)]
    assert {n.evidence_id for n in heard} == {uuid.UUID(evidence_id(url))}
    row = stack_upload(running, evidence_id(url))
    assert all(n.wrapped_dek.model_dump_json() == row["wrapped_dek"] for n in heard)
    assert b"photo.jpg" not in b"".join(listener.heard), "no personal metadata in the announcement"


# --- the file's SHA-256 stated by the PATCH that completes the upload ------------------------


def repr_digest(data: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"


def events_of(stack: Stack, url: str) -> dict[str, dict]:
    return {e["action"]: e for e in stack_events(stack, evidence_id(url))}


def test_an_upload_may_state_its_sha256_with_the_last_patch(running: Stack, alice: str) -> None:
    data = os.urandom(3000)
    url = created(running, alice, data, sha256=None)
    assert "sha256" not in events_of(running, url)["submitted"]
    assert patch(running, alice, url, 0, data[:1000], Repr_Digest="sha-256=:AAAA:").status_code == 400
    assert patch(running, alice, url, 0, data[:1000]).status_code == 204
    last = patch(running, alice, url, 1000, data[1000:], Repr_Digest=repr_digest(data))
    assert last.status_code == 204 and last.headers["Upload-Offset"] == "3000"
    assert events_of(running, url)["received"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert stack_upload(running, evidence_id(url))["declared_sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("declared_length", [True, False], ids=["content-length", "chunked"])
def test_the_last_patch_without_a_stated_sha256_is_400_and_keeps_nothing(
    running: Stack, alice: str, declared_length: bool
) -> None:
    data = os.urandom(3000)
    url = created(running, alice, data, sha256=None)
    assert patch(running, alice, url, 0, data[:1000]).status_code == 204
    # Without Content-Length intake learns that the body completes the upload only at its end.
    body = data[1000:] if declared_length else iter([data[1000:2000], data[2000:]])
    answer = patch(running, alice, url, 1000, body)  # type: ignore[arg-type]
    assert answer.status_code == 400 and "Repr-Digest" in answer.json()["detail"], answer.text
    assert head(running, alice, url).headers["Upload-Offset"] == "1000"
    assert len(part_keys(running, url)) == 1 and actions(running, url) == ["submitted"]
    assert patch(running, alice, url, 1000, data[1000:], Repr_Digest=repr_digest(data)).status_code == 204
    assert actions(running, url) == ["submitted", "received"]


def test_a_stated_sha256_that_differs_from_the_declared_one_is_400(running: Stack, alice: str) -> None:
    data = os.urandom(3000)
    url = created(running, alice, data)
    answer = patch(running, alice, url, 0, data, Repr_Digest=repr_digest(data + b"x"))
    assert answer.status_code == 400 and "declaring" in answer.json()["detail"]
    assert part_keys(running, url) == [] and actions(running, url) == ["submitted"]
    assert patch(running, alice, url, 0, data, Repr_Digest=repr_digest(data)).status_code == 204


def test_creation_with_the_whole_file_may_state_its_sha256(running: Stack, alice: str) -> None:
    data = os.urandom(2000)
    headers = {"Repr-Digest": repr_digest(data), "Upload-Checksum": upload_checksum(data)}
    answer = create(running, alice, data, body=data, headers=headers, sha256=None)
    assert answer.status_code == 201 and answer.headers["Upload-Offset"] == "2000", answer.text
    assert events_of(running, answer.headers["Location"])["received"]["sha256"] == hashlib.sha256(data).hexdigest()


# --- who may see an upload --------------------------------------------------------------------


def test_anyone_but_the_submitter_gets_404(running: Stack, alice: str) -> None:
    data = os.urandom(100)
    url = created(running, alice, data)
    strangers = [
        running.token("mallory", ["investigator"], [CASE]),
        running.token("alice", ["investigator"], ["OTHER-CASE"]),  # alice, no longer assigned the case
    ]
    other_roles = [  # may not touch uploads at all: 403, which reveals nothing about this one
        running.token("alice", ["prosecutor"], [CASE]),
        running.token("carol", ["auditor", "admin"], ["*"]),
    ]
    status_url = url.replace("/v1/uploads/", "/v1/submissions/")
    for token, status in [(t, 404) for t in strangers] + [(t, 403) for t in other_roles]:
        with running.client("intake", token) as client:
            assert client.head(url, headers=TUS).status_code == status
            assert client.patch(url, content=data, headers={**TUS, **STREAM, "Upload-Offset": "0"}).status_code == status
            assert client.delete(url, headers=TUS).status_code == status
            assert client.get(status_url).status_code == status
    with running.client("intake", alice) as client:
        for missing in (str(uuid.uuid4()), "not-a-uuid"):
            answer = client.head(f"/v1/uploads/{missing}", headers=TUS)
            assert answer.status_code == 404 and answer.headers["Tus-Resumable"] == "1.0.0"
            assert client.get(f"/v1/submissions/{missing}").status_code == 404
    with running.client("intake") as anonymous:
        assert anonymous.head(url, headers=TUS).status_code == 401
        assert anonymous.get(status_url).status_code == 401
    assert head(running, alice, url).headers["Upload-Offset"] == "0" and actions(running, url) == ["submitted"]


# --- termination and status -------------------------------------------------------------------


def test_termination_deletes_the_parts_after_recording_it(running: Stack, alice: str) -> None:
    data = os.urandom(2 * MIB)
    url = created(running, alice, data)
    assert patch(running, alice, url, 0, data[:MIB]).status_code == 204
    assert len(part_keys(running, url)) == 1
    with running.client("intake", alice) as client:
        answer = client.delete(url, headers={**TUS, "X-Request-ID": "rid-terminate"})
        assert answer.status_code == 204 and answer.headers["Tus-Resumable"] == "1.0.0"
        assert client.delete(url, headers=TUS).status_code == 410
        assert client.get(url.replace("/v1/uploads/", "/v1/submissions/")).json()["status"] == "terminated"
    assert part_keys(running, url) == []
    assert head(running, alice, url).status_code == 410
    assert patch(running, alice, url, MIB, data[MIB:]).status_code == 410
    terminated = stack_events(running, evidence_id(url))[-1]
    assert terminated["action"] == "terminated" and terminated["actor"]["sub"] == "alice"
    assert terminated["details"] == {"received_bytes": MIB, "parts": 1, "request_id": "rid-terminate"}


def test_delete_after_completion_is_409(running: Stack, alice: str) -> None:
    data = os.urandom(1000)
    url = created(running, alice, data)
    assert patch(running, alice, url, 0, data).status_code == 204
    with running.client("intake", alice) as client:
        answer = client.delete(url, headers=TUS)
    assert answer.status_code == 409 and "in progress" in answer.json()["detail"]
    assert len(part_keys(running, url)) == 1
    assert actions(running, url) == ["submitted", "received"]


def test_the_submitter_follows_the_submission(running: Stack, alice: str) -> None:
    data = os.urandom(2000)
    url = created(running, alice, data)
    status_url = url.replace("/v1/uploads/", "/v1/submissions/")
    with running.client("intake", alice) as client:
        uploading = client.get(status_url).json()
        assert uploading["status"] == "uploading" and uploading["offset"] == 0 and uploading["size"] == 2000
        assert uploading["case"] == CASE and uploading["upload_url"] == url and uploading["expires_at"]
        assert uploading["evidence_id"] == evidence_id(url) and uploading["created_at"]
        assert patch(running, alice, url, 0, data).status_code == 204
        received = client.get(status_url).json()
    assert received["status"] == "received" and received["offset"] == 2000 and received["finished_at"]
    assert received["upload_url"] is None and received["expires_at"] is None
    evidence = running.url("evidence")
    assert received["evidence_url"] == f"{evidence}/v1/evidence/{evidence_id(url)}"
    assert received["evidence_status_url"] == f"{evidence}/v1/evidence/{evidence_id(url)}/status"
    assert "filename" not in received and "title" not in received
