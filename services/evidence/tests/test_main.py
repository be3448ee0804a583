"""``custody-evidence`` as a real process (the console script), on the embedded default and on
PostgreSQL with Ceph RGW: it seals what arrives on the bus and serves it; its maintenance
commands run against the same home."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import time

import nats
import pytest

from custody_common.bus import Topology
from custody_common.objectstore import open_object_store
from custody_common.settings import Settings
from tests.support.stack import BIN

WAIT_SECONDS = 60


def _settings_of(stack) -> Settings:  # type: ignore[no-untyped-def]
    """The settings the evidence process reads from its environment."""
    env = stack.env("evidence")
    return Settings(**{k.removeprefix("CUSTODY_").lower(): v for k, v in env.items() if k.startswith("CUSTODY_")})


def _wait_for_status(client, evidence_id, status: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        answer = client.get(f"/v1/evidence/{evidence_id}/status")
        if answer.status_code == 200 and answer.json()["status"] == status:
            return
        time.sleep(0.2)
    pytest.fail(f"item {evidence_id} did not become {status}")


async def _publish(settings: Settings, payload: bytes, msg_id: str) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().publish(
            Topology(settings.nats_namespace).submission_completed_subject, payload, headers={"Nats-Msg-Id": msg_id}
        )
    finally:
        await nc.close()


@pytest.fixture(params=["local_stack", pytest.param("pg_s3_stack", marks=pytest.mark.s3)])
def stack(request):  # type: ignore[no-untyped-def]
    return request.getfixturevalue(request.param)


async def test_the_service_process_seals_serves_rotates_and_rebuilds(stack, intake_for) -> None:
    stack.start("evidence")
    settings = _settings_of(stack)
    intake = intake_for(settings, open_object_store(settings))
    plaintext = os.urandom(300_000)
    submission = intake.submit(plaintext, part_sizes=[100_000, 200_000])
    await _publish(settings, submission.payload, f"completed-{submission.evidence_id}")

    token = stack.token("petra", ["prosecutor"], ["CASE-1"])
    with stack.client("evidence", token) as client:
        await asyncio.to_thread(_wait_for_status, client, submission.evidence_id, "sealed")
        answer = client.get(f"/v1/evidence/{submission.evidence_id}/content", params={"purpose": "court"})
        assert answer.status_code == 200 and answer.content == plaintext

    stack.stop()
    env = stack.env("evidence")
    rotated = subprocess.run([str(BIN / "custody-evidence"), "rotate-kek"], env=env, capture_output=True, text=True)
    assert rotated.returncode == 0, rotated.stderr
    assert "1 data keys re-wrapped" in rotated.stdout
    rebuilt = subprocess.run([str(BIN / "custody-evidence"), "rebuild-index"], env=env, capture_output=True, text=True)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "1 items in the store" in rebuilt.stdout

    stack.start("evidence")
    with stack.client("evidence", token) as client:
        item = client.get(f"/v1/evidence/{submission.evidence_id}").json()
        assert item["manifest_version"] == 2
        answer = client.get(
            f"/v1/evidence/{submission.evidence_id}/content",
            params={"purpose": "court"},
            headers={"Range": "bytes=-10"},
        )
        assert answer.status_code == 206 and answer.content == plaintext[-10:]
        assert item["sha256"] == hashlib.sha256(plaintext).hexdigest()
