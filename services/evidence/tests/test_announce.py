"""The service's key goes on record once, before anything it signs."""

import asyncio
import base64

from custody_common.crypto.signing import public_raw
import hashlib

from custody_evidence.announce import announce_key


async def test_the_signing_key_is_announced_once(vault, events) -> None:
    assert await announce_key(vault) is True
    results = await asyncio.gather(announce_key(vault), announce_key(vault))
    assert results == [False, False]

    [announced] = await events(vault)
    assert announced["action"] == "key_announced"
    assert announced["actor"] == {"service": "evidence"}
    raw = public_raw(vault.public_key)
    assert announced["details"]["key_id"] == hashlib.sha256(raw).hexdigest()
    assert base64.b64decode(announced["details"]["public_key"]) == raw
