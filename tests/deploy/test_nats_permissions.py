"""deploy/nats/custody.conf: each service may publish only its own subjects and pull only from
its own durable consumer. Runs a private nats-server with that configuration."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError

from custody_common.bus import Topology
from custody_common.bus.provision import provision
from tests.support.nats import NatsServer, flushed

CONFIG = Path(__file__).resolve().parents[2] / "deploy/nats/custody.conf"
USERS = ("provision", "intake", "evidence", "audit")
TOPOLOGY = Topology("custody")  # the configuration is written for the default namespace


@pytest.fixture
def secured_nats(tmp_path: Path):
    # nats-server parses a substituted variable as a value: a password must start with a letter.
    passwords = {user: "p" + secrets.token_hex(16) for user in USERS}
    saved = dict(os.environ)
    os.environ.update({f"{u.upper()}_NATS_PASSWORD": p for u, p in passwords.items()})
    server = NatsServer(tmp_path / "nats", config=CONFIG)
    try:
        server.start()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        yield server, passwords
    finally:
        server.stop()


async def _connect(server: NatsServer, passwords: dict[str, str], user: str):
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(
        server.url, user=user, password=passwords[user], inbox_prefix=f"_INBOX.{user}",
        error_cb=on_error, allow_reconnect=False,
    )
    return nc, errors


async def _may_publish(server, passwords, user: str, subject: str) -> bool:
    nc, _ = await _connect(server, passwords, user)
    try:
        await nc.jetstream().publish(subject, b"{}", timeout=1)
        return True
    except (NatsTimeoutError, APIError, nats.errors.Error):
        return False
    finally:
        await nc.close()


async def _may_pull(server, passwords, user: str, stream: str, durable: str) -> bool:
    nc, errors = await _connect(server, passwords, user)
    try:
        sub = await nc.jetstream().pull_subscribe_bind(durable=durable, stream=stream)
        msgs = await sub.fetch(1, timeout=1)
        for msg in msgs:
            await msg.ack()
        return bool(msgs)
    except (NatsTimeoutError, APIError, nats.errors.Error):
        return False
    finally:
        await nc.close()


async def test_each_service_says_only_what_its_job_needs(secured_nats) -> None:
    server, passwords = secured_nats
    nc, _ = await _connect(server, passwords, "provision")
    await provision(nc.jetstream(), TOPOLOGY)
    await nc.close()

    events = TOPOLOGY.events_subject
    allowed = {
        "intake": [events("intake"), TOPOLOGY.submission_completed_subject],
        "evidence": [events("evidence")],
        "audit": [events("audit")],
    }
    for user, subjects in allowed.items():
        for subject in subjects:
            assert await _may_publish(server, passwords, user, subject), f"{user} must publish {subject}"
    forbidden = {
        "intake": [events("evidence"), events("audit")],
        "evidence": [events("intake"), events("audit"), TOPOLOGY.submission_completed_subject],
        "audit": [events("intake"), events("evidence"), TOPOLOGY.submission_completed_subject],
    }
    for user, subjects in forbidden.items():
        for subject in subjects:
            assert not await _may_publish(server, passwords, user, subject), f"{user} must not publish {subject}"

    # only audit reads the custody events; only evidence reads completed submissions
    assert await _may_pull(server, passwords, "audit", TOPOLOGY.events_stream, TOPOLOGY.audit_consumer)
    assert not await _may_pull(server, passwords, "intake", TOPOLOGY.events_stream, TOPOLOGY.audit_consumer)
    assert not await _may_pull(server, passwords, "evidence", TOPOLOGY.events_stream, TOPOLOGY.audit_consumer)
    assert await _may_pull(server, passwords, "evidence", TOPOLOGY.submissions_stream, TOPOLOGY.sealer_consumer)
    assert not await _may_pull(server, passwords, "audit", TOPOLOGY.submissions_stream, TOPOLOGY.sealer_consumer)

    # no service can create, change or delete streams
    for user in ("intake", "evidence", "audit"):
        nc, _ = await _connect(server, passwords, user)
        try:
            with pytest.raises((TimeoutError, NatsTimeoutError, APIError, nats.errors.Error)):
                await asyncio.wait_for(nc.jetstream().delete_stream(TOPOLOGY.events_stream), 2)
        finally:
            await nc.close()


async def _heard(server, passwords, speaker: str, listener: str, subject: str) -> bool:
    """Whether a core NATS message ``speaker`` publishes on ``subject`` reaches ``listener``.

    A message that arrives is heard at once, however long that takes (up to 30 s); one the
    server refuses is reported to speaker or listener, and after that report the message has
    one second more to arrive anyway."""
    ear, ear_errors = await _connect(server, passwords, listener)
    mouth, mouth_errors = await _connect(server, passwords, speaker)
    try:
        heard: list[bytes] = []

        async def received(msg) -> None:  # type: ignore[no-untyped-def]
            heard.append(msg.data)

        await ear.subscribe(subject, cb=received)
        await flushed(ear)
        await mouth.publish(subject, b"part")
        await mouth.flush()
        clock = asyncio.get_running_loop().time
        deadline = clock() + 30
        while not heard and clock() < deadline:
            if ear_errors or mouth_errors:
                deadline = min(deadline, clock() + 1)
            await asyncio.sleep(0.02)
        return heard == [b"part"]
    finally:
        await mouth.close()
        await ear.close()


async def test_only_intake_announces_stored_parts_and_only_evidence_hears_them(secured_nats) -> None:
    server, passwords = secured_nats
    subject = TOPOLOGY.part_stored_subject
    assert await _heard(server, passwords, "intake", "evidence", subject)
    for speaker in ("evidence", "audit"):
        assert not await _heard(server, passwords, speaker, "evidence", subject), f"{speaker} must not announce parts"
    assert not await _heard(server, passwords, "intake", "audit", subject), "audit must not hear of parts"
