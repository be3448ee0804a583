"""Fixtures of intake's tests: the upload rules in-process on a fresh SQLite or PostgreSQL
database with a real object store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from custody_common.bus import Topology
from custody_common.db import make_engine, run_migrations, session_factory
from custody_common.keys import key_provider, service_signing_key
from custody_common.objectstore.local import LocalFolderStore
from custody_common.outbox import EventEmitter
from custody_intake.main import MIGRATIONS
from custody_intake.settings import IntakeSettings
from custody_intake.tables import outbox
from custody_intake.uploads.service import UploadService
from services.intake.tests.harness import Intake, ManualClock


@pytest.fixture(params=["sqlite", "postgresql"])
def intake_settings(request: pytest.FixtureRequest, tmp_path: Path) -> IntakeSettings:
    """Intake's settings on a fresh, migrated database: a SQLite file, or a PostgreSQL database."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    settings = IntakeSettings(
        home=tmp_path / "home",
        database_url=url,
        object_store=str(tmp_path / "objects"),
        nats_namespace="unused",
        upload_lock_timeout=0.3,
        max_upload_size=64 * 1024 * 1024,
    )
    run_migrations(settings, "intake", MIGRATIONS)
    return settings


@pytest.fixture
async def intake(intake_settings: IntakeSettings) -> AsyncIterator[Intake]:
    """The upload rules on ``intake_settings``, with a clock the test moves."""
    engine = make_engine(intake_settings, "intake")
    sessions = session_factory(engine)
    store = LocalFolderStore(Path(intake_settings.object_store or ""))
    clock = ManualClock()
    signing_key = service_signing_key(intake_settings, "intake")
    executor = ThreadPoolExecutor(max_workers=4)
    service = UploadService(
        settings=intake_settings,
        sessions=sessions,
        store=store,
        keys=key_provider(intake_settings),
        emitter=EventEmitter("intake", signing_key, Topology("unused"), outbox),
        signing_key=signing_key,
        topology=Topology("unused"),
        executor=executor,
        clock=clock,
    )
    try:
        yield Intake(service, sessions, store, intake_settings, clock, signing_key)
    finally:
        executor.shutdown(wait=True)
        await engine.dispose()
