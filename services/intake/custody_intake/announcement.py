"""Intake's signing key goes on record (a ``key_announced`` custody event) before anything it
signs, once per key, so every later statement can be checked against the log itself."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError as DuplicateRow
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from custody_common.crypto.signing import public_raw
from custody_common.events import actor_service, new_event
from custody_common.outbox import EventEmitter
from custody_intake.tables import announced_keys


def key_id(key: Ed25519PrivateKey) -> str:
    """The id of a signing key: SHA-256 (hex) of its raw 32-byte public key."""
    return hashlib.sha256(public_raw(key.public_key())).hexdigest()


async def announce_signing_key(
    sessions: async_sessionmaker[AsyncSession], emitter: EventEmitter, key: Ed25519PrivateKey
) -> bool:
    """Emit ``key_announced`` for ``key`` unless it was announced before; returns whether it
    was announced now. Safe when several intake processes start at once: one announces."""
    identity = key_id(key)
    async with sessions() as session:
        known = (
            await session.execute(select(announced_keys.c.key_id).where(announced_keys.c.key_id == identity))
        ).first()
    if known:
        return False
    public_key = base64.b64encode(public_raw(key.public_key())).decode()
    event = new_event(
        action="key_announced",
        service="intake",
        actor=actor_service("intake"),
        details={"public_key": public_key, "key_id": identity},
    )
    try:
        async with sessions.begin() as session:
            # The row first: a concurrent announcer waits on it and then finds it taken.
            await session.execute(
                insert(announced_keys).values(
                    key_id=identity, public_key=public_key, event_id=event["id"], announced_at=datetime.now(UTC)
                )
            )
            await emitter.emit(session, event)
    except DuplicateRow:
        return False
    return True
