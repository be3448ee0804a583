"""The S3 adapter against a real S3 server: what the server itself enforces, and what the adapter adds."""

from __future__ import annotations

import gc
import io
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from minio.commonconfig import GOVERNANCE
from minio.error import S3Error
from minio.objectlockconfig import DAYS, ObjectLockConfig
from minio.retention import COMPLIANCE, Retention

from custody_common.objectstore import ObjectLocked, ObjectStoreError, ObjectStoreUnavailable
from custody_common.objectstore.s3 import MIN_PART_SIZE, S3Store
from tests.support.s3 import S3Bucket, S3Server, remove_bucket_unless_locked, unfinished_uploads
from tests.support.streams import numbered_chunks, traced_memory

MIB = 1024 * 1024

pytestmark = pytest.mark.s3


def a_minute_from_now() -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=60)).replace(microsecond=0)


def test_the_server_refuses_to_delete_a_locked_version_even_when_asked_directly(
    s3_store: S3Store, s3_bucket: S3Bucket
) -> None:
    version_id = s3_store.put("sealed", b"ciphertext").version_id
    s3_store.lock("sealed", a_minute_from_now())
    client = s3_bucket.server.client()

    with pytest.raises(S3Error) as refused:
        client.remove_object(s3_bucket.name, "sealed", version_id=version_id)

    assert refused.value.code == "AccessDenied"
    assert s3_store.read_all("sealed") == b"ciphertext"


def test_the_server_refuses_to_shorten_compliance_retention(s3_store: S3Store, s3_bucket: S3Bucket) -> None:
    version_id = s3_store.put("sealed", b"ciphertext").version_id
    until = a_minute_from_now()
    s3_store.lock("sealed", until)
    client = s3_bucket.server.client()

    with pytest.raises(S3Error):
        client.set_object_retention(
            s3_bucket.name, "sealed", Retention(COMPLIANCE, until - timedelta(seconds=30)), version_id=version_id
        )
    with pytest.raises(S3Error):
        client.set_object_retention(s3_bucket.name, "sealed", Retention(GOVERNANCE, until), version_id=version_id)

    assert s3_store.retention("sealed") == until


def test_a_lock_applies_to_the_current_version(s3_store: S3Store, s3_bucket: S3Bucket) -> None:
    s3_store.put("item", b"first")
    current = s3_store.put("item", b"second").version_id

    s3_store.lock("item", a_minute_from_now())

    client = s3_bucket.server.client()
    versions = {
        found.version_id: found
        for found in client.list_objects(s3_bucket.name, prefix="item", include_version=True)
    }
    locked = [
        version_id
        for version_id in versions
        if client.stat_object(s3_bucket.name, "item", version_id=version_id).metadata.get(
            "x-amz-object-lock-mode"
        )
    ]
    assert locked == [current]


def test_delete_removes_every_version_and_leaves_no_marker(s3_store: S3Store, s3_bucket: S3Bucket) -> None:
    s3_store.put("upload/part", b"first attempt")
    s3_store.put("upload/part", b"second attempt")

    s3_store.delete("upload/part")

    client = s3_bucket.server.client()
    assert list(client.list_objects(s3_bucket.name, prefix="upload/", include_version=True)) == []


def test_delete_removes_nothing_when_an_older_version_is_locked(s3_store: S3Store, s3_bucket: S3Bucket) -> None:
    s3_store.put("sealed", b"ciphertext")
    s3_store.lock("sealed", a_minute_from_now())
    client = s3_bucket.server.client()
    # Someone with write credentials bypasses the adapter and stacks a version on top.
    client.put_object(s3_bucket.name, "sealed", io.BytesIO(b"forged"), 6)

    with pytest.raises(ObjectLocked):
        s3_store.delete("sealed")

    assert s3_store.read_all("sealed") == b"forged"
    assert len(list(client.list_objects(s3_bucket.name, prefix="sealed", include_version=True))) == 2


def test_a_failed_multipart_put_leaves_no_unfinished_upload(s3_store: S3Store, s3_bucket: S3Bucket) -> None:
    def failing_source() -> Iterator[bytes]:
        yield from numbered_chunks(40 * MIB)
        raise OSError("the sender's disk failed")

    with pytest.raises(OSError, match="sender's disk"):
        s3_store.put("evidence/x/parts/000001", failing_source())

    client = s3_bucket.server.client()
    assert unfinished_uploads(client, s3_bucket.name, "evidence/x/parts/000001") == []
    assert list(client.list_objects(s3_bucket.name, include_version=True)) == []


def test_multipart_put_memory_follows_the_part_size_not_the_object_size(s3_bucket: S3Bucket) -> None:
    store = s3_bucket.server.store(s3_bucket.name, part_size=MIN_PART_SIZE)
    size = 40 * MIB
    with traced_memory() as traced:
        info = store.put("large", numbered_chunks(size))

    assert info.size == size
    assert traced.peak < MIN_PART_SIZE + 3 * MIB, f"put held {traced.peak / MIB:.1f} MiB with 5 MiB parts"
    assert store.stat("large").size == size


def test_an_object_smaller_than_a_part_takes_a_buffer_of_its_own_size(s3_bucket: S3Bucket) -> None:
    store = s3_bucket.server.store(s3_bucket.name)  # 8 MiB parts
    size = 6 * MIB
    with traced_memory() as traced:
        info = store.put("small", numbered_chunks(size))

    assert info.size == size
    assert traced.peak < size + 3 * MIB, f"put held {traced.peak / MIB:.1f} MiB for a 6 MiB object"


