"""The sequencer against a real NATS JetStream: events published by services reach the log and
are acknowledged; forged ones (wrong key, altered, unsigned, another's subject) never do."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace

import nats
import psycopg
import pytest
from nats.js import JetStreamContext
from sqlalchemy import select

from custody_audit.log import repository
from custody_audit.log.admission import TrustedKeys
from custody_audit.log.entry import parse_leaf
from custody_audit.log.tables import rejected_events
from custody_common.bus import Topology
from custody_common.events import canonical
from custody_common.ids import uuid7
from custody_common.keys import trusted_service_keys
from tests.support.nats import NATS_URL
from tests.support.postgres import ADMIN_URL

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
        (topology.events_subject("intake"), {**signed("intake"), "sig": "é" * 88}),
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
    assert sorted(row.stream_seq for row in kept) == [4, 5, 6, 7, 8, 9]  # published right after the third
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


def _cut_connections(database_url: str) -> None:
    """Ends every session of the test database, the sequencer's among them: an outage."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database_url.rsplit("/", 1)[1],),
        )


def _allow_connections(database_url: str, allowed: bool) -> None:
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')


def _waits(caplog: pytest.LogCaptureFixture) -> list[int]:
    """The back-off delays the sequencer announced, in order."""
    found = (re.search(r"resuming in (\d+)s", record.getMessage()) for record in caplog.records)
    return [int(match.group(1)) for match in found if match]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_batches_pulled_before_an_outage_come_back_at_once_in_stream_order(
    settings, engine, signed, make_sequencer, js, namespace, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="custody_audit.log.sequencer")
    topology = Topology(namespace)
    # Unacknowledged messages would come back only after an hour: whatever returns sooner was
    # handed back by the sequencer.
    consumer = await js.consumer_info(topology.events_stream, topology.audit_consumer)
    await js.add_consumer(topology.events_stream, replace(consumer.config, ack_wait=3600.0))
    sequencer = make_sequencer(batch_size=20, fetch_timeout=0.2)
    task = asyncio.create_task(sequencer.run(js))
    events = [signed("intake", evidence_id=str(uuid7()), case="C") for _ in range(200)]
    try:
        await _until(lambda: _ready(sequencer, 1, 0, 0), "audit's key announced")
        await asyncio.to_thread(_cut_connections, settings.database_url)
        for event in events:
            await js.publish(topology.events_subject("intake"), canonical(event), headers={"Nats-Msg-Id": event["id"]})
        await _until(lambda: _ready(sequencer, len(events) + 1, 0, 0), "every event logged after the outage")
        await _until(lambda: _all_acked(js, topology), "every message acknowledged")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert _waits(caplog), "the outage never interrupted sequencing, so this test shows nothing"
    async with engine.connect() as conn:
        stored = [parse_leaf(leaf.leaf)["event"] async for leaf in repository.stream_leaves(conn)]
    assert stored[1:] == events
    assert sequencer.stats.duplicates == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_after_progress_a_new_outage_is_waited_out_from_a_short_delay_again(
    settings, engine, signed, make_sequencer, js, namespace, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="custody_audit.log.sequencer")
    topology = Topology(namespace)
    sequencer = make_sequencer(fetch_timeout=0.2)
    task = asyncio.create_task(sequencer.run(js))
    first, second = (signed("intake", evidence_id=str(uuid7()), case="C") for _ in range(2))
    try:
        await _until(lambda: _ready(sequencer, 1, 0, 0), "audit's key announced")
        # A long outage: the database refuses every connection until three waits have begun.
        await asyncio.to_thread(_allow_connections, settings.database_url, False)
        try:
            await asyncio.to_thread(_cut_connections, settings.database_url)
            await js.publish(topology.events_subject("intake"), canonical(first), headers={"Nats-Msg-Id": first["id"]})
            await _until(lambda: _waited(caplog, 3), "three waits during the long outage")
        finally:
            await asyncio.to_thread(_allow_connections, settings.database_url, True)
        await _until(lambda: _ready(sequencer, 2, 0, 0), "the event logged after the long outage")
        assert _waits(caplog) == [1, 2, 4]
        # Sequencing made progress; the next outage starts again with the shortest wait.
        await asyncio.to_thread(_cut_connections, settings.database_url)
        await js.publish(topology.events_subject("intake"), canonical(second), headers={"Nats-Msg-Id": second["id"]})
        await _until(lambda: _ready(sequencer, 3, 0, 0), "the event logged after the short outage")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert _waits(caplog) == [1, 2, 4, 1]


async def _waited(caplog: pytest.LogCaptureFixture, times: int) -> bool:
    return len(_waits(caplog)) >= times


async def test_an_event_signed_with_a_key_read_too_recently_to_read_again_comes_back_and_is_logged(
    settings, signed, make_sequencer, js, namespace
) -> None:
    """Intake is deployed with a new key just after audit read the keys: its first event fails
    under the old key while the keys may not be read again yet. It is neither logged nor kept
    aside but delivered again later, when the new key is read, and logged. A forgery is
    deferred once too, and kept aside when it fails again."""
    topology = Topology(namespace)
    keys = TrustedKeys(lambda: trusted_service_keys(settings), min_interval=4.0)
    sequencer = make_sequencer(fetch_timeout=0.2, trusted_keys=keys)
    task = asyncio.create_task(sequencer.run(js))
    try:
        await _until(lambda: _ready(sequencer, 1, 0, 0), "audit's own key announced")
        for suffix in (".key", ".pub"):
            (settings.key_folder / f"intake-signing{suffix}").unlink()
        event = signed("intake", evidence_id=str(uuid7()))  # signed with the new deployment's key
        forgery = signed("intake", signer="evidence", evidence_id=str(uuid7()))
        for message in (event, forgery):
            await js.publish(topology.events_subject("intake"), canonical(message), headers={"Nats-Msg-Id": message["id"]})
        await _until(lambda: _ready(sequencer, 2, 1, 0), "the event logged and the forgery kept aside")
        await _until(lambda: _all_acked(js, topology), "every message acknowledged")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # both were deferred once; the forgery, failing again when it came back, was kept aside
    assert sequencer.stats.deferred == 2 and sequencer.stats.rejected == 1 and sequencer.stats.appended == 2
