"""What intake's tests drive and read back: the upload rules in-process, bodies that end or
are cut off, a clock the test moves, and the submitted bytes decrypted from the store."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, select

from custody_common.auth import Principal
from custody_common.crypto.stream import decrypt_part
from custody_common.keys import key_provider
from custody_common.manifest import SubmissionCompleted, parse_statement
from custody_common.objectstore import ObjectStore
from custody_intake.settings import IntakeSettings
from custody_intake.tables import outbox, uploads
from custody_intake.uploads import repository
from custody_intake.uploads.schemas import UploadRecord
from custody_intake.uploads.service import UploadService

CASE = "UA-2024-017"


class ManualClock:
    """The time as the service sees it, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Body:
    """A PATCH body from a test: its chunks, then either its end or a client that went away."""

    def __init__(self, chunks: Iterable[bytes], *, cut: bool = False) -> None:
        self._chunks = list(chunks)
        self._cut = cut
        self.interrupted = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
        if self._cut:
            self.interrupted = True


def investigator(
    sub: str = "alice", cases: Iterable[str] = (CASE,), roles: Iterable[str] = ("investigator",)
) -> Principal:
    """A caller as a verified token would give it."""
    return Principal(sub=sub, roles=frozenset(roles), cases=frozenset(cases))


@dataclass
class Intake:
    """The upload rules wired to a real database and object store, without HTTP or NATS."""

    service: UploadService
    sessions: Any
    store: ObjectStore
    settings: IntakeSettings
    clock: ManualClock
    signing_key: Any

    async def messages(self) -> list[tuple[str, str, bytes]]:
        """Every outbox row: (msg id, subject, payload), in order."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(outbox.c.msg_id, outbox.c.subject, outbox.c.payload).order_by(outbox.c.seq)
            )
            return [(r.msg_id, r.subject, r.payload) for r in rows]

    async def events(self, evidence_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        """The custody events in the outbox (of one item, if given)."""
        found = [json.loads(p) for _, subject, p in await self.messages() if subject.endswith(".events.intake")]
        return [e for e in found if evidence_id is None or e.get("evidence_id") == str(evidence_id)]

    async def completed(self, evidence_id: uuid.UUID) -> SubmissionCompleted | None:
        """The SubmissionCompleted statement of an item, if it was enqueued."""
        for msg_id, _, payload in await self.messages():
            if msg_id == f"completed-{evidence_id}":
                return parse_statement(SubmissionCompleted, payload)
        return None

    async def upload(self, evidence_id: uuid.UUID) -> UploadRecord:
        async with self.sessions() as session:
            record = await repository.get_upload(session, evidence_id)
        assert record is not None
        return record

    async def parts(self, evidence_id: uuid.UUID):  # type: ignore[no-untyped-def]
        async with self.sessions() as session:
            return await repository.stored_parts(session, evidence_id)

    def keys_under(self, evidence_id: uuid.UUID) -> list[str]:
        return list(self.store.list(f"evidence/{evidence_id}/"))


def plaintext_of(store: ObjectStore, settings: Any, completed: SubmissionCompleted) -> bytes:
    """The submitted bytes, decrypted from the stored parts with the KEK in the test's home."""
    dek = key_provider(settings).unwrap(completed.wrapped_dek, completed.evidence_id.bytes)
    out = bytearray()
    for part in completed.parts:
        assert part.offset == len(out), "parts are contiguous"
        assert store.stat(part.key).size == part.stored_size
        for chunk in decrypt_part(dek, completed.evidence_id, part.offset, store.read(part.key)):
            out += chunk
    assert len(out) == completed.size
    return bytes(out)


def tus_metadata(**pairs: str) -> str:
    """An ``Upload-Metadata`` header of ``pairs``."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def stack_database_url(stack: Any) -> str:
    """The synchronous URL of a stack's intake database."""
    return stack.database_urls.get("intake") or f"sqlite:///{stack.home / 'intake.db'}"


def stack_messages(stack: Any) -> list[tuple[str, str, bytes]]:
    """Every row of a running stack's intake outbox: (msg id, subject, payload), in order."""
    engine = create_engine(stack_database_url(stack))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(outbox.c.msg_id, outbox.c.subject, outbox.c.payload).order_by(outbox.c.seq)
            )
            return [(r.msg_id, r.subject, r.payload) for r in rows]
    finally:
        engine.dispose()


def stack_events(stack: Any, evidence_id: uuid.UUID | str | None = None) -> list[dict[str, Any]]:
    """The custody events in a running stack's intake outbox (of one item, if given)."""
    found = [json.loads(p) for _, subject, p in stack_messages(stack) if subject.endswith(".events.intake")]
    return [e for e in found if evidence_id is None or e.get("evidence_id") == str(evidence_id)]


def stack_upload(stack: Any, evidence_id: uuid.UUID | str) -> dict[str, Any]:
    """The row of one upload in a running stack's intake database."""
    engine = create_engine(stack_database_url(stack))
    try:
        with engine.connect() as connection:
            row = connection.execute(select(uploads).where(uploads.c.evidence_id == uuid.UUID(str(evidence_id)))).one()
            return dict(row._mapping)
    finally:
        engine.dispose()
