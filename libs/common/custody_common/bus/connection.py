"""Connecting to NATS, and pulling batches from a durable consumer with back-off."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext

from custody_common.settings import Settings

log = logging.getLogger(__name__)


async def connect(settings: Settings, name: str) -> Client:
    """A connection that keeps reconnecting for as long as the process lives. Replies arrive on
    ``_INBOX.<name>.…`` so that NATS permissions can keep each service to its own inbox."""

    async def _error(exc: Exception) -> None:
        log.warning("NATS: %s", type(exc).__name__)

    options: dict = {
        "servers": settings.nats_servers,
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
        "connect_timeout": 3,
        "error_cb": _error,
        "allow_reconnect": True,
        "inbox_prefix": f"_INBOX.{name}",
    }
    if settings.nats_user:
        options["user"] = settings.nats_user
        options["password"] = settings.nats_password
    delay = 0.5
    while True:
        try:
            return await nats.connect(**options)
        except Exception as exc:  # noqa: BLE001 — any failure to connect is retried
            log.warning("NATS unreachable at start (%s); retrying in %.1fs", type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)


async def pull_batches(
    js: JetStreamContext, stream: str, durable: str, batch: int = 256, timeout: float = 1.0
) -> AsyncIterator[list[Msg]]:
    """Batches of messages from a durable pull consumer made at deploy time; waits with
    back-off (never spins) while the consumer or the server is unavailable."""
    subscription = None
    delay = 0.5
    try:
        while True:
            try:
                if subscription is None:
                    subscription = await js.pull_subscribe_bind(durable=durable, stream=stream)
                msgs = await subscription.fetch(batch, timeout=timeout)
                delay = 0.5
            except NatsTimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — bus outages are waited out
                log.warning(
                    "pulling from %s/%s failed (%s); retrying in %.1fs", stream, durable, type(exc).__name__, delay
                )
                subscription = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            if msgs:
                yield msgs
    finally:
        # Messages pulled but never handed out come back now, not after the consumer's ack wait.
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
