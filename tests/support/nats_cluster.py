"""A private NATS cluster on loopback: three ``nats-server -js`` nodes joined by routes, each on
its own free ports with its own store folder, so a test may kill and restart any of them."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from nats.js.errors import APIError

from custody_common.bus.provision import provision
from custody_common.bus.topology import Topology
from tests.support.nats import free_port

_READY_TIMEOUT_SECONDS = 60


@dataclass
class ClusterNode:
    """One server of the cluster."""

    name: str
    folder: Path
    port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class NatsCluster:
    """Three JetStream servers in one cluster named after the test."""

    def __init__(self, folder: Path, size: int = 3, name: str = "custody-test") -> None:
        self.name = name
        self.nodes = [ClusterNode(f"n{i + 1}", folder / f"n{i + 1}") for i in range(size)]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.name == name)

    def start(self) -> None:
        """Start every node and wait until JetStream answers through each (a meta leader is elected)."""
        for node in self.nodes:
            self.start_node(node, wait=False)
        for node in self.nodes:
            self._wait_listening(node)
        for node in self.nodes:
            self.wait_jetstream(node.url)

    def start_node(self, node: ClusterNode, wait: bool = True) -> None:
        """(Re)start ``node`` with its store as it was left."""
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        routes = ",".join(f"nats://127.0.0.1:{other.cluster_port}" for other in self.nodes if other is not node)
        node.folder.mkdir(parents=True, exist_ok=True)
        log = open(node.folder / "nats.log", "ab")  # noqa: SIM115 — lives as long as the server
        node.process = subprocess.Popen(
            [
                binary,
                "-a", "127.0.0.1",
                "-p", str(node.port),
                "-n", node.name,
                "-js",
                "-sd", str(node.folder / "store"),
                "--cluster_name", self.name,
                "--cluster", f"nats://127.0.0.1:{node.cluster_port}",
                "--routes", routes,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if wait:
            self._wait_listening(node)

    def kill_node(self, node: ClusterNode) -> None:
        """SIGKILL ``node``, as a machine or process crash would."""
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(10)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(10)
                except subprocess.TimeoutExpired:
                    node.process.kill()

    def wait_jetstream(self, url: str, timeout: float = _READY_TIMEOUT_SECONDS) -> None:
        """Wait until JetStream's API answers through the server at ``url``."""
        asyncio.run(_wait_jetstream(url, timeout))

    def provision(self, namespace: str, replicas: int = 3) -> Topology:
        """Create the namespace's streams (``replicas`` each) and consumers, as a deployment would."""
        topology = Topology(namespace)
        asyncio.run(_provision(self.urls[0], topology, replicas))
        return topology

    def stream_leader(self, stream: str) -> str:
        """The name of the node that leads ``stream`` now."""
        return asyncio.run(_stream_leader([node.url for node in self.nodes if node.running], stream))

    def _wait_listening(self, node: ClusterNode) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if node.process is not None and node.process.poll() is not None:
                raise RuntimeError(f"nats-server {node.name} exited: {(node.folder / 'nats.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", node.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"nats-server {node.name} did not listen on port {node.port}")


async def _wait_jetstream(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
        except Exception as exc:  # noqa: BLE001 — retried until the deadline
            last = exc
            await asyncio.sleep(0.3)
            continue
        try:
            await nc.jetstream(timeout=2).account_info()
            return
        except Exception as exc:  # noqa: BLE001 — no meta leader yet
            last = exc
            await asyncio.sleep(0.3)
        finally:
            await nc.close()
    raise RuntimeError(f"JetStream did not answer through {url} within {timeout}s: {last!r}")


async def _provision(url: str, topology: Topology, replicas: int) -> None:
    nc = await nats.connect(url, connect_timeout=5)
    try:
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        while True:
            try:
                await provision(nc.jetstream(timeout=10), topology, replicas=replicas)
                return
            except (APIError, nats.errors.TimeoutError):
                # Just after start the cluster may not place replicas yet.
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await nc.close()


async def _stream_leader(urls: list[str], stream: str) -> str:
    deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
    while True:
        try:
            nc = await nats.connect(servers=urls, connect_timeout=2, max_reconnect_attempts=1)
            try:
                info = await nc.jetstream(timeout=5).stream_info(stream)
            finally:
                await nc.close()
            if info.cluster is not None and info.cluster.leader:
                return info.cluster.leader
        except (nats.errors.Error, APIError, OSError):
            pass  # no meta leader or stream leader yet: elections take a few seconds
        if time.monotonic() > deadline:
            raise RuntimeError(f"stream {stream} has no leader after {_READY_TIMEOUT_SECONDS}s")
        await asyncio.sleep(0.5)


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A running three-node NATS cluster this test may break."""
    cluster = NatsCluster(tmp_path / "nats-cluster")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
