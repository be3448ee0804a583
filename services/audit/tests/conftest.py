"""Fixtures of the audit service's tests: a migrated log database on SQLite and on a fresh
PostgreSQL database, service keys, signed events, and a sequencer over them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import literal, text
from sqlalchemy.ext.asyncio import AsyncEngine

from custody_audit.app import LOG_KEY_FILE, MIGRATIONS, anchor_path
from custody_audit.log.admission import TrustedKeys
from custody_audit.log.sequencer import Incoming, Sequencer
from custody_audit.log.tables import checkpoints, leaves, nodes
from custody_common.bus import Topology
from custody_common.crypto.signing import load_or_create_private_key
from custody_common.db import make_engine, run_migrations
from custody_common.events import actor_person, actor_service, canonical, new_event, sign_event
from custody_common.keys import service_signing_key, trusted_service_keys
from custody_common.settings import Settings
from tests.support.nats import NATS_URL

ORIGIN = "custody.test/log"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """The embedded default (None: a SQLite file under home) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def postgres_only_url(postgres_url: str) -> str:
    """A fresh PostgreSQL database, for what only PostgreSQL does (triggers, advisory locks)."""
    return postgres_url


def make_settings(home: Path, database_url: str | None, namespace: str = "custody") -> Settings:
    """Settings of one audit service under test."""
    return Settings(
        home=home,
        database_url=database_url,
        nats_url=NATS_URL,
        nats_namespace=namespace,
        log_origin=ORIGIN,
    )


@pytest.fixture
def namespace() -> str:
    """The NATS namespace of the test; modules that use NATS override it with a fresh one."""
    return "custody"


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, namespace: str) -> Settings:
    s = make_settings(tmp_path / "home", database_url, namespace)
    for service in ("intake", "evidence", "audit"):
        service_signing_key(s, service)
    return s


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The migrated audit database."""
    await asyncio.to_thread(run_migrations, settings, "audit", MIGRATIONS)
    engine = make_engine(settings, "audit")
    try:
        yield engine
    finally:
        await engine.dispose()


def new_sequencer(settings: Settings, engine: AsyncEngine, **options: Any) -> Sequencer:
    """A sequencer with the keys under ``settings.key_folder``, keeping its checkpoints where
    the service keeps them."""
    options.setdefault("anchor", anchor_path(settings))
    return Sequencer(
        engine,
        Topology(settings.nats_namespace),
        origin=settings.log_origin,
        log_key=load_or_create_private_key(settings.key_folder / LOG_KEY_FILE),
        event_key=service_signing_key(settings, "audit"),
        trusted_keys=options.pop("trusted_keys", None) or TrustedKeys(lambda: trusted_service_keys(settings), min_interval=0),
        **options,
    )


@pytest.fixture
def sequencer(settings: Settings, engine: AsyncEngine) -> Sequencer:
    return new_sequencer(settings, engine)


EventFactory = Callable[..., dict[str, Any]]


@pytest.fixture
def signed(settings: Settings) -> EventFactory:
    """A custody event signed by the service it names (or by ``signer``'s key)."""

    def make(
        service: str = "intake",
        signer: str | None = None,
        action: str = "received",
        event_id: str | None = None,
        **fields: Any,
    ) -> dict:
        actor = actor_service(service) if action != "accessed" else actor_person("pat", ["prosecutor"])
        event = new_event(action=action, service=service, actor=actor, **fields)  # type: ignore[arg-type]
        if event_id is not None:
            event["id"] = event_id
        return sign_event(event, service_signing_key(settings, signer or service))

    return make


def message_of(settings: Settings, event: dict[str, Any], service: str | None = None) -> Incoming:
    """The message of ``event`` as it arrives on ``service``'s subject (default its own)."""
    subject = Topology(settings.nats_namespace).events_subject(service or event["service"])
    return Incoming(subject, canonical(event))


@pytest.fixture
def incoming(settings: Settings) -> Callable[..., Incoming]:
    """``incoming(event, service=None)``: the message of an event (see :func:`message_of`)."""
    return lambda event, service=None: message_of(settings, event, service)


@pytest.fixture
def make_sequencer(settings: Settings, engine: AsyncEngine) -> Callable[..., Sequencer]:
    """Another sequencer over the same database and keys."""
    return lambda **options: new_sequencer(settings, engine, **options)


Append = Callable[..., Awaitable[Any]]


@pytest.fixture
async def append(sequencer: Sequencer, engine: AsyncEngine) -> AsyncIterator[Append]:
    """Append messages through the sequencer, on a connection of its own."""
    async with engine.connect() as conn:
        await sequencer.recover(conn)

        async def run(*messages: Incoming):  # type: ignore[no-untyped-def]
            return await sequencer.append(conn, list(messages))

        yield run


async def cut_log(engine: AsyncEngine, size: int) -> None:
    """Remove, as a database superuser past the triggers, every entry from index ``size`` on,
    with the subtree hashes and checkpoints that cover any of them: a log cut short that is
    consistent on its own."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(leaves.delete().where(leaves.c.idx >= size))
        await conn.execute(nodes.delete().where((nodes.c.idx + 1) * literal(1).op("<<")(nodes.c.level) > size))
        await conn.execute(checkpoints.delete().where(checkpoints.c.size > size))
