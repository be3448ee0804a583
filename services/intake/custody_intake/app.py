"""The intake application: wiring of the database, object store, NATS, signing key and the
background loops (outbox relay, expiry sweep) around the uploads domain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from nats.aio.client import Client as NATS
from sqlalchemy.exc import DBAPIError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from custody_common.announcement import announce_signing_key
from custody_common.bus import Topology, connect
from custody_common.db import make_engine, session_factory
from custody_common.keys import key_provider, service_signing_key
from custody_common.manifest import PartStored
from custody_common.objectstore import ObjectStore, ObjectStoreUnavailable, open_object_store
from custody_common.outbox import EventEmitter, OutboxRelay
from custody_common.web import create_app, standard_checks
from custody_intake.settings import IntakeSettings
from custody_intake.tables import announced_keys, outbox
from custody_intake.uploads.endpoints import UPLOADS, router
from custody_intake.uploads.errors import UploadError
from custody_intake.uploads.protocol import TUS_VERSION
from custody_intake.uploads.service import UploadService
from custody_intake.web.endpoints import router as web_router

log = logging.getLogger(__name__)


@dataclass
class _Running:
    """What the lifespan opened, for readiness checks."""

    engine: Any = None
    nc: Any = None
    store: ObjectStore | None = None


class TusResumableHeader:
    """Adds ``Tus-Resumable: 1.0.0`` to every response under ``/v1/uploads``, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(UPLOADS):
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"tus-resumable", TUS_VERSION.encode())]
            await send(message)

        await self.app(scope, receive, send_with_header)


def _announcer(nc: NATS, subject: str) -> Callable[[PartStored], Awaitable[None]]:
    """Publishes on core NATS that a part is stored: a hint for evidence, which reads every part
    at seal anyway, so one that cannot be sent is only logged."""

    async def announce(notice: PartStored) -> None:
        try:
            await nc.publish(subject, notice.model_dump_json().encode())
        except Exception as exc:  # noqa: BLE001 — a hint: the PATCH stands without it
            log.debug("could not announce part %d of %s: %s", notice.part.index, notice.evidence_id, exc)

    return announce


def create_intake_app(settings: IntakeSettings) -> FastAPI:
    """The intake service as an ASGI app; its lifespan opens everything it needs."""
    running = _Running()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings, "intake")
        sessions = session_factory(engine)
        store = await asyncio.to_thread(open_object_store, settings)
        ensure_bucket = getattr(store, "ensure_bucket", None)
        if ensure_bucket is not None:
            await asyncio.to_thread(ensure_bucket)
        nc = await connect(settings, "intake")
        running.engine, running.nc, running.store = engine, nc, store
        signing_key = service_signing_key(settings, "intake")
        topology = Topology(settings.nats_namespace)
        relay = OutboxRelay(sessions, outbox, nc.jetstream())
        emitter = EventEmitter("intake", signing_key, topology, outbox)
        executor = ThreadPoolExecutor(max_workers=settings.part_writers, thread_name_prefix="part-writer")
        await announce_signing_key(sessions, emitter, signing_key, announced_keys)
        app.state.uploads = UploadService(
            settings=settings,
            sessions=sessions,
            store=store,
            keys=key_provider(settings),
            emitter=emitter,
            signing_key=signing_key,
            topology=topology,
            executor=executor,
            on_commit=relay.wake,
            on_part_stored=_announcer(nc, topology.part_stored_subject),
        )
        tasks = [
            asyncio.create_task(relay.run(), name="outbox-relay"),
            asyncio.create_task(_sweep_expired(app.state.uploads, settings.expiry_sweep_interval), name="expiry"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            executor.shutdown(wait=False, cancel_futures=True)
            with contextlib.suppress(Exception):
                await nc.close()
            await engine.dispose()

    async def readiness() -> dict[str, str]:
        if running.engine is None:
            return {"startup": "unavailable: starting"}
        return await standard_checks(running.engine, running.nc, running.store)

    # No /docs or /redoc here: FastAPI's pages load their scripts from a CDN, and on the web
    # app's origin those scripts could read the token a signed-in tab holds. The OpenAPI
    # document stays; evidence and audit, on origins of their own, keep the pages.
    app = create_app("intake", settings, lifespan, readiness, docs_url=None, redoc_url=None)
    app.include_router(router)
    app.include_router(web_router)
    app.add_middleware(TusResumableHeader)
    app.add_exception_handler(UploadError, _upload_error)
    app.add_exception_handler(ObjectStoreUnavailable, _unavailable)
    app.add_exception_handler(DBAPIError, _unavailable)
    return app


async def _upload_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UploadError)
    return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=exc.headers)


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("request failed: %s", type(exc).__name__)
    return JSONResponse(
        {"detail": "intake's database or object store did not answer; ask with HEAD and retry shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _sweep_expired(uploads: UploadService, interval: float) -> None:
    """Expire idle uploads and delete the parts of ended ones, for the life of the service."""
    while True:
        try:
            await uploads.expire_due()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — the next sweep retries
            log.warning("expiry sweep failed (%s); retrying in %.0fs", type(exc).__name__, interval)
        await asyncio.sleep(interval)
