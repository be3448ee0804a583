"""The rules of court exports.

An export follows one order, always. Before the first byte: the caller and every item are
checked (an item that is rejected or damaged is left out and listed under ``excluded`` with the
reason; a sealed item whose stored parts no longer match its seal is marked damaged and left
out); the manifest is written and signed; one ``exported`` custody event per item (naming the
package and the manifest's SHA-256, the purpose as a salted commitment) is committed; then the
service waits until the custody ledger has logged every one of them, reads every item's chain
against one checkpoint and checks it. Only then the package streams: the files are decrypted
segment by segment, each authenticated before a byte of it leaves, and hashed again on the
way; a fault marks the item damaged and aborts the stream before the zip's central directory,
so no one can take a broken package for a whole one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from custody_common.announcement import key_id as signing_key_id
from custody_common.auth import Principal
from custody_common.crypto.signing import public_pem, public_raw
from custody_common.errors import IntegrityError
from custody_common.events import actor_person, check_commitment, commitment, rfc3339, verify_event
from custody_common.ids import uuid7
from custody_common.manifest import EvidenceManifest, SubmissionMetadata, open_json, open_metadata, seal_json

from custody_evidence.errors import (
    CaseNotAssigned,
    Finding,
    ItemNotServable,
    LedgerTimeout,
    LedgerUnavailable,
    StoredBytesDamaged,
)
from custody_evidence.export import repository
from custody_evidence.export.ledger import AuditLedger
from custody_evidence.export.names import package_names
from custody_evidence.export.package import PackageEntry, small, zip_stream
from custody_evidence.export.proofs import LedgerAnswerInvalid, SignedCheckpoint, VerifiedChain, open_checkpoint, verify_chain
from custody_evidence.export.report import Check, ReportCover, ReportItem, render_report
from custody_evidence.export.schemas import PACKAGE_TYPE, ExportRequest
from custody_evidence.export.timeline import timeline
from custody_evidence.fixity.service import FixityService
from custody_evidence.items import repository as items
from custody_evidence.items.schemas import ItemRecord, ItemStatus
from custody_evidence.items.service import visible_item
from custody_evidence.retrieval.service import PROSECUTOR, checked_purpose
from custody_evidence.stored_parts import check_stored_sizes, plaintext_range
from custody_evidence.streaming import from_worker
from custody_evidence.vault import Vault

log = logging.getLogger(__name__)

GUIDE = Path(__file__).resolve().parent / "verify_guide.md"
LOG_WAIT = timedelta(seconds=60)
"""How long an export waits for the ledger to log its events before answering 504."""


@dataclass(frozen=True)
class _Selected:
    """An item going into a package, with what was opened of it."""

    item: ItemRecord
    manifest: EvidenceManifest
    dek: bytes
    metadata: SubmissionMetadata
    salts: dict[str, str] | None
    """{field: salt hex} of the submitted event's commitments, when the item carries them."""
    path: str = ""


@dataclass
class _Packed:
    """An item as it goes into the stream: where, its verified chain, what the report says."""

    selected: _Selected
    chain_json: bytes
    chain: VerifiedChain
    purposes: dict[str, str]
    checks: list[Check]
    read_back: str | None = None
    """SHA-256 of the bytes as they were written into the package."""


@dataclass
class PreparedPackage:
    """Everything decided before the first byte of a package is sent."""

    package_id: uuid.UUID
    created_at: datetime
    manifest_bytes: bytes
    signature: bytes
    public_key_pem: bytes
    checkpoint: SignedCheckpoint
    log_key: str
    timestamp: bytes | None
    packed: list[_Packed]
    cover: ReportCover
    request_id: str
    files_size: int = 0
    """Bytes of evidence files in the package (most of its size), for a progress bar."""

    @property
    def filename(self) -> str:
        """The name the package is offered under."""
        return f"custody-package-{self.package_id}.zip"


class _DamagedWhilePackaging(Exception):
    """An item's stored bytes failed while they were written into the stream."""

    def __init__(self, item: ItemRecord, damage: StoredBytesDamaged) -> None:
        super().__init__(str(damage))
        self.item = item
        self.damage = damage


