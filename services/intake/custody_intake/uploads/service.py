"""The rules of an upload: who may create and continue it, how each PATCH becomes a stored part,
and how it ends — received (announced to evidence), terminated by its submitter, or expired.

Every state change commits together with the custody events that state it (the outbox), and
nothing is deleted before the event that explains the deletion is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from custody_common.auth import Principal
from custody_common.bus import Topology
from custody_common.crypto.envelope import KeyProvider, new_data_key
from custody_common.events import actor_person, actor_service, commitment, new_event, rfc3339
from custody_common.ids import uuid7
from custody_common.manifest import (
    PartStored,
    StoredPart,
    SubmissionCompleted,
    open_metadata,
    seal_json,
    seal_metadata,
)
from custody_common.objectstore import ObjectNotFound, ObjectStore, ObjectStoreError
from custody_common.outbox import EventEmitter, enqueue
from custody_intake.settings import IntakeSettings
from custody_intake.tables import outbox
from custody_intake.uploads import repository
from custody_intake.uploads.errors import (
    CaseNotAssigned,
    ChecksumMismatch,
    InvalidUploadRequest,
    LockLost,
    OffsetMismatch,
    UploadFinished,
    UploadGone,
    UploadLocked,
    UploadNotFound,
    UploadTooLarge,
)
from custody_intake.uploads.parts import PartWriter
from custody_intake.uploads.protocol import Checksum
from custody_intake.uploads.schemas import NewSubmission, UploadRecord

log = logging.getLogger(__name__)

SWEEP_BATCH = 100


class PatchBody(Protocol):
    """The bytes of one PATCH as they arrive; ``interrupted`` once the client went away mid-body."""

    interrupted: bool

    def __aiter__(self) -> AsyncIterator[bytes]: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


class UploadService:
    """Creates, continues and ends uploads; the only writer of intake's upload state."""

    def __init__(
        self,
        *,
        settings: IntakeSettings,
        sessions: async_sessionmaker[AsyncSession],
        store: ObjectStore,
        keys: KeyProvider,
        emitter: EventEmitter,
        signing_key: Ed25519PrivateKey,
        topology: Topology,
        executor: Executor,
        on_commit: Callable[[], None] = lambda: None,
        on_part_stored: Callable[[PartStored], Awaitable[None]] | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """``on_part_stored`` is told of each part of an upload still in progress once it is
        recorded (evidence reads such parts back before the upload completes); it must not raise."""
        self._settings = settings
        self._sessions = sessions
        self._store = store
        self._keys = keys
        self._emitter = emitter
        self._signing_key = signing_key
        self._topology = topology
        self._executor = executor
        self._on_commit = on_commit
        self._on_part_stored = on_part_stored
        self._clock = clock
        self._lock_timeout = timedelta(seconds=settings.upload_lock_timeout)

    # --- creation -------------------------------------------------------------------------

    async def create(self, principal: Principal, submission: NewSubmission, request_id: str | None) -> UploadRecord:
        """A new upload for ``submission``, with its ``submitted`` event; an empty file is
        received at once. Raises CaseNotAssigned or UploadTooLarge."""
        if not principal.has_role("investigator"):
            raise CaseNotAssigned("only an investigator may submit evidence")
        if not principal.sees_case(submission.case, "investigator"):
            raise CaseNotAssigned(
                f"you are not assigned case {submission.case!r}; check the case name or ask an admin to assign it"
            )
        if submission.length > self._settings.max_upload_size:
            raise UploadTooLarge(self._too_large(submission.length))
        evidence_id = uuid7()
        dek = new_data_key()
        wrapped = await asyncio.to_thread(self._keys.wrap, dek, evidence_id.bytes)
        salts: dict[str, str] = {}
        commitments: dict[str, str] = {}
        for field, text in submission.metadata.personal_fields().items():
            salts[field], commitments[field] = commitment(text)
        now = self._clock()
        record = UploadRecord(
            evidence_id=evidence_id,
            case=submission.case,
            submitter=principal.sub,
            length=submission.length,
            offset=0,
            declared_sha256=submission.declared_sha256,
            status="uploading",
            wrapped_dek=wrapped,
            sealed_metadata=seal_metadata(dek, evidence_id, submission.metadata),
            sealed_disclosures=seal_json(dek, evidence_id, "disclosures", salts) if salts else None,
            next_part=0,
            created_at=now,
            expires_at=now + self._settings.upload_expiry,
            finished_at=None,
            lock_token=None,
            lock_heartbeat=None,
            request_id=request_id,
        )
        async with self._sessions.begin() as session:
            await repository.insert_upload(session, record)
            await self._emitter.emit(
                session,
                new_event(
                    action="submitted",
                    service="intake",
                    actor=actor_person(principal.sub, list(principal.roles)),
                    evidence_id=evidence_id,
                    case=submission.case,
                    sha256=submission.declared_sha256,
                    size=submission.length,
                    commitments=commitments,
                    details=_details(request_id=request_id),
                    time=rfc3339(now),
                ),
            )
            if submission.length == 0:
                await repository.mark_received(session, evidence_id, now)
                record = record.model_copy(update={"status": "received", "finished_at": now})
                await self._announce_receipt(session, principal, record, now, request_id)
        self._on_commit()
        log.info("upload %s created (%d bytes declared)", evidence_id, submission.length)
        return record

    # --- reading ----------------------------------------------------------------------------

    async def own(self, principal: Principal, evidence_id: uuid.UUID) -> UploadRecord:
        """The caller's own upload: same subject, still an investigator of its case. Anyone
        else gets UploadNotFound, so the upload's existence stays hidden."""
        async with self._sessions() as session:
            record = await repository.get_upload(session, evidence_id)
        if record is None or record.submitter != principal.sub or not principal.sees_case(record.case, "investigator"):
            raise UploadNotFound(f"there is no upload {evidence_id} of yours")
        return record

    async def declared_metadata(self, record: UploadRecord) -> dict[str, str]:
        """The ``Upload-Metadata`` pairs the upload was created with (decrypted for its submitter)."""
        dek = await asyncio.to_thread(self._keys.unwrap, record.wrapped_dek, record.evidence_id.bytes)
        metadata = open_metadata(dek, record.evidence_id, record.sealed_metadata)
        pairs = {"case": record.case}
        if record.declared_sha256 is not None:
            pairs["sha256"] = record.declared_sha256
        for key, value in metadata.model_dump(mode="json").items():
            if value is not None:
                pairs[key] = str(value)
        return pairs

    # --- appending --------------------------------------------------------------------------

    async def append(
        self,
        principal: Principal,
        evidence_id: uuid.UUID,
        offset: int,
        body: PatchBody,
        *,
        content_length: int | None,
        checksum: Checksum | None,
        digest: str | None = None,
        request_id: str | None,
    ) -> UploadRecord:
        """Store the PATCH ``body`` at ``offset`` as the upload's next part and advance the
        offset; the last byte makes the submission received. An interrupted body without a
        checksum keeps what arrived; with a checksum it keeps nothing.

        ``digest`` is the whole file's SHA-256 (hex) the PATCH states (``Repr-Digest``): an
        upload created without one must have it on the PATCH that completes it, and one that
        differs from the declaration is refused."""
        record = await self.own(principal, evidence_id)
        _require_open(record)
        if offset != record.offset:
            raise OffsetMismatch(_offset_mismatch(offset, record.offset))
        remaining = record.length - offset
        if content_length is not None and content_length > remaining:
            raise UploadTooLarge(
                f"this PATCH carries {content_length} bytes but only {remaining} remain of the declared "
                "Upload-Length; nothing of it was kept"
            )
        if digest is not None and record.declared_sha256 not in (None, digest):
            raise InvalidUploadRequest(
                f"Repr-Digest states SHA-256 {digest}, but the upload was created declaring "
                f"{record.declared_sha256}; nothing of this PATCH was kept. Submit the file again as a new upload."
            )
        declared = record.declared_sha256 or digest
        if declared is None and content_length == remaining:
            raise InvalidUploadRequest(_digest_missing())
        lock = await self._take_lock(record, offset)
        committed = False
        try:
            dek = await asyncio.to_thread(self._keys.unwrap, record.wrapped_dek, evidence_id.bytes)
            writer = PartWriter(
                self._store,
                self._executor,
                evidence_id=evidence_id,
                index=record.next_part,
                attempt=lock.token,
                offset=offset,
                dek=dek,
                limit=remaining,
                checksum=checksum,
                # All or nothing with a checksum, so the part may be streamed at its known size.
                size=content_length if checksum is not None else None,
            )
            stored = await self._receive(lock, writer, body, checksum)
            if stored is None:
                return record
            if declared is None and stored.offset + stored.size == record.length:
                await self._discard(stored.key)
                raise InvalidUploadRequest(_digest_missing())
            declaring = record.model_copy(update={"declared_sha256": declared})
            updated = await self._commit_part(principal, declaring, lock, stored, request_id)
            committed = True
            return updated
        finally:
            if not committed:
                await lock.release()

    async def _receive(
        self, lock: _UploadLock, writer: PartWriter, body: PatchBody, checksum: Checksum | None
    ) -> StoredPart | None:
        """The stored part of ``body``, or None when nothing of it is to be kept."""
        try:
            async with lock.kept_alive(lambda: writer.received + writer.written):
                async for chunk in body:
                    if lock.lost:
                        raise LockLost(_lock_lost())
                    await writer.write(chunk)
                if writer.received == 0:
                    return None
                if body.interrupted and checksum is not None:
                    # The checksum covers the whole body, which never came: nothing joins the upload.
                    await writer.abandon()
                    await self._discard(writer.key)
                    return None
                if lock.lost or not await lock.refresh():
                    raise LockLost(_lock_lost())
                return await writer.finish()
        except ChecksumMismatch:
            await self._discard(writer.key)
            raise
        except BaseException:
            # The key is this attempt's own: deleting it can never take a part another PATCH
            # stored (one that took the upload over while this one stalled, say).
            await writer.abandon()
            await self._discard(writer.key)
            raise

    async def _commit_part(
        self, principal: Principal, record: UploadRecord, lock: _UploadLock, part: StoredPart, request_id: str | None
    ) -> UploadRecord:
        now = self._clock()
        completes = part.offset + part.size == record.length
        expires_at = now + self._settings.upload_expiry
        async with self._sessions.begin() as session:
            if not await repository.record_part(
                session, record.evidence_id, lock.token, part, now, expires_at, completes, record.declared_sha256
            ):
                raise LockLost(_lock_lost())
            updated = record.model_copy(
                update={
                    "offset": part.offset + part.size,
                    "next_part": part.index + 1,
                    "expires_at": expires_at,
                    "lock_token": None,
                    "lock_heartbeat": None,
                }
            )
            if completes:
                updated = updated.model_copy(update={"status": "received", "finished_at": now})
                await self._announce_receipt(session, principal, updated, now, request_id)
        self._on_commit()
        if completes:
            log.info("upload %s received, stored in %d parts", record.evidence_id, part.index + 1)
        elif self._on_part_stored is not None:
            await self._on_part_stored(PartStored(evidence_id=record.evidence_id, wrapped_dek=record.wrapped_dek, part=part))
        return updated

    async def _announce_receipt(
        self, session: AsyncSession, principal: Principal, record: UploadRecord, now: datetime, request_id: str | None
    ) -> None:
        """The ``received`` event and the signed SubmissionCompleted, in the caller's transaction."""
        assert record.declared_sha256 is not None, "an upload completes only with its SHA-256 declared"
        stored = await repository.stored_parts(session, record.evidence_id)
        await self._emitter.emit(
            session,
            new_event(
                action="received",
                service="intake",
                actor=actor_person(principal.sub, list(principal.roles)),
                evidence_id=record.evidence_id,
                case=record.case,
                sha256=record.declared_sha256,
                size=record.length,
                details=_details(parts=len(stored), request_id=request_id),
                time=rfc3339(now),
            ),
        )
        completed = SubmissionCompleted(
            evidence_id=record.evidence_id,
            case=record.case,
            submitter=record.submitter,
            declared_sha256=record.declared_sha256,
            size=record.length,
            parts=stored,
            wrapped_dek=record.wrapped_dek,
            metadata=record.sealed_metadata,
            disclosures=record.sealed_disclosures,
            created_at=record.created_at,
            received_at=now,
            request_id=request_id,
        ).signed(self._signing_key)
        await enqueue(
            session,
            outbox,
            self._topology.submission_completed_subject,
            completed.to_bytes(),
            f"completed-{record.evidence_id}",
        )

    async def _take_lock(self, record: UploadRecord, offset: int) -> _UploadLock:
        token = str(uuid.uuid4())
        now = self._clock()
        async with self._sessions.begin() as session:
            taken = await repository.take_lock(
                session, record.evidence_id, token, offset, now, now - self._lock_timeout
            )
        if taken:
            return _UploadLock(self._sessions, record.evidence_id, token, self._lock_timeout, self._clock)
        async with self._sessions() as session:
            current = await repository.get_upload(session, record.evidence_id)
        assert current is not None
        _require_open(current)
        if current.offset != offset:
            raise OffsetMismatch(_offset_mismatch(offset, current.offset))
        raise UploadLocked(
            "another PATCH is writing to this upload now; retry when it ends (one that stalls for "
            f"{self._settings.upload_lock_timeout:g} s is taken over)"
        )

    # --- ending -----------------------------------------------------------------------------

    async def terminate(self, principal: Principal, evidence_id: uuid.UUID, request_id: str | None) -> None:
        """End the caller's unfinished upload (tus termination) and delete its stored parts."""
        record = await self.own(principal, evidence_id)
        if record.status == "received":
            raise UploadFinished(
                "every byte of this submission has arrived; only an upload still in progress can be terminated"
            )
        _require_open(record)
        now = self._clock()
        async with self._sessions.begin() as session:
            ended = await repository.end_upload(
                session, evidence_id, "terminated", now, now - self._lock_timeout, due=False
            )
            if ended:
                current = await repository.get_upload(session, evidence_id)
                assert current is not None
                await self._emitter.emit(
                    session,
                    new_event(
                        action="terminated",
                        service="intake",
                        actor=actor_person(principal.sub, list(principal.roles)),
                        evidence_id=evidence_id,
                        case=current.case,
                        details=_details(received_bytes=current.offset, parts=current.next_part, request_id=request_id),
                        time=rfc3339(now),
                    ),
                )
        if not ended:
            async with self._sessions() as session:
                current = await repository.get_upload(session, evidence_id)
            assert current is not None
            if current.status == "received":
                raise UploadFinished("every byte of this submission arrived meanwhile; it can no longer be terminated")
            _require_open(current)
            raise UploadLocked("a PATCH is writing to this upload now; terminate it when the PATCH ends")
        self._on_commit()
        log.info("upload %s terminated by its submitter", evidence_id)
        await self._purge(evidence_id)

    async def expire_due(self) -> int:
        """Expire the uploads idle past their expiry (an ``expired`` event each), then delete the
        parts of every ended upload; returns how many expired now."""
        now = self._clock()
        stale_before = now - self._lock_timeout
        async with self._sessions() as session:
            due = await repository.due_for_expiry(session, now, stale_before, SWEEP_BATCH)
        expired = 0
        for evidence_id in due:
            async with self._sessions.begin() as session:
                if not await repository.end_upload(session, evidence_id, "expired", now, stale_before, due=True):
                    continue
                current = await repository.get_upload(session, evidence_id)
                assert current is not None
                await self._emitter.emit(
                    session,
                    new_event(
                        action="expired",
                        service="intake",
                        actor=actor_service("intake"),
                        evidence_id=evidence_id,
                        case=current.case,
                        details=_details(
                            received_bytes=current.offset,
                            parts=current.next_part,
                            deadline=rfc3339(current.expires_at),
                        ),
                        time=rfc3339(now),
                    ),
                )
            expired += 1
            log.info("upload %s expired", evidence_id)
        if expired:
            self._on_commit()
        await self.purge_ended()
        return expired

    async def purge_ended(self) -> int:
        """Delete the stored parts of terminated and expired uploads whose event is committed
        (a crash between the event and the deletion is caught up here); returns how many."""
        async with self._sessions() as session:
            ended = await repository.awaiting_purge(session, SWEEP_BATCH)
        purged = 0
        for record in ended:
            purged += await self._purge(record.evidence_id)
        return purged

    async def _purge(self, evidence_id: uuid.UUID) -> int:
        async with self._sessions() as session:
            recorded = {part.key for part in await repository.stored_parts(session, evidence_id)}
        try:
            found = await asyncio.to_thread(lambda: list(self._store.list(f"evidence/{evidence_id}/parts/")))
            for key in sorted(recorded | set(found)):
                await asyncio.to_thread(self._delete_if_present, key)
        except ObjectStoreError as exc:
            log.warning(
                "parts of ended upload %s not deleted yet (%s); retrying later", evidence_id, type(exc).__name__
            )
            return 0
        async with self._sessions.begin() as session:
            await repository.mark_purged(session, evidence_id, self._clock())
        return 1

    async def _discard(self, key: str) -> None:
        """Delete a part that will never be recorded (best effort: an unrecorded part is ignored anyway)."""
        try:
            await asyncio.to_thread(self._delete_if_present, key)
        except ObjectStoreError as exc:
            log.warning("unrecorded part %s not deleted (%s)", key, type(exc).__name__)

    def _delete_if_present(self, key: str) -> None:
        with contextlib.suppress(ObjectNotFound):
            self._store.delete(key)

    def _too_large(self, length: int) -> str:
        return (
            f"Upload-Length {length} exceeds this server's limit of {self._settings.max_upload_size} bytes "
            "(Tus-Max-Size); split the material or ask the operator to raise CUSTODY_MAX_UPLOAD_SIZE"
        )


class _UploadLock:
    """One PATCH's hold on its upload, recorded in the database so that every intake process
    respects it; kept alive while bytes move, taken over by others once idle too long."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        evidence_id: uuid.UUID,
        token: str,
        timeout: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._evidence_id = evidence_id
        self.token = token
        self._timeout = timeout
        self._clock = clock
        self.lost = False

    async def refresh(self) -> bool:
        """Mark the lock alive now; False (and ``lost``) if another took it over."""
        async with self._sessions.begin() as session:
            alive = await repository.refresh_lock(session, self._evidence_id, self.token, self._clock())
        if not alive:
            self.lost = True
        return alive

    async def release(self) -> None:
        """Give the lock up (after a PATCH that recorded nothing)."""
        try:
            async with self._sessions.begin() as session:
                await repository.release_lock(session, self._evidence_id, self.token)
        except Exception as exc:  # noqa: BLE001 — an unreleased lock goes stale and is taken over
            log.warning("lock on upload %s not released (%s)", self._evidence_id, type(exc).__name__)

    @contextlib.asynccontextmanager
    async def kept_alive(self, progress: Callable[[], int]) -> AsyncIterator[None]:
        """Refresh the lock every third of the timeout while ``progress()`` advances, so a
        PATCH that moves bytes keeps its upload and one that stalls lets it go."""

        async def beat() -> None:
            seen = progress()
            while not self.lost:
                await asyncio.sleep(self._timeout.total_seconds() / 3)
                now_seen = progress()
                if now_seen != seen:
                    seen = now_seen
                    try:
                        await self.refresh()
                    except Exception as exc:  # noqa: BLE001 — the next beat or the final refresh decides
                        log.warning("lock heartbeat of upload %s failed (%s)", self._evidence_id, type(exc).__name__)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _require_open(record: UploadRecord) -> None:
    if record.status == "received":
        raise UploadFinished("every byte of this submission has arrived; it can no longer change")
    if record.status in ("terminated", "expired"):
        raise UploadGone(f"this upload was {record.status} and its bytes deleted; start a new upload")


def _offset_mismatch(sent: int, actual: int) -> str:
    return f"Upload-Offset is {sent} but the upload stands at {actual}; ask with HEAD and resume from there"


def _digest_missing() -> str:
    return (
        "the upload was created without the file's SHA-256, so the PATCH that completes it must state it: "
        "send Repr-Digest: sha-256=:BASE64 OF THE 32-BYTE DIGEST: (RFC 9530). Nothing of this PATCH was kept"
    )


def _lock_lost() -> str:
    return "this PATCH stalled and another took the upload over; nothing of it was kept: ask with HEAD and resume"


def _details(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
