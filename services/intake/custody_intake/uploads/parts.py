"""One PATCH body becomes one stored part: encrypted segment by segment as it arrives and
streamed to the object store, never held whole in memory.

The event loop receives the body and hands it, in blocks of :data:`BLOCK` bytes, to a writer
thread through a queue at most :data:`DEPTH` blocks deep; the thread encrypts (STREAM,
:class:`~custody_common.crypto.stream.PartEncryptor`), checks the ``Upload-Checksum`` and feeds
the blocking ``ObjectStore.put``. A part that is abandoned or whose checksum fails makes the
``put`` fail, and the store then keeps nothing of it. When the PATCH's length is known and it is
kept whole or not at all (it carries a checksum), the store is told the part's size, so an S3
server receives it as one streamed request.
"""

from __future__ import annotations

import asyncio
import queue
import uuid
from concurrent.futures import Executor
from typing import Final

from custody_common.crypto.stream import PartEncryptor, ciphertext_size
from custody_common.manifest import StoredPart, part_key
from custody_common.objectstore import ObjectInfo, ObjectStore, ObjectStoreError
from custody_intake.uploads.errors import ChecksumMismatch, StorageUnavailable, UploadTooLarge
from custody_intake.uploads.protocol import Checksum

BLOCK: Final = 1024 * 1024
"""Bytes handed to the writer thread at once."""
DEPTH: Final = 4
"""Blocks that may wait for the writer thread; memory per PATCH stays near (DEPTH + 1) × BLOCK."""

_END: Final = object()
_ABANDON: Final = object()


class PartAbandoned(Exception):
    """Raised inside the writer thread so that the store discards a part nobody will record."""


class PartWriter:
    """Streams the plaintext of one PATCH into the encrypted stored part ``part_key(id, index,
    attempt)``, a key no other PATCH writes."""

    def __init__(
        self,
        store: ObjectStore,
        executor: Executor,
        *,
        evidence_id: uuid.UUID,
        index: int,
        attempt: str,
        offset: int,
        dek: bytes,
        limit: int,
        checksum: Checksum | None,
        size: int | None = None,
    ) -> None:
        """``limit``: the most plaintext the part may take; ``size``: the plaintext it will hold,
        when known in advance (then a body of any other length stores nothing)."""
        self._store = store
        self._executor = executor
        self._evidence_id = evidence_id
        self._index = index
        self._offset = offset
        self._dek = dek
        self._limit = limit
        self._checksum = checksum
        self._stored_size = None if size is None else ciphertext_size(size)
        self._hasher = checksum.hasher() if checksum else None
        self._blocks: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._slots = asyncio.Semaphore(DEPTH)
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._job: asyncio.Future[ObjectInfo] | None = None
        self.key = part_key(evidence_id, index, attempt)
        self.received = 0
        """Plaintext bytes taken from the request so far."""
        self.written = 0
        """Plaintext bytes the writer thread has encrypted and passed to the store so far."""

    async def write(self, chunk: bytes) -> None:
        """Take the next bytes of the body; UploadTooLarge once they pass the upload's length."""
        if not chunk:
            return
        if self.received + len(chunk) > self._limit:
            raise UploadTooLarge(
                f"the body goes past the declared Upload-Length ({self._offset + self._limit} bytes); "
                "nothing of this PATCH was kept"
            )
        self.received += len(chunk)
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= BLOCK:
            await self._hand_over()

    async def finish(self) -> StoredPart:
        """Store what was written; returns the part to record. Raises ChecksumMismatch (nothing
        kept) or StorageUnavailable."""
        if self.received == 0:
            raise ValueError("an empty part is never stored")
        if self._pending:
            await self._hand_over()
        self._blocks.put(_END)
        info = await self._outcome()
        stored_size = ciphertext_size(self.received)
        if info.size != stored_size:
            raise StorageUnavailable(
                f"the object store kept {info.size} bytes of a {stored_size}-byte part; retry from the same offset"
            )
        return StoredPart(
            index=self._index, offset=self._offset, size=self.received, stored_size=stored_size, key=self.key
        )

    async def abandon(self) -> None:
        """Stop: the store discards the part (nothing of it becomes visible under its key)."""
        if self._job is None:
            return
        self._blocks.put(_ABANDON)
        await asyncio.wait([self._job])
        if not self._job.cancelled():
            self._job.exception()  # retrieved, so it is not reported as never retrieved

    async def _hand_over(self) -> None:
        block = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        if self._job is None:
            self._job = self._loop.run_in_executor(self._executor, self._store_part)
        if not self._slots.locked():
            await self._slots.acquire()
        else:
            slot = asyncio.ensure_future(self._slots.acquire())
            try:
                await asyncio.wait({slot, self._job}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not slot.done():
                    slot.cancel()
            if not slot.done() or slot.cancelled():
                await self._outcome()  # the writer stopped early: raise why
                raise StorageUnavailable("the object store stopped taking the part; retry from the same offset")
        self._blocks.put(block)

    async def _outcome(self) -> ObjectInfo:
        assert self._job is not None
        try:
            return await self._job
        except ObjectStoreError as exc:
            raise StorageUnavailable(
                f"the object store did not take the part ({type(exc).__name__}); retry from the same offset"
            ) from exc

    def _store_part(self) -> ObjectInfo:
        return self._store.put(self.key, self._ciphertext(), size=self._stored_size)

    def _ciphertext(self):  # type: ignore[no-untyped-def]
        encryptor = PartEncryptor(self._dek, self._evidence_id, self._offset)
        yield encryptor.header()
        while True:
            block = self._blocks.get()
            if block is _END:
                break
            if block is _ABANDON:
                raise PartAbandoned(self.key)
            assert isinstance(block, bytes)
            self._loop.call_soon_threadsafe(self._slots.release)
            if self._hasher is not None:
                self._hasher.update(block)
            sealed = encryptor.update(block)
            self.written += len(block)
            if sealed:
                yield sealed
        if self._checksum is not None and self._hasher is not None and self._hasher.digest() != self._checksum.digest:
            raise ChecksumMismatch(
                f"the PATCH body does not match its Upload-Checksum ({self._checksum.algorithm}); "
                "nothing of it was kept: send the same bytes again from the same offset"
            )
        yield encryptor.finalize()
