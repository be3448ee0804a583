"""Blocking producers of bytes (object-store reads, decryption, zip writing) served as an async
response body: the producer runs in worker threads, one chunk ahead of the socket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator
from typing import Any


async def from_worker(pieces: Generator[bytes, None, None]) -> AsyncIterator[bytes]:
    """``pieces``, each produced in a worker thread while the previous one is written out.
    An exception of the producer is raised here; the producer is closed however this ends."""
    loop = asyncio.get_running_loop()
    ahead = loop.run_in_executor(None, next, pieces, None)
    try:
        while (chunk := await ahead) is not None:
            ahead = loop.run_in_executor(None, next, pieces, None)
            yield chunk
    finally:
        ahead.add_done_callback(lambda done: _close(pieces, done))


def _close(pieces: Generator[bytes, None, None], last: asyncio.Future[bytes | None]) -> None:
    """Close the producer once no worker runs it any more (the request may have ended early)."""
    if not last.cancelled():
        last.exception()  # retrieved: a fault after the client left is not worth a warning
    with contextlib.suppress(Exception):
        pieces.close()


def gathered(pieces: Generator[bytes, None, None], size: int) -> Generator[bytes, None, None]:
    """``pieces`` joined into chunks of about ``size`` bytes, so thread hops stay rare."""
    buffered: list[bytes] = []
    held = 0
    try:
        for piece in pieces:
            buffered.append(piece)
            held += len(piece)
            if held >= size:
                yield b"".join(buffered)
                buffered, held = [], 0
        if buffered:
            yield b"".join(buffered)
    finally:
        pieces.close()


class AbortOnFailure:
    """ASGI middleware: a response body whose producer fails is never completed.

    A middleware built on ``BaseHTTPMiddleware`` (the request log is one) ends a streamed body
    normally when the app raises in the middle of it, so a chunked response that broke off
    would look whole. This one holds back the message that ends a body until the app has
    returned; if the app raises instead, that message is never sent and the server drops the
    connection, which every HTTP client reports as an incomplete body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        held: list[dict[str, Any]] = []

        async def holding_send(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.body" and not message.get("more_body", False):
                held.append(message)
                return
            await send(message)

        await self.app(scope, receive, holding_send)
        for message in held:
            await send(message)
