"""Fixtures of the evidence service's tests: real databases (SQLite and PostgreSQL), real
object stores (a local folder and Ceph RGW), real NATS; submissions stored and signed the way
intake stores and signs them, with an intake key generated for the test."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select, update

from custody_common.auth import mint_token
from custody_common.crypto.envelope import new_data_key
from custody_common.crypto.stream import PartEncryptor
from custody_common.db import run_migrations
from custody_common.keys import key_provider, service_signing_key, token_signing_key, trusted_service_keys
from custody_common.manifest import (
    StoredPart,
    SubmissionCompleted,
    SubmissionMetadata,
    part_key,
    seal_metadata,
)
from custody_common.objectstore import ObjectStore
from custody_common.objectstore.local import LocalFolderStore
from custody_common.outbox import decode
from custody_common.settings import Settings
from custody_evidence.app import Schedule, create_evidence_app, open_vault
from custody_evidence.main import MIGRATIONS
from custody_evidence.seal.service import Sealer
from custody_evidence.items import repository as items
from custody_evidence.tables import evidence_items, outbox
from custody_evidence.vault import Vault
from tests.support.nats import NATS_URL, free_port

FIXITY_INTERVAL = timedelta(days=30)


@dataclass(frozen=True)
class Backend:
    """Where a test's vault lives: a database URL and an object store (with the settings naming it)."""

    name: str
    database_url: str
    store_settings: dict[str, Any]


