"""Intake's signing key goes on record once, before anything it signs, even when several
intake processes start at the same moment."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from custody_common.bus import Topology
from custody_common.crypto.signing import public_raw
from custody_common.events import verify_event
from custody_common.outbox import EventEmitter
from custody_common.announcement import announce_signing_key, key_id
from custody_intake.tables import announced_keys
from custody_intake.tables import outbox
from services.intake.tests.harness import Intake


def emitter_for(key: Ed25519PrivateKey) -> EventEmitter:
    return EventEmitter("intake", key, Topology("unused"), outbox)


async def test_a_key_is_announced_once(intake: Intake) -> None:
    key = intake.signing_key
    assert await announce_signing_key(intake.sessions, emitter_for(key), key, announced_keys) is True
    assert await announce_signing_key(intake.sessions, emitter_for(key), key, announced_keys) is False

    [event] = await intake.events()
    assert event["action"] == "key_announced" and event["actor"] == {"service": "intake"}
    assert "evidence_id" not in event
    raw = base64.b64decode(event["details"]["public_key"])
    assert raw == public_raw(key.public_key()) and len(raw) == 32
    assert event["details"]["key_id"] == hashlib.sha256(raw).hexdigest() == key_id(key)
    # Anyone holding the event alone can check its signature with the key it announces.
    assert verify_event(event, Ed25519PublicKey.from_public_bytes(raw))


async def test_a_new_key_is_announced_too(intake: Intake) -> None:
    first, second = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    assert await announce_signing_key(intake.sessions, emitter_for(first), first, announced_keys)
    assert await announce_signing_key(intake.sessions, emitter_for(second), second, announced_keys)
    ids = [e["details"]["key_id"] for e in await intake.events()]
    assert ids == [key_id(first), key_id(second)]


async def test_simultaneous_starts_announce_once(intake: Intake) -> None:
    key = intake.signing_key
    results = await asyncio.gather(*(announce_signing_key(intake.sessions, emitter_for(key), key, announced_keys) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    messages = await intake.messages()
    assert len(messages) == 1 and json.loads(messages[0][2])["action"] == "key_announced"
