"""Pulling from a durable consumer, against a real NATS JetStream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import nats
import pytest
from nats.aio.client import Client

from custody_common.bus import PullConsumer, Topology
from custody_common.bus.provision import provision
from tests.support.nats import NATS_URL

PATIENCE = 30  # a safety net against hangs, never a timing assertion


@pytest.fixture
async def nc(nats_namespace: str) -> AsyncIterator[Client]:
    client = await nats.connect(NATS_URL)
    try:
        yield client
    finally:
        await client.close()


def _consumer(nc: Client, namespace: str, batch: int = 10) -> PullConsumer:
    topology = Topology(namespace)
    return PullConsumer(nc.jetstream(), topology.events_stream, topology.audit_consumer, batch=batch, timeout=0.2)


async def _publish(nc: Client, namespace: str, count: int, start: int = 0) -> None:
    js = nc.jetstream()
    for n in range(start, start + count):
        await js.publish(Topology(namespace).events_subject("intake"), b"%d" % n)


async def _never_redelivered_unless_given_back(nc: Client, namespace: str) -> None:
    topology = Topology(namespace)
    js = nc.jetstream()
    consumer = await js.consumer_info(topology.events_stream, topology.audit_consumer)
    await js.add_consumer(topology.events_stream, replace(consumer.config, ack_wait=3600.0))


async def test_what_is_there_is_handed_out_in_batches_oldest_first(nc, nats_namespace) -> None:  # type: ignore[no-untyped-def]
    await _publish(nc, nats_namespace, 25)
    got = []
    async with _consumer(nc, nats_namespace) as consumer:
        while len(got) < 25:
            batch = await asyncio.wait_for(consumer.next_batch(), PATIENCE)
            assert 0 < len(batch) <= 10
            got += batch
            for msg in batch:
                await msg.ack()
    assert [msg.data for msg in got] == [b"%d" % n for n in range(25)]


async def test_an_idle_stream_is_waited_on_and_a_late_message_handed_out(nc, nats_namespace) -> None:  # type: ignore[no-untyped-def]
    async with _consumer(nc, nats_namespace) as consumer:
        waiting = asyncio.create_task(consumer.next_batch())
        await asyncio.sleep(0.5)  # a few requests come and go empty meanwhile
        assert not waiting.done()
        await _publish(nc, nats_namespace, 1)
        batch = await asyncio.wait_for(waiting, PATIENCE)
        assert [msg.data for msg in batch] == [b"0"]
        await batch[0].ack()


async def test_closing_gives_back_what_was_not_finished_with_oldest_first(nc, nats_namespace) -> None:  # type: ignore[no-untyped-def]
    await _never_redelivered_unless_given_back(nc, nats_namespace)
    await _publish(nc, nats_namespace, 30)
    async with _consumer(nc, nats_namespace) as consumer:
        first = await asyncio.wait_for(consumer.next_batch(), PATIENCE)
        second = await asyncio.wait_for(consumer.next_batch(), PATIENCE)
        await first[0].ack()  # finished with: not given back
        # The caller stops waiting for a third batch half-way; nothing it was due is lost.
        waiting = asyncio.create_task(consumer.next_batch())
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        consumer.hand_back(first[1:] + second)
    # Redelivered at once (the ack wait is an hour) and in stream order.
    got = []
    async with _consumer(nc, nats_namespace) as again:
        while len(got) < 29:
            batch = await asyncio.wait_for(again.next_batch(), PATIENCE)
            got += batch
            for msg in batch:
                await msg.ack()
    assert [msg.data for msg in got] == [b"%d" % n for n in range(1, 30)]


async def test_a_missing_consumer_is_waited_for(nc, nats_namespace, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger="custody_common.bus.connection")
    topology = Topology(nats_namespace)
    js = nc.jetstream()
    await js.delete_consumer(topology.events_stream, topology.audit_consumer)
    await _publish(nc, nats_namespace, 3)
    async with _consumer(nc, nats_namespace) as consumer:
        waiting = asyncio.create_task(consumer.next_batch())
        while not any("pulling from" in record.getMessage() for record in caplog.records):
            assert not waiting.done()
            await asyncio.sleep(0.05)
        await provision(js, topology)
        batch = await asyncio.wait_for(waiting, PATIENCE)
        assert [msg.data for msg in batch] == [b"0", b"1", b"2"]
        for msg in batch:
            await msg.ack()
