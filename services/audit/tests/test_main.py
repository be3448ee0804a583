"""``custody-audit`` as real processes: it starts, migrates, announces its key, signs
checkpoints and serves them; a second process stands by and takes over when the first is
killed; ``verify-log`` then finds the log intact."""

from __future__ import annotations

import os
from dataclasses import replace
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nats
import pytest

from custody_audit.log.checkpoint import verify_checkpoint
from custody_common.bus import Topology
from custody_common.events import canonical
from custody_common.ids import uuid7
from tests.support.nats import NATS_URL, free_ports

CLI = Path(sys.executable).parent / "custody-audit"
PATIENCE = 60  # a safety net against hangs, never a timing assertion


@pytest.fixture
def namespace(nats_namespace: str) -> str:
    return nats_namespace


def _env(settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env.update(
        CUSTODY_HOME=str(settings.home),
        CUSTODY_NATS_URL=NATS_URL,
        CUSTODY_NATS_NAMESPACE=settings.nats_namespace,
        CUSTODY_LOG_ORIGIN=settings.log_origin,
    )
    if settings.database_url:
        env["CUSTODY_DATABASE_URL"] = settings.database_url
    return env


def _start(settings, port: int) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    log = open(settings.home / f"audit-{port}.log", "ab")  # noqa: SIM115 — lives as long as the process
    return subprocess.Popen([str(CLI), "--port", str(port)], env=_env(settings), stdout=log, stderr=subprocess.STDOUT)


def _wait_for(check, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting: {what}")


def _checkpoint_size(port: int) -> int:
    response = httpx.get(f"http://127.0.0.1:{port}/v1/log/checkpoint", timeout=5)
    return int(response.text.split("\n")[1]) if response.status_code == 200 else 0


async def _publish(settings, events) -> None:  # type: ignore[no-untyped-def]
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        topology = Topology(settings.nats_namespace)
        for event in events:
            await js.publish(topology.events_subject(event["service"]), canonical(event), headers={"Nats-Msg-Id": event["id"]})
    finally:
        await nc.close()


async def _shorten_ack_wait(settings) -> None:  # type: ignore[no-untyped-def]
    """Messages a killed process had pulled come back after ack_wait; keep that short here."""
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        topology = Topology(settings.nats_namespace)
        consumer = await js.consumer_info(topology.events_stream, topology.audit_consumer)
        await js.add_consumer(topology.events_stream, replace(consumer.config, ack_wait=1.0))
    finally:
        await nc.close()


async def test_audit_processes_serve_hand_over_and_verify(settings, signed) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    await _shorten_ack_wait(settings)
    first_port, second_port = free_ports(2)
    first = _start(settings, first_port)
    second = None
    try:
        _wait_for(lambda: httpx.get(f"http://127.0.0.1:{first_port}/readyz").status_code == 200, "first ready")
        _wait_for(lambda: _checkpoint_size(first_port) == 1, "audit's key announcement")
        second = _start(settings, second_port)
        _wait_for(lambda: httpx.get(f"http://127.0.0.1:{second_port}/readyz").status_code == 200, "second ready")

        await _publish(settings, [signed("intake", evidence_id=str(uuid7()), case="C") for _ in range(5)])
        _wait_for(lambda: _checkpoint_size(second_port) == 6, "events logged by the first")

        first.send_signal(signal.SIGKILL)
        first.wait(PATIENCE)
        await _publish(settings, [signed("evidence", evidence_id=str(uuid7()), case="C") for _ in range(5)])
        _wait_for(lambda: _checkpoint_size(second_port) == 11, "the standby taking over")

        key = httpx.get(f"http://127.0.0.1:{second_port}/v1/log/key").text.strip()
        note = httpx.get(f"http://127.0.0.1:{second_port}/v1/log/checkpoint").text
        assert verify_checkpoint(note, key).size == 11
    except BaseException:
        for log in sorted(settings.home.glob("audit-*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-5000:]}")  # shown when the test fails
        raise
    finally:
        for process in (first, second):
            if process and process.poll() is None:
                process.terminate()
                process.wait(PATIENCE)
    result = subprocess.run([str(CLI), "verify-log"], env=_env(settings), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "custody log intact: 11 entries" in result.stdout
