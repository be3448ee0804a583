"""Announcing the service's signing key in the custody log, once per key, before the service
signs anything else: so every later statement can be checked against the log itself."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import sqlalchemy.exc
from sqlalchemy import insert, select

from custody_common.crypto.signing import public_raw
from custody_common.events import actor_service, new_event

from custody_evidence.tables import announced_keys
from custody_evidence.vault import SERVICE, Vault


def key_id(raw_public_key: bytes) -> str:
    """The id of a public key: SHA-256 (hex) of its 32 raw bytes."""
    return hashlib.sha256(raw_public_key).hexdigest()


async def announce_key(vault: Vault) -> bool:
    """Emit ``key_announced`` for the service's signing key unless done before; True if emitted
    now. Safe when several evidence processes start at once: one announces."""
    raw = public_raw(vault.public_key)
    kid = key_id(raw)
    async with vault.sessions() as session:
        done = await session.execute(select(announced_keys.c.key_id).where(announced_keys.c.key_id == kid))
        if done.first() is not None:
            return False
    event = new_event(
        action="key_announced",
        service=SERVICE,
        actor=actor_service(SERVICE),
        details={"public_key": base64.b64encode(raw).decode(), "key_id": kid},
    )
    try:
        async with vault.transaction() as session:
            # The row first: a concurrent announcer waits on it, then finds it taken.
            await session.execute(
                insert(announced_keys).values(key_id=kid, event_id=event["id"], announced_at=datetime.now(UTC))
            )
            await vault.emitter.emit(session, event)
    except sqlalchemy.exc.IntegrityError:
        return False
    return True