def test_a_put_lets_go_of_its_buffer_before_the_garbage_collector_runs(s3_bucket: S3Bucket) -> None:
    # The SDK keeps the errors it raises (the 404 of the check before every put) in reference
    # cycles, and those keep the frames of put alive until the collector runs.
    store = s3_bucket.server.store(s3_bucket.name, part_size=MIN_PART_SIZE)
    gc.disable()
    try:
        with traced_memory() as traced:
            store.put("whole", numbered_chunks(3 * MIB))
            store.put("in-parts", numbered_chunks(12 * MIB))
    finally:
        gc.enable()

    assert traced.held < MIB, f"{traced.held / MIB:.1f} MiB still held after two puts returned"
    assert store.read_all("in-parts") == b"".join(numbered_chunks(12 * MIB))


def test_every_buffered_upload_request_carries_a_content_md5(s3_bucket: S3Bucket) -> None:
    store = s3_bucket.server.store(s3_bucket.name, part_size=MIN_PART_SIZE)
    trace = io.StringIO()
    store._client.trace_on(trace)  # the SDK's request trace, to see the headers sent

    store.put("small", b"manifest")
    store.put("large", numbered_chunks(11 * MIB))

    requests = trace.getvalue().split("---------START-HTTP---------")
    uploads = [request for request in requests if request.lstrip().startswith("PUT /")]
    assert len(uploads) == 1 + 3
    assert all("Content-Md5:" in request or "Content-MD5:" in request for request in uploads)
    assert store.read_all("small") == b"manifest"


def test_an_endpoint_where_nothing_listens_is_unavailable(s3_bucket: S3Bucket) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = s3_bucket.server
    store = S3Store(
        bucket="custody-nowhere",
        endpoint=f"127.0.0.1:{port}",
        access_key=server.access_key,
        secret_key=server.secret_key,
        connect_timeout=1.0,
        read_timeout=2.0,
    )

    with pytest.raises(ObjectStoreUnavailable):
        store.check()
    with pytest.raises(ObjectStoreUnavailable):
        store.put("item", b"x")
    with pytest.raises(ObjectStoreUnavailable):
        store.read("item")
    with pytest.raises(ObjectStoreUnavailable):
        list(store.list(""))


def test_check_reports_a_missing_bucket(s3_server: S3Server) -> None:
    store = s3_server.store(f"custody-missing-{uuid.uuid4().hex[:12]}")

    with pytest.raises(ObjectStoreUnavailable, match="does not exist"):
        store.check()
    with pytest.raises(ObjectStoreUnavailable, match="does not exist"):
        store.put("item", b"x")


def test_wrong_credentials_are_a_store_error_not_a_lock(s3_store: S3Store, s3_bucket: S3Bucket) -> None:
    s3_store.put("item", b"x")
    server = s3_bucket.server
    impostor = S3Store(s3_bucket.name, server.endpoint, server.access_key, "not-the-secret", secure=server.secure)

    with pytest.raises(ObjectStoreError, match="secret key") as raised:
        impostor.delete("item")

    assert not isinstance(raised.value, (ObjectLocked, ObjectStoreUnavailable))
    assert s3_store.read_all("item") == b"x"


def test_ensure_bucket_creates_a_bucket_with_object_lock_and_no_default_retention(s3_server: S3Server) -> None:
    name = f"custody-test-{uuid.uuid4().hex[:20]}"
    store = s3_server.store(name)
    try:
        store.ensure_bucket()
        store.ensure_bucket()

        client = s3_server.client()
        assert client.get_bucket_versioning(name).status == "Enabled"
        assert client.get_object_lock_config(name).mode is None
        store.check()
    finally:
        remove_bucket_unless_locked(s3_server.client(), name)


def test_a_bucket_without_object_lock_is_refused(s3_server: S3Server) -> None:
    name = f"custody-test-{uuid.uuid4().hex[:20]}"
    client = s3_server.client()
    client.make_bucket(name)
    try:
        with pytest.raises(ObjectStoreError, match="no Object Lock"):
            s3_server.store(name).ensure_bucket()
    finally:
        remove_bucket_unless_locked(client, name)


def test_a_bucket_with_default_retention_is_refused(s3_server: S3Server) -> None:
    name = f"custody-test-{uuid.uuid4().hex[:20]}"
    client = s3_server.client()
    client.make_bucket(name, object_lock=True)
    client.set_object_lock_config(name, ObjectLockConfig(GOVERNANCE, 1, DAYS))
    try:
        with pytest.raises(ObjectStoreError, match="default retention"):
            s3_server.store(name).verify_bucket()
    finally:
        remove_bucket_unless_locked(client, name)


def test_retention_set_by_another_client_is_read_despite_nine_fractional_digits(
    s3_store: S3Store, s3_bucket: S3Bucket
) -> None:
    version_id = s3_store.put("sealed", b"ciphertext").version_id
    until = (datetime.now(UTC) + timedelta(seconds=60)).replace(microsecond=678_000)
    s3_bucket.server.client().set_object_retention(
        s3_bucket.name, "sealed", Retention(COMPLIANCE, until), version_id=version_id
    )

    assert s3_store.retention("sealed") == until
