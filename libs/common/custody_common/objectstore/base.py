"""The object-store port. Keys are ``/``-separated paths such as
``evidence/<id>/parts/000001-<attempt>``. Methods are blocking; async callers run them in a thread.

Every adapter refuses malformed keys with ValueError (empty or ``.``/``..`` segments, absolute
paths, segments beginning with a dot, control characters; see ``objectstore.keys``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

from custody_common.errors import CustodyError


class ObjectStoreError(CustodyError):
    """The object store refused or failed an operation."""


class ObjectNotFound(ObjectStoreError):
    """No object under that key."""


class ObjectLocked(ObjectStoreError):
    """The object is under WORM retention or legal hold: it cannot be overwritten or deleted."""


class ObjectStoreUnavailable(ObjectStoreError):
    """The store cannot be reached now; retry later."""


@dataclass(frozen=True)
class ObjectInfo:
    """What the store says about one object."""

    key: str
    size: int
    version_id: str | None = None
    """The S3 version id where the store versions objects; None on a local folder."""
    generation: str | None = None
    """Changes whenever the object's bytes may have changed (from :meth:`ObjectStore.stat`): the S3
    version id; on a local folder the file's inode and change time."""


class ObjectStore(Protocol):
    """Where evidence ciphertext and manifests live."""

    def put(self, key: str, data: bytes | BinaryIO | Iterable[bytes], *, size: int | None = None) -> ObjectInfo:
        """Store ``data`` under ``key``, durably and atomically (a reader sees all or nothing).
        Raises ObjectLocked if ``key`` holds a locked object. Memory stays bounded for streams.
        If ``data`` raises, that exception propagates and nothing becomes visible under ``key``.

        ``size``, when given, is how many bytes ``data`` holds: a store may then send a stream
        in one request as it comes instead of buffering it. Should ``data`` hold any other
        number of bytes, the put fails with ObjectStoreError and nothing becomes visible."""
        ...

    def read(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The object's bytes [offset, offset+length) as a stream of chunks of at most 1 MiB.

        ``length`` None reads to the end; a range past the end is cut at the end. Raises
        ObjectNotFound when called (not when iterated) if there is no object, ValueError if
        ``offset`` is negative or beyond the end."""
        ...

    def read_all(self, key: str) -> bytes:
        """The whole (small) object."""
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Size, generation (and version id, where versioned) of ``key``; ObjectNotFound if there is none."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``, in lexical order."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; raises ObjectLocked if it is under retention or legal hold.
        Removing a key that does not exist is no error."""
        ...

    def lock(self, key: str, until: datetime) -> None:
        """Make ``key`` unalterable and undeletable until ``until`` (S3: COMPLIANCE retention on
        its current version; local: read-only file plus the adapter's own refusal).

        ``until`` must carry a time zone and lie in the future (else ValueError); it is kept to
        the millisecond, rounded up. Extending a lock works; shortening raises ObjectLocked."""
        ...

    def retention(self, key: str) -> datetime | None:
        """The date until which ``key`` is (or was) locked, or None if it never was."""
        ...

    def set_legal_hold(self, key: str, on: bool) -> None:
        """Place (``on``) or release a legal hold; while held, ``key`` can be neither replaced nor deleted."""
        ...

    def legal_hold(self, key: str) -> bool:
        """Whether ``key`` is on legal hold."""
        ...

    def check(self) -> None:
        """Raise ObjectStoreUnavailable unless the store answers now (readiness)."""
        ...
