"""The real ``custody`` command against the real stack (three service processes, NATS, SQLite
and a local folder): submit, resume an interrupted submission, fetch verified, refuse a
rejected item, and verify a custody chain with the log's pinned key."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from custody_client.api import CustodyClient, Progress
from custody_client.resume import ResumeState
from tests.support.stack import BIN, Stack
from tests.support.submissions import submit_with_wrong_hash

CASE = "UA-2024-101"
MIB = 1024 * 1024


def custody(stack: Stack, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``custody`` command with the stack's environment."""
    env = stack.env() | ({"CUSTODY_TOKEN": token} if token else {})
    return subprocess.run([str(BIN / "custody"), *args], env=env, capture_output=True, text=True, timeout=600)


def _token(stack: Stack, sub: str, role: str, case: str = CASE) -> str:
    minted = custody(stack, None, "token", "--sub", sub, "--role", role, "--case", case)
    assert minted.returncode == 0, minted.stderr
    return minted.stdout.strip()


def _evidence_id(result: subprocess.CompletedProcess[str]) -> str:
    last = result.stdout.strip().splitlines()[-1]
    assert str(uuid.UUID(last)) == last, result.stdout
    return last


class _Interrupted(Exception):
    """Stands in for the connection dying for good halfway through."""


@pytest.fixture
def stack(local_stack: Stack) -> Stack:
    local_stack.start()
    return local_stack


def test_submit_resume_and_fetch_give_back_the_same_bytes(stack: Stack, tmp_path: Path) -> None:
    investigator = _token(stack, "alice", "investigator")
    prosecutor = _token(stack, "bob", "prosecutor")
    source = tmp_path / "interview 2024-05-01.mp4"
    source.write_bytes(os.urandom(5 * MIB + 4321))

    # a first run dies after about 1 MiB has gone up
    def stop_midway(progress: Progress) -> None:
        if progress.phase == "uploading" and progress.done >= MIB:
            raise _Interrupted

    first_run = CustodyClient(
        stack.url("intake"), stack.url("evidence"), stack.url("audit"), investigator,
        resume=ResumeState(Path(stack.env()["CUSTODY_STATE_DIR"])), chunk_size=256 * 1024,
    )
    with first_run, pytest.raises(_Interrupted):
        first_run.submit(source, case=CASE, title="Interview, shelter 4", on_progress=stop_midway)

    submitted = custody(stack, investigator, "submit", str(source), "--case", CASE, "--title", "Interview, shelter 4")
    assert submitted.returncode == 0, submitted.stderr
    assert "resuming the upload at" in submitted.stderr
    assert "sealed" in submitted.stderr
    evidence_id = _evidence_id(submitted)
    state = (Path(stack.env()["CUSTODY_STATE_DIR"]) / "uploads.json").read_text()
    assert "interview" not in state and evidence_id not in state, "the outcome was seen: nothing left to resume"

    target = tmp_path / "copy.mp4"
    fetched = custody(stack, prosecutor, "fetch", evidence_id, "-o", str(target), "--purpose", "hearing 2024-117")
    assert fetched.returncode == 0, fetched.stderr
    assert target.read_bytes() == source.read_bytes()
    assert fetched.stdout.split() == [hashlib.sha256(source.read_bytes()).hexdigest(), str(target)]
    assert not list(Path(target).parent.glob(f"{Path(target).name}*.part"))

    again = custody(stack, prosecutor, "fetch", evidence_id, "-o", str(target), "--purpose", "hearing 2024-117")
    assert again.returncode == 2 and "exists already" in again.stderr

    stranger = _token(stack, "eve", "prosecutor", case="OTHER-CASE")
    refused = custody(stack, stranger, "fetch", evidence_id, "-o", str(tmp_path / "x"), "--purpose", "curiosity")
    assert refused.returncode == 3, refused.stderr
    assert not list(tmp_path.glob("x*"))


