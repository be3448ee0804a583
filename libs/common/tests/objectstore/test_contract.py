"""The object-store port's contract, run against every adapter: a local folder and a real S3 server."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from custody_common.objectstore import ObjectLocked, ObjectNotFound, ObjectStore, ObjectStoreError
from custody_common.objectstore.streams import CHUNK_SIZE
from tests.support.streams import numbered_chunks, sha256_of, traced_memory

MIB = 1024 * 1024


class SourceFailed(Exception):
    """Raised by a test's data source midway through an upload."""


def a_minute_from_now() -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=60)).replace(microsecond=250_000)


def test_put_read_stat_list_delete_round_trip(any_store: ObjectStore) -> None:
    first = b"first part of the ciphertext"
    second = random.Random(1).randbytes(3 * MIB + 5)

    info = any_store.put("evidence/a/parts/000001", first)
    any_store.put("evidence/a/parts/000002", second)
    any_store.put("evidence/b/manifest", b"{}")

    assert (info.key, info.size) == ("evidence/a/parts/000001", len(first))
    assert any_store.stat("evidence/a/parts/000002").size == len(second)
    assert any_store.read_all("evidence/a/parts/000001") == first
    assert b"".join(any_store.read("evidence/a/parts/000002")) == second
    assert list(any_store.list("evidence/a/")) == ["evidence/a/parts/000001", "evidence/a/parts/000002"]
    assert list(any_store.list("evidence/a/parts/00000")) == ["evidence/a/parts/000001", "evidence/a/parts/000002"]
    assert list(any_store.list("evidence/")) == [
        "evidence/a/parts/000001",
        "evidence/a/parts/000002",
        "evidence/b/manifest",
    ]
    assert list(any_store.list("nothing/here/")) == []

    any_store.delete("evidence/a/parts/000001")

    with pytest.raises(ObjectNotFound):
        any_store.stat("evidence/a/parts/000001")
    with pytest.raises(ObjectNotFound):
        any_store.read("evidence/a/parts/000001")
    assert list(any_store.list("evidence/")) == ["evidence/a/parts/000002", "evidence/b/manifest"]


def test_list_is_in_lexical_order_across_folders(any_store: ObjectStore) -> None:
    keys = ["a-c", "a/b", "a/a", "a0", "b"]
    for key in keys:
        any_store.put(key, key.encode())

    assert list(any_store.list("")) == sorted(keys)
    assert list(any_store.list("a")) == ["a-c", "a/a", "a/b", "a0"]


def test_put_accepts_bytes_files_and_iterables_of_any_bytes_like(any_store: ObjectStore) -> None:
    any_store.put("from/file", io.BytesIO(b"x" * (CHUNK_SIZE + 3)))
    any_store.put("from/chunks", iter([b"ab", bytearray(b"cd"), memoryview(b"ef"), b""]))
    any_store.put("from/bytearray", bytearray(b"gh"))
    any_store.put("from/empty", b"")
    any_store.put("from/empty-stream", iter([]))

    assert any_store.read_all("from/file") == b"x" * (CHUNK_SIZE + 3)
    assert any_store.read_all("from/chunks") == b"abcdef"
    assert any_store.read_all("from/bytearray") == b"gh"
    assert any_store.stat("from/empty").size == 0
    assert any_store.read_all("from/empty") == b""
    assert any_store.read_all("from/empty-stream") == b""


def test_put_refuses_text(any_store: ObjectStore) -> None:
    with pytest.raises(TypeError):
        any_store.put("text", "not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        any_store.put("text", iter(["not bytes"]))  # type: ignore[list-item]
    with pytest.raises(ObjectNotFound):
        any_store.stat("text")


def test_put_replaces_an_unlocked_object(any_store: ObjectStore) -> None:
    any_store.put("item", b"old bytes")
    any_store.put("item", b"new")

    assert any_store.read_all("item") == b"new"
    assert any_store.stat("item").size == 3
    assert list(any_store.list("")) == ["item"]


def test_streaming_put_of_40_mib_keeps_memory_bounded(any_store: ObjectStore) -> None:
    size = 40 * MIB
    with traced_memory() as traced:
        info = any_store.put("large", numbered_chunks(size))

    assert info.size == size
    assert traced.peak < 24 * MIB, f"put held {traced.peak / MIB:.1f} MiB for a {size // MIB} MiB stream"
    assert any_store.stat("large").size == size
    assert sha256_of(any_store.read("large")) == sha256_of(numbered_chunks(size))


def test_streaming_read_keeps_memory_bounded(any_store: ObjectStore) -> None:
    size = 24 * MIB
    any_store.put("large", numbered_chunks(size))

    with traced_memory() as traced:
        read = 0
        for chunk in any_store.read("large"):
            assert len(chunk) <= CHUNK_SIZE
            read += len(chunk)

    assert read == size
    assert traced.peak < 8 * MIB, f"read held {traced.peak / MIB:.1f} MiB of a {size // MIB} MiB object"


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (0, None),
        (0, 10),
        (5, 100),
        (CHUNK_SIZE - 1, 2),
        (CHUNK_SIZE, CHUNK_SIZE + 1),
        (3 * MIB + 16, 1),
        (3 * MIB + 16, None),
        (3 * MIB, 100),
        (3 * MIB + 17, None),
        (3 * MIB + 17, 5),
        (7, 0),
    ],
)
def test_range_reads(any_store: ObjectStore, offset: int, length: int | None) -> None:
    content = random.Random(2).randbytes(3 * MIB + 17)
    any_store.put("ranged", content)

    chunks = list(any_store.read("ranged", offset, length))

    end = len(content) if length is None else offset + length
    assert b"".join(chunks) == content[offset:end]
    assert all(0 < len(chunk) <= CHUNK_SIZE for chunk in chunks)


