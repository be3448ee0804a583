"""The rules of retrieval: who sees which item, and how an item's bytes are served.

Serving bytes follows one order, always: check the caller and the item; stat every stored
part against the seal (a mismatch marks the item damaged and nothing is sent); record the
``accessed`` custody event and commit it; only then stream, authenticating every segment
before any of its bytes leave. A fault mid-stream marks the item damaged and aborts the
connection, so no client can take a short body for the whole file.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from custody_common.auth import Principal
from custody_common.digests import repr_digest
from custody_common.errors import IntegrityError
from custody_common.events import actor_person, commitment
from custody_common.manifest import EvidenceManifest, open_metadata, seal_json

from custody_evidence.errors import (
    CaseNotAssigned,
    InvalidRequest,
    ItemDamaged,
    ItemNotServable,
    StoredBytesDamaged,
)
from custody_evidence.fixity.service import FixityService
from custody_evidence.items import repository as items
from custody_evidence.items.schemas import ItemRecord, ItemStatus
from custody_evidence.items.service import find, not_found, visible_item
from custody_evidence.retrieval import repository
from custody_evidence.retrieval.ranges import ByteRange, parse_range
from custody_evidence.retrieval.schemas import ItemDetail, ItemPage, ItemStatusView, ItemSummary
from custody_evidence.stored_parts import check_stored_sizes, plaintext_range
from custody_evidence.streaming import from_worker, gathered
from custody_evidence.vault import Vault

log = logging.getLogger(__name__)

PROSECUTOR = "prosecutor"
INVESTIGATOR = "investigator"
STREAM_CHUNK = 1024 * 1024
"""Plaintext handed to the server per write: large enough to keep thread hops rare."""
PURPOSE_MAX = 500


@dataclass(frozen=True)
class Delivery:
    """An answer carrying an item's bytes: status, headers and the stream of authenticated plaintext."""

    status_code: int
    headers: dict[str, str]
    body: AsyncIterator[bytes] = field(repr=False)


