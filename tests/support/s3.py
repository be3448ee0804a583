"""A real S3 server with Object Lock for tests, a fresh bucket per test, and object stores on it.

``CUSTODY_TEST_S3_ENDPOINT`` (with ``CUSTODY_TEST_S3_ACCESS_KEY``, ``CUSTODY_TEST_S3_SECRET_KEY``
and optionally ``CUSTODY_TEST_S3_REGION``, ``CUSTODY_TEST_S3_SECURE``) names a server to use,
such as MinIO or AWS. Without it each test session starts a Ceph RGW of its own with
``shared/s3/start-rgw.sh`` beside the repository: a fresh data folder, free loopback ports, stopped
and wiped when the session ends (or by the next session, if this one was killed), so no run
depends on what an earlier one left behind.

Locked objects cannot be deleted, even by tests: buckets that still hold locked versions after a
test are left behind (on a server of the session's own, until the session ends); everything else a
test wrote is removed.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import urllib3
from minio import Minio
from minio.error import S3Error

from custody_common.objectstore.base import ObjectStore
from custody_common.objectstore.local import LocalFolderStore
from custody_common.objectstore.s3 import S3Store, parse_endpoint
from tests.support import SHARED
from tests.support.nats import free_ports

START_RGW = SHARED / "s3" / "start-rgw.sh"
STOP_RGW = START_RGW.with_name("stop-rgw.sh")

_START_TIMEOUT_SECONDS = 900
_OWNER = "owner.pid"
"""In a private RGW's folder: the process it was started for."""


