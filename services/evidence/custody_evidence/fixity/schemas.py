"""What a fixity check reports."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class FixityReport(BaseModel):
    """The outcome of reading an item back and comparing it with its seal."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    evidence_id: uuid.UUID
    status: str
    """The item's status after the check."""
    sealed_sha256: str
    sealed_size: int
    sha256: str | None = None
    """Of the plaintext read back now; None when reading stopped at a fault."""
    size: int | None = None
    finding: str | None = None
    reason: str | None = None
    checked_at: datetime
    event_id: str
    """The custody event that records the check (``verified`` or ``damaged``)."""
