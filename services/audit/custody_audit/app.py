"""The audit service as an ASGI app: on start it brings the schema up to date, loads its
keys, connects to NATS and starts the sequencer and, with a time-stamping authority
configured, the checkpoint time-stamper; it serves the log's HTTP routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from custody_audit.log.admission import TrustedKeys
from custody_audit.log.anchor import ANCHOR_FILE
from custody_audit.log.endpoints import router
from custody_audit.log.sequencer import Sequencer
from custody_audit.log.service import CustodyLog
from custody_audit.timestamps.authority import TimestampAuthority, load_roots
from custody_audit.timestamps.endpoints import router as timestamp_router
from custody_audit.timestamps.service import CheckpointTimestamps
from custody_audit.timestamps.stamper import CheckpointStamper
from custody_common.bus import Topology, connect
from custody_common.crypto.signing import load_or_create_private_key
from custody_common.db import make_engine, run_migrations
from custody_common.keys import service_signing_key, trusted_service_keys
from custody_common.settings import Settings
from custody_common.web import create_app, standard_checks

SERVICE = "audit"
MIGRATIONS = Path(__file__).parent / "migrations"
LOG_KEY_FILE = "audit-log.key"


def anchor_path(settings: Settings) -> Path:
    """Where audit keeps the newest checkpoint it signed (see custody_audit.log.anchor)."""
    return settings.log_anchor or settings.key_folder / ANCHOR_FILE


def build_app(settings: Settings, *, migrate: bool = True) -> FastAPI:
    """The audit service; its lifespan runs the sequencer (and the time-stamper) for as long as
    the app serves. ``migrate`` False: the caller has brought the schema up to date already."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        authority = _authority(settings)  # a wrong CUSTODY_TSA_CA stops the start, before anything opens
        if migrate:
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
            anchor=anchor_path(settings),
        )
        app.state.engine = engine
        app.state.nats = None
        app.state.sequencer = sequencer
        app.state.custody_log = CustodyLog(engine, settings.log_origin, log_key.public_key())
        app.state.timestamps = CheckpointTimestamps(
            engine, authority, app.state.custody_log.verifier_key, settings.log_origin
        )
        app.state.stamper = None

        async def sequence() -> None:
            # The log is served while NATS is still away; sequencing starts once it answers.
            app.state.nats = await connect(settings, SERVICE)
            await sequencer.run(app.state.nats.jetstream())

        tasks = [asyncio.create_task(sequence(), name="custody-log-sequencer")]
        if authority is not None:
            # Beside the sequencer, never in its way: its own connections, its own pace.
            app.state.stamper = CheckpointStamper(
                engine,
                app.state.timestamps,
                interval=settings.tsa_interval_seconds,
                active=lambda: sequencer.leading,
            )
            tasks.append(asyncio.create_task(app.state.stamper.run(), name="custody-log-timestamps"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if authority is not None:
                await authority.close()
            if app.state.nats is not None:
                await app.state.nats.close()
            await engine.dispose()

    app: FastAPI

    async def readiness() -> dict[str, str]:
        checks = await standard_checks(app.state.engine, app.state.nats, None)
        checks.setdefault("nats", "unavailable: connecting")
        sequencer: Sequencer = app.state.sequencer
        stamper: CheckpointStamper | None = app.state.stamper
        damage = sequencer.damage or (stamper.damage if stamper else None)
        # An authority that is away is no reason to stop serving: only damage is.
        checks["log"] = f"damaged: {damage}" if damage else "ok"
        return checks

    app = create_app(SERVICE, settings, lifespan, readiness)
    app.include_router(router)
    app.include_router(timestamp_router)
    return app


def _authority(settings: Settings) -> TimestampAuthority | None:
    """The configured time-stamping authority, with its roots when CUSTODY_TSA_CA names them."""
    if not settings.tsa_url:
        return None
    roots = load_roots(settings.tsa_ca) if settings.tsa_ca else []
    return TimestampAuthority(settings.tsa_url, timeout=settings.tsa_timeout_seconds, roots=roots)
