"""The evidence application: the vault (database, object store, keys, custody events) opened
around the sealer, the outbox relay, the fixity sweep and the HTTP routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from nats.aio.msg import Msg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from custody_common.bus import Topology, connect
from custody_common.db import make_engine, session_factory
from custody_common.errors import ConfigurationError, IntegrityError
from custody_common.keys import key_provider, service_signing_key, trusted_service_keys
from custody_common.objectstore import ObjectStoreError, open_object_store
from custody_common.outbox import EventEmitter, OutboxRelay
from custody_common.settings import Settings
from custody_common.web import create_app, lifespan_tasks, standard_checks

from custody_evidence.announce import announce_key
from custody_evidence.downloads.endpoints import DownloadTokenRedaction
from custody_evidence.downloads.endpoints import router as downloads_router
from custody_evidence.downloads.service import DownloadService
from custody_evidence.errors import (
    CaseNotAssigned,
    DownloadLinkGone,
    DownloadLinkUnknown,
    InvalidRequest,
    ItemDamaged,
    ItemNotFound,
    ItemNotServable,
    LedgerTimeout,
    LedgerUnavailable,
)
from custody_evidence.export.endpoints import router as exports_router
from custody_evidence.export.ledger import AuditLedger
from custody_evidence.export.service import LOG_WAIT, ExportService
from custody_evidence.fixity.endpoints import router as fixity_router
from custody_evidence.fixity.service import FixityService
from custody_evidence.holds.endpoints import router as holds_router
from custody_evidence.holds.service import HoldService
from custody_evidence.retrieval.endpoints import router as retrieval_router
from custody_evidence.retrieval.ranges import RangeNotSatisfiable
from custody_evidence.retrieval.service import RetrievalService
from custody_evidence.seal.ahead import ReadAhead
from custody_evidence.seal.consumer import run_sealer
from custody_evidence.seal.service import Sealer
from custody_evidence.streaming import AbortOnFailure
from custody_evidence.tables import outbox
from custody_evidence.vault import SERVICE, Vault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """How the background work of the service runs."""

    fixity_interval: timedelta = timedelta(days=30)
    """How long after its seal, or its last check, an item is checked again."""
    sweep: bool = True
    """Whether this process runs the periodic fixity sweep."""
    sealer_concurrency: int = 4
    """How many submissions are sealed at once."""
    export_log_wait: timedelta = LOG_WAIT
    """How long an export waits for the custody ledger to log its events."""


@contextlib.asynccontextmanager
async def open_vault(settings: Settings, read_passes: int = 4) -> AsyncIterator[tuple[Vault, AsyncEngine]]:
    """The vault on an already migrated database (no NATS: events wait in the outbox), with
    ``read_passes`` threads for whole-item read passes."""
    engine = make_engine(settings, SERVICE)
    readers = ThreadPoolExecutor(max_workers=read_passes, thread_name_prefix="read-pass")
    try:
        store = await asyncio.to_thread(open_object_store, settings)
        ensure_bucket = getattr(store, "ensure_bucket", None)
        if ensure_bucket is not None:
            await asyncio.to_thread(ensure_bucket)
        signing_key = service_signing_key(settings, SERVICE)
        vault = Vault(
            settings=settings,
            sessions=session_factory(engine),
            store=store,
            keys=key_provider(settings),
            signing_key=signing_key,
            emitter=EventEmitter(SERVICE, signing_key, Topology(settings.nats_namespace), outbox),
            read_passes=readers,
        )
        yield vault, engine
    finally:
        readers.shutdown(wait=False, cancel_futures=True)
        await engine.dispose()


def create_evidence_app(settings: Settings, schedule: Schedule = Schedule()) -> FastAPI:
    """The evidence service as an ASGI app; its lifespan opens everything it needs.
    The database must be migrated first (``main`` does it)."""
    running: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_vault(settings, schedule.sealer_concurrency + 1) as (vault, engine):
            nc = await connect(settings, "evidence")
            ledger = AuditLedger(settings.audit_url)
            try:
                js = nc.jetstream()
                relay = OutboxRelay(vault.sessions, outbox, js)
                vault.wake_relay = relay.wake
                await announce_key(vault)
                fixity = FixityService(vault, schedule.fixity_interval)
                topology = Topology(settings.nats_namespace)
                read_ahead = ReadAhead(vault)

                async def part_stored(msg: Msg) -> None:
                    read_ahead.announced(msg.data)

                await nc.subscribe(topology.part_stored_subject, cb=part_stored)
                sealer = Sealer(vault, lambda: trusted_service_keys(settings), schedule.fixity_interval, read_ahead)
                app.state.vault = vault
                app.state.sealer = sealer
                app.state.fixity = fixity
                app.state.retrieval = RetrievalService(vault, fixity)
                app.state.downloads = DownloadService(vault, app.state.retrieval)
                app.state.exports = ExportService(vault, fixity, ledger, schedule.export_log_wait)
                app.state.holds = HoldService(vault)
                loops = [
                    relay.run(),
                    run_sealer(sealer, js, topology, schedule.sealer_concurrency),
                ]
                if schedule.sweep:
                    loops.append(fixity.run_sweep())
                running.update(engine=engine, nc=nc, store=vault.store)
                try:
                    async with contextlib.asynccontextmanager(lifespan_tasks)(*loops):
                        yield
                finally:
                    read_ahead.close()
            finally:
                running.clear()
                await ledger.close()
                with contextlib.suppress(Exception):
                    await nc.close()

    async def readiness() -> dict[str, str]:
        if not running:
            return {"startup": "unavailable: starting"}
        return await standard_checks(running["engine"], running["nc"], running["store"])

    app = create_app(SERVICE, settings, lifespan, readiness)
    app.include_router(retrieval_router)
    app.include_router(fixity_router)
    app.include_router(holds_router)
    app.include_router(downloads_router)
    app.include_router(exports_router)
    app.add_middleware(AbortOnFailure)
    # Outermost, so the request log never sees a download URL's token.
    app.add_middleware(DownloadTokenRedaction)
    for error, status in _STATUS.items():
        app.add_exception_handler(error, _answer(status))
    app.add_exception_handler(RangeNotSatisfiable, _not_satisfiable)
    app.add_exception_handler(ObjectStoreError, _unavailable)
    app.add_exception_handler(DBAPIError, _unavailable)
    app.add_exception_handler(ConfigurationError, _unavailable)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(LedgerUnavailable, _ledger_unavailable)
    return app


_STATUS: dict[type[Exception], int] = {
    ItemNotFound: 404,
    CaseNotAssigned: 403,
    InvalidRequest: 422,
    ItemNotServable: 409,
    ItemDamaged: 500,
    DownloadLinkUnknown: 404,
    DownloadLinkGone: 410,
    LedgerTimeout: 504,
}


def _answer(status: int):  # type: ignore[no-untyped-def]
    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handler


async def _not_satisfiable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RangeNotSatisfiable)
    return JSONResponse({"detail": str(exc)}, status_code=416, headers={"Content-Range": f"bytes */{exc.size}"})


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning(
        "request failed: %s", exc if isinstance(exc, (ObjectStoreError, ConfigurationError)) else type(exc).__name__
    )
    return JSONResponse(
        {"detail": "the evidence service cannot reach its database, object store or key provider now; retry shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _integrity(_request: Request, exc: Exception) -> JSONResponse:
    log.error("integrity failure: %s", exc)
    return JSONResponse({"detail": f"{exc}; nothing was served"}, status_code=500)


async def _ledger_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("custody ledger: %s", exc)
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})