@dataclass(frozen=True)
class S3Server:
    """How to reach the S3 server tests use."""

    endpoint: str
    """``host:port``, without a scheme."""
    access_key: str
    secret_key: str
    region: str
    secure: bool
    private: bool = False
    """Started for its caller alone and wiped when it stops: nothing left on it outlives the run."""

    @property
    def url(self) -> str:
        """``http(s)://host:port``."""
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    def client(self) -> Minio:
        """A plain minio client, for checking what the server itself allows."""
        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=self.secure,
            region=self.region,
            http_client=urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=5, read=60), retries=urllib3.Retry(total=2, backoff_factor=0.2)
            ),
        )

    def store(self, bucket: str, **options: object) -> S3Store:
        """An S3Store on ``bucket`` of this server."""
        return S3Store(
            bucket=bucket,
            endpoint=self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
            secure=self.secure,
            **options,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class S3Bucket:
    """A bucket with versioning and Object Lock (no default retention), made for one test."""

    name: str
    server: S3Server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The S3 server of this test session: ``CUSTODY_TEST_S3_ENDPOINT``, or a Ceph RGW of its own."""
    with running_s3_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[S3Bucket]:
    """A fresh, uniquely named bucket with Object Lock; emptied and removed afterwards unless locked versions remain."""
    name = f"custody-test-{uuid.uuid4().hex[:20]}"
    s3_server.store(name).ensure_bucket()
    yield S3Bucket(name=name, server=s3_server)
    remove_bucket_unless_locked(s3_server.client(), name)


@pytest.fixture
def s3_store(s3_bucket: S3Bucket) -> S3Store:
    """An S3Store on this test's own bucket."""
    return s3_bucket.server.store(s3_bucket.name)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalFolderStore:
    """A LocalFolderStore on this test's own folder."""
    return LocalFolderStore(tmp_path / "objects")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def any_store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each adapter in turn, so one contract test runs on a local folder and on a real S3 server."""
    store: ObjectStore = request.getfixturevalue(f"{request.param}_store")
    return store


def unfinished_uploads(client: Minio, bucket: str, key: str) -> list[str]:
    """Upload ids of multipart uploads of ``key`` that were neither completed nor aborted."""
    # The SDK lists multipart uploads only through this internal call.
    listing = client._list_multipart_uploads(bucket, prefix=key)
    return [upload.upload_id for upload in listing.uploads if upload.object_name == key]


def remove_bucket_unless_locked(client: Minio, bucket: str) -> None:
    """Delete every version and unfinished upload that the server lets go, then the bucket if it is empty."""
    try:
        for found in list(client.list_objects(bucket, recursive=True, include_version=True)):
            try:
                client.remove_object(bucket, found.object_name, version_id=found.version_id)
            except S3Error as exc:
                if exc.code != "AccessDenied":
                    raise
        for upload in client._list_multipart_uploads(bucket).uploads:
            client._abort_multipart_upload(bucket, upload.object_name, upload.upload_id)
        client.remove_bucket(bucket)
    except S3Error as exc:
        if exc.code not in ("BucketNotEmpty", "NoSuchBucket"):
            raise


def _server_from_environment(endpoint: str) -> S3Server:
    access_key = os.environ.get("CUSTODY_TEST_S3_ACCESS_KEY")
    secret_key = os.environ.get("CUSTODY_TEST_S3_SECRET_KEY")
    if not access_key or not secret_key:
        pytest.fail(
            "CUSTODY_TEST_S3_ENDPOINT is set: set CUSTODY_TEST_S3_ACCESS_KEY and CUSTODY_TEST_S3_SECRET_KEY too"
        )
    secure_default = os.environ.get("CUSTODY_TEST_S3_SECURE", "").lower() in ("1", "true", "yes")
    host, secure = parse_endpoint(endpoint, secure_default)
    return S3Server(
        endpoint=host,
        access_key=access_key,
        secret_key=secret_key,
        region=os.environ.get("CUSTODY_TEST_S3_REGION", "us-east-1"),
        secure=secure,
    )


@contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """``CUSTODY_TEST_S3_ENDPOINT``, or a Ceph RGW of this caller's own, started on free loopback
    ports in a fresh folder and stopped and wiped on exit."""
    endpoint = os.environ.get("CUSTODY_TEST_S3_ENDPOINT")
    if endpoint:
        yield _server_from_environment(endpoint)
        return
    if not START_RGW.is_file():
        pytest.fail(
            f"no S3 server: {START_RGW} is missing; set CUSTODY_TEST_S3_ENDPOINT or put shared/s3 beside the repository"
        )
    remove_abandoned_rgws()
    data = Path(tempfile.mkdtemp(prefix="custody-rgw-"))
    (data / _OWNER).write_text(str(os.getpid()))
    rgw_port, mon_port_v2, mon_port_v1 = free_ports(3)
    environment = {
        **os.environ,
        "CEPH_RGW_DATA": str(data),
        "RGW_PORT": str(rgw_port),
        "MON_PORT_V2": str(mon_port_v2),
        "MON_PORT_V1": str(mon_port_v1),
    }
    # Locked objects cannot be deleted and accumulate: keep them on disk, not in RAM.
    environment.setdefault("OBJECTSTORE", "bluestore")
    try:
        yield _start_rgw(environment, data)
    finally:
        _stop_and_wipe(data)


def remove_abandoned_rgws() -> None:
    """Stop and wipe the private RGWs of test sessions that ended without doing it (killed, say),
    so their daemons do not outlive them; those of running sessions are left alone."""
    for folder in Path(tempfile.gettempdir()).glob("custody-rgw-*"):
        try:
            owner = int((folder / _OWNER).read_text())
        except (OSError, ValueError):
            continue  # not one of ours, or being set up right now
        if not _alive(owner):
            _stop_and_wipe(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process
    return True


def _stop_and_wipe(data: Path) -> None:
    subprocess.run(
        ["bash", str(STOP_RGW)],
        env={**os.environ, "CEPH_RGW_DATA": str(data), "WIPE": "1"},
        capture_output=True,
        timeout=120,
        check=False,
    )


def _start_rgw(environment: dict[str, str], data: Path) -> S3Server:
    # Only the first start on a machine installs packages; two at once would fight over apt.
    with _machine_wide_lock(Path(tempfile.gettempdir()) / "custody-rgw-start.lock"):
        started = subprocess.run(
            ["bash", str(START_RGW)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT_SECONDS,
            check=False,
        )
    if started.returncode != 0:
        pytest.fail(
            f"{START_RGW} failed (exit {started.returncode}):\n{started.stderr[-4000:]}{_log_tails(data / 'log')}"
        )
    found = {
        name: re.search(rf"^\s*{name}:\s+(\S+)", started.stdout, re.MULTILINE)
        for name in ("endpoint", "access key", "secret key")
    }
    missing = [name for name, match in found.items() if match is None]
    if missing:
        pytest.fail(f"{START_RGW} printed no {', '.join(missing)}:\n{started.stdout[-4000:]}")
    host, secure = parse_endpoint(found["endpoint"].group(1), False)  # type: ignore[union-attr]
    return S3Server(
        endpoint=host,
        access_key=found["access key"].group(1),  # type: ignore[union-attr]
        secret_key=found["secret key"].group(1),  # type: ignore[union-attr]
        region="us-east-1",
        secure=secure,
        private=True,
    )


def _log_tails(folder: Path, lines: int = 15) -> str:
    """The last lines of each daemon's log, since the folder is wiped after a failed start."""
    tails = []
    for log in sorted(folder.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        tails.append(f"\n--- {log.name}\n" + "\n".join(tail))
    return "".join(tails)


@contextmanager
def _machine_wide_lock(path: Path) -> Iterator[None]:
    """Serialise RGW start-ups between test sessions on this machine (the script itself does not)."""
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
