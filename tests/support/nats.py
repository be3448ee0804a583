"""NATS for tests: the shared server with a private namespace per test, or a private server.

``CUSTODY_TEST_NATS_URL`` names the shared server (default nats://127.0.0.1:4222)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from custody_common.bus.provision import provision, remove
from custody_common.bus.topology import Topology
from custody_common.events import canonical

NATS_URL = os.environ.get("CUSTODY_TEST_NATS_URL", "nats://127.0.0.1:4222")


async def flushed(nc: nats.NATS) -> None:
    """Return once the server has processed everything ``nc`` sent so far (a subscription
    just made, say). nats-py 2.16's ``flush()`` writes its PING straight to the socket, ahead
    of commands still queued for its flusher task, so its PONG can come back before the server
    has seen a SUB made just before: a message published then is not delivered (about 1 time in
    20 here). While the first flush waits, the flusher writes the queue; the second PING
    follows it."""
    await nc.flush()
    await nc.flush()


async def publish_events(namespace: str, events: list[dict]) -> None:
    """Publish signed custody events on their services' subjects of ``namespace``, each with
    its id as ``Nats-Msg-Id``, as the services' outbox relays do."""
    topology = Topology(namespace)
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        for event in events:
            await js.publish(
                topology.events_subject(event["service"]), canonical(event), headers={"Nats-Msg-Id": event["id"]}
            )
    finally:
        await nc.close()


def free_port() -> int:
    """A TCP port nothing listens on now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports nothing listens on now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


async def _with_js(url: str, action, topology: Topology) -> None:  # type: ignore[no-untyped-def]
    nc = await nats.connect(url, connect_timeout=5)
    try:
        await action(nc.jetstream(), topology)
    finally:
        await nc.close()


def provision_namespace(url: str, namespace: str) -> Topology:
    """Create the streams and consumers of ``namespace`` on ``url``."""
    topology = Topology(namespace)
    asyncio.run(_with_js(url, provision, topology))
    return topology


def remove_namespace(url: str, namespace: str) -> None:
    """Delete the streams of ``namespace``."""
    asyncio.run(_with_js(url, remove, Topology(namespace)))


class Listener:
    """Core NATS messages on ``subject`` of the shared server, gathered by a thread of its own
    while the ``with`` block runs (for synchronous tests)."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.heard: list[bytes] = []
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    def __enter__(self) -> Listener:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"could not subscribe to {self.subject} on {NATS_URL}")
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def wait_for(self, count: int, timeout: float = 10) -> list[bytes]:
        """The messages heard, once there are ``count`` (or ``timeout`` seconds passed)."""
        deadline = time.monotonic() + timeout
        while len(self.heard) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.heard)

    async def _listen(self) -> None:
        nc = await nats.connect(NATS_URL, connect_timeout=5)
        try:

            async def note(msg) -> None:  # type: ignore[no-untyped-def]
                self.heard.append(msg.data)

            await nc.subscribe(self.subject, cb=note)
            await flushed(nc)
            self._ready.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.05)
        finally:
            await nc.close()


@pytest.fixture
def nats_namespace() -> Iterator[str]:
    """A fresh namespace on the shared NATS server, provisioned, and removed after the test."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    provision_namespace(NATS_URL, namespace)
    try:
        yield namespace
    finally:
        remove_namespace(NATS_URL, namespace)


class NatsServer:
    """A private ``nats-server -js`` on a free port, with its data in ``folder``."""

    def __init__(self, folder: Path, port: int | None = None, config: Path | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        args = [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.folder)]
        if self.config:
            args += ["-c", str(self.config)]
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / "nats.log", "ab")  # noqa: SIM115 — lives as long as the server
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"nats-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A private NATS server this test may stop and restart."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()
