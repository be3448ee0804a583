"""What sealing decides about a submission."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from custody_evidence.errors import Finding, StoredBytesDamaged


class SealOutcome(StrEnum):
    """What became of one completed-submission message."""

    SEALED = "sealed"
    REJECTED = "rejected"
    ALREADY_RECORDED = "already_recorded"
    """The item was sealed or rejected before (a redelivery): nothing done, no event."""
    SET_ASIDE = "set_aside"
    """The message is not a statement by intake (malformed or unsigned): kept for inspection."""


class Rejection(BaseModel):
    """Why the stored bytes of a submission are not what the investigator's device declared."""

    model_config = ConfigDict(frozen=True)

    finding: Finding
    message: str
    """What differed, in a sentence (ids, sizes and hashes only; never personal data)."""
    part: int | None = None
    """The stored part at fault, where one is."""
    declared_sha256: str
    actual_sha256: str | None = None
    """Of the plaintext as read back; None when reading stopped at a fault."""
    declared_size: int
    actual_size: int | None = None

    @classmethod
    def from_damage(cls, damage: StoredBytesDamaged, declared_sha256: str, declared_size: int) -> Rejection:
        """The rejection for stored bytes that failed a check before the read pass finished."""
        return cls(
            finding=damage.finding,
            message=str(damage),
            part=damage.part,
            declared_sha256=declared_sha256,
            declared_size=declared_size,
        )

    @property
    def reason(self) -> str:
        """The sentence kept with the item and in its manifest."""
        actual = self.actual_sha256 or "none (reading stopped at the fault)"
        return f"{self.finding.value}: {self.message}; declared sha256 {self.declared_sha256}, read back {actual}"

    def details(self) -> dict[str, Any]:
        """The ``details`` of the ``rejected`` custody event: what differed."""
        return {k: v for k, v in self.model_dump(mode="json").items() if v is not None}