class ExportService:
    """Makes court export packages and chain-of-custody reports."""

    def __init__(
        self, vault: Vault, fixity: FixityService, ledger: AuditLedger, log_wait: timedelta = LOG_WAIT
    ) -> None:
        self._vault = vault
        self._fixity = fixity
        self._ledger = ledger
        self._log_wait = log_wait

    # --- choosing and checking the items --------------------------------------------

    async def _chosen(self, principal: Principal, request: ExportRequest) -> list[ItemRecord]:
        if request.case is not None:
            if not principal.sees_case(request.case, PROSECUTOR):
                raise CaseNotAssigned(f"you are not assigned case {request.case!r} as a prosecutor")
            async with self._vault.sessions() as session:
                found = await items.in_case(session, request.case)
            if not found:
                raise ItemNotServable(f"case {request.case!r} holds no evidence items to export")
            return found
        wanted = sorted(dict.fromkeys(request.evidence_ids or []))
        return [await visible_item(self._vault, principal, str(evidence_id), PROSECUTOR) for evidence_id in wanted]

    async def _selected(self, item: ItemRecord, request_id: str) -> _Selected | str:
        """The opened item, or the reason it is left out."""
        if item.status != ItemStatus.SEALED:
            return f"{item.status.value}: {item.reason or 'no reason recorded'}"
        manifest = self._vault.manifest_of(item)
        try:
            await self._vault.blocking(check_stored_sizes, self._vault.store, manifest.parts)
        except StoredBytesDamaged as damage:
            await self._fixity.mark_damaged(item, damage, details={"check": "export", "request_id": request_id})
            return f"damaged: {damage.finding.value}: {damage}"
        dek = await self._vault.unwrap(item.evidence_id, manifest.wrapped_dek)
        metadata = open_metadata(dek, item.evidence_id, manifest.metadata)
        salts = open_json(dek, item.evidence_id, "disclosures", manifest.disclosures) if manifest.disclosures else None
        return _Selected(item=item, manifest=manifest, dek=dek, metadata=metadata, salts=salts)

    # --- before the first byte ----------------------------------------------------------

    async def prepare(
        self, principal: Principal, bearer: str, request: ExportRequest, request_id: str
    ) -> PreparedPackage:
        """Check, record and prove everything a package holds, short of the files' bytes."""
        purpose = checked_purpose(request.purpose)
        chosen = await self._chosen(principal, request)
        selected: list[_Selected] = []
        excluded: list[dict[str, str]] = []
        for item in chosen:
            outcome = await self._selected(item, request_id)
            if isinstance(outcome, str):
                excluded.append({"evidence_id": str(item.evidence_id), "case": item.case, "reason": outcome})
            else:
                selected.append(outcome)
        if not selected:
            reasons = "; ".join(f"{e['evidence_id']} ({e['reason']})" for e in excluded)
            raise ItemNotServable(f"nothing to export: every item asked for is left out: {reasons}")
        names = package_names([(s.metadata.filename, str(s.item.evidence_id)) for s in selected])
        selected = [replace(s, path=f"files/{name}") for s, name in zip(selected, names, strict=True)]

        package_id = uuid7()
        created_at = datetime.now(UTC)
        salt, digest = commitment(purpose)
        key_id = signing_key_id(self._vault.signing_key)
        manifest = _manifest(
            package_id, created_at, principal, purpose, salt, request, selected, excluded, key_id, self._vault
        )
        manifest_bytes = json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n"
        manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()

        event_ids = await self._record_exports(
            principal, selected, package_id, manifest_sha256, purpose, salt, digest, key_id, request_id, created_at
        )
        await self._await_logged(bearer, event_ids)
        log_key = await self._ledger.log_key()
        checkpoint = open_checkpoint(await self._ledger.checkpoint(), log_key)
        packed = []
        for chosen_item in selected:
            evidence_id = str(chosen_item.item.evidence_id)
            raw = await self._ledger.chain(evidence_id, bearer, tree_size=checkpoint.size)
            if raw is None:
                raise LedgerUnavailable(f"the custody ledger no longer shows the chain of item {evidence_id}")
            chain = verify_chain(raw, checkpoint, evidence_id)
            if event_ids[evidence_id] not in {entry["event"].get("id") for entry in chain.entries}:
                raise LedgerAnswerInvalid(f"the chain of item {evidence_id} lacks the export just recorded")
            purposes = await self._purposes(chosen_item, chain)
            purposes[event_ids[evidence_id]] = purpose
            packed.append(
                _Packed(
                    selected=chosen_item,
                    chain_json=json.dumps(raw, indent=2, ensure_ascii=False).encode() + b"\n",
                    chain=chain,
                    purposes=purposes,
                    checks=_chain_checks(
                        chosen_item, chain, checkpoint, package_id, manifest_sha256, key_id, self._vault.public_key
                    ),
                )
            )
        timestamp = await self._ledger.timestamp(checkpoint, bearer)
        cover = _cover(
            package_id, created_at, principal, purpose, request, checkpoint, log_key, key_id, manifest_sha256,
            timestamp is not None, excluded,
        )
        log.info("export %s prepared: %d items, %d left out", package_id, len(packed), len(excluded))
        return PreparedPackage(
            package_id=package_id,
            created_at=created_at,
            manifest_bytes=manifest_bytes,
            signature=self._vault.signing_key.sign(manifest_bytes),
            public_key_pem=public_pem(self._vault.public_key),
            checkpoint=checkpoint,
            log_key=log_key,
            timestamp=timestamp,
            packed=packed,
            cover=cover,
            request_id=request_id,
            files_size=sum(p.selected.item.size for p in packed),
        )

    async def _record_exports(
        self,
        principal: Principal,
        selected: list[_Selected],
        package_id: uuid.UUID,
        manifest_sha256: str,
        purpose: str,
        salt: str,
        digest: str,
        key_id: str,
        request_id: str,
        at: datetime,
    ) -> dict[str, str]:
        """One ``exported`` event per item and the sealed purposes, in one transaction."""
        event_ids: dict[str, str] = {}
        async with self._vault.transaction() as session:
            for chosen in selected:
                item = chosen.item
                event = await self._vault.record(
                    session,
                    "exported",
                    actor=actor_person(principal.sub, sorted(principal.roles)),
                    evidence_id=item.evidence_id,
                    case=item.case,
                    sha256=item.sha256,
                    size=item.size,
                    commitments={"purpose": digest},
                    details={
                        "package_id": str(package_id),
                        "manifest_sha256": manifest_sha256,
                        "signing_key": key_id,
                        "request_id": request_id,
                    },
                )
                await repository.record_export(
                    session,
                    event_id=event["id"],
                    package_id=package_id,
                    evidence_id=item.evidence_id,
                    request_id=request_id,
                    sub=principal.sub,
                    manifest_sha256=manifest_sha256,
                    sealed_purpose=seal_json(chosen.dek, item.evidence_id, "purpose", {"salt": salt, "purpose": purpose}),
                    at=at,
                )
                event_ids[str(item.evidence_id)] = event["id"]
        return event_ids

    async def _await_logged(self, bearer: str, event_ids: dict[str, str]) -> None:
        """Wait until the ledger shows every one of ``event_ids`` (evidence id → event id)."""
        pending = dict(event_ids)
        deadline = time.monotonic() + self._log_wait.total_seconds()
        pause = 0.1
        while pending:
            for evidence_id, event_id in list(pending.items()):
                chain = await self._ledger.chain(evidence_id, bearer)
                logged = {e.get("entry", {}).get("event", {}).get("id") for e in (chain or {}).get("events", [])}
                if event_id in logged:
                    del pending[evidence_id]
            if not pending:
                return
            if time.monotonic() + pause > deadline:
                raise LedgerTimeout(
                    f"the custody ledger did not log the export of {len(pending)} item(s) within "
                    f"{self._log_wait.total_seconds():g} s (first: {next(iter(pending))}); the exports are recorded "
                    "and will be logged; ask for the package again shortly"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    async def _purposes(self, chosen: _Selected, chain: VerifiedChain) -> dict[str, str]:
        """The purposes of the item's accesses and exports, opened, where each matches its commitment."""
        events = {entry["event"].get("id"): entry["event"] for entry in chain.entries}
        async with self._vault.sessions() as session:
            sealed = await repository.sealed_purposes(session, chosen.item.evidence_id, events)
        opened: dict[str, str] = {}
        for event_id, blob in sealed.items():
            try:
                value = open_json(chosen.dek, chosen.item.evidence_id, "purpose", blob)
            except IntegrityError:
                continue
            committed = (events[event_id].get("commitments") or {}).get("purpose")
            if committed and check_commitment(value["salt"], value["purpose"], committed):
                opened[event_id] = value["purpose"]
        return opened

    # --- the stream ---------------------------------------------------------------------

    async def stream(self, prepared: PreparedPackage) -> AsyncIterator[bytes]:
        """The package's zip bytes, produced in worker threads."""
        pieces = zip_stream(self._entries(prepared), prepared.created_at)
        try:
            async with contextlib.aclosing(from_worker(pieces)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except _DamagedWhilePackaging as failure:
            log.error("export %s stopped: item %s is damaged: %s", prepared.package_id, failure.item.evidence_id, failure)
            await self._fixity.mark_damaged(
                failure.item, failure.damage, details={"check": "export", "request_id": prepared.request_id}
            )
            raise
        log.info("export %s sent", prepared.package_id)

    def _entries(self, prepared: PreparedPackage) -> Iterator[PackageEntry]:
        yield small("manifest.json", prepared.manifest_bytes)
        yield small("manifest.sig", prepared.signature)
        yield small("manifest.pub.pem", prepared.public_key_pem)
        yield small("checkpoint.txt", prepared.checkpoint.note.encode())
        yield small("log-key.txt", prepared.log_key.encode() + b"\n")
        if prepared.timestamp is not None:
            yield small("checkpoint.tsr", prepared.timestamp)
        for packed in prepared.packed:
            yield small(f"custody/{packed.selected.item.evidence_id}.json", packed.chain_json)
        guide = _guide(prepared)
        yield small("VERIFY.md", guide)
        for packed in prepared.packed:
            yield PackageEntry(
                path=packed.selected.path,
                content=lambda packed=packed: self._file_bytes(packed),  # type: ignore[misc]
                size=packed.selected.item.size,
                compress=False,
            )
        # Made once the files are written (entries are written one after another): it says what
        # reading them back found.
        report = self._report(prepared)
        # Stored: its streams are compressed already, and a large case's report may pass 64 MiB.
        yield PackageEntry(path="report.pdf", content=lambda: (report,), size=len(report), compress=False)
        aids = {"VERIFY.md": guide, "report.pdf": report}
        sums = "".join(f"{hashlib.sha256(content).hexdigest()}  {name}\n" for name, content in aids.items()).encode()
        yield small("reading-aids.sha256", sums)
        yield small("reading-aids.sig", self._vault.signing_key.sign(sums))

    def _file_bytes(self, packed: _Packed) -> Iterator[bytes]:
        """The item's plaintext, every segment authenticated, hashed again against the seal."""
        chosen = packed.selected
        item, manifest = chosen.item, chosen.manifest
        digest = hashlib.sha256()
        size = 0
        try:
            for piece in plaintext_range(self._vault.store, chosen.dek, item.evidence_id, manifest.parts, 0, manifest.size):
                digest.update(piece)
                size += len(piece)
                yield piece
        except StoredBytesDamaged as damage:
            raise _DamagedWhilePackaging(item, damage) from damage
        if (digest.hexdigest(), size) != (manifest.sha256, manifest.size):
            raise _DamagedWhilePackaging(
                item,
                StoredBytesDamaged(
                    Finding.HASH_MISMATCH if size == manifest.size else Finding.SIZE_MISMATCH,
                    f"read back {size} bytes with sha256 {digest.hexdigest()}; sealed {manifest.size} bytes "
                    f"with sha256 {manifest.sha256}",
                ),
            )
        packed.read_back = digest.hexdigest()

    def _report(self, prepared: PreparedPackage) -> bytes:
        report_items = []
        for packed in prepared.packed:
            read = Check(
                packed.read_back == packed.selected.item.sha256,
                "Stored bytes read back while this package was written: every segment authenticated, "
                f"SHA-256 {packed.read_back} equals the seal.",
            )
            report_items.append(_report_item(packed.selected, [read, *packed.checks], packed.chain, packed.purposes))
        return render_report(prepared.cover, report_items, f"package {prepared.package_id}")

    # --- one item's report ----------------------------------------------------------------

    async def item_report(self, principal: Principal, bearer: str, evidence_id: str) -> bytes:
        """The chain-of-custody report of one item, for the prosecutor of its case."""
        item = await visible_item(self._vault, principal, evidence_id, PROSECUTOR)
        manifest = self._vault.manifest_of(item)
        dek = await self._vault.unwrap(item.evidence_id, manifest.wrapped_dek)
        metadata = open_metadata(dek, item.evidence_id, manifest.metadata)
        salts = open_json(dek, item.evidence_id, "disclosures", manifest.disclosures) if manifest.disclosures else None
        chosen = _Selected(item=item, manifest=manifest, dek=dek, metadata=metadata, salts=salts)
        raw = await self._ledger.chain(str(item.evidence_id), bearer)
        if raw is None:
            raise LedgerUnavailable(f"the custody ledger has no events of item {item.evidence_id} yet; retry shortly")
        log_key = await self._ledger.log_key()
        checkpoint = open_checkpoint(raw["checkpoint"], log_key)
        chain = verify_chain(raw, checkpoint, str(item.evidence_id))
        purposes = await self._purposes(chosen, chain)
        checks = _chain_checks(
            chosen, chain, checkpoint, None, None, signing_key_id(self._vault.signing_key), self._vault.public_key
        )
        if item.status == ItemStatus.SEALED and item.verified_at is not None:
            checks.insert(0, Check(True, f"Last fixity check {rfc3339(item.verified_at)}: stored bytes matched the seal."))
        elif item.status != ItemStatus.SEALED:
            checks.insert(0, Check(False, f"The item is {item.status.value}: {item.reason or 'no reason recorded'}."))
        now = datetime.now(UTC)
        cover = ReportCover(
            title="Chain-of-custody report",
            generated_at=now,
            facts=[
                ("Evidence item", str(item.evidence_id)),
                ("Case", item.case),
                ("Requested by", f"{principal.sub} ({', '.join(sorted(principal.roles))})"),
                *_log_facts(checkpoint, log_key, signing_key_id(self._vault.signing_key)),
            ],
            note=(
                "This report is a reading aid for one item. Its custody events were checked by the evidence "
                "service against the log's signed checkpoint when the report was made; a court export package "
                "(custody export) carries the proofs themselves, to be checked by anyone."
            ),
        )
        report = _report_item(chosen, checks, chain, purposes)
        return await asyncio.to_thread(render_report, cover, [report], f"evidence item {item.evidence_id}")


# --- what goes into the manifest, the checks and the report ---------------------------


def _manifest(
    package_id: uuid.UUID,
    created_at: datetime,
    principal: Principal,
    purpose: str,
    salt: str,
    request: ExportRequest,
    selected: list[_Selected],
    excluded: list[dict[str, str]],
    key_id: str,
    vault: Vault,
) -> dict[str, Any]:
    selection: dict[str, Any] = (
        {"case": request.case} if request.case is not None else {"evidence_ids": [str(i) for i in request.evidence_ids or []]}
    )
    return {
        "type": PACKAGE_TYPE,
        "package_id": str(package_id),
        "created_at": rfc3339(created_at),
        "exported_by": actor_person(principal.sub, sorted(principal.roles)),
        "purpose": {"text": purpose, "salt": salt},
        "selection": selection,
        "log": {"origin": vault.settings.log_origin},
        "evidence_service_key": {
            "key_id": key_id,
            "public_key": base64.b64encode(public_raw(vault.public_key)).decode(),
        },
        "items": [
            {
                "evidence_id": str(s.item.evidence_id),
                "case": s.item.case,
                "path": s.path,
                "sha256": s.item.sha256,
                "size": s.item.size,
                "custody": f"custody/{s.item.evidence_id}.json",
                "submitter": s.item.submitter,
                "created_at": rfc3339(s.item.created_at),
                "received_at": rfc3339(s.item.received_at),
                "sealed_at": rfc3339(s.item.sealed_at),
                "metadata": s.metadata.personal_fields(),
                "metadata_salts": {k: v for k, v in (s.salts or {}).items() if k in s.metadata.personal_fields()}
                if s.salts
                else None,
            }
            for s in selected
        ],
        "excluded": excluded,
    }


def _chain_checks(
    chosen: _Selected,
    chain: VerifiedChain,
    checkpoint: SignedCheckpoint,
    package_id: uuid.UUID | None,
    manifest_sha256: str | None,
    key_id: str,
    evidence_key: Ed25519PublicKey,
) -> list[Check]:
    item = chosen.item
    events = [entry["event"] for entry in chain.entries]
    checks = [
        Check(
            True,
            f"Custody chain: {len(events)} events, each included in checkpoint {checkpoint.size} "
            f"(root {base64.b64encode(checkpoint.root).decode()}) signed by the log's key; item_seq 1…{len(events)} "
            "with every prev_leaf linked.",
        )
    ]
    sealed = [e for e in events if e.get("action") == "sealed"]
    if item.status != ItemStatus.REJECTED:
        ok = bool(sealed) and sealed[-1].get("sha256") == item.sha256 and sealed[-1].get("size") == item.size
        checks.append(
            Check(ok, f"The sealed event records SHA-256 {item.sha256} and {_bytes(item.size)}, as the vault holds.")
            if ok
            else Check(False, "The sealed event does not record the hash and size the vault holds.")
        )
    if package_id is not None:
        mine = [
            e for e in events
            if e.get("action") == "exported" and (e.get("details") or {}).get("package_id") == str(package_id)
        ]
        ok = bool(mine) and (mine[0].get("details") or {}).get("manifest_sha256") == manifest_sha256
        checks.append(
            Check(ok, f"The exported event of this package is in the log and names its manifest (SHA-256 {manifest_sha256}).")
        )
    evidence_signed = [e for e in events if e.get("service") == "evidence"]
    if evidence_signed:
        unverified = [e.get("id") for e in evidence_signed if not verify_event(e, evidence_key)]
        checks.append(
            Check(
                not unverified,
                f"The {len(evidence_signed)} events of the evidence service verify under its key "
                f"(key id {key_id[:16]}…), the key of manifest.pub.pem."
                if not unverified
                else f"Events {', '.join(map(str, unverified))} do not verify under the evidence service's key.",
            )
        )
    submitted = [e for e in events if e.get("action") == "submitted"]
    if chosen.salts and submitted:
        committed = submitted[0].get("commitments") or {}
        fields = chosen.metadata.personal_fields()
        disclosed = [name for name in fields if name in chosen.salts]
        ok = all(
            name in committed and check_commitment(chosen.salts[name], fields[name], committed[name]) for name in disclosed
        )
        checks.append(
            Check(ok, f"The metadata shown ({', '.join(disclosed)}) matches the commitments of the submitted event.")
            if ok
            else Check(False, "The metadata does not match the commitments of the submitted event.")
        )
    return checks


def _bytes(count: int) -> str:
    return f"{count:,} bytes".replace(",", " ")


def _report_item(chosen: _Selected, checks: list[Check], chain: VerifiedChain, purposes: dict[str, str]) -> ReportItem:
    item, metadata = chosen.item, chosen.metadata
    identity = [("File name", metadata.filename)]
    if chosen.path:
        identity.append(("In the package", chosen.path))
    if metadata.title:
        identity.append(("Title", metadata.title))
    if metadata.captured_at:
        identity.append(("Captured at", rfc3339(metadata.captured_at)))
    if metadata.lat is not None and metadata.lon is not None:
        identity.append(("Location", f"{metadata.lat}, {metadata.lon}"))
    if metadata.notes:
        identity.append(("Notes", metadata.notes))
    identity += [
        ("Submitted by", item.submitter),
        ("Upload created", rfc3339(item.created_at)),
        ("Received", rfc3339(item.received_at)),
        ("Sealed", rfc3339(item.sealed_at)),
        ("Status", item.status.value + (" (legal hold)" if item.legal_hold else "")),
    ]
    return ReportItem(
        evidence_id=str(item.evidence_id),
        case=item.case,
        identity=identity,
        sha256=item.sha256 or item.declared_sha256,
        size=item.size,
        checks=checks,
        timeline=timeline(chain.entries, chain.indices, purposes),
    )


def _log_facts(checkpoint: SignedCheckpoint, log_key: str, key_id: str) -> list[tuple[str, str]]:
    return [
        ("Custody log", checkpoint.origin),
        ("Checkpoint size", str(checkpoint.size)),
        ("Checkpoint root", base64.b64encode(checkpoint.root).decode()),
        ("Log key", log_key),
        ("Evidence service key", key_id),
    ]


def _cover(
    package_id: uuid.UUID,
    created_at: datetime,
    principal: Principal,
    purpose: str,
    request: ExportRequest,
    checkpoint: SignedCheckpoint,
    log_key: str,
    key_id: str,
    manifest_sha256: str,
    timestamped: bool,
    excluded: list[dict[str, str]],
) -> ReportCover:
    selection = f"case {request.case}" if request.case is not None else f"{len(request.evidence_ids or [])} items named"
    return ReportCover(
        title="Chain-of-custody report",
        generated_at=created_at,
        facts=[
            ("Package", str(package_id)),
            ("Created", rfc3339(created_at)),
            ("Exported by", f"{principal.sub} ({', '.join(sorted(principal.roles))})"),
            ("Purpose", purpose),
            ("Selection", selection),
            *_log_facts(checkpoint, log_key, key_id),
            ("Manifest SHA-256", manifest_sha256),
            ("Time-stamp", "RFC 3161 token of the checkpoint: checkpoint.tsr" if timestamped else "none available"),
        ],
        excluded=[(e["evidence_id"], f"{e['case']}: {e['reason']}") for e in excluded],
        note=(
            "This report is a reading aid. What a court relies on are the package's proofs: the files' SHA-256 in "
            "manifest.json, signed by the evidence service (manifest.sig); every custody event with its inclusion "
            "proof (custody/) against the log's signed checkpoint (checkpoint.txt). VERIFY.md explains how to check "
            "them with standard tools; `custody verify` checks them all, and that this report is as the evidence "
            "service wrote it (reading-aids.sha256, signed by the same key)."
        ),
    )


def _guide(prepared: PreparedPackage) -> bytes:
    if prepared.timestamp is not None:
        stamp = (
            "`checkpoint.tsr` is an RFC 3161 time-stamp response over SHA-256 of the checkpoint's body: the\n"
            "lines of `checkpoint.txt` before its blank line, which is what the log's key signs. Check it with\n"
            "the time-stamping authority's root certificate, obtained from the authority itself:\n\n"
            "    sed '/^$/,$d' checkpoint.txt > checkpoint-body.txt\n"
            "    openssl ts -verify -in checkpoint.tsr -data checkpoint-body.txt -CAfile TSA-ROOT.pem"
        )
    else:
        stamp = (
            "This package holds no time-stamp: when it was made, the custody log had no time-stamping\n"
            "authority, or the authority did not answer. Once the log has one, an auditor can fetch the token\n"
            "of this very checkpoint: `GET /v1/log/timestamp?tree_size=SIZE` on the audit service, SIZE being\n"
            "the second line of `checkpoint.txt`."
        )
    text = GUIDE.read_text()
    for marker, value in {
        "@@PACKAGE_ID@@": str(prepared.package_id),
        "@@CREATED_AT@@": rfc3339(prepared.created_at),
        "@@ITEM_COUNT@@": str(len(prepared.packed)),
        "@@TIMESTAMP@@": stamp,
    }.items():
        text = text.replace(marker, value)
    return text.encode()
