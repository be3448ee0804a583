"""What legal-hold routes answer."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field


class ItemHold(BaseModel):
    """The hold state of one item."""

    model_config = ConfigDict(frozen=True)

    evidence_id: uuid.UUID
    held: bool = Field(description="Whether the item's objects are under legal hold now, for any reason.")
    item_hold: bool = Field(description="Whether an admin holds this item by itself.")
    case_hold: bool = Field(description="Whether its whole case is held.")
    changed: bool = Field(description="Whether this request changed anything (False: it already was so).")


class CaseHold(BaseModel):
    """The hold state of a case."""

    model_config = ConfigDict(frozen=True)

    case: str
    held: bool
    items: int = Field(description="Items of the case whose objects this request held or released.")
    changed: bool
