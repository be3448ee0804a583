"""Sealing a completed submission.

Intake's signed statement is checked first; then every stored part is read back once
(sizes, every segment authenticated, SHA-256 and size of the plaintext) and compared with what
the investigator's device declared; parts read while the upload was still going up
(:mod:`custody_evidence.seal.ahead`) are not read again if the store still holds them
unchanged. A match is locked (WORM) with a signed manifest beside it; a mismatch is rejected:
kept under legal hold with a signed manifest saying why, never served, never deleted. Either
way the item is indexed and its custody event emitted in one transaction. Every step may be
repeated after a crash: a redelivered message changes nothing twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy.exc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from custody_common.errors import ConfigurationError, IntegrityError
from custody_common.events import rfc3339
from custody_common.manifest import EvidenceManifest, SubmissionCompleted, manifest_key, parse_statement
from custody_common.objectstore import ObjectNotFound, ObjectStoreError

from custody_evidence.errors import EvidenceError, Finding, StoredBytesDamaged
from custody_evidence.holds import repository as holds
from custody_evidence.items import repository as items
from custody_evidence.protection import protect
from custody_evidence.seal import repository
from custody_evidence.seal.ahead import ReadAhead
from custody_evidence.seal.schemas import Rejection, SealOutcome
from custody_evidence.stored_parts import NOTHING_READ, EarlyRead, ReadBack, check_layout, read_back
from custody_evidence.vault import Vault

log = logging.getLogger(__name__)

TrustedKeys = Callable[[], dict[str, Ed25519PublicKey]]


class SealPostponed(EvidenceError):
    """Sealing cannot finish now (object store or key provider unavailable); the message is retried."""


class Sealer:
    """Seals completed submissions (see the module docstring)."""

    def __init__(
        self,
        vault: Vault,
        trusted_keys: TrustedKeys,
        fixity_interval: timedelta,
        read_ahead: ReadAhead | None = None,
    ) -> None:
        """``trusted_keys`` loads the services' public keys (called again when intake's is
        missing or does not verify, so a newly deployed key is picked up); ``read_ahead``
        follows uploads in progress."""
        self._vault = vault
        self._load_trusted = trusted_keys
        self._trusted: dict[str, Ed25519PublicKey] = {}
        self._fixity_interval = fixity_interval
        self._read_ahead = read_ahead

    async def seal(self, payload: bytes, stream_sequence: int | None = None) -> SealOutcome:
        """Seal or reject the submission ``payload`` announces; raises SealPostponed when it
        must be retried later."""
        try:
            statement = parse_statement(SubmissionCompleted, payload)
        except IntegrityError as exc:
            return await self._set_aside(payload, str(exc), None, stream_sequence)
        if not self._signed_by_intake(statement):
            reason = "the statement's signature does not verify under intake's key"
            return await self._set_aside(payload, reason, statement.evidence_id, stream_sequence)
        early = NOTHING_READ
        if self._read_ahead is not None:
            early = await self._read_ahead.take(statement.evidence_id, statement.wrapped_dek)

        async with self._vault.sessions() as session:
            if await items.get(session, statement.evidence_id) is not None:
                return SealOutcome.ALREADY_RECORDED

        try:
            manifest = await self._vault.blocking(self._earlier_manifest, statement.evidence_id)
        except IntegrityError as exc:
            return await self._set_aside(payload, str(exc), statement.evidence_id, stream_sequence)
        rejection = None
        if manifest is None:
            rejection, found = await self._examine(statement, early)
            manifest = self._manifest(statement, rejection, found)
        # Under the case's lock, so a case hold set or lifted meanwhile covers this item or
        # knows of it (see custody_evidence.holds.service).
        async with self._vault.case_lock(statement.case):
            async with self._vault.sessions() as session:
                case_held = await holds.case_on_hold(session, statement.case)
            try:
                stored = await self._vault.blocking(self._store_protected, manifest, case_held)
            except ObjectStoreError as exc:
                raise SealPostponed(f"cannot lock item {statement.evidence_id} in the object store now: {exc}") from exc
            return await self._index(stored, case_held, rejection if stored is manifest else None)

    def _signed_by_intake(self, statement: SubmissionCompleted) -> bool:
        for attempt in range(2):
            if attempt or "intake" not in self._trusted:
                self._trusted = self._load_trusted()
            key = self._trusted.get("intake")
            if key is None:
                continue
            try:
                statement.verify(key)
                return True
            except IntegrityError:
                continue
        return False

    async def _set_aside(
        self, payload: bytes, reason: str, evidence_id: uuid.UUID | None, stream_sequence: int | None
    ) -> SealOutcome:
        log.error(
            "completed-submission message %s (stream sequence %s) set aside, not sealed: %s",
            evidence_id or "without a readable id",
            stream_sequence,
            reason,
        )
        async with self._vault.transaction() as session:
            await repository.set_aside_message(session, payload, reason, evidence_id, stream_sequence)
        return SealOutcome.SET_ASIDE

    def _earlier_manifest(self, evidence_id: uuid.UUID) -> EvidenceManifest | None:
        """The manifest an earlier attempt wrote before it crashed, if any (it is locked: adopt it)."""
        key = manifest_key(evidence_id, 1)
        try:
            raw = self._vault.store.read_all(key)
        except ObjectNotFound:
            return None
        manifest = parse_statement(EvidenceManifest, raw)
        try:
            manifest.verify(self._vault.public_key)
        except IntegrityError:
            raise IntegrityError(f"{key} exists but is not signed by this service; inspect it before sealing") from None
        if manifest.evidence_id != evidence_id:
            raise IntegrityError(f"{key} describes another item ({manifest.evidence_id})")
        return manifest

    async def _examine(
        self, statement: SubmissionCompleted, early: EarlyRead
    ) -> tuple[Rejection | None, ReadBack | None]:
        """Read every stored byte back once (continuing ``early``) and compare it with the declaration."""
        vault = self._vault
        declared = {"declared_sha256": statement.declared_sha256, "declared_size": statement.size}
        try:
            check_layout(statement.evidence_id, statement.parts)
        except StoredBytesDamaged as damage:
            return Rejection.from_damage(damage, **declared), None
        try:
            dek = await vault.unwrap(statement.evidence_id, statement.wrapped_dek)
        except ConfigurationError as exc:
            raise SealPostponed(f"cannot unwrap the data key of {statement.evidence_id}: {exc}") from exc
        except IntegrityError as exc:
            return Rejection(finding=Finding.DATA_KEY_INVALID, message=str(exc), **declared), None
        try:
            found = await vault.read_pass(read_back, vault.store, dek, statement.evidence_id, statement.parts, early)
        except StoredBytesDamaged as damage:
            return Rejection.from_damage(damage, **declared), None
        except ObjectStoreError as exc:
            raise SealPostponed(f"cannot read item {statement.evidence_id} back now: {exc}") from exc
        actual = {"actual_sha256": found.sha256, "actual_size": found.size}
        if found.size != statement.size:
            message = f"declared {statement.size} bytes, read back {found.size} bytes"
            return Rejection(finding=Finding.SIZE_MISMATCH, message=message, **declared, **actual), found
        if found.sha256 != statement.declared_sha256:
            message = "the plaintext read back does not hash to the declared SHA-256"
            return Rejection(finding=Finding.HASH_MISMATCH, message=message, **declared, **actual), found
        return None, found

    def _manifest(
        self, statement: SubmissionCompleted, rejection: Rejection | None, found: ReadBack | None
    ) -> EvidenceManifest:
        now = datetime.now(UTC)
        retain_until = None
        if rejection is None:
            # Whole seconds: every store keeps them exactly, so a repeated lock is never "shorter".
            retain_until = (now + self._vault.settings.retention).replace(microsecond=0) + timedelta(seconds=1)
        return EvidenceManifest(
            version=1,
            evidence_id=statement.evidence_id,
            case=statement.case,
            status="rejected" if rejection else "sealed",
            reason=rejection.reason if rejection else None,
            submitter=statement.submitter,
            declared_sha256=statement.declared_sha256,
            sha256=found.sha256 if found else None,
            size=statement.size,
            parts=statement.parts,
            wrapped_dek=statement.wrapped_dek,
            metadata=statement.metadata,
            disclosures=statement.disclosures,
            created_at=statement.created_at,
            received_at=statement.received_at,
            sealed_at=now,
            retain_until=retain_until,
        ).signed(self._vault.signing_key)

    def _store_protected(self, manifest: EvidenceManifest, case_held: bool) -> EvidenceManifest:
        """Lock (or hold) the parts, then store the manifest and lock (or hold) it too. Returns
        the manifest stored: another sealer's, if one sealing the same message (delivered
        again) stored its own meanwhile, so what is indexed is always what the vault holds."""
        store = self._vault.store
        protect(store, manifest, [part.key for part in manifest.parts], held=case_held)
        stored = self._earlier_manifest(manifest.evidence_id)
        if stored is None:
            store.put(manifest_key(manifest.evidence_id, manifest.version), manifest.to_bytes())
            stored = manifest
        protect(store, stored, [manifest_key(stored.evidence_id, stored.version)], held=case_held)
        return stored

    async def _index(self, manifest: EvidenceManifest, case_held: bool, rejection: Rejection | None) -> SealOutcome:
        sealed = manifest.status == "sealed"
        try:
            async with self._vault.transaction() as session:
                await items.insert_item(
                    session,
                    manifest,
                    next_fixity_at=manifest.sealed_at + self._fixity_interval if sealed else None,
                )
                await self._vault.record(
                    session, "sealed" if sealed else "rejected", **_event_fields(manifest, case_held, rejection)
                )
        except sqlalchemy.exc.IntegrityError:
            return SealOutcome.ALREADY_RECORDED  # another replica indexed it first
        if sealed:
            log.info("item %s sealed (%d bytes, %d parts)", manifest.evidence_id, manifest.size, len(manifest.parts))
            return SealOutcome.SEALED
        log.warning("item %s rejected: %s", manifest.evidence_id, manifest.reason)
        return SealOutcome.REJECTED


def _event_fields(manifest: EvidenceManifest, case_held: bool, rejection: Rejection | None) -> dict[str, Any]:
    details: dict[str, Any] = {"manifest_version": manifest.version, "parts": len(manifest.parts)}
    fields: dict[str, Any] = {"evidence_id": manifest.evidence_id, "case": manifest.case, "details": details}
    if manifest.status == "sealed":
        details["retain_until"] = rfc3339(manifest.retain_until)  # type: ignore[arg-type]
        if case_held:
            details["legal_hold"] = "case"
        return fields | {"sha256": manifest.sha256, "size": manifest.size}
    if rejection is not None:
        details.update(rejection.details())
    else:  # adopted from a manifest an earlier attempt stored: its reason begins with the finding
        details.update(
            finding=(manifest.reason or "").partition(":")[0],
            message=manifest.reason,
            declared_sha256=manifest.declared_sha256,
            declared_size=manifest.size,
        )
        if manifest.sha256:
            details["actual_sha256"] = manifest.sha256
    details["legal_hold"] = "rejected"
    return fields
