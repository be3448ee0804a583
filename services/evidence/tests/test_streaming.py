"""A response body that fails mid-stream must reach the client as incomplete, even through a
``BaseHTTPMiddleware`` (which, left alone, ends the chunked body as if it were whole)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from custody_evidence.streaming import AbortOnFailure
from tests.support.nats import free_port


def _app(guarded: bool) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def passthrough(request: Request, call_next):  # type: ignore[no-untyped-def]
        return await call_next(request)

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 100_000
        await asyncio.sleep(0.01)
        raise RuntimeError("a segment did not authenticate")

    @app.get("/broken")
    async def broken() -> StreamingResponse:
        return StreamingResponse(body(), media_type="application/zip")

    @app.get("/whole")
    async def whole() -> StreamingResponse:
        return StreamingResponse(iter([b"a" * 10, b"b" * 10]), media_type="application/zip")

    if guarded:
        app.add_middleware(AbortOnFailure)
    return app


async def _get(app: FastAPI, path: str) -> bytes:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient() as client:
            async with client.stream("GET", f"http://127.0.0.1:{port}{path}") as answer:
                return b"".join([chunk async for chunk in answer.aiter_bytes()])
    finally:
        server.should_exit = True
        await task


async def test_a_failed_body_is_cut_off_not_ended() -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete"):
        await _get(_app(guarded=True), "/broken")
    assert await _get(_app(guarded=True), "/whole") == b"a" * 10 + b"b" * 10


async def test_without_the_guard_the_failure_would_pass_for_a_whole_body() -> None:
    """Why the guard exists: this is what a client would otherwise see."""
    assert await _get(_app(guarded=False), "/broken") == b"x" * 100_000