def test_a_rejected_item_exits_1_and_is_never_written(stack: Stack, tmp_path: Path) -> None:
    investigator = _token(stack, "alice", "investigator")
    prosecutor = _token(stack, "bob", "prosecutor")
    evidence_id = submit_with_wrong_hash(stack, investigator, CASE, os.urandom(300_000), "photo.jpg")
    with CustodyClient(stack.url("intake"), stack.url("evidence"), stack.url("audit"), investigator,
                       resume=ResumeState(tmp_path / "state")) as client:
        assert client.wait_sealed(evidence_id, timeout=300).status == "rejected"

    fetched = custody(stack, prosecutor, "fetch", evidence_id, "-o", str(tmp_path / "copy"), "--purpose", "check")
    assert fetched.returncode == 1, fetched.stderr
    assert "rejected" in fetched.stderr
    assert not list(tmp_path.glob("copy*"))


def test_a_token_from_another_stack_exits_3(stack: Stack, tmp_path: Path) -> None:
    foreign_home = tmp_path / "elsewhere"
    minted = subprocess.run(
        [str(BIN / "custody"), "token", "--sub", "mallory", "--role", "prosecutor", "--case", CASE],
        env={k: v for k, v in stack.env().items() if k != "CUSTODY_HOME"} | {"CUSTODY_HOME": str(foreign_home)},
        capture_output=True, text=True, timeout=60,
    )
    assert minted.returncode == 0, minted.stderr
    result = custody(stack, minted.stdout.strip(), "fetch", str(uuid.uuid4()), "-o", str(tmp_path / "x"), "--purpose", "p")
    assert result.returncode == 3
    assert "custody token" in result.stderr


def test_the_custody_chain_verifies_against_the_pinned_log_key(stack: Stack, tmp_path: Path) -> None:
    investigator = _token(stack, "alice", "investigator")
    prosecutor = _token(stack, "bob", "prosecutor")
    auditor = _token(stack, "carol", "auditor", case="*")
    source = tmp_path / "statement.pdf"
    source.write_bytes(os.urandom(123_456))
    evidence_id = _evidence_id(custody(stack, investigator, "submit", str(source), "--case", CASE))
    fetched = custody(stack, prosecutor, "fetch", evidence_id, "-o", str(tmp_path / "copy.pdf"), "--purpose", "trial")
    assert fetched.returncode == 0, fetched.stderr

    log_key = httpx.get(f"{stack.url('audit')}/v1/log/key", timeout=30).text.strip()
    deadline = time.monotonic() + 120
    while True:  # the ledger takes events from the bus as they come: wait for the access to be logged
        listed = custody(stack, auditor, "chain", evidence_id)
        if listed.returncode == 0 and "accessed" in listed.stdout:
            break
        assert time.monotonic() < deadline, f"the access never reached the custody chain: {listed.stderr}"
        time.sleep(0.5)
    actions = [line.split()[2] for line in listed.stdout.splitlines()]
    assert actions == ["submitted", "received", "sealed", "accessed"]

    verified = custody(stack, auditor, "chain", evidence_id, "--verify", "--log-key", log_key)
    assert verified.returncode == 0, verified.stderr
    assert "verified: 4 custody events" in verified.stderr

    name, key_id, encoded = log_key.split("+", 2)
    impostor = f"{name}+{key_id}+{encoded[:-4]}AAA="
    wrong_key = custody(stack, auditor, "chain", evidence_id, "--verify", "--log-key", impostor)
    assert wrong_key.returncode == 2, "a key whose id does not match is a usage error"
    other_origin = custody(stack, auditor, "chain", evidence_id, "--json", "--verify", "--log-key", _other_log_key())
    assert other_origin.returncode == 1 and "VERIFICATION FAILED" in other_origin.stderr
    assert other_origin.stdout == ""


def _other_log_key() -> str:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from custody_client.verify import ed25519_key_id

    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    origin = "custody.impostor/log"
    return f"{origin}+{ed25519_key_id(origin, raw).hex()}+{base64.b64encode(bytes([1]) + raw).decode()}"
