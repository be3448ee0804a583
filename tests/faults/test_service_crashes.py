"""Each service SIGKILLed at random moments while submissions flow, then restarted: nothing an
investigator was told is lost, nothing is sealed or logged twice, the log still verifies."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.faults.scenario import (
    READY_TIMEOUT,
    SubmissionStream,
    check_recovery,
    latest_checkpoint,
    scenario_seed,
    summary,
)
from tests.support.stack import SERVICES, Stack

KILLS = 3


@pytest.mark.slow
@pytest.mark.s3
@pytest.mark.parametrize("victim", SERVICES)
def test_service_killed_at_random_moments(victim: str, fault_stack: Stack, tmp_path: Path) -> None:
    rng = random.Random(scenario_seed())
    began = time.monotonic()
    stack = fault_stack
    stack.start()
    stream = SubmissionStream(stack, tmp_path / "submissions", rng)
    stream.start()
    checkpoints: list[str] = []
    downtimes: list[float] = []
    try:
        stream.wait_acknowledged(3)
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.2, 3.0))
            if note := latest_checkpoint(stack):
                checkpoints.append(note)
            stack.kill(victim)
            killed_at = time.monotonic()
            time.sleep(rng.uniform(0.0, 1.5))
            stack.start(victim, wait=False)
            stack.wait_ready(victim, timeout=READY_TIMEOUT)
            downtimes.append(round(time.monotonic() - killed_at, 1))
        stream.finish(more=4, minimum=24)
    except BaseException:
        stream.abandon()
        raise
    recovery = check_recovery(stack, stream, tmp_path, checkpoints)
    summary(f"{victim} killed {KILLS} times", stream, recovery, began, downtimes_s=downtimes)
