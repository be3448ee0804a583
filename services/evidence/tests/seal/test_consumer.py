"""The sealer on the bus: real NATS JetStream, the durable consumer made at deploy time."""

from __future__ import annotations

import asyncio
import os

import nats
import pytest

from custody_common.bus import Topology
from custody_common.events import verify_event
from custody_common.outbox import decode
from custody_evidence.seal.repository import set_aside_messages
from tests.support.nats import NATS_URL

WAIT_SECONDS = 60


async def _until(condition, what: str):  # type: ignore[no-untyped-def]
    """Wait for ``condition()`` to hold (an upper bound on waiting, not a timing assertion)."""
    for _ in range(WAIT_SECONDS * 10):
        found = await condition()
        if found:
            return found
        await asyncio.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}")


async def test_completed_submissions_on_the_bus_are_sealed_once_and_announced(running, served_intake, settings) -> None:
    topology = Topology(settings.nats_namespace)
    good = served_intake.submit(os.urandom(200_000), part_sizes=[100_000, 100_000])
    unsigned = served_intake.submit(os.urandom(10), signed=False)
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        for submission in (good, unsigned):
            await js.publish(
                topology.submission_completed_subject,
                submission.payload,
                headers={"Nats-Msg-Id": f"completed-{submission.evidence_id}"},
            )
        # a redelivered copy (another message id) must not seal twice
        await js.publish(topology.submission_completed_subject, good.payload, headers={"Nats-Msg-Id": "again"})

        prosecutor = running.client(running.token("petra", ["prosecutor"], ["CASE-1"]))
        async with prosecutor:

            async def sealed():  # type: ignore[no-untyped-def]
                answer = await prosecutor.get(f"/v1/evidence/{good.evidence_id}/status")
                return answer.status_code == 200 and answer.json()["status"] == "sealed"

            await _until(sealed, "the submission to be sealed")

        async def all_acknowledged():  # type: ignore[no-untyped-def]
            info = await js.consumer_info(topology.submissions_stream, topology.sealer_consumer)
            return info.num_pending == 0 and info.num_ack_pending == 0

        await _until(all_acknowledged, "every message to be acknowledged")

        async def set_aside():  # type: ignore[no-untyped-def]
            async with running.vault.sessions() as session:
                return await set_aside_messages(session)

        [kept] = await _until(set_aside, "the unsigned statement to be set aside")
        assert kept.payload == unsigned.payload

        # the relay publishes the service's events: its key first, then one seal
        events_sub = await js.pull_subscribe_bind(durable=topology.audit_consumer, stream=topology.events_stream)
        received: list[dict] = []

        async def two_events():  # type: ignore[no-untyped-def]
            try:
                msgs = await events_sub.fetch(10, timeout=0.5)
            except nats.errors.TimeoutError:
                msgs = []
            for msg in msgs:
                await msg.ack()
                received.append(decode(msg.data))
            return len(received) >= 2

        await _until(two_events, "the custody events to be published")
        try:
            extra = await events_sub.fetch(5, timeout=1)
        except nats.errors.TimeoutError:
            extra = []
        received += [decode(m.data) for m in extra]
    finally:
        await nc.close()

    assert [e["action"] for e in received] == ["key_announced", "sealed"]
    assert all(verify_event(e, running.vault.public_key) for e in received)
    assert received[1]["evidence_id"] == str(good.evidence_id)


class _SlowSealer:
    """Takes ``seconds`` over each seal (a pure stand-in: only the bus is under test here)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.sealed = 0

    async def seal(self, payload: bytes, sequence: int | None) -> None:
        await asyncio.sleep(self.seconds)
        self.sealed += 1


async def _redelivered_during_a_long_seal(namespace: str, progress_every: float, monkeypatch) -> int:  # type: ignore[no-untyped-def]
    """Seal one message for three ack waits with progress reports every ``progress_every``
    seconds, while another sealer pulls from the same consumer; returns how many messages that
    other sealer was handed."""
    from custody_evidence.seal import consumer

    monkeypatch.setattr(consumer, "PROGRESS_SECONDS", progress_every)
    topology = Topology(namespace)
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        config = (await js.consumer_info(topology.submissions_stream, topology.sealer_consumer)).config
        config.ack_wait = 1.0
        await js.add_consumer(topology.submissions_stream, config)
        await js.publish(topology.submission_completed_subject, b"{}", headers={"Nats-Msg-Id": "long-seal"})
        first = await js.pull_subscribe_bind(durable=topology.sealer_consumer, stream=topology.submissions_stream)
        other = await js.pull_subscribe_bind(durable=topology.sealer_consumer, stream=topology.submissions_stream)
        [msg] = await first.fetch(1, timeout=10)
        sealer = _SlowSealer(3.0)
        sealing = asyncio.create_task(consumer.handle(sealer, msg))  # type: ignore[arg-type]
        handed = 0
        while not sealing.done():
            try:
                handed += len(await other.fetch(1, timeout=0.5))
            except nats.errors.TimeoutError:
                pass
        await sealing
        assert sealer.sealed == 1
        return handed
    finally:
        await nc.close()


async def test_a_long_seal_keeps_its_message_from_other_sealers(nats_namespace: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert await _redelivered_during_a_long_seal(nats_namespace, 0.25, monkeypatch) == 0


async def test_without_progress_reports_a_long_seal_would_be_handed_out_again(nats_namespace: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The control of the test above: its set-up does redeliver when nothing reports progress."""
    assert await _redelivered_during_a_long_seal(nats_namespace, 60.0, monkeypatch) >= 1
