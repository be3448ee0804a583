"""NATS restarted, PostgreSQL restarted, the S3 server unreachable — each while submissions
flow. Meanwhile every service says so on /readyz and waits with back-off; afterwards nothing an
investigator was told is lost or doubled and the log verifies."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.faults.scenario import SubmissionStream, check_recovery, ride_out_outage, scenario_seed, summary
from tests.support.nats import NatsServer
from tests.support.private_postgres import PrivatePostgres
from tests.support.stack import Stack
from tests.support.tcp_proxy import TcpProxy


def _run(name: str, stack: Stack, tmp_path: Path, **outage) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(scenario_seed())
    began = time.monotonic()
    stack.start()
    stream = SubmissionStream(stack, tmp_path / "submissions", rng)
    stream.start()
    checkpoints: list[str] = []
    try:
        figures = ride_out_outage(stack, stream, rng, checkpoints=checkpoints, **outage)
        stream.finish(more=4, minimum=24)
    except BaseException:
        stream.abandon()
        raise
    recovery = check_recovery(stack, stream, tmp_path, checkpoints)
    summary(name, stream, recovery, began, **figures)


@pytest.mark.slow
@pytest.mark.s3
def test_nats_restarted(fault_stack: Stack, fault_nats: NatsServer, tmp_path: Path) -> None:
    def crash() -> None:
        assert fault_nats.process is not None
        fault_nats.process.kill()
        fault_nats.process.wait(10)

    _run(
        "NATS killed and restarted",
        fault_stack,
        tmp_path,
        cut=crash,
        restore=fault_nats.start,
        affected={"intake": "nats", "evidence": "nats", "audit": "nats"},
    )


@pytest.mark.slow
@pytest.mark.s3
def test_postgresql_restarted(fault_stack: Stack, private_postgres: PrivatePostgres, tmp_path: Path) -> None:
    _run(
        "PostgreSQL crashed and restarted",
        fault_stack,
        tmp_path,
        cut=private_postgres.crash,
        restore=private_postgres.start,
        affected={"intake": "database", "evidence": "database", "audit": "database"},
    )


@pytest.mark.slow
@pytest.mark.s3
def test_object_store_unreachable(fault_stack: Stack, s3_proxy: TcpProxy, tmp_path: Path) -> None:
    _run(
        "S3 server unreachable",
        fault_stack,
        tmp_path,
        cut=s3_proxy.cut,
        restore=s3_proxy.restore,
        affected={"intake": "object_store", "evidence": "object_store"},
    )