class RetrievalService:
    """Listing, reading and serving evidence items (see the module docstring)."""

    def __init__(self, vault: Vault, fixity: FixityService) -> None:
        self._vault = vault
        self._fixity = fixity

    async def list_items(self, principal: Principal, case: str, limit: int, cursor: str | None) -> ItemPage:
        """A page of ``case``'s items for its prosecutor, after ``cursor`` (an evidence id)."""
        if not principal.sees_case(case, PROSECUTOR):
            raise CaseNotAssigned(f"you are not assigned case {case!r} as a prosecutor")
        if cursor is not None:
            try:
                cursor = str(uuid.UUID(cursor))
            except ValueError:
                raise InvalidRequest("cursor must be the next_cursor of a previous page (an evidence id)") from None
        async with self._vault.sessions() as session:
            found = await items.page(session, case, cursor, limit + 1)
        more = len(found) > limit
        found = found[:limit]
        return ItemPage(
            items=[ItemSummary.of(item) for item in found],
            next_cursor=str(found[-1].evidence_id) if more else None,
        )

    async def item(self, principal: Principal, evidence_id: str) -> ItemDetail:
        """The item with its metadata, decrypted from the sealed blob for its case's prosecutor."""
        item = await visible_item(self._vault, principal, evidence_id, PROSECUTOR)
        manifest = self._vault.manifest_of(item)
        try:
            dek = await self._vault.unwrap(item.evidence_id, manifest.wrapped_dek)
            metadata = open_metadata(dek, item.evidence_id, manifest.metadata)
        except IntegrityError as exc:
            log.warning("metadata of item %s cannot be opened: %s", item.evidence_id, exc)
            metadata = None
        summary = ItemSummary.of(item).model_dump()
        return ItemDetail(
            **summary,
            submitter=item.submitter,
            received_at=item.received_at,
            retain_until=item.retain_until,
            verified_at=item.verified_at,
            manifest_version=item.manifest_version,
            metadata=metadata,
        )

    async def status(self, principal: Principal, evidence_id: str) -> ItemStatusView:
        """Where the item stands: for its case's prosecutor and for the investigator who submitted
        it while still assigned its case."""
        item = await find(self._vault, evidence_id)
        if item is None or not (
            principal.sees_case(item.case, PROSECUTOR)
            or (principal.sees_case(item.case, INVESTIGATOR) and item.submitter == principal.sub)
        ):
            raise not_found(evidence_id)
        return ItemStatusView(evidence_id=item.evidence_id, status=item.status)

    async def deliver(
        self,
        principal: Principal,
        evidence_id: str,
        purpose: str | None,
        range_header: str | None,
        if_range: str | None,
        request_id: str,
    ) -> Delivery:
        """Check, record and prepare the stream of an item's bytes (or one range of them)."""
        purpose = checked_purpose(purpose)
        item = await visible_item(self._vault, principal, evidence_id, PROSECUTOR)

        async def record(dek: bytes, range_text: str) -> None:
            await self._record_access(principal, item, dek, purpose, request_id, range_text)

        return await self.open_delivery(item, range_header, if_range, request_id, record)

    async def open_delivery(
        self,
        item: ItemRecord,
        range_header: str | None,
        if_range: str | None,
        request_id: str,
        record: Callable[[bytes, str], Awaitable[None]] | None,
    ) -> Delivery:
        """Prepare the stream of a sealed item's bytes, whoever is entitled to them: every stored
        part checked against the seal first (a mismatch marks the item damaged, nothing is sent),
        then ``record(data key, range)`` awaited (the custody event of this access, committed
        before any byte; None when the access was recorded earlier, as for a download URL)."""
        if item.status != ItemStatus.SEALED:
            raise ItemNotServable(
                f"item {item.evidence_id} is {item.status.value}, so it is never served: {item.reason}"
            )
        vault = self._vault
        manifest = vault.manifest_of(item)
        etag = f'"{manifest.sha256}"'
        byte_range = parse_range(range_header if if_range in (None, etag) else None, manifest.size)

        try:
            await vault.blocking(check_stored_sizes, vault.store, manifest.parts)
        except StoredBytesDamaged as damage:
            await self._fixity.mark_damaged(item, damage, details={"check": "retrieval", "request_id": request_id})
            raise ItemDamaged(
                f"the stored bytes of item {item.evidence_id} no longer match its seal ({damage}); it has been "
                "marked damaged and nothing was served; restore it from a replica and verify it"
            ) from damage
        dek = await vault.unwrap(item.evidence_id, manifest.wrapped_dek)
        filename = open_metadata(dek, item.evidence_id, manifest.metadata).filename

        span = byte_range or ByteRange(0, manifest.size, manifest.size)
        range_text = byte_range.content_range if byte_range else "full"
        if record is not None:
            await record(dek, range_text)

        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(span.length),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}",
            "Repr-Digest": repr_digest(manifest.sha256 or ""),
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
        if byte_range:
            headers["Content-Range"] = byte_range.content_range
        body = self._stream(item, manifest, dek, span, request_id)
        return Delivery(status_code=206 if byte_range else 200, headers=headers, body=body)

    async def _record_access(
        self, principal: Principal, item: ItemRecord, dek: bytes, purpose: str, request_id: str, range_text: str
    ) -> str:
        """The ``accessed`` event and the sealed purpose, committed before any byte is sent;
        returns the event's id."""
        async with self._vault.transaction() as session:
            return await record_access_event(
                self._vault, session, principal, item, dek, purpose, request_id, range_text
            )

    async def _stream(
        self, item: ItemRecord, manifest: EvidenceManifest, dek: bytes, span: ByteRange, request_id: str
    ) -> AsyncIterator[bytes]:
        vault = self._vault
        pieces = gathered(
            plaintext_range(vault.store, dek, item.evidence_id, manifest.parts, span.start, span.end), STREAM_CHUNK
        )
        try:
            async with contextlib.aclosing(from_worker(pieces)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except StoredBytesDamaged as damage:
            log.error("serving item %s stopped mid-stream: %s", item.evidence_id, damage)
            await self._fixity.mark_damaged(item, damage, details={"check": "retrieval", "request_id": request_id})
            raise


def checked_purpose(purpose: str | None) -> str:
    """The stated purpose of an access, stripped; InvalidRequest unless 1 to PURPOSE_MAX characters."""
    purpose = (purpose or "").strip()
    if not 1 <= len(purpose) <= PURPOSE_MAX:
        raise InvalidRequest(
            f"state why you need this file with ?purpose=… (1 to {PURPOSE_MAX} characters); "
            "the purpose is recorded, sealed, with this access in the custody log"
        )
    return purpose


async def record_access_event(
    vault: Vault,
    session: AsyncSession,
    principal: Principal,
    item: ItemRecord,
    dek: bytes,
    purpose: str,
    request_id: str,
    range_text: str,
    details: dict[str, Any] | None = None,
) -> str:
    """Emit ``accessed`` inside ``session``'s transaction, its purpose as a salted commitment, and
    keep the purpose sealed under the item's data key; returns the event's id."""
    salt, digest = commitment(purpose)
    sealed_purpose = seal_json(dek, item.evidence_id, "purpose", {"salt": salt, "purpose": purpose})
    event = await vault.record(
        session,
        "accessed",
        actor=actor_person(principal.sub, sorted(principal.roles)),
        evidence_id=item.evidence_id,
        case=item.case,
        sha256=item.sha256,
        size=item.size,
        commitments={"purpose": digest},
        details={"request_id": request_id, "range": range_text} | (details or {}),
    )
    await repository.record_access(
        session,
        evidence_id=item.evidence_id,
        event_id=event["id"],
        request_id=request_id,
        sub=principal.sub,
        byte_range=range_text,
        sealed_purpose=sealed_purpose,
        at=datetime.now(UTC),
    )
    return event["id"]
