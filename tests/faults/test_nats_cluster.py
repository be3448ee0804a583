"""A three-node NATS cluster, streams with three replicas, loses the node the services were
pointed at — which also leads the submissions stream — while submissions flow. The services
find the two others and carry on; nothing is lost or doubled."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import pytest

from tests.faults.conftest import StackBuilder
from tests.faults.scenario import (
    READY_TIMEOUT,
    SubmissionStream,
    check_recovery,
    latest_checkpoint,
    scenario_seed,
    summary,
    wait_readiness,
)
from tests.support.nats_cluster import NatsCluster
from tests.support.stack import SERVICES


@pytest.mark.slow
@pytest.mark.s3
def test_nats_cluster_loses_a_node(nats_cluster: NatsCluster, build_stack: StackBuilder, tmp_path: Path) -> None:
    rng = random.Random(scenario_seed())
    began = time.monotonic()
    namespace = f"f{uuid.uuid4().hex[:10]}"
    topology = nats_cluster.provision(namespace, replicas=3)
    victim = nats_cluster.node(nats_cluster.stream_leader(topology.submissions_stream))
    stack = build_stack(victim.url, namespace)
    stack.start()
    stream = SubmissionStream(stack, tmp_path / "submissions", rng)
    stream.start()
    checkpoints: list[str] = []
    try:
        stream.wait_acknowledged(4)
        time.sleep(rng.uniform(0.0, 3.0))
        if note := latest_checkpoint(stack):
            checkpoints.append(note)
        nats_cluster.kill_node(victim)
        lost_at = time.monotonic()
        acknowledged_before = len(stream.acknowledged)
        wait_readiness(stack, SERVICES, ready=True, timeout=READY_TIMEOUT)
        ready_again = time.monotonic() - lost_at
        stream.wait_acknowledged(acknowledged_before + 4)
        new_leader = nats_cluster.stream_leader(topology.submissions_stream)
        assert new_leader != victim.name
        stream.finish(more=6, minimum=24)
        dead = {s: p.returncode for s, p in stack.processes.items() if p.poll() is not None}
        assert not dead, f"services exited after losing a NATS node: {dead}"
    except BaseException:
        stream.abandon()
        raise
    survivors = [node.url for node in nats_cluster.nodes if node.running]
    recovery = check_recovery(stack, stream, tmp_path, checkpoints, nats_urls=survivors)
    summary(
        "NATS cluster lost a node",
        stream,
        recovery,
        began,
        lost_node=victim.name,
        new_submissions_leader=new_leader,
        ready_again_s=round(ready_again, 1),
    )


@pytest.mark.slow
@pytest.mark.s3
def test_services_start_while_a_cluster_node_is_down(
    nats_cluster: NatsCluster, build_stack: StackBuilder, tmp_path: Path
) -> None:
    namespace = f"f{uuid.uuid4().hex[:10]}"
    nats_cluster.provision(namespace, replicas=3)
    # Every node listed, as NATS clients take them (and as the operator of a cluster would).
    stack = build_stack(",".join(nats_cluster.urls), namespace)
    down = nats_cluster.nodes[0]
    nats_cluster.kill_node(down)
    try:
        stack.start()
    except RuntimeError:
        for service in list(stack.processes):
            stack.kill(service)  # stuck in start-up, where SIGTERM is not acted on
        raise
    stream = SubmissionStream(stack, tmp_path / "submissions", random.Random(scenario_seed()), maximum=4)
    stream.start()
    stream.finish(more=4, minimum=4)
    survivors = [node.url for node in nats_cluster.nodes if node.running]
    check_recovery(stack, stream, tmp_path, nats_urls=survivors)
