"""The background time-stamper over a real log database and a real (or absent) authority: it
pauses ``interval`` after each round, asks nothing when the newest checkpoint has its token,
backs off from 5 s to 5 minutes while the authority is away (never a busy loop), stands by
while another process sequences, and refuses to time-stamp a checkpoint that does not verify.
Only the pauses are intercepted, to read them instead of waiting them out."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncEngine

from custody_audit.app import LOG_KEY_FILE
from custody_audit.log import repository as log_repository
from custody_audit.log.checkpoint import Checkpoint, sign_checkpoint, verifier_key
from custody_audit.log.repository import StoredCheckpoint
from custody_audit.timestamps import stamper as stamper_module
from custody_audit.timestamps.authority import TimestampAuthority
from custody_audit.timestamps.repository import timestamp_of_size
from custody_audit.timestamps.service import CheckpointTimestamps
from custody_audit.timestamps.stamper import CheckpointStamper
from custody_common.crypto.signing import load_or_create_private_key
from custody_common.settings import Settings
from tests.support.nats import free_port
from tests.support.tsa import TsaServer


class Pauses:
    """Stands in for the stamper's pauses: records each, and stops the loop after ``rounds``."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        if len(self.seconds) >= self.rounds:
            raise asyncio.CancelledError


def timestamps_of(settings: Settings, engine: AsyncEngine, url: str) -> CheckpointTimestamps:
    key = load_or_create_private_key(settings.key_folder / LOG_KEY_FILE).public_key()
    authority = TimestampAuthority(url, timeout=5)
    return CheckpointTimestamps(engine, authority, verifier_key(settings.log_origin, key), settings.log_origin)


async def run(stamper: CheckpointStamper, pauses: Pauses, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stamper_module, "sleep", pauses)
    with pytest.raises(asyncio.CancelledError):
        await stamper.run()


async def test_an_absent_authority_is_waited_out_with_growing_pauses(
    settings, engine, append, signed, incoming, monkeypatch
) -> None:
    await append(incoming(signed("intake")))
    timestamps = timestamps_of(settings, engine, f"http://127.0.0.1:{free_port()}/tsa")
    stamper = CheckpointStamper(engine, timestamps, interval=60)
    pauses = Pauses(rounds=9)
    try:
        await run(stamper, pauses, monkeypatch)
    finally:
        await timestamps.authority.close()
    assert pauses.seconds == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert stamper.stats.failures == 9 and stamper.stats.stamped == 0
    assert "cannot be reached" in (stamper.stats.last_failure or "")


async def test_one_token_per_newest_checkpoint_then_quiet(
    settings, engine, append, signed, incoming, tsa_server: TsaServer, monkeypatch
) -> None:
    await append(incoming(signed("intake")), incoming(signed("intake")))
    timestamps = timestamps_of(settings, engine, tsa_server.url)
    stamper = CheckpointStamper(engine, timestamps, interval=60)
    pauses = Pauses(rounds=3)
    try:
        await run(stamper, pauses, monkeypatch)
    finally:
        await timestamps.authority.close()
    assert pauses.seconds == [60, 60, 60]
    assert len(tsa_server.received) == 1 and stamper.stats.stamped == 1
    async with engine.connect() as conn:
        stored = await timestamp_of_size(conn, 2)
    assert stored is not None and stored.response == tsa_server.replies[0]


async def test_a_process_that_does_not_sequence_stands_by(
    settings, engine, append, signed, incoming, tsa_server: TsaServer, monkeypatch
) -> None:
    await append(incoming(signed("intake")))
    timestamps = timestamps_of(settings, engine, tsa_server.url)
    stamper = CheckpointStamper(engine, timestamps, interval=60, active=lambda: False)
    try:
        await run(stamper, Pauses(rounds=2), monkeypatch)
    finally:
        await timestamps.authority.close()
    assert tsa_server.received == []


async def test_a_checkpoint_that_does_not_verify_is_never_time_stamped(
    settings, engine, append, signed, incoming, tsa_server: TsaServer, monkeypatch
) -> None:
    await append(incoming(signed("intake")))
    forged_root = hashlib.sha256(b"forged").digest()
    note = sign_checkpoint(Checkpoint(settings.log_origin, 2, forged_root), Ed25519PrivateKey.generate())
    async with engine.begin() as conn:  # written behind the sequencer's back
        await log_repository.insert_checkpoint(conn, StoredCheckpoint(2, forged_root, note, datetime.now(UTC)))
    timestamps = timestamps_of(settings, engine, tsa_server.url)
    stamper = CheckpointStamper(engine, timestamps, interval=60)
    monkeypatch.setattr(stamper_module, "sleep", Pauses(rounds=5))
    try:
        await stamper.run()  # returns: damage stops it for good
    finally:
        await timestamps.authority.close()
    assert stamper.damage is not None and "stored checkpoint 2 does not verify" in stamper.damage
    assert tsa_server.received == []
