"""What every service's HTTP side shares: health and readiness, request ids, plain errors,
logs that never hold bodies, metadata or tokens."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import uvicorn
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

    @app.middleware("http")
    async def request_id(request: Request, call_next):  # type: ignore[no-untyped-def]
        given = request.headers.get("x-request-id", "")
        rid = given if 0 < len(given) <= 64 and given.isascii() and given.isprintable() else str(uuid.uuid4())
        request.state.request_id = rid
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Request-ID"] = rid
        # The path only: queries carry purposes, and bodies carry evidence.
        log.info(
            "%s %s %s %.1fms rid=%s",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            rid,
        )
        return response

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


def serve(app: FastAPI, port: int, host: str | None = None) -> None:
    """Run ``app`` until SIGINT/SIGTERM, on ``host`` or the ``bind_host`` setting."""
    uvicorn.run(
        app,
        host=host or app.state.settings.bind_host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_keep_alive=30,
        h11_max_incomplete_event_size=64 * 1024,
    )


async def lifespan_tasks(*coroutines: Awaitable[None]) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Start background loops; cancel them when the service stops."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
