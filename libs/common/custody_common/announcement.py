"""A service's signing key goes on record (a ``key_announced`` custody event) before anything
it signs, once per key, so every later statement can be checked against the log itself."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import sqlalchemy.exc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Column, DateTime, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from custody_common.crypto.signing import public_raw
from custody_common.events import actor_service, new_event
from custody_common.outbox import EventEmitter


def announced_keys_table(metadata: MetaData) -> Table:
    """The ``announced_keys`` table, in a service's own metadata (and its migration)."""
    return Table(
        "announced_keys",
        metadata,
        Column("key_id", String(64), primary_key=True),
        Column("event_id", String(64), nullable=False),
        Column("announced_at", DateTime(timezone=True), nullable=False),
    )


def key_id(key: Ed25519PrivateKey) -> str:
    """The id of a signing key: SHA-256 (hex) of its raw 32-byte public key."""
    return hashlib.sha256(public_raw(key.public_key())).hexdigest()


async def announce_signing_key(
    sessions: async_sessionmaker[AsyncSession], emitter: EventEmitter, key: Ed25519PrivateKey, table: Table
) -> bool:
    """Emit ``key_announced`` for ``key`` unless it was announced before; returns whether it
    was announced now. Safe when several processes of a service start at once: one announces."""
    identity = key_id(key)
    async with sessions() as session:
        if (await session.execute(select(table.c.key_id).where(table.c.key_id == identity))).first():
            return False
    event = new_event(
        action="key_announced",
        service=emitter.service,  # type: ignore[arg-type]
        actor=actor_service(emitter.service),
        details={"public_key": base64.b64encode(public_raw(key.public_key())).decode(), "key_id": identity},
    )
    try:
        async with sessions.begin() as session:
            # The row first: a concurrent announcer waits on it and then finds it taken.
            await session.execute(insert(table).values(key_id=identity, event_id=event["id"], announced_at=datetime.now(UTC)))
            await emitter.emit(session, event)
    except sqlalchemy.exc.IntegrityError:
        return False
    return True
