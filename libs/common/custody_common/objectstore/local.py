"""The object store on a local folder: the embedded default for a single machine.

Object ``a/b`` is the file ``<root>/a/b``. Its lock record (retention date and legal hold) is
``<root>/.locks/a/b.json``. Every write goes to a temporary file in the destination folder, is
flushed to disk (``fsync``), renamed over the destination and followed by an ``fsync`` of the
folder, so after a crash a key holds either its old or its new bytes, never a mixture.

What this adapter cannot promise: locks are enforced by this adapter, not by the operating
system. A locked object's file is made read-only and the adapter refuses to overwrite or delete
it, but the files' owner (and root) can still change the mode back, delete or rewrite them. The
local folder is therefore tamper-evident, not tamper-proof: every sealed item's SHA-256 is in its
signed manifest and in the custody ledger, so verification detects any change, but nothing here
prevents one. Where deletion must be impossible, use an S3 server with Object Lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from custody_common.durable import fsync_folder, replace_file
from custody_common.objectstore.base import (
    ObjectInfo,
    ObjectLocked,
    ObjectNotFound,
    ObjectStoreError,
    ObjectStoreUnavailable,
)
from custody_common.objectstore.keys import validate_key, validate_prefix
from custody_common.objectstore.retention import retain_until
from custody_common.objectstore.streams import CHUNK_SIZE, exactly, iter_chunks
from custody_common.pagecache import DropBehind

_LOCK_RECORDS = ".locks"
_MUTEX = ".mutex"
_TEMP_PREFIX = ".tmp-"
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _LockRecord:
    """What protects one object: a retention date, a legal hold, or both."""

    retain_until: datetime | None = None
    legal_hold: bool = False

    def protects(self, now: datetime) -> bool:
        return self.legal_hold or (self.retain_until is not None and self.retain_until > now)


class LocalFolderStore:
    """An ObjectStore on a folder of the local file system (see the module docstring for its limits)."""

    def __init__(self, root: Path, *, clock: Callable[[], datetime] = _utc_now) -> None:
        """Use ``root`` (created if missing). ``clock`` tells the time retention is judged by."""
        self._root = Path(root).absolute()
        self._clock = clock
        try:
            self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
            (self._root / _LOCK_RECORDS).mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ObjectStoreUnavailable(
                f"cannot use {self._root} as the object folder: {exc.strerror or exc}"
            ) from exc

    @property
    def root(self) -> Path:
        """The folder objects live in."""
        return self._root

    def __repr__(self) -> str:
        return f"LocalFolderStore({str(self._root)!r})"

    def put(self, key: str, data: bytes | BinaryIO | Iterable[bytes], *, size: int | None = None) -> ObjectInfo:
        """Store ``data`` under ``key`` atomically and durably; ObjectLocked if ``key`` is locked."""
        path = self._path(key)
        self._refuse_if_protected(key, self._read_record(key), "overwrite")
        chunks = iter_chunks(data)
        temp, written = self._write_temporary(path.parent, chunks if size is None else exactly(chunks, size, key))
        try:
            with self._exclusive():
                record = self._read_record(key)
                self._refuse_if_protected(key, record, "overwrite")
                with self._filesystem(f"store {key!r}"):
                    if record is not None:
                        # An expired lock belongs to the bytes being replaced, not to the new ones.
                        self._write_record(key, None)
                    os.replace(temp, path)
                    fsync_folder(path.parent)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return ObjectInfo(key=key, size=written)

    def read(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The bytes [offset, offset+length) of ``key`` in chunks of at most 1 MiB.

        ``length`` None reads to the end; a range past the end is cut at the end. Raises
        ObjectNotFound at once if there is no such object, ValueError if ``offset`` is beyond
        the end or negative.
        """
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        path = self._path(key)
        try:
            file = open(path, "rb")  # noqa: SIM115 - the returned generator owns and closes it
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object {key!r} in {self._root}") from None
        except OSError as exc:
            raise ObjectStoreUnavailable(f"cannot read {key!r} in {self._root}: {exc.strerror}") from exc
        size = os.fstat(file.fileno()).st_size
        if offset > size:
            file.close()
            raise ValueError(f"offset {offset} is beyond the end of {key!r} ({size} bytes)")
        end = size if length is None else min(size, offset + length)
        return self._chunks(key, file, offset, end)

    def read_all(self, key: str) -> bytes:
        """The whole (small) object."""
        return b"".join(self.read(key))

    def stat(self, key: str) -> ObjectInfo:
        """Size and generation of ``key``; ObjectNotFound if there is none."""
        path = self._path(key)
        try:
            status = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key!r} in {self._root}") from None
        if not stat.S_ISREG(status.st_mode):
            raise ObjectNotFound(f"no object {key!r} in {self._root}")
        return ObjectInfo(key=key, size=status.st_size, generation=f"{status.st_ino}:{status.st_ctime_ns}")

    def list(self, prefix: str) -> Iterator[str]:
        """Keys that begin with ``prefix``, in lexical order."""
        validate_prefix(prefix)
        folder, _, _ = prefix.rpartition("/")
        base = self._root.joinpath(*folder.split("/")) if folder else self._root
        keys: list[str] = []
        with self._filesystem(f"list {prefix!r}"):
            for current, folders, files in os.walk(base, onerror=_raise_unless_gone):
                folders[:] = [name for name in folders if not name.startswith(".")]
                relative = Path(current).relative_to(self._root).as_posix()
                for name in files:
                    if name.startswith("."):
                        continue
                    key = name if relative == "." else f"{relative}/{name}"
                    if key.startswith(prefix):
                        keys.append(key)
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        """Remove ``key``; ObjectLocked while it is retained or on legal hold. A missing key is no error."""
        path = self._path(key)
        with self._exclusive():
            record = self._read_record(key)
            if not path.is_file():
                return
            self._refuse_if_protected(key, record, "delete")
            with self._filesystem(f"delete {key!r}"):
                path.unlink()
                if record is not None:
                    self._write_record(key, None)
                fsync_folder(path.parent)
                self._prune_empty_folders(path.parent)

    def lock(self, key: str, until: datetime) -> None:
        """Refuse to alter or delete ``key`` until ``until`` and make its file read-only.

        Extending a lock is allowed, shortening it raises ObjectLocked, as COMPLIANCE retention
        does on S3. The date is kept to the millisecond, rounded up.
        """
        path = self._path(key)
        until = retain_until(until, self._clock())
        with self._exclusive():
            if not path.is_file():
                raise ObjectNotFound(f"no object {key!r} in {self._root} to lock")
            record = self._read_record(key) or _LockRecord()
            if record.retain_until is not None and until < record.retain_until:
                raise ObjectLocked(
                    f"{key!r} is retained until {record.retain_until.isoformat()}; "
                    "retention can be extended, never shortened"
                )
            with self._filesystem(f"lock {key!r}"):
                self._write_record(key, replace(record, retain_until=until))
                _remove_write_permission(path)

    def retention(self, key: str) -> datetime | None:
        """The date ``key`` is (or was) retained until, or None if it was never locked."""
        if not self._path(key).is_file():
            raise ObjectNotFound(f"no object {key!r} in {self._root}")
        record = self._read_record(key)
        return record.retain_until if record else None

    def set_legal_hold(self, key: str, on: bool) -> None:
        """Place (``on``) or release a legal hold on ``key``; while held it cannot be altered or deleted."""
        path = self._path(key)
        with self._exclusive():
            if not path.is_file():
                raise ObjectNotFound(f"no object {key!r} in {self._root} to hold")
            record = replace(self._read_record(key) or _LockRecord(), legal_hold=on)
            with self._filesystem(f"set the legal hold on {key!r}"):
                if record.legal_hold or record.retain_until is not None:
                    self._write_record(key, record)
                else:
                    self._write_record(key, None)
                if record.protects(self._clock()):
                    _remove_write_permission(path)
                else:
                    path.chmod(stat.S_IMODE(path.stat().st_mode) | stat.S_IWUSR)

    def legal_hold(self, key: str) -> bool:
        """Whether ``key`` is on legal hold."""
        if not self._path(key).is_file():
            raise ObjectNotFound(f"no object {key!r} in {self._root}")
        record = self._read_record(key)
        return bool(record and record.legal_hold)

    def check(self) -> None:
        """Raise ObjectStoreUnavailable unless the root is a folder this process can write to."""
        if not self._root.is_dir():
            raise ObjectStoreUnavailable(f"object folder {self._root} does not exist or is not a folder")
        try:
            fd, name = tempfile.mkstemp(prefix=".probe-", dir=self._root / _LOCK_RECORDS)
            try:
                os.write(fd, b"\0")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(name)
        except OSError as exc:
            raise ObjectStoreUnavailable(
                f"cannot write to the object folder {self._root}: {exc.strerror}"
            ) from exc

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*validate_key(key).split("/"))

    def _record_path(self, key: str) -> Path:
        *folders, name = key.split("/")
        return self._root.joinpath(_LOCK_RECORDS, *folders, f"{name}.json")

    def _read_record(self, key: str) -> _LockRecord | None:
        path = self._record_path(key)
        try:
            document = json.loads(path.read_bytes())
            until = document["retain_until"]
            return _LockRecord(
                retain_until=None if until is None else datetime.fromisoformat(until),
                legal_hold=document["legal_hold"] is True,
            )
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ObjectStoreError(
                f"the lock record {path} of {key!r} is unreadable ({exc}); the object stays "
                "protected until someone restores the record from a backup"
            ) from exc

    def _write_record(self, key: str, record: _LockRecord | None) -> None:
        path = self._record_path(key)
        if record is None:
            path.unlink(missing_ok=True)
            fsync_folder(path.parent)
            self._prune_empty_folders(path.parent)
            return
        document = {
            "retain_until": None if record.retain_until is None else record.retain_until.isoformat(),
            "legal_hold": record.legal_hold,
        }
        self._make_folders(path.parent)
        replace_file(path, json.dumps(document).encode())

    def _refuse_if_protected(self, key: str, record: _LockRecord | None, action: str) -> None:
        if record is None or not record.protects(self._clock()):
            return
        if record.legal_hold:
            raise ObjectLocked(f"cannot {action} {key!r}: it is on legal hold; an admin must release the hold first")
        until = record.retain_until.isoformat() if record.retain_until else "an unknown date"
        raise ObjectLocked(f"cannot {action} {key!r}: it is retained until {until}")

    def _write_temporary(self, folder: Path, chunks: Iterator[memoryview]) -> tuple[Path, int]:
        """Write ``chunks`` to a new temporary file in ``folder``, flushed to disk."""
        with self._exclusive(), self._filesystem(f"write into {folder}"):
            # Under the mutex so a concurrent delete cannot prune the folder in between.
            self._make_folders(folder)
            fd, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=folder)
        temp = Path(name)
        size = 0
        try:
            with os.fdopen(fd, "wb") as file:
                behind = DropBehind(fd)
                for chunk in chunks:
                    with self._filesystem(f"write into {folder}"):
                        file.write(chunk)
                    size += chunk.nbytes
                    behind.passed(chunk.nbytes)
                with self._filesystem(f"write into {folder}"):
                    file.flush()
                    os.fsync(file.fileno())
                behind.finish()
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp, size

    def _chunks(self, key: str, file: BinaryIO, offset: int, end: int) -> Iterator[bytes]:
        with file:
            file.seek(offset)
            behind = DropBehind(file.fileno(), offset)
            remaining = end - offset
            while remaining > 0:
                chunk = file.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    raise ObjectStoreError(f"{key!r} became shorter while it was read; inspect {self._root}")
                remaining -= len(chunk)
                behind.passed(len(chunk))
                yield chunk
            behind.finish()

    def _make_folders(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents, making each creation durable."""
        missing: list[Path] = []
        while not folder.is_dir():
            missing.append(folder)
            folder = folder.parent
        for new in reversed(missing):
            new.mkdir(mode=0o700)
            fsync_folder(new.parent)

    def _prune_empty_folders(self, folder: Path) -> None:
        """Remove ``folder`` and its parents while they are empty, up to the root and the lock records."""
        stops = {self._root, self._root / _LOCK_RECORDS}
        while folder not in stops and folder.is_relative_to(self._root):
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Serialise lock-state checks and changes between threads and processes on this machine."""
        with self._filesystem(f"take the mutex in {self._root}"):
            fd = os.open(self._root / _LOCK_RECORDS / _MUTEX, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def _filesystem(self, action: str) -> Iterator[None]:
        try:
            yield
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            raise ObjectStoreError(
                f"cannot {action}: a local folder cannot hold both a key and keys below it "
                f"(such as 'a' and 'a/b'); {exc.strerror}: {exc.filename}"
            ) from exc
        except OSError as exc:
            raise ObjectStoreUnavailable(f"cannot {action}: {exc.strerror or exc}") from exc


def _raise_unless_gone(error: OSError) -> None:
    # A folder pruned by a concurrent delete, or a prefix naming no folder, simply holds no keys.
    if not isinstance(error, (FileNotFoundError, NotADirectoryError)):
        raise error


def _remove_write_permission(path: Path) -> None:
    path.chmod(stat.S_IMODE(path.stat().st_mode) & ~_WRITE_BITS)
