"""The two configurations the bench measures, each a whole stack of real service processes:
the embedded default (SQLite files, a local folder) and PostgreSQL + S3 (a fresh database per
service on the local PostgreSQL, a fresh bucket with Object Lock on the S3 server the bench was
given). Both share the local NATS under a namespace of their own. Everything is removed afterwards."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.processes import ceph_pids
from custody_common.objectstore import ObjectStore, open_object_store
from custody_common.settings import Settings
from tests.support.nats import NATS_URL, provision_namespace, remove_namespace
from tests.support.postgres import create_database, drop_database
from tests.support.s3 import S3Server, remove_bucket_unless_locked
from tests.support.stack import SERVICES, Stack

EMBEDDED = "embedded"
POSTGRES_S3 = "postgres-s3"
CONFIGURATIONS = (EMBEDDED, POSTGRES_S3)
TITLES = {EMBEDDED: "embedded default (SQLite, local folder)", POSTGRES_S3: "PostgreSQL + S3 (Ceph RGW)"}

RETENTION_SECONDS = int(os.environ.get("CUSTODY_BENCH_RETENTION_SECONDS", 120))
"""WORM retention of what the bench seals: long enough to be real Object Lock, short enough that
the bench can delete its bucket when it is done."""


@dataclass
class Deployment:
    """A running stack and what the baselines need to reach the same database server and store."""

    kind: str
    stack: Stack
    work: Path
    """Scratch folder for files the bench writes (inputs, downloads)."""
    s3: S3Server | None = None
    bucket: str | None = None
    extra_databases: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    @property
    def store_settings(self) -> Settings:
        """Settings that open the stack's object store."""
        env = self.stack.env()
        return Settings(
            home=self.stack.home,
            object_store=env.get("CUSTODY_OBJECT_STORE"),
            s3_endpoint=env.get("CUSTODY_S3_ENDPOINT"),
            s3_access_key=env.get("CUSTODY_S3_ACCESS_KEY"),
            s3_secret_key=env.get("CUSTODY_S3_SECRET_KEY"),
            s3_region=env.get("CUSTODY_S3_REGION", "us-east-1"),
            s3_secure=env.get("CUSTODY_S3_SECURE") == "true",
        )

    def store(self) -> ObjectStore:
        """The stack's object store, as the services open it."""
        return open_object_store(self.store_settings)

    def fresh_database(self) -> str:
        """A new empty database on the stack's PostgreSQL, dropped with the deployment."""
        url = create_database()
        self.extra_databases.append(url)
        return url

    def pids(self) -> dict[str, int]:
        return {service: self.stack.processes[service].pid for service in SERVICES}

    def store_pids(self) -> dict[str, tuple[int, ...]]:
        """The S3 server's processes, where it runs on this machine (a Ceph RGW), by one name."""
        daemons = ceph_pids() if self.s3 is not None else ()
        return {"S3 server": daemons} if daemons else {}


@contextmanager
def deployment(
    kind: str, work: Path, later: ExitStack, s3: S3Server | None = None, service_env: dict[str, str] | None = None
) -> Iterator[Deployment]:
    """Start the stack of configuration ``kind`` (all three services ready) in ``work``; stop it
    and remove its namespace and databases afterwards. Its bucket is removed when ``later``
    closes, once the retention of what the bench sealed has run out. ``service_env`` is added to
    the environment of the services and of the ``custody`` command."""
    work.mkdir(parents=True, exist_ok=True)
    namespace = f"bench{uuid.uuid4().hex[:10]}"
    with ExitStack() as cleanup:
        provision_namespace(NATS_URL, namespace)
        cleanup.callback(remove_namespace, NATS_URL, namespace)
        database_urls: dict[str, str] = {}
        store_env: dict[str, str] = {}
        bucket = None
        if kind == POSTGRES_S3:
            if s3 is None:
                raise ValueError("the PostgreSQL + S3 configuration needs an S3 server")
            for service in SERVICES:
                database_urls[service] = create_database()
                cleanup.callback(drop_database, database_urls[service])
            bucket = f"custody-bench-{uuid.uuid4().hex[:16]}"
            s3.store(bucket).ensure_bucket()
            if not s3.private:
                later.callback(_remove_bucket, s3, bucket)
            store_env = {
                "CUSTODY_OBJECT_STORE": f"s3://{bucket}",
                "CUSTODY_S3_ENDPOINT": s3.endpoint,
                "CUSTODY_S3_ACCESS_KEY": s3.access_key,
                "CUSTODY_S3_SECRET_KEY": s3.secret_key,
                "CUSTODY_S3_REGION": s3.region,
                "CUSTODY_S3_SECURE": "true" if s3.secure else "false",
            }
        elif kind != EMBEDDED:
            raise ValueError(f"unknown configuration {kind!r}; choose from {', '.join(CONFIGURATIONS)}")
        home = work / "home"
        home.mkdir(parents=True, exist_ok=True)
        stack = Stack(
            home=home,
            namespace=namespace,
            nats_url=NATS_URL,
            database_urls=database_urls,
            store_env=store_env,
            extra_env={
                "CUSTODY_RETENTION": f"PT{RETENTION_SECONDS}S",
                "CUSTODY_MAX_UPLOAD_SIZE": str(64 * 1024**3),
                **(service_env or {}),
            },
        )
        found = Deployment(kind=kind, stack=stack, work=work, s3=s3, bucket=bucket)
        cleanup.callback(lambda: [drop_database(url) for url in found.extra_databases])
        cleanup.callback(stack.stop)
        stack.start()
        yield found


def _remove_bucket(server: S3Server, bucket: str) -> None:
    """Delete the bucket; what is still under retention is waited out (bounded by the
    retention), so the bench leaves nothing locked behind."""
    client = server.client()
    deadline = time.monotonic() + RETENTION_SECONDS + 60
    while True:
        remove_bucket_unless_locked(client, bucket)
        if not client.bucket_exists(bucket):
            return
        if time.monotonic() > deadline:
            print(f"bench: bucket {bucket} still holds locked versions; it is left behind", flush=True)
            return
        time.sleep(5)
