"""What the local folder adapter does on disk: atomic files, lock records, read-only sealed files."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from custody_common.objectstore import ObjectLocked, ObjectStoreError, ObjectStoreUnavailable
from custody_common.objectstore.local import LocalFolderStore
from tests.support.pagecache import resident_bytes
from tests.support.streams import numbered_chunks, sha256_of, traced_memory

MIB = 1024 * 1024
T0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def files_under(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def test_objects_are_plain_files_under_the_root(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "objects")

    store.put("evidence/a/parts/000001", b"ciphertext")

    assert (tmp_path / "objects" / "evidence" / "a" / "parts" / "000001").read_bytes() == b"ciphertext"


def test_a_failed_put_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)

    def failing_source() -> Iterator[bytes]:
        yield b"x" * MIB
        raise OSError("the sender's disk failed")

    with pytest.raises(OSError, match="sender's disk"):
        store.put("evidence/a/parts/000001", failing_source())

    assert [name for name in files_under(tmp_path) if not name.startswith(".locks/")] == []


def test_lock_makes_the_file_read_only_and_keeps_a_record(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path, clock=Clock(T0))
    store.put("evidence/a/sealed", b"ciphertext")

    store.lock("evidence/a/sealed", T0 + timedelta(days=3650))

    mode = stat.S_IMODE((tmp_path / "evidence" / "a" / "sealed").stat().st_mode)
    assert mode & 0o222 == 0
    record = json.loads((tmp_path / ".locks" / "evidence" / "a" / "sealed.json").read_text())
    assert record == {"retain_until": (T0 + timedelta(days=3650)).isoformat(), "legal_hold": False}


def test_locks_survive_a_restart(tmp_path: Path) -> None:
    LocalFolderStore(tmp_path, clock=Clock(T0)).put("sealed", b"ciphertext")
    LocalFolderStore(tmp_path, clock=Clock(T0)).lock("sealed", T0 + timedelta(days=1))
    LocalFolderStore(tmp_path, clock=Clock(T0)).set_legal_hold("sealed", True)

    reopened = LocalFolderStore(tmp_path, clock=Clock(T0))

    assert reopened.retention("sealed") == T0 + timedelta(days=1)
    assert reopened.legal_hold("sealed") is True
    with pytest.raises(ObjectLocked):
        reopened.delete("sealed")


def test_an_expired_lock_lets_the_object_go(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = LocalFolderStore(tmp_path, clock=clock)
    store.put("sealed", b"ciphertext")
    store.lock("sealed", T0 + timedelta(days=1))
    with pytest.raises(ObjectLocked):
        store.delete("sealed")

    clock.now = T0 + timedelta(days=1, seconds=1)
    store.delete("sealed")

    assert files_under(tmp_path) == [".locks/.mutex"]


def test_a_new_object_does_not_inherit_an_expired_lock(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = LocalFolderStore(tmp_path, clock=clock)
    store.put("item", b"old")
    store.lock("item", T0 + timedelta(days=1))
    clock.now = T0 + timedelta(days=2)

    store.put("item", b"new")

    assert store.retention("item") is None
    assert store.read_all("item") == b"new"
    assert stat.S_IMODE((tmp_path / "item").stat().st_mode) & stat.S_IWUSR


def test_releasing_the_only_hold_makes_the_file_writable_again(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    store.put("held", b"x")
    store.set_legal_hold("held", True)
    assert stat.S_IMODE((tmp_path / "held").stat().st_mode) & 0o222 == 0

    store.set_legal_hold("held", False)

    assert stat.S_IMODE((tmp_path / "held").stat().st_mode) & stat.S_IWUSR
    assert not (tmp_path / ".locks" / "held.json").exists()


def test_an_unreadable_lock_record_keeps_the_object_protected(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    store.put("sealed", b"ciphertext")
    store.lock("sealed", datetime.now(UTC) + timedelta(days=1))
    (tmp_path / ".locks" / "sealed.json").write_text("{not json")

    with pytest.raises(ObjectStoreError, match="lock record"):
        store.delete("sealed")
    with pytest.raises(ObjectStoreError, match="lock record"):
        store.put("sealed", b"forged")
    assert (tmp_path / "sealed").read_bytes() == b"ciphertext"


def test_delete_prunes_folders_left_empty(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    store.put("evidence/a/parts/000001", b"x")
    store.put("evidence/b/manifest", b"y")

    store.delete("evidence/a/parts/000001")

    assert not (tmp_path / "evidence" / "a").exists()
    assert (tmp_path / "evidence" / "b" / "manifest").exists()


def test_a_key_and_keys_below_it_cannot_both_exist(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    store.put("a/b", b"x")

    with pytest.raises(ObjectStoreError, match="cannot hold both"):
        store.put("a", b"y")
    with pytest.raises(ObjectStoreError, match="cannot hold both"):
        store.put("a/b/c", b"z")
    assert store.read_all("a/b") == b"x"


def test_streaming_put_holds_about_one_chunk(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)

    with traced_memory() as traced:
        store.put("large", numbered_chunks(40 * MIB))

    assert traced.peak < 3 * MIB
    assert store.stat("large").size == 40 * MIB


def test_objects_written_and_read_do_not_stay_in_the_page_cache(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    store.put("large", numbered_chunks(24 * MIB))
    assert resident_bytes(tmp_path / "large") == 0

    with open(tmp_path / "large", "rb") as file:  # read the plain way, the file is cached again
        while file.read(MIB):
            pass
    assert resident_bytes(tmp_path / "large") > 8 * MIB
    assert sha256_of(store.read("large")) == sha256_of(numbered_chunks(24 * MIB))
    assert resident_bytes(tmp_path / "large") == 0


def test_check_fails_when_the_root_is_gone(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "objects")
    (tmp_path / "objects" / ".locks").rmdir()
    (tmp_path / "objects").rmdir()

    with pytest.raises(ObjectStoreUnavailable, match="does not exist"):
        store.check()


def test_check_fails_when_the_root_cannot_be_written(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "objects")
    locks = tmp_path / "objects" / ".locks"
    locks.rmdir()
    locks.write_bytes(b"a file where the lock records belong")

    with pytest.raises(ObjectStoreUnavailable, match="cannot write"):
        store.check()


def test_an_unusable_root_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "taken").write_bytes(b"a file, not a folder")

    with pytest.raises(ObjectStoreUnavailable, match="cannot use"):
        LocalFolderStore(tmp_path / "taken")


def test_files_are_private_to_the_owner_until_locked(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "objects")
    store.put("item", b"x")

    assert stat.S_IMODE((tmp_path / "objects" / "item").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "objects").stat().st_mode) == 0o700
