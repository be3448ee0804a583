"""Log entries: the leaf is the RFC 8785 bytes of ``{"event", "item_seq", "prev_leaf",
"logged_at"}``, where audit numbers each item's events and links each to the item's previous
leaf, so a missing or reordered event of an item is visible."""

from __future__ import annotations

import json
from typing import Any

from custody_audit.log.jcs import canonical, json_number

ENTRY_FIELDS = frozenset({"event", "item_seq", "prev_leaf", "logged_at"})


def build_leaf(event: bytes, item_seq: int | None, prev_leaf: bytes | None, logged_at: str) -> bytes:
    """The leaf of an event given as its RFC 8785 bytes; ``item_seq`` and ``prev_leaf`` are
    None for events about no evidence item (and ``prev_leaf`` for an item's first event).

    Written out member by member in RFC 8785 key order, so the event's bytes are embedded as
    they are rather than encoded again."""
    return b"".join(
        (
            b'{"event":',
            event,
            b',"item_seq":',
            canonical(item_seq),
            b',"logged_at":',
            canonical(logged_at),
            b',"prev_leaf":',
            canonical(prev_leaf.hex() if prev_leaf is not None else None),
            b"}",
        )
    )


def parse_leaf(leaf: bytes) -> dict[str, Any]:
    """The entry a leaf holds; raises ValueError unless it is a well-formed canonical entry."""
    entry = json.loads(leaf, parse_int=json_number)
    if not isinstance(entry, dict) or set(entry) != ENTRY_FIELDS or not isinstance(entry["event"], dict):
        raise ValueError("a log entry holds exactly event, item_seq, prev_leaf and logged_at")
    if canonical(entry) != leaf:
        raise ValueError("a log entry is not in RFC 8785 canonical form")
    return entry
