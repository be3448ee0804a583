"""Reading an upload's parts back while it is still going up, so that its seal has only the
last part left to read.

Intake says on core NATS when it has stored a part of an upload in progress
(:class:`~custody_common.manifest.PartStored`). For each upload this service follows, it reads
the parts in order as they are announced, exactly as the seal reads them (sizes, every segment
authenticated, SHA-256 of the plaintext), and keeps what it found in memory. The seal takes it
(:meth:`ReadAhead.take`) and continues from it only for the parts and data key of intake's
signed statement, and only if the store still holds the very objects read (their generation:
the S3 version id, or the file's inode and change time); otherwise it reads everything, as it
would without this. Announcements are hints: one lost, forged, out of order or about an upload
this process did not see begin costs only the time this saves.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pydantic import ValidationError

from custody_common.crypto.envelope import WrappedKey
from custody_common.manifest import PartStored, StoredPart

from custody_evidence.stored_parts import NOTHING_READ, EarlyRead, read_early
from custody_evidence.vault import Vault

log = logging.getLogger(__name__)

MAX_UPLOADS = 16
"""Uploads followed at once; a new one pushes out the one announced least recently."""
IDLE_SECONDS = 3600.0
"""An upload with no announcement for this long is no longer followed."""


@dataclass
class _Upload:
    wrapped_dek: WrappedKey
    parts: asyncio.Queue[StoredPart | None] = field(default_factory=asyncio.Queue)
    read: EarlyRead = NOTHING_READ
    announced: float = field(default_factory=time.monotonic)
    follower: asyncio.Task[None] | None = None


class ReadAhead:
    """Follows uploads in progress and reads their parts back as intake stores them."""

    def __init__(self, vault: Vault, max_uploads: int = MAX_UPLOADS) -> None:
        self._vault = vault
        self._max_uploads = max_uploads
        self._uploads: dict[uuid.UUID, _Upload] = {}
        # Its own thread: reading ahead never holds up a seal, a download or a fixity check.
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="read-ahead")

    def announced(self, payload: bytes) -> None:
        """Take intake's word that a part is stored (a PartStored message)."""
        try:
            notice = PartStored.model_validate_json(payload)
        except ValidationError:
            log.warning("an announcement of a stored part was not one (%d bytes); ignored", len(payload))
            return
        upload = self._uploads.get(notice.evidence_id)
        if upload is None:
            if notice.part.index != 0:
                return  # this process did not see the upload begin: its seal reads it all
            self._make_room()
            upload = self._uploads[notice.evidence_id] = _Upload(notice.wrapped_dek)
            upload.follower = asyncio.create_task(self._follow(notice.evidence_id, upload), name="read-ahead")
        elif notice.wrapped_dek != upload.wrapped_dek:
            self._drop(notice.evidence_id)
            return
        upload.announced = time.monotonic()
        if upload.follower is not None and not upload.follower.done():  # else it stopped: nothing to queue for
            upload.parts.put_nowait(notice.part)

    def parts_read(self, evidence_id: uuid.UUID) -> int:
        """How many parts of the upload have been read so far."""
        upload = self._uploads.get(evidence_id)
        return 0 if upload is None else len(upload.read.parts)

    async def take(self, evidence_id: uuid.UUID, wrapped_dek: WrappedKey) -> EarlyRead:
        """What was read of the item under the data key ``wrapped_dek`` before its seal (once
        the parts already announced are read), and stop following it; NOTHING_READ if it was
        not followed, or under another key."""
        upload = self._uploads.pop(evidence_id, None)
        if upload is None or upload.follower is None:
            return NOTHING_READ
        upload.parts.put_nowait(None)
        await asyncio.wait([upload.follower])
        return upload.read if upload.wrapped_dek == wrapped_dek else NOTHING_READ

    def close(self) -> None:
        """Stop following every upload."""
        for evidence_id in list(self._uploads):
            self._drop(evidence_id)
        self._reader.shutdown(wait=False, cancel_futures=True)

    async def _follow(self, evidence_id: uuid.UUID, upload: _Upload) -> None:
        vault = self._vault
        try:
            dek = await vault.unwrap(evidence_id, upload.wrapped_dek)
            loop = asyncio.get_running_loop()
            while (part := await upload.parts.get()) is not None:
                read = functools.partial(read_early, vault.store, dek, evidence_id, upload.read, part)
                upload.read = await loop.run_in_executor(self._reader, read)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — the seal reads the rest itself and judges it
            log.info(
                "reading item %s ahead of its seal stopped after %d parts: %s",
                evidence_id,
                len(upload.read.parts),
                exc,
            )

    def _make_room(self) -> None:
        now = time.monotonic()
        for evidence_id, upload in list(self._uploads.items()):
            if now - upload.announced > IDLE_SECONDS:
                self._drop(evidence_id)
        while len(self._uploads) >= self._max_uploads:
            oldest = min(self._uploads, key=lambda key: self._uploads[key].announced)
            self._drop(oldest)

    def _drop(self, evidence_id: uuid.UUID) -> None:
        upload = self._uploads.pop(evidence_id, None)
        if upload is not None and upload.follower is not None:
            upload.follower.cancel()
