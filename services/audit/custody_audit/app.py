"""The audit service as an ASGI app: on start it brings the schema up to date, loads its
keys, connects to NATS and starts the sequencer; it serves the log's HTTP routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from custody_audit.log.admission import TrustedKeys
from custody_audit.log.endpoints import router
from custody_audit.log.sequencer import Sequencer
from custody_audit.log.service import CustodyLog
from custody_common.bus import Topology, connect
from custody_common.crypto.signing import load_or_create_private_key
from custody_common.db import make_engine, run_migrations
from custody_common.keys import service_signing_key, trusted_service_keys
from custody_common.settings import Settings
from custody_common.web import create_app, standard_checks

SERVICE = "audit"
MIGRATIONS = Path(__file__).parent / "migrations"
LOG_KEY_FILE = "audit-log.key"


def build_app(settings: Settings) -> FastAPI:
    """The audit service; its lifespan runs the sequencer for as long as the app serves."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(run_migrations, settings, SERVICE, MIGRATIONS)
        engine = make_engine(settings, SERVICE)
        log_key = load_or_create_private_key(settings.key_folder / LOG_KEY_FILE)
        sequencer = Sequencer(
            engine,
            Topology(settings.nats_namespace),
            origin=settings.log_origin,
            log_key=log_key,
            event_key=service_signing_key(settings, SERVICE),
            trusted_keys=TrustedKeys(lambda: trusted_service_keys(settings)),
        )
        app.state.engine = engine
        app.state.nats = None
        app.state.sequencer = sequencer
        app.state.custody_log = CustodyLog(engine, settings.log_origin, log_key.public_key())

        async def sequence() -> None:
            # The log is served while NATS is still away; sequencing starts once it answers.
            app.state.nats = await connect(settings, SERVICE)
            await sequencer.run(app.state.nats.jetstream())

        task = asyncio.create_task(sequence(), name="custody-log-sequencer")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if app.state.nats is not None:
                await app.state.nats.close()
            await engine.dispose()

    app: FastAPI

    async def readiness() -> dict[str, str]:
        checks = await standard_checks(app.state.engine, app.state.nats, None)
        checks.setdefault("nats", "unavailable: connecting")
        sequencer: Sequencer = app.state.sequencer
        checks["log"] = f"damaged: {sequencer.damage}" if sequencer.damage else "ok"
        return checks

    app = create_app(SERVICE, settings, lifespan, readiness)
    app.include_router(router)
    return app
