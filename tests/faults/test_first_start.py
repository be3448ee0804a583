"""Starting order: audit runs first, then intake starts for the first time and makes its signing
key. Intake's first statement — the announcement of that key, published the moment intake is up —
must end in the log, however soon after audit's start it arrives."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid

import nats
import psycopg
import pytest

from custody_common.crypto.signing import public_raw
from custody_common.events import actor_service, canonical, new_event, sign_event
from custody_common.keys import service_signing_key
from tests.faults.conftest import StackBuilder
from tests.faults.scenario import LOG_TIMEOUT, wait_bus_settled
from tests.support.nats import NatsServer, provision_namespace
from tests.support.stack import Stack


def _publish(stack: Stack, subject: str, payload: bytes, msg_id: str) -> None:
    async def publish() -> None:
        nc = await nats.connect(stack.nats_url, connect_timeout=5)
        try:
            await nc.jetstream(timeout=10).publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
        finally:
            await nc.close()

    asyncio.run(publish())


@pytest.mark.slow
@pytest.mark.s3
def test_first_statement_of_a_service_started_after_audit_is_logged(
    build_stack: StackBuilder, fault_nats: NatsServer
) -> None:
    namespace = f"f{uuid.uuid4().hex[:10]}"
    topology = provision_namespace(fault_nats.url, namespace)
    stack = build_stack(fault_nats.url, namespace)
    stack.start("audit")

    # What intake does first when it starts: make its key, announce it (see custody_intake.announcement).
    key = service_signing_key(stack.settings, "intake")
    raw = public_raw(key.public_key())
    event = sign_event(
        new_event(
            action="key_announced",
            service="intake",
            actor=actor_service("intake"),
            details={"public_key": base64.b64encode(raw).decode(), "key_id": hashlib.sha256(raw).hexdigest()},
        ),
        key,
    )
    _publish(stack, topology.events_subject("intake"), canonical(event), event["id"])
    started = time.monotonic()
    wait_bus_settled([stack.nats_url], namespace, LOG_TIMEOUT)

    with psycopg.connect(stack.database_urls["audit"]) as conn:
        logged = conn.execute("SELECT count(*) FROM log_leaves WHERE event_id = %s", (event["id"],)).fetchone()[0]
        kept_aside = conn.execute("SELECT reason FROM rejected_events").fetchall()
    assert logged == 1, (
        f"intake's first event is not in the log {time.monotonic() - started:.1f}s after it was published; "
        f"audit kept aside: {kept_aside}"
    )
