"""The whole stack as real processes: ``custody-intake``, ``custody-evidence``, ``custody-audit``.

A :class:`Stack` owns a home folder, a NATS namespace, one database per service and an
object store; it starts, kills and restarts services and mints tokens for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from custody_common.auth import mint_token
from custody_common.keys import token_signing_key
from custody_common.settings import Settings
from tests.support.nats import NATS_URL, free_port, provision_namespace, remove_namespace
from tests.support.postgres import create_database, drop_database

SERVICES = ("intake", "evidence", "audit")
BIN = Path(sys.executable).parent


@dataclass
class Stack:
    """Three service processes sharing one home, namespace and object store."""

    home: Path
    namespace: str
    nats_url: str = NATS_URL
    database_urls: dict[str, str] = field(default_factory=dict)
    """Per service; empty means the embedded SQLite default."""
    store_env: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=lambda: {s: free_port() for s in SERVICES})
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def env(self, service: str | None = None) -> dict[str, str]:
        """The environment a service (or the ``custody`` command) runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
        env.update(
            CUSTODY_HOME=str(self.home),
            CUSTODY_NATS_URL=self.nats_url,
            CUSTODY_NATS_NAMESPACE=self.namespace,
            CUSTODY_LOG_ORIGIN=f"custody.test/{self.namespace}",
            CUSTODY_INTAKE_URL=self.url("intake"),
            CUSTODY_EVIDENCE_URL=self.url("evidence"),
            CUSTODY_AUDIT_URL=self.url("audit"),
            CUSTODY_STATE_DIR=str(self.home / "client-state"),
            # Locked objects on a shared S3 server expire soon after the test, not in ten years.
            CUSTODY_RETENTION="PT5M",
        )
        env.update(self.store_env)
        env.update(self.extra_env)
        if service and service in self.database_urls:
            env["CUSTODY_DATABASE_URL"] = self.database_urls[service]
        return env

    @property
    def settings(self) -> Settings:
        """The stack's settings, as a test process sees them."""
        return Settings(home=self.home, log_origin=f"custody.test/{self.namespace}", nats_namespace=self.namespace)

    def log_path(self, service: str) -> Path:
        return self.home / "logs" / f"{service}.log"

    def start(self, *services: str, wait: bool = True) -> None:
        """Start ``services`` (all by default) and wait until each answers /readyz."""
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        for service in services or SERVICES:
            log = open(self.log_path(service), "ab")  # noqa: SIM115 — lives as long as the process
            self.processes[service] = subprocess.Popen(
                [str(BIN / f"custody-{service}"), "--port", str(self.ports[service])],
                env=self.env(service),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait:
            for service in services or SERVICES:
                self.wait_ready(service)

    def wait_ready(self, service: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[service]
            if process.poll() is not None:
                raise RuntimeError(f"{service} exited with {process.returncode}: {self.log_path(service).read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url(service)}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{service} not ready in {timeout}s: {self.log_path(service).read_text()[-3000:]}")

    def kill(self, service: str) -> None:
        """SIGKILL ``service``, as a crash would."""
        process = self.processes.pop(service)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()

    def token(self, sub: str, roles: list[str], cases: list[str]) -> str:
        """A token signed with the stack's local key."""
        settings = self.settings
        return mint_token(token_signing_key(settings), settings, sub, roles, cases)

    def client(self, service: str, token: str | None = None, **kwargs) -> httpx.Client:  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url(service), headers=headers, timeout=60, **kwargs)


def _stack(tmp_path: Path, namespace: str, **kwargs) -> Stack:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    return Stack(home=home, namespace=namespace, **kwargs)


@pytest.fixture
def local_stack(tmp_path: Path, nats_namespace: str) -> Iterator[Stack]:
    """The embedded default (SQLite files, a local folder) on the shared NATS; not started."""
    stack = _stack(tmp_path, nats_namespace)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def pg_s3_stack(tmp_path: Path, nats_namespace: str, s3_bucket) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    """PostgreSQL (a fresh database per service) and a real S3 server; not started."""
    urls = {service: create_database() for service in SERVICES}
    server = s3_bucket.server
    stack = _stack(
        tmp_path,
        nats_namespace,
        database_urls=urls,
        store_env={
            "CUSTODY_OBJECT_STORE": f"s3://{s3_bucket.name}",
            "CUSTODY_S3_ENDPOINT": server.endpoint,
            "CUSTODY_S3_ACCESS_KEY": server.access_key,
            "CUSTODY_S3_SECRET_KEY": server.secret_key,
            "CUSTODY_S3_REGION": server.region,
            "CUSTODY_S3_SECURE": "true" if server.secure else "false",
        },
    )
    try:
        yield stack
    finally:
        stack.stop()
        for url in urls.values():
            drop_database(url)


__all__ = ["Stack", "provision_namespace", "remove_namespace"]
