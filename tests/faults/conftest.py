"""Fixtures of the fault scenarios: everything a scenario breaks is its own — a private
PostgreSQL, a private NATS server (or cluster), and a TCP proxy in front of the shared S3 server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.nats import NatsServer, provision_namespace
from tests.support.nats_cluster import nats_cluster  # noqa: F401 — a fixture, offered to the scenarios
from tests.support.private_postgres import PrivatePostgres, private_postgres  # noqa: F401 — ditto
from tests.support.s3 import S3Bucket
from tests.support.stack import SERVICES, Stack
from tests.support.tcp_proxy import TcpProxy

UPLOAD_LOCK_TIMEOUT_SECONDS = 5
"""A PATCH cut off by a crash holds its upload this long (the default, 30 s, only slows the scenario)."""

StackBuilder = Callable[[str, str], Stack]


@pytest.fixture
def s3_proxy(s3_bucket: S3Bucket) -> Iterator[TcpProxy]:
    """A proxy to the S3 server that the scenario may cut."""
    with TcpProxy.to(s3_bucket.server.endpoint) as proxy:
        yield proxy


@pytest.fixture
def build_stack(
    tmp_path: Path, private_postgres: PrivatePostgres, s3_bucket: S3Bucket, s3_proxy: TcpProxy  # noqa: F811
) -> Iterator[StackBuilder]:
    """Makes the stack (not started) for a NATS URL and namespace: one database per service on
    the private PostgreSQL, the object store reached through the proxy."""
    stacks: list[Stack] = []

    def build(nats_url: str, namespace: str) -> Stack:
        server = s3_bucket.server
        home = tmp_path / f"home-{len(stacks)}"
        home.mkdir(parents=True)
        stack = Stack(
            home=home,
            namespace=namespace,
            nats_url=nats_url,
            database_urls={service: private_postgres.create_database(service) for service in SERVICES},
            store_env={
                "CUSTODY_OBJECT_STORE": f"s3://{s3_bucket.name}",
                "CUSTODY_S3_ENDPOINT": s3_proxy.endpoint,
                "CUSTODY_S3_ACCESS_KEY": server.access_key,
                "CUSTODY_S3_SECRET_KEY": server.secret_key,
                "CUSTODY_S3_REGION": server.region,
                "CUSTODY_S3_SECURE": "true" if server.secure else "false",
            },
            extra_env={"CUSTODY_UPLOAD_LOCK_TIMEOUT": str(UPLOAD_LOCK_TIMEOUT_SECONDS)},
        )
        stacks.append(stack)
        return stack

    try:
        yield build
    finally:
        for stack in stacks:
            stack.stop()


@pytest.fixture
def fault_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A private NATS server the scenario may kill and restart."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_stack(build_stack: StackBuilder, fault_nats: NatsServer) -> Stack:
    """The stack on the private NATS server, its namespace provisioned; not started."""
    namespace = f"f{uuid.uuid4().hex[:10]}"
    provision_namespace(fault_nats.url, namespace)
    return build_stack(fault_nats.url, namespace)
