"""An evidence item as the index holds it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from custody_common.manifest import EvidenceManifest, parse_statement


class ItemStatus(StrEnum):
    """Where an evidence item stands."""

    SEALED = "sealed"
    """Read back, matched its declaration, locked: served as evidence."""
    REJECTED = "rejected"
    """Did not match its declaration at seal: kept under legal hold, never served."""
    DAMAGED = "damaged"
    """Sealed, but its stored bytes no longer match the seal: never served."""


@dataclass(frozen=True)
class ItemRecord:
    """One row of the evidence index."""

    evidence_id: uuid.UUID
    case: str
    submitter: str
    status: ItemStatus
    reason: str | None
    declared_sha256: str
    sha256: str | None
    size: int
    manifest_version: int
    manifest_bytes: bytes
    kek_id: str
    legal_hold: bool
    """Held by an admin item by item (a case hold and a rejection hold the item too)."""
    created_at: datetime
    received_at: datetime
    sealed_at: datetime
    retain_until: datetime | None
    damaged_at: datetime | None
    verified_at: datetime | None
    next_fixity_at: datetime | None

    def manifest(self) -> EvidenceManifest:
        """The newest signed manifest (its signature is checked by whoever relies on it)."""
        return parse_statement(EvidenceManifest, self.manifest_bytes)