@pytest.fixture(
    params=[
        "sqlite-local",
        pytest.param("postgresql-s3", marks=pytest.mark.s3),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """SQLite with a local folder (the embedded default), then PostgreSQL with Ceph RGW."""
    if request.param == "sqlite-local":
        return Backend("sqlite-local", f"sqlite:///{tmp_path}/evidence.db", {"object_store": str(tmp_path / "objects")})
    bucket = request.getfixturevalue("s3_bucket")
    server = bucket.server
    return Backend(
        "postgresql-s3",
        request.getfixturevalue("postgres_url"),
        {
            "object_store": f"s3://{bucket.name}",
            "s3_endpoint": server.endpoint,
            "s3_access_key": server.access_key,
            "s3_secret_key": server.secret_key,
            "s3_region": server.region,
            "s3_secure": server.secure,
        },
    )


@pytest.fixture
def settings(tmp_path: Path, backend: Backend, nats_namespace: str) -> Settings:
    """The test's settings, its database migrated."""
    home = tmp_path / "home"
    home.mkdir()
    result = Settings(
        home=home,
        database_url=backend.database_url,
        nats_url=NATS_URL,
        nats_namespace=nats_namespace,
        **backend.store_settings,
    )
    run_migrations(result, "evidence", MIGRATIONS)
    return result


@pytest.fixture
async def vault(settings: Settings) -> AsyncIterator[Vault]:
    """The vault on the test's database and store (events stay in the outbox)."""
    async with open_vault(settings) as (opened, _engine):
        yield opened


@pytest.fixture
def sealer(vault: Vault, settings: Settings) -> Sealer:
    """A sealer trusting the test's intake key."""
    return Sealer(vault, lambda: trusted_service_keys(settings), FIXITY_INTERVAL)


@dataclass(frozen=True)
class Submission:
    """A completed submission: the plaintext, intake's signed statement and the message bytes."""

    plaintext: bytes
    statement: SubmissionCompleted
    dek: bytes

    @property
    def evidence_id(self) -> uuid.UUID:
        return self.statement.evidence_id

    @property
    def payload(self) -> bytes:
        return self.statement.to_bytes()


class IntakeStandIn:
    """Does what intake does for an upload: encrypts parts into the store and signs the statement."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.intake_key = service_signing_key(settings, "intake")
        self.keys = key_provider(settings)

    def submit(
        self,
        plaintext: bytes,
        *,
        case: str = "CASE-1",
        submitter: str = "ivan",
        part_sizes: list[int] | None = None,
        declared_sha256: str | None = None,
        declared_size: int | None = None,
        filename: str = "école — photo 1.jpg",
        title: str = "Deportation of children",
        signed: bool = True,
    ) -> Submission:
        evidence_id = uuid.uuid4()
        dek = new_data_key()
        sizes = part_sizes if part_sizes is not None else [len(plaintext)]
        assert sum(sizes) == len(plaintext)
        parts, offset = [], 0
        for index, size in enumerate(sizes):
            encryptor = PartEncryptor(dek, evidence_id, offset)
            chunk = plaintext[offset : offset + size]
            stored = encryptor.header() + encryptor.update(chunk) + encryptor.finalize()
            key = part_key(evidence_id, index, "attempt")
            self.store.put(key, stored)
            parts.append(StoredPart(index=index, offset=offset, size=size, stored_size=len(stored), key=key))
            offset += size
        metadata = SubmissionMetadata(
            filename=filename, title=title, notes="witness statement", lat=48.5, lon=37.9
        )
        now = datetime.now(UTC)
        statement = SubmissionCompleted(
            evidence_id=evidence_id,
            case=case,
            submitter=submitter,
            declared_sha256=declared_sha256 or hashlib.sha256(plaintext).hexdigest(),
            size=len(plaintext) if declared_size is None else declared_size,
            parts=parts,
            wrapped_dek=self.keys.wrap(dek, evidence_id.bytes),
            metadata=seal_metadata(dek, evidence_id, metadata),
            created_at=now - timedelta(minutes=5),
            received_at=now,
        )
        if signed:
            statement = statement.signed(self.intake_key)
        return Submission(plaintext=plaintext, statement=statement, dek=dek)


@pytest.fixture
def intake(settings: Settings, vault: Vault) -> IntakeStandIn:
    """Submissions stored in the test's object store, signed with the test's intake key."""
    return IntakeStandIn(settings, vault.store)


@pytest.fixture
def new_intake(settings: Settings, vault: Vault):  # type: ignore[no-untyped-def]
    """Another stand-in, loading (or generating) intake's key afresh, as a redeployed intake would."""
    return lambda: IntakeStandIn(settings, vault.store)


@pytest.fixture
def intake_for():  # type: ignore[no-untyped-def]
    """``intake_for(settings, store)``: a stand-in for a stack whose settings the test builds."""
    return IntakeStandIn


async def forge_index_entry(vault: Vault, evidence_id: uuid.UUID) -> None:
    """Alter the item's indexed manifest (its size) so it is no longer this service's signed statement."""
    async with vault.transaction() as session:
        item = await items.get(session, evidence_id)
        assert item is not None
        forged = json.dumps(json.loads(item.manifest_bytes) | {"size": item.size + 1}).encode()
        await session.execute(
            update(evidence_items).where(evidence_items.c.evidence_id == str(evidence_id)).values(manifest=forged)
        )


async def outbox_events(vault: Vault, action: str | None = None) -> list[dict[str, Any]]:
    """The custody events in the outbox, oldest first (optionally of one action)."""
    async with vault.sessions() as session:
        rows = await session.execute(select(outbox.c.payload).order_by(outbox.c.seq))
        events = [decode(row.payload) for row in rows]
    return [e for e in events if action is None or e["action"] == action]


@pytest.fixture
def events():  # type: ignore[no-untyped-def]
    """``await events(vault, action)``: the outbox's custody events."""
    return outbox_events


@pytest.fixture
def tamper(backend: Backend, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """``tamper(store, key, change)``: overwrite an object's bytes behind the store's back: the
    file itself on a local folder; a new object version, written with a plain S3 client, on S3
    (Object Lock keeps the sealed version, but readers get the newest)."""

    def change_object(store: ObjectStore, key: str, change) -> None:  # type: ignore[no-untyped-def]
        original = store.read_all(key)
        altered = change(original)
        if isinstance(store, LocalFolderStore):
            path = store.root / key
            path.chmod(0o600)
            path.write_bytes(altered)
            path.chmod(0o400)
            return
        bucket = request.getfixturevalue("s3_bucket")
        bucket.server.client().put_object(bucket.name, key, io.BytesIO(altered), len(altered))

    return change_object


@dataclass
class Running:
    """The evidence app served by a real uvicorn server on a free port."""

    url: str
    app: Any
    settings: Settings

    @property
    def vault(self) -> Vault:
        return self.app.state.vault

    @property
    def sealer(self) -> Sealer:
        return self.app.state.sealer

    def token(self, sub: str, roles: list[str], cases: list[str]) -> str:
        return mint_token(token_signing_key(self.settings), self.settings, sub, roles, cases)

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    """The evidence service in this process, behind a real HTTP server (no fixity sweep)."""
    app = create_evidence_app(settings, Schedule(fixity_interval=FIXITY_INTERVAL, sweep=False))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the evidence server stopped during start-up")
        await asyncio.sleep(0.05)
    try:
        yield Running(url=f"http://127.0.0.1:{port}", app=app, settings=settings)
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def served_intake(settings: Settings, running: Running) -> IntakeStandIn:
    """Submissions stored in the running service's object store."""
    return IntakeStandIn(settings, running.vault.store)
