"""The outbox against real PostgreSQL/SQLite and real NATS JetStream."""

import nats
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import MetaData, update

from custody_common.bus import Topology
from custody_common.db import make_engine, session_factory
from custody_common.events import actor_service, new_event, verify_event
from custody_common.outbox import EventEmitter, OutboxRelay, decode, outbox_table
from custody_common.settings import Settings
from tests.support.nats import NATS_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/outbox.db"
    return request.getfixturevalue("postgres_url")


async def _drain(js, topology: Topology, expected: int) -> list:
    sub = await js.pull_subscribe_bind(durable=topology.audit_consumer, stream=topology.events_stream)
    got = []
    while len(got) < expected:
        try:
            msgs = await sub.fetch(expected - len(got), timeout=5)
        except nats.errors.TimeoutError:
            break
        for msg in msgs:
            await msg.ack()
        got += msgs
    try:
        extra = await sub.fetch(1, timeout=1)
    except nats.errors.TimeoutError:
        extra = []
    return got + extra


async def test_events_commit_with_state_and_publish_once(tmp_path, database_url, nats_namespace) -> None:
    settings = Settings(home=tmp_path, database_url=database_url, nats_namespace=nats_namespace)
    metadata = MetaData()
    table = outbox_table(metadata)
    engine = make_engine(settings, "test")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    sessions = session_factory(engine)
    key = Ed25519PrivateKey.generate()
    topology = Topology(nats_namespace)
    emitter = EventEmitter("intake", key, topology, table)

    # a transaction that rolls back leaves no message behind
    with pytest.raises(RuntimeError):
        async with sessions.begin() as session:
            await emitter.emit(session, new_event(action="expired", service="intake", actor=actor_service("intake")))
            raise RuntimeError("crash before commit")
    async with sessions.begin() as session:
        for _ in range(5):
            await emitter.emit(session, new_event(action="expired", service="intake", actor=actor_service("intake")))

    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        relay = OutboxRelay(sessions, table, js)
        assert await relay.publish_pending() == 5
        # a relay that crashed after publishing but before marking re-publishes: de-duplicated by Nats-Msg-Id
        async with sessions.begin() as session:
            await session.execute(update(table).values(published_at=None))
        assert await relay.publish_pending() == 5
        assert await relay.pending() == 0
        msgs = await _drain(js, topology, 5)
        assert len(msgs) == 5
        events = [decode(m.data) for m in msgs]
        assert all(verify_event(e, key.public_key()) for e in events)
        assert {m.subject for m in msgs} == {topology.events_subject("intake")}
        assert [m.headers["Nats-Msg-Id"] for m in msgs] == [e["id"] for e in events]
    finally:
        await nc.close()
        await engine.dispose()


async def test_emitter_refuses_another_services_event(tmp_path) -> None:
    emitter = EventEmitter("intake", Ed25519PrivateKey.generate(), Topology("x"), outbox_table(MetaData()))
    with pytest.raises(ValueError):
        await emitter.emit(None, new_event(action="sealed", service="evidence", actor=actor_service("evidence")))  # type: ignore[arg-type]
