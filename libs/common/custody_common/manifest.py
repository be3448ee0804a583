"""What intake hands to evidence, and what the vault stores beside each item.

- :class:`SubmissionMetadata` — what the investigator says about a file (personal data:
  only ever stored encrypted under the item's data key).
- :class:`StoredPart` — one accepted tus PATCH, stored as its own STREAM-encrypted object.
- :class:`SubmissionCompleted` — intake's signed statement that all bytes arrived.
- :class:`EvidenceManifest` — evidence's signed, self-describing record of a sealed item,
  written beside it in the store (``evidence/<id>/manifest/<version>.json``).
- :class:`HoldRecord` — evidence's signed record of a legal hold placed or released on a whole
  case (``cases/<case>/legal-hold/<version>.json``) or on one item
  (``evidence/<id>/legal-hold/<version>.json``), so a rebuilt index knows every hold and why.
- :class:`DamageRecord` — evidence's signed record that a sealed item was found damaged
  (``evidence/<id>/damaged.json``), so a rebuilt index does not serve it as sealed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field, field_validator

from custody_common.crypto.envelope import WrappedKey
from custody_common.errors import IntegrityError
from custody_common.events import canonical

CASE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def part_key(evidence_id: uuid.UUID | str, index: int, attempt: str) -> str:
    """Object key of an item's ``index``-th stored part, as one attempt to store it wrote it.

    Each attempt (each PATCH that holds the upload's lock) writes a key of its own: a PATCH that
    stalled past its lock and ends later must never overwrite or delete the part of the PATCH
    that took over and was recorded. The recorded key is in the item's manifest."""
    return f"evidence/{evidence_id}/parts/{index:06d}-{attempt}"


def manifest_key(evidence_id: uuid.UUID | str, version: int) -> str:
    """Object key of version ``version`` of an item's manifest."""
    return f"evidence/{evidence_id}/manifest/{version:06d}.json"


def case_hold_key(case: str, version: int) -> str:
    """Object key of version ``version`` of the record of ``case``'s legal hold."""
    return f"cases/{case}/legal-hold/{version:06d}.json"


def item_hold_key(evidence_id: uuid.UUID | str, version: int) -> str:
    """Object key of version ``version`` of the record of an admin's legal hold on one item."""
    return f"evidence/{evidence_id}/legal-hold/{version:06d}.json"


def damage_key(evidence_id: uuid.UUID | str) -> str:
    """Object key of the record that a sealed item was found damaged."""
    return f"evidence/{evidence_id}/damaged.json"


class SubmissionMetadata(BaseModel):
    """What the investigator declares about a file, beyond its case and hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    title: str | None = Field(default=None, max_length=500)
    captured_at: datetime | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    notes: str | None = Field(default=None, max_length=10_000)

    @field_validator("filename")
    @classmethod
    def _plain_filename(cls, value: str) -> str:
        if "/" in value or "\\" in value or value in {".", ".."}:
            raise ValueError("filename must be a bare name, without folders")
        if _CONTROL.search(value):
            raise ValueError("filename must not contain control characters")
        return value

    @field_validator("title", "notes")
    @classmethod
    def _no_control(cls, value: str | None) -> str | None:
        if value is not None and _CONTROL.sub("", value.replace("\n", "").replace("\t", "")) != value.replace("\n", "").replace("\t", ""):
            raise ValueError("must not contain control characters other than newlines and tabs")
        return value

    @field_validator("captured_at")
    @classmethod
    def _aware_past(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("captured_at needs a time zone, e.g. 2024-05-01T10:00:00Z")
        if value > datetime.now(UTC):
            raise ValueError("captured_at is in the future")
        return value

    def personal_fields(self) -> dict[str, str]:
        """The fields that are personal data, as text (for commitments)."""
        return {k: str(v) for k, v in self.model_dump(mode="json").items() if v is not None}


def seal_json(dek: bytes, evidence_id: uuid.UUID, label: str, value: Any) -> str:
    """``value`` as JSON encrypted under the item's data key, bound to its id and ``label``
    (what it is: ``metadata``, ``disclosures``, ``purpose``…); base64."""
    nonce = os.urandom(12)
    ct = AESGCM(dek).encrypt(nonce, json.dumps(value).encode(), evidence_id.bytes + label.encode())
    return base64.b64encode(nonce + ct).decode()


def open_json(dek: bytes, evidence_id: uuid.UUID, label: str, sealed: str) -> Any:
    """The value sealed by :func:`seal_json`; raises IntegrityError if altered or misplaced."""
    raw = base64.b64decode(sealed)
    try:
        plaintext = AESGCM(dek).decrypt(raw[:12], raw[12:], evidence_id.bytes + label.encode())
    except InvalidTag:
        raise IntegrityError(f"item {label} does not verify under its data key") from None
    return json.loads(plaintext)


def seal_metadata(dek: bytes, evidence_id: uuid.UUID, metadata: SubmissionMetadata) -> str:
    """``metadata`` encrypted under the item's data key (base64)."""
    return seal_json(dek, evidence_id, "metadata", metadata.model_dump(mode="json"))


def open_metadata(dek: bytes, evidence_id: uuid.UUID, sealed: str) -> SubmissionMetadata:
    """The metadata sealed by :func:`seal_metadata`; raises IntegrityError if altered."""
    return SubmissionMetadata.model_validate(open_json(dek, evidence_id, "metadata", sealed))


class StoredPart(BaseModel):
    """One accepted PATCH: plaintext bytes [offset, offset+size) of the item."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0)
    offset: int = Field(ge=0)
    size: int = Field(ge=0, description="Plaintext bytes.")
    stored_size: int = Field(ge=0, description="Bytes of the stored object (header, segments, tags).")
    key: str


class _Signed(BaseModel):
    """A statement signed by a service over its RFC 8785 form without ``sig``."""

    model_config = ConfigDict(frozen=True)

    sig: str | None = None

    def signing_bytes(self) -> bytes:
        return canonical(self.model_dump(mode="json", exclude={"sig"}))

    def signed(self, key: Ed25519PrivateKey) -> Any:
        return self.model_copy(update={"sig": base64.b64encode(key.sign(self.signing_bytes())).decode()})

    def verify(self, key: Ed25519PublicKey) -> None:
        """Raise IntegrityError unless ``sig`` verifies under ``key``."""
        if not self.sig:
            raise IntegrityError(f"{type(self).__name__} is not signed")
        try:
            key.verify(base64.b64decode(self.sig), self.signing_bytes())
        except (InvalidSignature, ValueError):
            raise IntegrityError(f"{type(self).__name__} signature does not verify") from None

    def to_bytes(self) -> bytes:
        return canonical(self.model_dump(mode="json"))


class SubmissionCompleted(_Signed):
    """Intake's signed statement that every byte of a submission arrived and is stored."""

    type: Literal["submission-completed/v1"] = "submission-completed/v1"
    evidence_id: uuid.UUID
    case: str
    submitter: str
    declared_sha256: str
    size: int
    parts: list[StoredPart]
    wrapped_dek: WrappedKey
    metadata: str = Field(description="SubmissionMetadata sealed under the data key (base64).")
    disclosures: str | None = Field(
        default=None,
        description="{field: salt hex} of the submitted event's commitments, sealed under the data key.",
    )
    created_at: datetime
    received_at: datetime
    request_id: str | None = None


class PartStored(BaseModel):
    """Intake's word, on core NATS, that a part of an upload still going up is stored: a hint
    that lets evidence read the part back before the upload completes. It is not signed and
    decides nothing: the seal uses such a read only for the parts and data key of the signed
    SubmissionCompleted, and only while the store still holds those very objects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["part-stored/v1"] = "part-stored/v1"
    evidence_id: uuid.UUID
    wrapped_dek: WrappedKey
    part: StoredPart


class EvidenceManifest(_Signed):
    """The vault's signed record of an item; the newest version whose signature verifies counts."""

    type: Literal["evidence-manifest/v1"] = "evidence-manifest/v1"
    version: int = Field(ge=1)
    evidence_id: uuid.UUID
    case: str
    status: Literal["sealed", "rejected"]
    reason: str | None = None
    submitter: str
    declared_sha256: str
    sha256: str | None = Field(default=None, description="Of the plaintext as read back at seal.")
    size: int
    parts: list[StoredPart]
    wrapped_dek: WrappedKey
    metadata: str
    disclosures: str | None = None
    created_at: datetime
    received_at: datetime
    sealed_at: datetime
    retain_until: datetime | None = None


class HoldRecord(_Signed):
    """The vault's signed record of one change to a legal hold, on a whole case or on one item.

    Every change is a new version beside the earlier ones; the newest version whose signature
    verifies (and whose content matches its key) says whether the hold stands."""

    type: Literal["legal-hold/v1"] = "legal-hold/v1"
    version: int = Field(ge=1)
    case: str = Field(pattern=CASE_PATTERN)
    evidence_id: uuid.UUID | None = Field(
        default=None, description="The item an admin holds by itself; None: the hold is on the whole case."
    )
    held: bool = Field(description="True: the hold was placed; False: it was released.")
    by: str = Field(description="The ``sub`` of the admin whose request wrote the record.")
    at: datetime


class DamageRecord(_Signed):
    """The vault's signed record that a sealed item was found damaged (it stays damaged)."""

    type: Literal["evidence-damage/v1"] = "evidence-damage/v1"
    evidence_id: uuid.UUID
    reason: str = Field(description="The finding and what differed; never personal data.")
    damaged_at: datetime


def parse_statement(model: type[_Signed], raw: bytes) -> Any:
    """Parse a signed statement from its JSON bytes (IntegrityError if malformed)."""
    try:
        return model.model_validate(json.loads(raw))
    except ValueError as exc:
        raise IntegrityError(f"malformed {model.__name__}: {exc}") from None
    except RecursionError:
        raise IntegrityError(f"malformed {model.__name__}: nested deeper than Python's JSON parser goes") from None
