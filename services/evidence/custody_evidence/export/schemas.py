"""What an export takes, and the manifest it writes."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field, model_validator

from custody_common.manifest import CASE_PATTERN

from custody_evidence.retrieval.service import PURPOSE_MAX

MAX_ITEMS = 10_000
PACKAGE_TYPE = "custody-package/v1"


class ExportRequest(BaseModel):
    """Which items to export (a whole case, or a list of evidence ids) and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case: str | None = Field(default=None, pattern=CASE_PATTERN, description="Export every item of this case.")
    evidence_ids: list[uuid.UUID] | None = Field(
        default=None, min_length=1, max_length=MAX_ITEMS, description="Export these items."
    )
    purpose: str = Field(
        min_length=1, max_length=PURPOSE_MAX, description="Why; recorded, as a commitment, with every item's export."
    )

    @model_validator(mode="after")
    def _one_selection(self) -> ExportRequest:
        if (self.case is None) == (self.evidence_ids is None):
            raise ValueError("name either a case or a list of evidence_ids, not both and not neither")
        if not self.purpose.strip():
            raise ValueError("purpose must say why the package is made")
        return self
