"""What retrieval answers."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from custody_common.manifest import SubmissionMetadata

from custody_evidence.items.schemas import ItemRecord, ItemStatus


class ItemSummary(BaseModel):
    """An evidence item as a list shows it (no personal data: that needs the item's own page)."""

    model_config = ConfigDict(frozen=True)

    evidence_id: uuid.UUID
    case: str
    status: ItemStatus
    sha256: str | None = Field(description="SHA-256 of the plaintext, as read back at seal.")
    declared_sha256: str = Field(description="SHA-256 the investigator's device declared.")
    size: int
    created_at: datetime
    sealed_at: datetime
    reason: str | None = Field(description="Why the item was rejected or is damaged.")
    legal_hold: bool = Field(description="Whether an admin holds this item (rejected items are always held).")

    @classmethod
    def of(cls, item: ItemRecord) -> ItemSummary:
        return cls(
            evidence_id=item.evidence_id,
            case=item.case,
            status=item.status,
            sha256=item.sha256,
            declared_sha256=item.declared_sha256,
            size=item.size,
            created_at=item.created_at,
            sealed_at=item.sealed_at,
            reason=item.reason,
            legal_hold=item.legal_hold,
        )


class ItemDetail(ItemSummary):
    """An evidence item with its metadata, decrypted for the prosecutor of its case."""

    submitter: str
    received_at: datetime
    retain_until: datetime | None
    verified_at: datetime | None
    manifest_version: int
    metadata: SubmissionMetadata | None = Field(
        description="What the investigator declared; None if it cannot be decrypted (see reason)."
    )


class ItemPage(BaseModel):
    """One page of a case's items, in evidence-id order."""

    model_config = ConfigDict(frozen=True)

    items: list[ItemSummary]
    next_cursor: str | None = Field(description="Pass as ``cursor`` for the next page; None on the last.")


class ItemStatusView(BaseModel):
    """Where an item stands (what ``custody submit`` waits for)."""

    model_config = ConfigDict(frozen=True)

    evidence_id: uuid.UUID
    status: ItemStatus
