"""The intake process as it runs in the field: a third-party tus client resuming with a new
client object, a process killed mid-PATCH and replaced on the same port, statements on the real
NATS, the signing key announced first and once, expiry, and nothing readable at rest or in the
log. On the embedded default and on PostgreSQL with a real S3 server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import nats
import pytest
from tusclient.client import TusClient
from tusclient.storage.filestorage import FileStorage

from custody_common.bus import Topology
from custody_common.crypto.signing import load_public_key
from custody_common.events import verify_event
from custody_common.manifest import SubmissionCompleted, parse_statement
from custody_common.objectstore import ObjectStore, open_object_store
from custody_common.settings import Settings
from services.intake.tests.harness import CASE, plaintext_of, stack_events, stack_messages, stack_upload
from tests.support.stack import Stack

MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(params=["embedded", pytest.param("postgresql+s3", marks=pytest.mark.s3)])
def stack(request: pytest.FixtureRequest) -> Stack:
    """The embedded default (SQLite, a local folder) or PostgreSQL with a real S3 server; not started."""
    return request.getfixturevalue("local_stack" if request.param == "embedded" else "pg_s3_stack")


def store_of(stack: Stack) -> ObjectStore:
    env = {k[len("CUSTODY_") :].lower(): v for k, v in stack.store_env.items()}
    return open_object_store(Settings(home=stack.home, **env))


def evidence_file(path: Path, size: int, marker: bytes) -> Path:
    """A file of random bytes with ``marker`` at the start of every MiB."""
    with path.open("wb") as out:
        left = size
        while left:
            block = (marker + os.urandom(MIB))[: min(MIB, left)]
            out.write(block)
            left -= len(block)
    return path


def declaration(path: Path, **fields: str) -> dict[str, str]:
    return {"case": CASE, "filename": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), **fields}


def tus_client(stack: Stack, token: str) -> TusClient:
    return TusClient(f"{stack.url('intake')}/v1/uploads", headers={"Authorization": f"Bearer {token}"})


def completed_statement(stack: Stack, evidence_id: str) -> SubmissionCompleted:
    for msg_id, _, payload in stack_messages(stack):
        if msg_id == f"completed-{evidence_id}":
            return parse_statement(SubmissionCompleted, payload)
    raise AssertionError(f"no SubmissionCompleted for {evidence_id}")


def published(stack: Stack, stream: str, count: int) -> list[Any]:
    """The first messages of ``stream`` on the real NATS, once at least ``count`` are there."""

    async def read() -> list[Any]:
        nc = await nats.connect(stack.nats_url)
        try:
            js = nc.jetstream()
            deadline = time.monotonic() + 30
            while True:
                state = (await js.stream_info(stream)).state
                if state.messages >= count:
                    return [await js.get_msg(stream, seq) for seq in range(state.first_seq, state.last_seq + 1)]
                if time.monotonic() > deadline:
                    raise AssertionError(f"{stream} holds {state.messages} messages, expected {count}")
                await asyncio.sleep(0.1)
        finally:
            await nc.close()

    return asyncio.run(read())


def wait_for(condition, what: str, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def test_a_tus_client_resumes_with_a_new_client_and_the_parts_decrypt(stack: Stack, tmp_path: Path) -> None:
    stack.start("intake")
    token = stack.token("alice", ["investigator"], [CASE])
    source = evidence_file(tmp_path / "video.mp4", 7 * MIB + 4321, b"MARKER")
    urls = FileStorage(str(tmp_path / "tus-urls.json"))

    first = tus_client(stack, token).uploader(
        file_path=str(source),
        chunk_size=MIB,
        metadata=declaration(source, title="Bus station"),
        store_url=True,
        url_storage=urls,
        upload_checksum=True,
    )
    first.upload(stop_at=3 * MIB + 100)  # the connection drops halfway
    assert first.offset == 3 * MIB + 100

    second = tus_client(stack, token).uploader(
        file_path=str(source), chunk_size=MIB, store_url=True, url_storage=FileStorage(str(tmp_path / "tus-urls.json"))
    )
    assert second.url == first.url and second.offset == 3 * MIB + 100
    second.upload()
    evidence_id = first.url.rsplit("/", 1)[1]

    completed = completed_statement(stack, evidence_id)
    completed.verify(load_public_key(stack.settings.key_folder / "intake-signing.pub"))
    assert completed.declared_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert len(completed.parts) == 9 and (completed.parts[3].size, completed.parts[4].offset) == (100, 3 * MIB + 100)
    assert plaintext_of(store_of(stack), stack.settings, completed) == source.read_bytes()

    # Both statements reached JetStream, de-duplicable by their message ids.
    topology = Topology(stack.namespace)
    [announced] = [m for m in published(stack, topology.submissions_stream, 1)]
    assert announced.subject == topology.submission_completed_subject
    assert announced.headers["Nats-Msg-Id"] == f"completed-{evidence_id}"
    assert parse_statement(SubmissionCompleted, announced.data) == completed
    events = [json.loads(m.data) for m in published(stack, topology.events_stream, 3)]
    assert [e["action"] for e in events] == ["key_announced", "submitted", "received"]


def test_intake_killed_mid_patch_is_replaced_and_the_upload_continues(stack: Stack, tmp_path: Path) -> None:
    stack.extra_env["CUSTODY_UPLOAD_LOCK_TIMEOUT"] = "1"
    stack.start("intake")
    token = stack.token("alice", ["investigator"], [CASE])
    source = evidence_file(tmp_path / "statement.mp4", 6 * MIB, b"MARKER")
    data = source.read_bytes()
    urls = tmp_path / "tus-urls.json"
    first = tus_client(stack, token).uploader(
        file_path=str(source),
        chunk_size=MIB,
        metadata=declaration(source),
        store_url=True,
        url_storage=FileStorage(str(urls)),
    )
    first.upload(stop_at=2 * MIB)
    evidence_id = first.url.rsplit("/", 1)[1]

    # A PATCH of the rest is streaming when the process dies.
    parts = urlsplit(first.url)
    doomed = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    doomed.putrequest("PATCH", parts.path)
    for name, value in {
        **TUS,
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": str(2 * MIB),
        "Content-Length": str(4 * MIB),
        "Authorization": f"Bearer {token}",
    }.items():
        doomed.putheader(name, value)
    doomed.endheaders()
    doomed.send(data[2 * MIB : 3 * MIB + 5000])
    wait_for(lambda: stack_upload(stack, evidence_id)["lock_token"], "the PATCH to hold the upload")
    stack.kill("intake")
    doomed.close()
    assert stack_upload(stack, evidence_id)["received_bytes"] == 2 * MIB

    stack.start("intake")  # a new process on the same port
    resumed = tus_client(stack, token).uploader(
        file_path=str(source),
        chunk_size=MIB,
        store_url=True,
        url_storage=FileStorage(str(urls)),
        retries=30,
        retry_delay=1,  # 423 until the dead process's lock goes stale
    )
    assert resumed.url == first.url and resumed.offset == 2 * MIB
    resumed.upload()

    completed = completed_statement(stack, evidence_id)
    assert [p.offset for p in completed.parts] == [0, MIB, 2 * MIB, 3 * MIB, 4 * MIB, 5 * MIB]
    assert plaintext_of(store_of(stack), stack.settings, completed) == data
    assert [e["action"] for e in stack_events(stack, evidence_id)] == ["submitted", "received"]


def test_the_signing_key_is_announced_first_and_once(local_stack: Stack) -> None:
    local_stack.start("intake")
    token = local_stack.token("alice", ["investigator"], [CASE])
    with local_stack.client("intake", token) as client:
        meta = {"case": CASE, "filename": "a.txt", "sha256": hashlib.sha256(b"").hexdigest()}
        encoded = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items())
        assert (
            client.post("/v1/uploads", headers={**TUS, "Upload-Length": "0", "Upload-Metadata": encoded}).status_code
            == 201
        )
    local_stack.stop()
    local_stack.start("intake")

    topology = Topology(local_stack.namespace)
    events = [json.loads(m.data) for m in published(local_stack, topology.events_stream, 3)]
    assert [e["action"] for e in events] == ["key_announced", "submitted", "received"]
    announced = events[0]
    public_key = load_public_key(local_stack.settings.key_folder / "intake-signing.pub")
    raw = base64.b64decode(announced["details"]["public_key"])
    assert announced["details"]["key_id"] == hashlib.sha256(raw).hexdigest()
    assert all(verify_event(e, public_key) for e in events)
    assert [e["action"] for e in stack_events(local_stack)].count("key_announced") == 1


def test_an_idle_upload_expires_in_a_running_process(local_stack: Stack) -> None:
    local_stack.extra_env.update(CUSTODY_UPLOAD_EXPIRY="PT2S", CUSTODY_EXPIRY_SWEEP_INTERVAL="0.2")
    local_stack.start("intake")
    token = local_stack.token("alice", ["investigator"], [CASE])
    data = os.urandom(3 * MIB)
    meta = {"case": CASE, "filename": "a.bin", "sha256": hashlib.sha256(data).hexdigest()}
    encoded = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items())
    with local_stack.client("intake", token) as client:
        answer = client.post(
            "/v1/uploads",
            headers={
                **TUS,
                "Upload-Length": str(len(data)),
                "Upload-Metadata": encoded,
                "Content-Type": "application/offset+octet-stream",
            },
            content=data[:MIB],
        )
        assert answer.status_code == 201 and answer.headers["Upload-Offset"] == str(MIB)
        url = answer.headers["Location"]
        evidence_id = url.rsplit("/", 1)[1]
        parts = local_stack.home / "objects" / "evidence" / evidence_id / "parts"
        assert len(list(parts.iterdir())) == 1
        status = wait_for(
            lambda: (s := client.get(f"/v1/submissions/{evidence_id}").json())["status"] == "expired" and s,
            "the upload to expire",
        )
        assert status["finished_at"] and status["offset"] == MIB
        assert client.head(url, headers=TUS).status_code == 410
        assert (
            client.patch(
                url,
                content=data[MIB:],
                headers={**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(MIB)},
            ).status_code
            == 410
        )
    wait_for(lambda: not parts.exists() or not list(parts.iterdir()), "the expired parts to be deleted")
    events = stack_events(local_stack, evidence_id)
    assert [e["action"] for e in events] == ["submitted", "expired"]
    assert events[1]["actor"] == {"service": "intake"} and events[1]["details"]["received_bytes"] == MIB


def test_nothing_readable_at_rest_or_in_the_log(stack: Stack, tmp_path: Path) -> None:
    stack.start("intake")
    token = stack.token("alice", ["investigator"], [CASE])
    marker = f"PLAINTEXT-{uuid.uuid4().hex}".encode()
    source = evidence_file(tmp_path / f"child-{uuid.uuid4().hex[:8]}.jpg", 3 * MIB + 77, marker)
    personal = {
        "title": f"Testimony of {uuid.uuid4().hex}",
        "notes": f"Taken at the school {uuid.uuid4().hex}",
        "lat": "47.123456",
        "lon": "37.654321",
        "captured_at": "2024-05-01T10:00:00Z",
    }
    uploader = tus_client(stack, token).uploader(
        file_path=str(source), chunk_size=MIB, metadata=declaration(source, **personal), upload_checksum=True
    )
    uploader.upload(stop_at=MIB)
    # A refused PATCH carries plaintext too; it must leave no trace.
    with httpx.Client() as client:
        refused = client.patch(
            uploader.url,
            content=source.read_bytes()[MIB : 2 * MIB],
            headers={
                **TUS,
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": str(MIB),
                "Upload-Checksum": "sha256 " + base64.b64encode(b"\0" * 32).decode(),
            },
        )
        assert refused.status_code == 460
    uploader.upload()
    evidence_id = uploader.url.rsplit("/", 1)[1]
    completed = completed_statement(stack, evidence_id)
    store = store_of(stack)
    assert plaintext_of(store, stack.settings, completed) == source.read_bytes()

    secrets = [marker, source.name.encode(), token.encode()] + [v.encode() for v in personal.values()]
    stored = [b"".join(store.read(key)) for key in store.list("evidence/")]
    assert stored
    # Every file under home: objects (hidden ones too), the database, its journal, keys, the log.
    files = [p for p in stack.home.rglob("*") if p.is_file()]
    assert stack.log_path("intake") in files
    for secret in secrets:
        for content in stored:
            assert secret not in content
        for path in files:
            if path.suffix == ".key" or path.name == "kek.json":
                continue
            assert secret not in path.read_bytes(), f"{secret[:20]!r} found in {path}"
    database = [payload for _, _, payload in stack_messages(stack)] + [str(stack_upload(stack, evidence_id)).encode()]
    for row in database:
        for secret in secrets:
            assert secret not in row