def test_last_byte_alone(any_store: ObjectStore) -> None:
    any_store.put("tiny", b"abc")

    assert b"".join(any_store.read("tiny", 2, 1)) == b"c"
    assert b"".join(any_store.read("tiny", 2)) == b"c"


def test_range_beyond_the_end_is_refused(any_store: ObjectStore) -> None:
    any_store.put("tiny", b"abc")

    with pytest.raises(ValueError, match="beyond the end"):
        any_store.read("tiny", 4)
    with pytest.raises(ValueError, match="beyond the end"):
        any_store.read("tiny", 4, 1)
    with pytest.raises(ValueError):
        any_store.read("tiny", -1)
    with pytest.raises(ValueError):
        any_store.read("tiny", 0, -1)


def test_reading_a_missing_object_fails_at_once(any_store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        any_store.read("missing")
    with pytest.raises(ObjectNotFound):
        any_store.read("missing", 0, 0)
    with pytest.raises(ObjectNotFound):
        any_store.read_all("missing")
    with pytest.raises(ObjectNotFound):
        any_store.stat("missing")


def test_a_put_of_announced_size_is_stored_without_a_buffer(any_store: ObjectStore) -> None:
    size = 40 * MIB
    with traced_memory() as traced:
        info = any_store.put("large", numbered_chunks(size), size=size)

    assert info.size == size
    assert traced.peak < 4 * MIB, f"put held {traced.peak / MIB:.1f} MiB of a {size // MIB} MiB stream of known size"
    assert sha256_of(any_store.read("large")) == sha256_of(numbered_chunks(size))


@pytest.mark.parametrize("held", [MIB - 1, MIB + 1, 0])
def test_a_put_whose_data_differs_from_its_announced_size_stores_nothing(any_store: ObjectStore, held: int) -> None:
    with pytest.raises(ObjectStoreError, match="announced"):
        any_store.put("evidence/c/parts/000001", numbered_chunks(held), size=MIB)

    with pytest.raises(ObjectNotFound):
        any_store.stat("evidence/c/parts/000001")
    assert list(any_store.list("")) == []


@pytest.mark.parametrize("announced", [False, True], ids=["size unknown", "size announced"])
@pytest.mark.parametrize("before_failure", [10, 20 * MIB])
def test_a_put_whose_source_fails_leaves_no_object(
    any_store: ObjectStore, before_failure: int, announced: bool
) -> None:
    failure = SourceFailed("the investigator's connection dropped")

    def failing_source() -> Iterator[bytes]:
        yield from numbered_chunks(before_failure)
        raise failure

    with pytest.raises(SourceFailed) as raised:
        any_store.put("evidence/c/parts/000001", failing_source(), size=32 * MIB if announced else None)

    assert raised.value is failure
    with pytest.raises(ObjectNotFound):
        any_store.stat("evidence/c/parts/000001")
    assert list(any_store.list("")) == []


def test_a_failed_overwrite_keeps_the_old_object(any_store: ObjectStore) -> None:
    any_store.put("manifest", b"version one")

    def failing_source() -> Iterator[bytes]:
        yield from numbered_chunks(20 * MIB)
        raise SourceFailed("disk of the sender failed")

    with pytest.raises(SourceFailed):
        any_store.put("manifest", failing_source())

    assert any_store.read_all("manifest") == b"version one"
    assert list(any_store.list("")) == ["manifest"]


def test_a_locked_object_can_be_neither_replaced_nor_deleted(any_store: ObjectStore) -> None:
    any_store.put("sealed", b"ciphertext")
    until = a_minute_from_now()

    any_store.lock("sealed", until)

    assert any_store.retention("sealed") == until
    with pytest.raises(ObjectLocked):
        any_store.put("sealed", b"forged")
    with pytest.raises(ObjectLocked):
        any_store.put("sealed", numbered_chunks(20 * MIB))
    with pytest.raises(ObjectLocked):
        any_store.delete("sealed")
    assert any_store.read_all("sealed") == b"ciphertext"


def test_retention_is_kept_to_the_millisecond_rounded_up(any_store: ObjectStore) -> None:
    any_store.put("sealed", b"ciphertext")
    until = a_minute_from_now().replace(microsecond=123_456)

    any_store.lock("sealed", until)

    assert any_store.retention("sealed") == until.replace(microsecond=124_000)


def test_retention_can_be_extended_but_never_shortened(any_store: ObjectStore) -> None:
    any_store.put("sealed", b"ciphertext")
    until = a_minute_from_now()
    any_store.lock("sealed", until)

    with pytest.raises(ObjectLocked):
        any_store.lock("sealed", until - timedelta(seconds=30))
    any_store.lock("sealed", until + timedelta(seconds=30))

    assert any_store.retention("sealed") == until + timedelta(seconds=30)


def test_locking_again_with_the_same_date_is_harmless(any_store: ObjectStore) -> None:
    any_store.put("sealed", b"ciphertext")
    until = a_minute_from_now().replace(microsecond=123_456)
    any_store.lock("sealed", until)

    any_store.lock("sealed", until)

    assert any_store.retention("sealed") == until.replace(microsecond=124_000)


def test_lock_needs_a_future_date_with_a_time_zone(any_store: ObjectStore) -> None:
    any_store.put("item", b"x")

    with pytest.raises(ValueError, match="time zone"):
        any_store.lock("item", datetime.now() + timedelta(days=1))  # noqa: DTZ005 - the point of the test
    with pytest.raises(ValueError, match="future"):
        any_store.lock("item", datetime.now(UTC) - timedelta(seconds=1))
    assert any_store.retention("item") is None


def test_a_legal_hold_blocks_deletion_until_released(any_store: ObjectStore) -> None:
    any_store.put("held", b"ciphertext")
    assert any_store.legal_hold("held") is False

    any_store.set_legal_hold("held", True)

    assert any_store.legal_hold("held") is True
    with pytest.raises(ObjectLocked):
        any_store.delete("held")
    with pytest.raises(ObjectLocked):
        any_store.put("held", b"forged")

    any_store.set_legal_hold("held", False)

    assert any_store.legal_hold("held") is False
    any_store.delete("held")
    with pytest.raises(ObjectNotFound):
        any_store.stat("held")


def test_a_legal_hold_outlasts_its_release_while_retention_runs(any_store: ObjectStore) -> None:
    any_store.put("sealed", b"ciphertext")
    any_store.lock("sealed", a_minute_from_now())
    any_store.set_legal_hold("sealed", True)

    any_store.set_legal_hold("sealed", False)

    with pytest.raises(ObjectLocked):
        any_store.delete("sealed")


def test_unlocked_objects_report_no_retention_and_no_hold(any_store: ObjectStore) -> None:
    any_store.put("item", b"x")

    assert any_store.retention("item") is None
    assert any_store.legal_hold("item") is False


def test_lock_state_of_a_missing_object_is_not_found(any_store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        any_store.lock("missing", a_minute_from_now())
    with pytest.raises(ObjectNotFound):
        any_store.retention("missing")
    with pytest.raises(ObjectNotFound):
        any_store.set_legal_hold("missing", True)
    with pytest.raises(ObjectNotFound):
        any_store.legal_hold("missing")


def test_deleting_a_missing_key_is_no_error(any_store: ObjectStore) -> None:
    any_store.delete("never/written")
    any_store.put("once", b"x")
    any_store.delete("once")
    any_store.delete("once")


@pytest.mark.parametrize(
    "key",
    ["../x", "a/../../x", "/etc/passwd", "", "a//b", "a/", "a/./b", ".locks/x", "a/.tmp-1", "a\\b", "a\x00b"],
)
def test_keys_that_could_escape_or_collide_are_refused(any_store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        any_store.put(key, b"x")
    with pytest.raises(ValueError):
        any_store.read(key)
    with pytest.raises(ValueError):
        any_store.stat(key)
    with pytest.raises(ValueError):
        any_store.delete(key)
    with pytest.raises(ValueError):
        any_store.lock(key, a_minute_from_now())
    assert list(any_store.list("")) == []


def test_list_refuses_a_prefix_that_climbs_out(any_store: ObjectStore) -> None:
    with pytest.raises(ValueError):
        list(any_store.list("../"))


def test_check_passes_on_a_working_store(any_store: ObjectStore) -> None:
    any_store.check()
