"""The vault: everything the evidence service works with, built once at start-up and passed in."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from custody_common.crypto.envelope import KeyProvider, WrappedKey
from custody_common.errors import IntegrityError
from custody_common.events import Action, actor_service, new_event
from custody_common.manifest import EvidenceManifest
from custody_common.objectstore import ObjectStore
from custody_common.outbox import EventEmitter
from custody_common.settings import Settings

from custody_evidence.items.schemas import ItemRecord

SERVICE = "evidence"

P = ParamSpec("P")
T = TypeVar("T")


def dek_context(evidence_id: uuid.UUID) -> bytes:
    """What a wrapped data key is bound to: the item's id (as intake wraps it)."""
    return evidence_id.bytes


@dataclass
class Vault:
    """The evidence service's database, object store, keys and custody-event emitter."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    store: ObjectStore
    keys: KeyProvider
    signing_key: Ed25519PrivateKey
    emitter: EventEmitter
    wake_relay: Callable[[], None] = lambda: None
    """Called after a commit that enqueued events, so the outbox relay publishes at once."""
    read_passes: Executor | None = None
    """Threads for whole-item read passes (seal, fixity), so minutes-long reads never take
    the threads that serve downloads; None: the default executor."""
    _case_locks: dict[str, asyncio.Lock] = field(default_factory=dict, init=False, repr=False)

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The key this service's manifests and custody events verify under."""
        return self.signing_key.public_key()

    async def blocking(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking call (object store, key provider) in a worker thread."""
        return await asyncio.to_thread(function, *args, **kwargs)

    def manifest_of(self, item: ItemRecord) -> EvidenceManifest:
        """The item's manifest as indexed, after checking it is this service's signed statement."""
        manifest = item.manifest()
        try:
            manifest.verify(self.public_key)
        except IntegrityError:
            raise IntegrityError(
                f"the index entry of item {item.evidence_id} does not verify under this service's key; "
                "rebuild the index from the object store (custody-evidence rebuild-index)"
            ) from None
        return manifest

    async def read_pass(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a whole-item read pass in one of the threads kept for them."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.read_passes, functools.partial(function, *args, **kwargs))

    async def unwrap(self, evidence_id: uuid.UUID, wrapped: WrappedKey) -> bytes:
        """The item's data key (the key provider may be remote, so in a thread)."""
        return await self.blocking(self.keys.unwrap, wrapped, dek_context(evidence_id))

    @asynccontextmanager
    async def case_lock(self, case: str) -> AsyncIterator[None]:
        """Hold changes to the legal holds of ``case``'s items until the block ends: reading
        what is held, changing the store and recording it happen as one step, so two of them
        (two admins, or a hold and a seal) never leave the store less held than the record.
        In this process by a lock per case; across processes, on PostgreSQL, by an advisory
        lock (SQLite's embedded default runs one process)."""
        async with self._case_locks.setdefault(case, asyncio.Lock()):
            if self.sessions.kw["bind"].dialect.name != "postgresql":
                yield
                return
            # Held by a transaction left open for the block: it ends, and the lock with it,
            # however the block ends, or when the connection is lost.
            async with self.sessions.begin() as session:
                digest = hashlib.sha256(f"custody-evidence:holds:{case}".encode()).digest()
                key = int.from_bytes(digest[:8], "big", signed=True)
                await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
                yield

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One database transaction; the outbox relay is woken once it commits."""
        async with self.sessions.begin() as session:
            yield session
        self.wake_relay()

    async def record(
        self,
        session: AsyncSession,
        action: Action,
        *,
        actor: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Emit a custody event inside ``session``'s transaction; the service acts unless ``actor`` says who."""
        event = new_event(action=action, service=SERVICE, actor=actor or actor_service(SERVICE), **fields)
        return await self.emitter.emit(session, event)
