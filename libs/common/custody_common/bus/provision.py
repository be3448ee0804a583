"""The deploy-time step that creates streams and durable consumers (services never do).

``custody-provision`` reads the same settings as the services (``CUSTODY_NATS_URL``,
``CUSTODY_NATS_NAMESPACE``) and is idempotent.
"""

from __future__ import annotations

import argparse
import asyncio

import nats
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from custody_common.bus.topology import Topology
from custody_common.settings import Settings

DUPLICATE_WINDOW_SECONDS = 15 * 60
ACK_WAIT_SECONDS = 30.0
"""How long a pulled message stays with its consumer unacknowledged before it is delivered
again: after a crash, the sealer and the log take up their work within this. A seal that takes
longer says it is still working (``in_progress``) well within it."""


async def provision(js: JetStreamContext, topology: Topology, replicas: int = 1) -> None:
    """Create (or update) the streams and durable consumers of ``topology``."""
    streams = [
        StreamConfig(
            name=topology.events_stream,
            subjects=[topology.events_wildcard],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        ),
        StreamConfig(
            name=topology.submissions_stream,
            subjects=[topology.submission_completed_subject],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        ),
    ]
    for config in streams:
        try:
            await js.stream_info(config.name)
            await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)
    consumers = [
        (topology.events_stream, topology.audit_consumer),
        (topology.submissions_stream, topology.sealer_consumer),
    ]
    for stream, durable in consumers:
        await js.add_consumer(
            stream,
            ConsumerConfig(
                durable_name=durable,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=ACK_WAIT_SECONDS,
                max_ack_pending=20000,
                max_deliver=-1,
            ),
        )


async def remove(js: JetStreamContext, topology: Topology) -> None:
    """Delete the streams of ``topology`` (tests clean up with this)."""
    for name in (topology.events_stream, topology.submissions_stream):
        try:
            await js.delete_stream(name)
        except NotFoundError:
            pass


async def _run(settings: Settings, replicas: int) -> None:
    options: dict = {"servers": settings.nats_servers, "connect_timeout": 5, "inbox_prefix": "_INBOX.provision"}
    if settings.nats_user:
        options.update(user=settings.nats_user, password=settings.nats_password)
    nc = await nats.connect(**options)
    try:
        await provision(nc.jetstream(), Topology(settings.nats_namespace), replicas)
    finally:
        await nc.close()


def main() -> None:
    """``custody-provision [--replicas N]``: create the streams and durable consumers."""
    parser = argparse.ArgumentParser(prog="custody-provision", description=__doc__)
    parser.add_argument("--replicas", type=int, default=1, help="stream replicas (3 on a cluster)")
    args = parser.parse_args()
    settings = Settings()
    asyncio.run(_run(settings, args.replicas))
    print(f"NATS streams and consumers ready for namespace {settings.nats_namespace!r} at {settings.nats_url}")
