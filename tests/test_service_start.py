"""A service that waits at start-up for a part that is away (NATS here) still stops when asked:
an operator or a supervisor sending SIGTERM must not have to follow up with SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.support.nats import free_port
from tests.support.stack import Stack

WAITING = (b"NATS unreachable at start", b"NATS: ConnectionRefusedError")
"""What a service logs while it waits for NATS (nats-py retries the first connection itself)."""


@pytest.mark.parametrize("service", ["intake", "evidence"])
def test_sigterm_while_waiting_for_nats_at_start_stops_the_service(local_stack: Stack, service: str) -> None:
    local_stack.nats_url = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    local_stack.start(service, wait=False)
    process = local_stack.processes[service]
    log = local_stack.log_path(service)
    deadline = time.monotonic() + 60
    while not any(line in log.read_bytes() for line in WAITING):
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{service} never reported waiting for NATS: {log.read_text()[-3000:]}"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{service} ignored SIGTERM while waiting for NATS at start: {log.read_text()[-2000:]}")
    assert code == 128 + signal.SIGTERM, log.read_text()[-2000:]
    assert b"stopped by signal" in log.read_bytes()


def test_sigusr1_logs_where_each_task_waits_and_the_service_goes_on(local_stack: Stack) -> None:
    local_stack.start("audit")
    process = local_stack.processes["audit"]
    process.send_signal(signal.SIGUSR1)
    log = local_stack.log_path("audit")
    deadline = time.monotonic() + 30
    while b"SIGUSR1: the" not in log.read_bytes():
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    text = log.read_text()
    assert "custody-log-sequencer:" in text and "Stack for <Task" in text
    local_stack.wait_ready("audit")
    assert process.poll() is None
