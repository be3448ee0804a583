"""One PATCH body becomes one encrypted stored part, streamed with bounded memory, on a local
folder and on a real S3 server; a part that fails its checksum or is abandoned leaves nothing."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from custody_common.crypto.envelope import new_data_key
from custody_common.crypto.stream import ciphertext_size, decrypt_part
from custody_common.errors import IntegrityError
from custody_common.objectstore import ObjectInfo, ObjectNotFound, ObjectStore
from custody_common.objectstore.local import LocalFolderStore
from custody_intake.uploads.errors import ChecksumMismatch, UploadTooLarge
from custody_intake.uploads.parts import BLOCK, DEPTH, PartWriter
from custody_intake.uploads.protocol import parse_checksum
from tests.support.submissions import upload_checksum

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


def writer_for(  # type: ignore[no-untyped-def]
    store: ObjectStore, executor, *, offset: int = 0, limit: int = 64 * MIB, checksum=None, dek=None, size=None
):
    evidence_id = uuid.uuid4()
    dek = dek or new_data_key()
    writer = PartWriter(
        store,
        executor,
        evidence_id=evidence_id,
        index=3,
        attempt="attempt",
        offset=offset,
        dek=dek,
        limit=limit,
        checksum=checksum,
        size=size,
    )
    return writer, evidence_id, dek


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


ANNOUNCED = pytest.mark.parametrize("announced", [False, True], ids=["length unknown", "length known"])


@ANNOUNCED
@pytest.mark.parametrize("size, chunk", [(1, 1), (65536, 65536), (3 * MIB + 17, 65521), (BLOCK * 2, BLOCK)])
async def test_a_part_decrypts_to_the_body(
    any_store: ObjectStore, executor, size: int, chunk: int, announced: bool
) -> None:
    data = os.urandom(size)
    writer, evidence_id, dek = writer_for(any_store, executor, offset=5 * MIB, size=size if announced else None)
    for piece in pieces(data, chunk):
        await writer.write(piece)
    part = await writer.finish()
    assert (part.index, part.offset, part.size) == (3, 5 * MIB, size)
    assert part.key == f"evidence/{evidence_id}/parts/000003-attempt"
    assert part.stored_size == ciphertext_size(size) == any_store.stat(part.key).size
    stored = b"".join(any_store.read(part.key))
    assert size < 32 or data[:32] not in stored
    assert b"".join(decrypt_part(dek, evidence_id, 5 * MIB, [stored])) == data
    with pytest.raises(IntegrityError):
        b"".join(decrypt_part(dek, evidence_id, 0, [stored]))  # bound to its offset


@pytest.mark.parametrize("algorithm", ["crc32", "sha256", "sha1"])
async def test_a_matching_checksum_keeps_the_part(local_store: LocalFolderStore, executor, algorithm: str) -> None:
    data = os.urandom(2 * MIB + 5)
    checksum = parse_checksum(upload_checksum(data, algorithm))
    writer, evidence_id, dek = writer_for(local_store, executor, checksum=checksum)
    for piece in pieces(data, 100_000):
        await writer.write(piece)
    part = await writer.finish()
    assert b"".join(decrypt_part(dek, evidence_id, 0, local_store.read(part.key))) == data


@ANNOUNCED
async def test_a_mismatching_checksum_keeps_nothing(any_store: ObjectStore, executor, announced: bool) -> None:
    data = os.urandom(3 * MIB)
    checksum = parse_checksum(upload_checksum(data + b"!", "sha256"))
    writer, _, _ = writer_for(any_store, executor, checksum=checksum, size=len(data) if announced else None)
    for piece in pieces(data, 65536):
        await writer.write(piece)
    with pytest.raises(ChecksumMismatch, match="nothing of it was kept"):
        await writer.finish()
    with pytest.raises(ObjectNotFound):
        any_store.stat(writer.key)


@ANNOUNCED
async def test_an_abandoned_part_keeps_nothing(any_store: ObjectStore, executor, announced: bool) -> None:
    # Announced, the abandoned body is shorter than said: a PATCH whose connection broke.
    writer, _, _ = writer_for(any_store, executor, size=4 * MIB if announced else None)
    for piece in pieces(os.urandom(3 * MIB), 65536):
        await writer.write(piece)
    await writer.abandon()
    with pytest.raises(ObjectNotFound):
        any_store.stat(writer.key)


async def test_abandoning_before_any_block_is_a_no_op(local_store: LocalFolderStore, executor) -> None:
    writer, _, _ = writer_for(local_store, executor)
    await writer.write(b"small")
    await writer.abandon()
    assert list(local_store.list("evidence/")) == []


async def test_bytes_past_the_limit_are_refused(local_store: LocalFolderStore, executor) -> None:
    writer, _, _ = writer_for(local_store, executor, limit=100)
    await writer.write(b"x" * 100)
    with pytest.raises(UploadTooLarge, match="Upload-Length"):
        await writer.write(b"y")
    await writer.abandon()
    assert list(local_store.list("evidence/")) == []


async def test_an_empty_part_is_never_stored(local_store: LocalFolderStore, executor) -> None:
    writer, _, _ = writer_for(local_store, executor)
    await writer.write(b"")
    with pytest.raises(ValueError):
        await writer.finish()


class HeldStore:
    """A local folder whose writes wait until the test lets them go."""

    def __init__(self, inner: LocalFolderStore) -> None:
        self.inner = inner
        self.go = threading.Event()

    def put(self, key: str, data: Iterable[bytes], *, size: int | None = None) -> ObjectInfo:  # type: ignore[override]
        self.go.wait()
        return self.inner.put(key, data, size=size)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


async def test_memory_stays_bounded_while_the_store_is_slow(local_store: LocalFolderStore, executor) -> None:
    store = HeldStore(local_store)
    writer, evidence_id, dek = writer_for(store, executor)  # type: ignore[arg-type]
    data = os.urandom(16 * MIB)

    async def send() -> None:
        for piece in pieces(data, 65536):
            await writer.write(piece)

    sender = asyncio.create_task(send())
    ceiling = (DEPTH + 1) * BLOCK
    for _ in range(2000):
        if writer.received >= ceiling:
            break
        await asyncio.sleep(0.005)
    for _ in range(20):
        await asyncio.sleep(0.005)
    # The store takes nothing: the sender stalls once DEPTH blocks wait and one more is pending.
    assert writer.received == ceiling and not sender.done()
    store.go.set()
    await sender
    part = await writer.finish()
    assert b"".join(decrypt_part(dek, evidence_id, 0, local_store.read(part.key))) == data


async def test_a_failing_store_stops_the_sender(tmp_path, executor) -> None:
    class BrokenStore(HeldStore):
        def put(self, key, data, *, size=None):  # type: ignore[no-untyped-def]
            from custody_common.objectstore import ObjectStoreUnavailable

            raise ObjectStoreUnavailable("disk gone")

    store = BrokenStore(LocalFolderStore(tmp_path / "objects"))
    writer, _, _ = writer_for(store, executor)  # type: ignore[arg-type]
    from custody_intake.uploads.errors import StorageUnavailable

    with pytest.raises(StorageUnavailable, match="retry from the same offset"):
        for piece in pieces(os.urandom(16 * MIB), 65536):
            await writer.write(piece)
        await writer.finish()
