"""The sequencer against a real NATS JetStream: events published by services reach the log and
are acknowledged; forged ones (wrong key, altered, unsigned, another's subject) never do."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext
from sqlalchemy import select

from custody_audit.log import repository
from custody_audit.log.entry import parse_leaf
from custody_audit.log.tables import rejected_events
from custody_common.bus import Topology
from custody_common.events import canonical
from custody_common.ids import uuid7
from tests.support.nats import NATS_URL

PATIENCE = 60  # a safety net against hangs, never a timing assertion


@pytest.fixture
def namespace(nats_namespace: str) -> str:
    return nats_namespace


@pytest.fixture
async def js(namespace: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(NATS_URL)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


async def _until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    async def wait() -> None:
        while not await condition():
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(wait(), PATIENCE)
    except TimeoutError:
        raise AssertionError(f"gave up waiting: {what}") from None


async def test_published_events_are_logged_and_forgeries_kept_aside(
    settings, engine, signed, make_sequencer, js, namespace
) -> None:
    topology = Topology(namespace)
    item = str(uuid7())
    genuine = [signed("intake", action="submitted", evidence_id=item, case="C-1")]
    genuine += [signed("intake", action="received", evidence_id=item, case="C-1")]
    genuine += [signed("evidence", action="sealed", evidence_id=item, case="C-1")]
    genuine += [signed("evidence", action="key_rotated")]
    genuine += [signed("intake", evidence_id=str(uuid7()), case="C-2") for _ in range(150)]
    forged = [
        (topology.events_subject("intake"), signed("intake", signer="evidence", evidence_id=item, case="C-1")),
        (topology.events_subject("intake"), {**signed("intake", evidence_id=item), "case": "C-9"}),
        (topology.events_subject("intake"), {k: v for k, v in signed("intake").items() if k != "sig"}),
        (topology.events_subject("evidence"), signed("intake", evidence_id=item, case="C-1")),
        (topology.events_subject("audit"), signed("audit", signer="intake", action="key_announced")),
    ]
    for position, event in enumerate(genuine):
        await js.publish(topology.events_subject(event["service"]), canonical(event), headers={"Nats-Msg-Id": event["id"]})
        if position == 2:
            for subject, forgery in forged:
                await js.publish(subject, canonical(forgery))
    # A redelivered or re-published event (another message id, same event) is logged once.
    await js.publish(topology.events_subject("intake"), canonical(genuine[0]))

    sequencer = make_sequencer(batch_size=64, fetch_timeout=0.2, admission_threads=3)
    task = asyncio.create_task(sequencer.run(js))
    try:
        # +1: audit announces its own key at first start.
        await _until(
            lambda: _ready(sequencer, len(genuine) + 1, len(forged), 1),
            "every published message judged",
        )
        await _until(lambda: _all_acked(js, topology), "every message acknowledged")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async with engine.connect() as conn:
        stored = [leaf async for leaf in repository.stream_leaves(conn)]
        kept = (await conn.execute(select(rejected_events))).all()
        latest = await repository.latest_checkpoint(conn)
    events = [parse_leaf(s.leaf)["event"] for s in stored]
    assert events[0]["action"] == "key_announced" and events[0]["service"] == "audit"
    assert events[1:] == genuine
    assert latest.size == len(genuine) + 1
    assert [parse_leaf(s.leaf)["item_seq"] for s in stored[1:4]] == [1, 2, 3]
    assert sorted(bytes(row.payload) for row in kept) == sorted(canonical(f) for _, f in forged)
    assert sequencer.stats.rejected == len(forged) and sequencer.stats.duplicates == 1
    assert all(f not in events for _, f in forged)


async def _ready(sequencer, appended: int, rejected: int, duplicates: int) -> bool:  # type: ignore[no-untyped-def]
    stats = sequencer.stats
    return stats.appended >= appended and stats.rejected >= rejected and stats.duplicates >= duplicates


async def _all_acked(js: JetStreamContext, topology: Topology) -> bool:
    info = await js.consumer_info(topology.events_stream, topology.audit_consumer)
    return info.num_ack_pending == 0 and info.num_pending == 0


async def test_a_standby_sequencer_takes_over_the_stream(settings, engine, signed, make_sequencer, js, namespace) -> None:
    topology = Topology(namespace)
    # Messages a stopped leader had pulled come back after ack_wait; keep that short here.
    consumer = await js.consumer_info(topology.events_stream, topology.audit_consumer)
    await js.add_consumer(topology.events_stream, replace(consumer.config, ack_wait=1.0))
    # Each sequencer has its own connection, as two processes would.
    first_nc, second_nc = await nats.connect(NATS_URL), await nats.connect(NATS_URL)
    first = make_sequencer(fetch_timeout=0.2)
    second = make_sequencer(fetch_timeout=0.2)
    first_task = asyncio.create_task(first.run(first_nc.jetstream()))
    await _until(lambda: _is(first, "leading"), "the first sequencer leading")
    second_task = asyncio.create_task(second.run(second_nc.jetstream()))
    try:
        events = [signed("intake", evidence_id=str(uuid7()), case="C") for _ in range(10)]
        for event in events[:5]:
            await js.publish(topology.events_subject("intake"), canonical(event), headers={"Nats-Msg-Id": event["id"]})
        await _until(lambda: _ready(first, 6, 0, 0), "the first sequencer logging")
        assert not second.leading
        first_task.cancel()
        await asyncio.gather(first_task, return_exceptions=True)
        await first_nc.close()
        for event in events[5:]:
            await js.publish(topology.events_subject("intake"), canonical(event), headers={"Nats-Msg-Id": event["id"]})
        await _until(lambda: _ready(second, 5, 0, 0), "the standby taking over")
    finally:
        first_task.cancel()
        second_task.cancel()
        await asyncio.gather(first_task, second_task, return_exceptions=True)
        await first_nc.close()
        await second_nc.close()
    async with engine.connect() as conn:
        stored = [parse_leaf(leaf.leaf)["event"] async for leaf in repository.stream_leaves(conn)]
    assert stored[1:6] == events[:5]
    assert sorted(e["id"] for e in stored[6:]) == sorted(e["id"] for e in events[5:])
    assert sum(1 for e in stored if e["action"] == "key_announced") == 1


async def _is(sequencer, attribute: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(getattr(sequencer, attribute))
