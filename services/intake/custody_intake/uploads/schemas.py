"""What goes in and out of the uploads domain: the declared submission, an upload's stored
state, and the status an investigator reads."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from custody_common.crypto.envelope import WrappedKey
from custody_common.manifest import CASE_PATTERN, SHA256_PATTERN, SubmissionMetadata
from custody_intake.uploads.errors import InvalidUploadRequest

UploadStatus = Literal["uploading", "received", "terminated", "expired"]

REQUIRED_KEYS = ("case", "filename")
OPTIONAL_KEYS = ("sha256", "title", "captured_at", "lat", "lon", "notes")
_HOW = {
    "case": "the case name from your assignment, e.g. UA-2024-017 (letters, digits, . _ : -)",
    "filename": "the file's bare name, without folders",
    "sha256": "the file's SHA-256 as 64 lowercase hex digits",
    "title": "at most 500 characters",
    "captured_at": "an ISO 8601 time with a zone in the past, e.g. 2024-05-01T10:00:00Z",
    "lat": "a latitude in degrees between -90 and 90",
    "lon": "a longitude in degrees between -180 and 180",
    "notes": "at most 10000 characters",
}


class NewSubmission(BaseModel):
    """What the investigator's client declares when it creates an upload."""

    model_config = ConfigDict(frozen=True)

    case: str
    declared_sha256: str | None
    """None until the PATCH that completes the upload states it (``Repr-Digest``)."""
    length: int = Field(ge=0)
    metadata: SubmissionMetadata

    @classmethod
    def from_tus(cls, pairs: dict[str, str], length: int) -> NewSubmission:
        """Validate the decoded ``Upload-Metadata``; InvalidUploadRequest names the field and the fix."""
        unknown = sorted(set(pairs) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
        if unknown:
            raise InvalidUploadRequest(
                f"Upload-Metadata key {unknown[0][:40]!r} is not accepted; the keys are "
                f"{', '.join(REQUIRED_KEYS)} and optionally {', '.join(OPTIONAL_KEYS)}"
            )
        for key in REQUIRED_KEYS:
            if not pairs.get(key):
                raise InvalidUploadRequest(f"Upload-Metadata lacks {key!r}: send {_HOW[key]}")
        case, sha256 = pairs["case"], pairs.get("sha256") or None
        if not re.match(CASE_PATTERN, case):
            raise InvalidUploadRequest(f"Upload-Metadata 'case' is malformed: send {_HOW['case']}")
        if sha256 is not None and not re.match(SHA256_PATTERN, sha256):
            raise InvalidUploadRequest(f"Upload-Metadata 'sha256' is malformed: send {_HOW['sha256']}")
        if sha256 is None and length == 0:
            raise InvalidUploadRequest(
                f"Upload-Metadata lacks 'sha256', which an empty file (Upload-Length 0) must declare at creation: "
                f"send {_HOW['sha256']}"
            )
        fields = {key: value for key, value in pairs.items() if key not in ("case", "sha256") and value != ""}
        try:
            metadata = SubmissionMetadata.model_validate(fields)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error.get("loc") else "metadata"
            reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            raise InvalidUploadRequest(
                f"Upload-Metadata {field!r} is not valid ({reason}): send {_HOW.get(field, 'a valid value')}"
            ) from None
        return cls(case=case, declared_sha256=sha256, length=length, metadata=metadata)


class UploadRecord(BaseModel):
    """One upload as the database holds it."""

    model_config = ConfigDict(frozen=True)

    evidence_id: uuid.UUID
    case: str
    submitter: str
    length: int
    offset: int
    declared_sha256: str | None
    status: UploadStatus
    wrapped_dek: WrappedKey
    sealed_metadata: str
    sealed_disclosures: str | None
    next_part: int
    created_at: datetime
    expires_at: datetime
    finished_at: datetime | None
    lock_token: str | None
    lock_heartbeat: datetime | None
    request_id: str | None


class SubmissionStatus(BaseModel):
    """What ``GET /v1/submissions/{id}`` tells the investigator who made the submission.

    Intake knows an item until every byte has arrived (``received``); sealing is the evidence
    service's, and ``evidence_status_url`` is where the submitter follows it to ``sealed`` or
    ``rejected``."""

    model_config = ConfigDict(frozen=True)

    evidence_id: uuid.UUID
    status: UploadStatus
    case: str
    size: int = Field(description="Bytes declared at creation (Upload-Length).")
    offset: int = Field(description="Bytes received and stored so far.")
    created_at: datetime
    expires_at: datetime | None = Field(default=None, description="While uploading: when an idle upload expires.")
    finished_at: datetime | None = Field(default=None, description="When it was received, terminated or expired.")
    upload_url: str | None = Field(default=None, description="While uploading: the tus URL to resume at.")
    evidence_url: str | None = None
    evidence_status_url: str | None = None
