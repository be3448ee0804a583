"""What every service's HTTP side shares: health and readiness, request ids, plain errors,
logs that never hold bodies, metadata or tokens."""

from __future__ import annotations

import asyncio
import ctypes
import io
import logging
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from custody_common.auth import TokenVerifier
from custody_common.settings import Settings

log = logging.getLogger("custody.http")

Readiness = Callable[[], Awaitable[dict[str, str]]]

MAX_REQUEST_HEAD = 64 * 1024
"""Bytes of request line and headers a service reads before it answers 431 and hangs up."""


class _HeadTooLarge(Exception):
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on the request head, which it lacks: without
    one, a header line that never ends is buffered until memory runs out, token or no token."""

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        super().connection_made(transport)
        self._in_head = True
        self._head_read = 0
        self._head_parsed = 0
        self._refused = False

    def on_url(self, url: bytes) -> None:
        self._head_parsed += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_parsed += len(name) + len(value) + 4
        if self._head_parsed > MAX_REQUEST_HEAD:
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_read, self._head_parsed = True, 0, 0
        self._boundary_seen = True

    def data_received(self, data: bytes) -> None:
        self._boundary_seen = False
        super().data_received(data)
        if self._in_head and not self._boundary_seen and not self._refused:
            # A whole read inside one head: count it, whatever the parser buffered.
            self._head_read += len(data)
            if self._head_read > MAX_REQUEST_HEAD:
                self._refuse()

    def send_400_response(self, msg: str) -> None:
        if self._head_parsed > MAX_REQUEST_HEAD:
            self._refuse()
        else:
            super().send_400_response(msg)

    def _refuse(self) -> None:
        self._refused = True
        body = b"request headers are larger than 64 KiB; send fewer or shorter headers"
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        self.transport.close()


class RequestLog:
    """Pure ASGI middleware: an id for every request (``X-Request-ID`` in and out, and
    ``request.state.request_id``) and one log line when its response ends — method, path
    without the query (queries carry purposes), status, time; never bodies or headers. Pure
    ASGI, so a streamed body that fails midway still drops the connection."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if 0 < len(given) <= 64 and given.isascii() and given.isprintable() else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status: int | str = "aborted"

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "%s %s %s %.1fms rid=%s",
                scope["method"],
                _printable(scope["path"]),
                status,
                (time.perf_counter() - started) * 1000,
                rid,
            )


def _printable(path: str) -> str:
    """``path`` safe for a log line: control characters escaped."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in path)

CORS_METHODS = ("GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS")
CORS_REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "Range",
    "If-Range",
    "X-Request-ID",
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Offset",
    "Upload-Metadata",
    "Upload-Checksum",
    "Upload-Defer-Length",
    "Upload-Concat",
    "X-HTTP-Method-Override",
)
"""Request headers a web page may send: the bearer token, ranges and tus's own."""


def configure_logging(service: str) -> None:
    """One line per record, with the service name; never request bodies or headers."""
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs paths without queries


def create_app(
    service: str,
    settings: Settings,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None,
    readiness: Readiness | None = None,
    **fastapi_options: Any,
) -> FastAPI:
    """A FastAPI app with ``/healthz``, ``/readyz``, request ids, the token verifier, and CORS
    for the web app's origin (``Settings.allowed_origins``; tokens travel as bearer headers,
    never cookies, so no credentials are allowed)."""
    app = FastAPI(title=f"Custody {service}", lifespan=lifespan, **fastapi_options)
    app.state.settings = settings
    app.state.token_verifier = TokenVerifier(settings)
    app.state.readiness = readiness
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.allowed_origins),
        allow_methods=list(CORS_METHODS),
        allow_headers=list(CORS_REQUEST_HEADERS),
        expose_headers=list(settings.cors_expose_headers),
        allow_credentials=False,
        max_age=600,
    )

    app.add_middleware(RequestLog)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
            problems.append(f"{where}: {error.get('msg')}")
        return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, status_code=422)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """The process can do its work: its database, NATS and object store answer."""
        checks = await app.state.readiness() if app.state.readiness else {}
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    return app


async def standard_checks(engine: AsyncEngine | None, nc: Any | None, store: Any | None) -> dict[str, str]:
    """Readiness of a database, a NATS connection and an object store (each optional)."""
    checks: dict[str, str] = {}
    if engine is not None:
        try:
            async with asyncio.timeout(3):
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 — reported, not raised
            checks["database"] = f"unavailable: {type(exc).__name__}"
    if nc is not None:
        checks["nats"] = "ok" if nc.is_connected else "unavailable: disconnected"
    if store is not None:
        try:
            async with asyncio.timeout(5):
                await asyncio.to_thread(store.check)
            checks["object_store"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["object_store"] = f"unavailable: {type(exc).__name__}"
    return checks


def _log_tasks() -> None:
    """Log where every task of the event loop waits (on SIGUSR1): what a service that seems
    stuck is doing, without stopping it."""
    out = io.StringIO()
    tasks = asyncio.all_tasks()
    for task in sorted(tasks, key=lambda t: t.get_name()):
        out.write(f"\n{task.get_name()}:\n")
        task.print_stack(limit=40, file=out)
    logging.getLogger(__name__).warning("SIGUSR1: the %d tasks of the event loop:%s", len(tasks), out.getvalue())


class _Server(uvicorn.Server):
    """uvicorn's server, stopped at once by a signal that arrives while it is still starting:
    uvicorn notes the signal but looks at it only once the app's start-up is over, and a
    service waiting for NATS or its database at start-up would never get there."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _log_tasks)
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if not self.started:
            logging.getLogger(__name__).warning("stopped by signal %d while starting", sig)
            raise SystemExit(128 + sig)


MALLOC_ARENAS = 2
"""Each thread that allocates gets a glibc malloc arena of its own (up to eight per core), and
memory freed in one is not returned to others: the threads that write, read and seal parts held
15–30 MiB more at their peak than with two arenas."""


def _limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas (``M_ARENA_MAX``) before any thread starts; elsewhere, nothing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-8, MALLOC_ARENAS)  # M_ARENA_MAX


def serve(app: FastAPI, port: int, host: str | None = None) -> None:
    """Run ``app`` until SIGINT/SIGTERM, on ``host`` or the ``bind_host`` setting."""
    _limit_malloc_arenas()
    config = uvicorn.Config(
        app,
        host=host or app.state.settings.bind_host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_keep_alive=30,
        http=BoundedHttpToolsProtocol,
    )
    _Server(config).run()


async def lifespan_tasks(*coroutines: Awaitable[None]) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Start background loops; cancel them when the service stops."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
