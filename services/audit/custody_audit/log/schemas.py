"""What the log's HTTP routes return. Hashes and leaves are standard padded base64."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Entry(_Frozen):
    """One log entry."""

    index: int
    leaf: str = Field(description="Base64 of the leaf: the RFC 8785 bytes of the entry.")


class Entries(_Frozen):
    """A page of consecutive entries."""

    entries: list[Entry]


class InclusionProof(_Frozen):
    """RFC 9162 inclusion proof of entry ``index`` in the tree of ``tree_size`` entries."""

    index: int
    tree_size: int
    hashes: list[str] = Field(description="Base64 SHA-256 hashes, from the leaf upward.")


class ConsistencyProof(_Frozen):
    """RFC 9162 consistency proof between the trees of ``first`` and ``second`` entries."""

    first: int
    second: int
    hashes: list[str] = Field(description="Base64 SHA-256 hashes.")


class ChainEvent(_Frozen):
    """One custody event of an item, proven against the chain's checkpoint."""

    index: int
    leaf: str = Field(description="Base64 of the leaf bytes; SHA-256(0x00 ‖ leaf) is its leaf hash.")
    entry: dict[str, Any] = Field(description="The leaf decoded: event, item_seq, prev_leaf, logged_at.")
    inclusion: list[str] = Field(description="Base64 inclusion proof against the checkpoint.")


class CustodyChain(_Frozen):
    """Every logged custody event of one evidence item."""

    checkpoint: str = Field(description="The signed checkpoint (C2SP note) every proof is against.")
    events: list[ChainEvent]
