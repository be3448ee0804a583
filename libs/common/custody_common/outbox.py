"""The transactional outbox: a state change and the messages announcing it commit together;
a relay then publishes them to JetStream with ``Nats-Msg-Id`` (so a re-publish after a crash
is de-duplicated by the server) and marks them published. Nothing is lost, nothing doubled."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.js import JetStreamContext
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from custody_common.bus.topology import Topology
from custody_common.events import canonical, sign_event

log = logging.getLogger(__name__)


def outbox_table(metadata: MetaData) -> Table:
    """The ``outbox`` table, in a service's own metadata (and its migration)."""
    return Table(
        "outbox",
        metadata,
        Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("msg_id", String(64), nullable=False, unique=True),
        Column("subject", String(200), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True, index=True),
    )


async def enqueue(session: AsyncSession, table: Table, subject: str, payload: bytes, msg_id: str) -> None:
    """Add a message to the outbox inside the caller's transaction."""
    await session.execute(
        insert(table).values(msg_id=msg_id, subject=subject, payload=payload, created_at=datetime.now(UTC))
    )


class EventEmitter:
    """Signs a service's custody events and puts them in its outbox."""

    def __init__(self, service: str, signing_key: Ed25519PrivateKey, topology: Topology, table: Table) -> None:
        self.service = service
        self._key = signing_key
        self._subject = topology.events_subject(service)
        self._table = table

    async def emit(self, session: AsyncSession, event: dict[str, Any]) -> dict[str, Any]:
        """Sign ``event`` and enqueue it in the caller's transaction; returns the signed event."""
        if event.get("service") != self.service:
            raise ValueError(f"{self.service} cannot emit an event of {event.get('service')}")
        signed = sign_event(event, self._key)
        await enqueue(session, self._table, self._subject, canonical(signed), signed["id"])
        return signed


class OutboxRelay:
    """Publishes outbox rows in order; runs for the life of the service."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        js: JetStreamContext,
        batch: int = 500,
        poll_seconds: float = 0.5,
    ) -> None:
        self._sessions = sessions
        self._table = table
        self._js = js
        self._batch = batch
        self._poll = poll_seconds
        self._wakeup = asyncio.Event()
        self.published = 0

    def wake(self) -> None:
        """Publish soon: something was just committed."""
        self._wakeup.set()

    async def pending(self) -> int:
        """How many messages wait to be published."""
        async with self._sessions() as session:
            rows = await session.execute(select(self._table.c.seq).where(self._table.c.published_at.is_(None)))
            return len(rows.all())

    async def publish_pending(self) -> int:
        """Publish what is pending now; returns how many were published."""
        t = self._table
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(t.c.seq, t.c.msg_id, t.c.subject, t.c.payload)
                    .where(t.c.published_at.is_(None))
                    .order_by(t.c.seq)
                    .limit(self._batch)
                )
            ).all()
        if not rows:
            return 0
        acks = [
            self._js.publish(row.subject, row.payload, headers={"Nats-Msg-Id": row.msg_id}, timeout=10)
            for row in rows
        ]
        results = await asyncio.gather(*acks, return_exceptions=True)
        done = [row.seq for row, res in zip(rows, results, strict=True) if not isinstance(res, BaseException)]
        failed = [res for res in results if isinstance(res, BaseException)]
        if done:
            async with self._sessions.begin() as session:
                await session.execute(
                    update(t).where(t.c.seq.in_(done)).values(published_at=datetime.now(UTC))
                )
        if failed:
            raise failed[0]
        self.published += len(done)
        return len(done)

    async def run(self) -> None:
        """Publish forever, retrying with back-off while NATS or the database is away."""
        delay = 0.5
        while True:
            try:
                count = await self.publish_pending()
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — outages are waited out; rows stay pending
                log.warning("outbox relay: %s; retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            if count:
                continue
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll)
            except TimeoutError:
                pass


def decode(payload: bytes) -> dict[str, Any]:
    """The JSON object a message carries."""
    value = json.loads(payload)
    if not isinstance(value, dict):
        raise ValueError("message is not a JSON object")
    return value
