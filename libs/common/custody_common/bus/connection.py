"""Connecting to NATS, and pulling batches from a durable consumer with back-off."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
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


@dataclass
class _Request:
    """The pull request awaiting its messages (one at a time)."""

    reply: str
    expected: int
    lingering: bool
    deadline: float
    received: int = 0


class PullConsumer:
    """Reads a durable pull consumer made at deploy time, batch by batch, waiting (never
    spinning) while the stream is idle and backing off while the server is unavailable.

    One pull request is open at a time. It first asks for what is there (``no_wait``); only
    when nothing was does the next one wait up to ``timeout`` for messages, and what arrives
    is handed out at once. Messages are delivered into a buffer this object owns, so a caller
    that stops waiting (a cancelled task) loses none. :meth:`close` gives back (naks) what the
    caller handed back (:meth:`hand_back`) and then what was delivered and not handed out, so
    it is redelivered at once and in stream order.
    """

    def __init__(self, js: JetStreamContext, stream: str, durable: str, *, batch: int = 256, timeout: float = 1.0):
        # nats-py keeps the connection and the JetStream API prefix (with its domain) here.
        self._nc: Client = js._nc
        self._next_subject = f"{js._prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._name = f"{stream}/{durable}"
        self._batch = batch
        self._timeout = timeout
        self._subscription: Subscription | None = None
        self._inbox = ""
        self._asked = 0
        self._request: _Request | None = None
        self._linger = False
        self._refusal: str | None = None
        self._delivered: deque[Msg] = deque()
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> PullConsumer:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def next_batch(self) -> list[Msg]:
        """Up to ``batch`` messages, oldest first, as soon as there are any."""
        delay = 0.5
        while True:
            self._arrived.clear()
            if self._delivered and (self._request is None or self._request.lingering):
                return [self._delivered.popleft() for _ in range(min(self._batch, len(self._delivered)))]
            try:
                if self._subscription is None:
                    self._inbox = self._nc.new_inbox()
                    self._subscription = await self._nc.subscribe(f"{self._inbox}.*", cb=self._receive)
                if self._request is None:
                    await self._ask()
                await self._wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — bus outages are waited out
                self._refusal = f"{type(exc).__name__}: {exc}"
            if self._refusal is not None:
                log.warning("pulling from %s failed (%s); retrying in %.1fs", self._name, self._refusal, delay)
                self._refusal = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
            else:
                delay = 0.5

    def hand_back(self, messages: Iterable[Msg]) -> None:
        """Take back messages handed out and not finished with (oldest first), to be given
        back with the rest when the consumer closes."""
        self._delivered.extendleft(reversed(list(messages)))

    async def close(self) -> None:
        """Stop listening, then give back (nak) everything delivered and not finished with,
        oldest first. Naks go out only once no request of ours is open: one sent while a request
        is open may be redelivered into it and lost with the subscription."""
        await self._await_request_end()
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                # Unsubscribes, then takes in what the server sent before it knew.
                async with asyncio.timeout(self._timeout):
                    await subscription.drain()
            except Exception:  # noqa: BLE001 — a connection gone cannot deliver more
                log.debug("the subscription to %s was gone already", self._name)
        self._request = None
        given_back, self._delivered = list(self._delivered), deque()
        try:
            for msg in given_back[:-1]:
                await msg.nak()
            if given_back:
                # The server takes a consumer's acknowledgements in order, so its answer to the
                # last nak means it has them all: whoever pulls next gets them first, in order.
                await self._nc.request(given_back[-1].reply, b"-NAK", timeout=self._timeout)
        except Exception:  # noqa: BLE001 — unacknowledged messages come back after the ack wait anyway
            log.warning(
                "giving back %d messages to %s was not confirmed; any not taken return after the ack wait",
                len(given_back),
                self._name,
            )

    async def _await_request_end(self) -> None:
        """Keep listening until the open pull request ends (its last message or its status),
        or its time is up: the server goes on delivering into a request after we stop waiting
        for it, and what it delivers to an inbox no longer listened to stays unacknowledged,
        behind newer messages, until the ack wait has passed."""
        request = self._request
        if request is None or self._subscription is None:
            return
        remaining = request.deadline - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(max(remaining, 0)):
                while self._request is request:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            log.debug("a pull request to %s had not ended when the consumer closed", self._name)

    async def _ask(self) -> None:
        self._asked += 1
        lingering, self._linger = self._linger, False
        body: dict[str, Any] = {"batch": self._batch}
        if lingering:
            body["expires"] = int(self._timeout * 1e9)
        else:
            body["no_wait"] = True
        reply = f"{self._inbox}.{self._asked}"
        # A request whose end never comes (lost in a reconnect) is given up after this.
        deadline = asyncio.get_running_loop().time() + self._timeout * (2 if lingering else 1)
        self._request = _Request(reply, self._batch, lingering, deadline)
        try:
            await self._nc.publish(self._next_subject, json.dumps(body).encode(), reply=reply)
        except BaseException:
            self._request = None
            raise

    async def _wait(self) -> None:
        """Until a message or the request's end arrives, or the request's time is up."""
        request = self._request
        if request is None:
            return
        remaining = request.deadline - asyncio.get_running_loop().time()
        try:
            # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that comes as
            # the wait ends, and a cancelled puller must stop.
            async with asyncio.timeout(max(remaining, 0)):
                await self._arrived.wait()
        except TimeoutError:
            if self._request is request:
                # No end came: the consumer is missing, or the server away. What the request
                # still delivers is kept all the same.
                self._request = None
                self._refusal = "no answer to a pull request"

    async def _receive(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        request = self._request
        if status is None:
            self._delivered.append(msg)
            if request is not None:
                request.received += 1
                if request.received >= request.expected:
                    self._request = None
        elif status != "100" and request is not None and msg.subject == request.reply:
            # 404 (nothing there) and 408 (the wait ran out) end a request; anything else
            # (409 consumer deleted or moved, 503 JetStream unavailable …) is waited out.
            self._request = None
            self._linger = status == "404" and not request.lingering and request.received == 0
            if status not in ("404", "408"):
                self._refusal = f"{status} {msg.headers.get('Description', '')}".strip()
        self._arrived.set()


async def pull_batches(
    js: JetStreamContext, stream: str, durable: str, batch: int = 256, timeout: float = 1.0
) -> AsyncIterator[list[Msg]]:
    """Batches of messages from a durable pull consumer made at deploy time (see
    :class:`PullConsumer`); what was delivered and not handed out is given back at the end."""
    async with PullConsumer(js, stream, durable, batch=batch, timeout=timeout) as consumer:
        while True:
            yield await consumer.next_batch()
