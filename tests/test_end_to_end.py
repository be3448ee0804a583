"""One piece of evidence the whole way, for real: submitted with `custody submit`, sealed by
evidence, fetched verified by a prosecutor, its custody chain read by an auditor — on the
embedded default and on PostgreSQL + a real S3 server, both with real NATS."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from custody_common.objectstore import open_object_store
from custody_common.settings import Settings
from tests.support.stack import BIN, Stack
from tests.support.submissions import submit_with_wrong_hash, wait_status

CASE = "UA-2024-017"
MIB = 1024 * 1024


def _write(path: Path, size: int, marker: bytes) -> Path:
    """A file of ``size`` bytes holding ``marker`` wherever it fits (once per MiB)."""
    with path.open("wb") as f:
        left = size
        while left > 0:
            block = (marker + os.urandom(MIB - len(marker)))[: min(MIB, left)]
            f.write(block)
            left -= len(block)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def custody(stack: Stack, token: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real `custody` command against the stack."""
    env = stack.env() | {"CUSTODY_TOKEN": token}
    return subprocess.run([str(BIN / "custody"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _store_settings(stack: Stack) -> Settings:
    env = {k[len("CUSTODY_"):].lower(): v for k, v in stack.store_env.items()}
    return Settings(home=stack.home, **env)


def _plain_copy_seconds(stack: Stack, source: Path) -> float:
    """Baseline: one durable copy of the same bytes into the same store."""
    store = open_object_store(_store_settings(stack))
    started = time.perf_counter()
    with source.open("rb") as f:
        store.put(f"baseline/{uuid.uuid4()}", iter(lambda: f.read(8 * MIB), b""))
    return time.perf_counter() - started


def _chain(stack: Stack, token: str, evidence_id: str, until: str, timeout: float = 60) -> list[dict]:
    """The item's custody events once ``until`` is among them."""
    deadline = time.monotonic() + timeout
    with stack.client("audit", token) as audit:
        while True:
            response = audit.get(f"/v1/custody/{evidence_id}")
            if response.status_code == 200:
                events = response.json()["events"]
                if until in [e["entry"]["event"]["action"] for e in events]:
                    return events
            if time.monotonic() > deadline:
                raise AssertionError(f"no {until} event for {evidence_id}: {response.status_code} {response.text[:300]}")
            time.sleep(0.3)


def _stored_objects(stack: Stack) -> list[tuple[str, bytes]]:
    store = open_object_store(_store_settings(stack))
    return [(key, b"".join(store.read(key))) for key in store.list("evidence/")]


def run_mission(stack: Stack, tmp_path: Path) -> None:
    stack.start()
    investigator = stack.token("alice", ["investigator"], [CASE])
    prosecutor = stack.token("bob", ["prosecutor"], [CASE])
    stranger = stack.token("eve", ["prosecutor"], ["OTHER-CASE"])
    auditor = stack.token("carol", ["auditor"], ["*"])
    marker = f"PLAINTEXT-MARKER-{uuid.uuid4().hex}".encode()

    files = {
        "empty.bin": 0,
        "one-byte.bin": 1,
        "photo.jpg": 3 * MIB + 12345,
        "video.mp4": 101 * MIB,
    }
    figures: dict[str, float] = {}
    for name, size in files.items():
        source = _write(tmp_path / name, size, marker)
        started = time.perf_counter()
        submitted = custody(stack, investigator, "submit", str(source), "--case", CASE, "--title", f"{name} title")
        elapsed = time.perf_counter() - started
        assert submitted.returncode == 0, submitted.stderr
        evidence_id = submitted.stdout.strip().splitlines()[-1]
        assert uuid.UUID(evidence_id).version == 7
        if name == "video.mp4":
            figures["submit_101MiB_s"] = elapsed
            figures["plain_copy_101MiB_s"] = _plain_copy_seconds(stack, source)

        # a prosecutor of another case cannot learn the item exists
        with stack.client("evidence", stranger) as other:
            assert other.get(f"/v1/evidence/{evidence_id}").status_code == 404
            assert other.get(f"/v1/evidence/{evidence_id}/content", params={"purpose": "curiosity"}).status_code == 404

        target = tmp_path / f"fetched-{name}"
        fetched = custody(stack, prosecutor, "fetch", evidence_id, "-o", str(target), "--purpose", "hearing 2024-117")
        assert fetched.returncode == 0, fetched.stderr
        assert target.read_bytes() == source.read_bytes()
        assert not list(Path(target).parent.glob(f"{Path(target).name}*.part"))

        events = _chain(stack, auditor, evidence_id, until="accessed")
        actions = [e["entry"]["event"]["action"] for e in events]
        assert actions == ["submitted", "received", "sealed", "accessed"], actions
        assert [e["entry"]["item_seq"] for e in events] == [1, 2, 3, 4]
        sealed = events[2]["entry"]["event"]
        assert sealed["sha256"] == _sha256(source) and sealed["size"] == size
        accessed = events[3]["entry"]["event"]
        assert accessed["actor"]["sub"] == "bob" and "purpose" in accessed["commitments"]
        assert "hearing" not in json.dumps(events)

    # a submission whose declared hash is wrong ends rejected and is never served
    bad = _write(tmp_path / "tampered.bin", 2 * MIB, marker)
    bad_id = submit_with_wrong_hash(stack, investigator, CASE, bad.read_bytes(), bad.name)
    wait_status(stack, investigator, bad_id, "rejected")
    with stack.client("evidence", prosecutor) as evidence:
        response = evidence.get(f"/v1/evidence/{bad_id}/content", params={"purpose": "check"})
        assert response.status_code == 409 and bad.read_bytes()[:64] not in response.content
    refused = custody(stack, prosecutor, "fetch", bad_id, "-o", str(tmp_path / "bad-copy"), "--purpose", "check")
    assert refused.returncode == 1
    assert not (tmp_path / "bad-copy").exists()
    actions = [e["entry"]["event"]["action"] for e in _chain(stack, auditor, bad_id, until="rejected")]
    assert actions[:3] == ["submitted", "received", "rejected"]

    # nothing in the store is plaintext
    objects = _stored_objects(stack)
    assert len(objects) >= len(files) + 1
    for key, content in objects:
        assert marker not in content, f"plaintext marker found in {key}"

    for service, process in stack.processes.items():
        figures[f"peak_rss_{service}_MiB"] = _peak_rss_mib(process.pid)
    print(f"\nend-to-end figures ({'PostgreSQL + S3' if stack.database_urls else 'embedded default'}): {json.dumps(figures)}", file=sys.stderr)


def test_mission_on_embedded_default(local_stack: Stack, tmp_path: Path) -> None:
    run_mission(local_stack, tmp_path)


@pytest.mark.s3
def test_mission_on_postgresql_and_s3(pg_s3_stack: Stack, tmp_path: Path) -> None:
    run_mission(pg_s3_stack, tmp_path)
