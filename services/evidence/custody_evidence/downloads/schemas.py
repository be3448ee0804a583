"""What download URLs take and answer."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from custody_evidence.retrieval.service import PURPOSE_MAX


class DownloadRequest(BaseModel):
    """Why the prosecutor wants the file; recorded, sealed, with the access."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    purpose: str = Field(min_length=1, max_length=PURPOSE_MAX)


class DownloadLink(BaseModel):
    """A URL that serves the item's bytes without a bearer token, until ``expires_at``."""

    model_config = ConfigDict(frozen=True)

    url: str = Field(description="Path of the link on the evidence service: /v1/downloads/<token>.")
    expires_at: datetime
