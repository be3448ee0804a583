"""An item's custody events as a person reads them: who, in what role, did what, when, and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TimelineRow:
    """One custody event of an item."""

    seq: int
    """The item's own event number (``item_seq``)."""
    index: int
    """The event's position in the custody log."""
    time: str
    action: str
    who: str
    role: str
    what: str
    why: str
    event_id: str


_WHAT = {
    "submitted": "upload begun: {size}",
    "received": "every byte received by intake",
    "sealed": "read back, matched the declaration, locked (WORM): {sha}, {size}",
    "rejected": "rejected at seal: did not match the declaration",
    "accessed": "file served ({range})",
    "exported": "exported in court package {package}",
    "verified": "fixity check: intact, {sha}",
    "damaged": "fixity check: stored bytes no longer match the seal",
    "hold_set": "legal hold set ({scope})",
    "hold_released": "legal hold released ({scope})",
    "key_rotated": "data key re-wrapped under a new key-encryption key",
    "expired": "retention expired",
    "terminated": "upload terminated before completion",
}


_DECLARED = {"submitted": ", declared {sha}", "received": ", {sha} declared"}
"""The SHA-256 the submitter's device declared: when the upload is created, or by the PATCH that
completes it (``custody submit`` hashes while it uploads)."""


def _size(value: Any) -> str:
    return f"{value:,} bytes".replace(",", " ") if isinstance(value, int) else "size unknown"


def _who(actor: Mapping[str, Any]) -> tuple[str, str]:
    if "sub" in actor:
        return str(actor["sub"]), ", ".join(actor.get("roles") or []) or "—"
    if "service" in actor:
        return f"{actor['service']} service", "service"
    return "—", "—"


def describe(event: Mapping[str, Any], purposes: Mapping[str, str]) -> tuple[str, str]:
    """(what happened, why) of one custody event; ``purposes`` maps event ids to the stated
    purposes the reader is entitled to (opened from their sealed record)."""
    details = event.get("details") or {}
    action = str(event.get("action"))
    template = _WHAT.get(action, action.replace("_", " "))
    if action in ("submitted", "received") and event.get("sha256"):
        template += _DECLARED[action]
    what = template.format(
        sha=f"SHA-256 {str(event.get('sha256'))[:16]}…" if event.get("sha256") else "no hash",
        size=_size(event.get("size")),
        range=details.get("range", "whole file") if details.get("via") != "download_url" else "download URL made",
        package=details.get("package_id", "?"),
        scope=details.get("scope", "item"),
    )
    why = "—"
    event_id = str(event.get("id"))
    if event_id in purposes:
        why = f"purpose: {purposes[event_id]}"
    elif "purpose" in (event.get("commitments") or {}):
        why = "purpose recorded (sealed; not disclosed to this reader)"
    elif action in ("rejected", "damaged"):
        why = str(details.get("finding") or details.get("reason") or "—")
    elif action == "verified":
        why = f"check: {details.get('check', '—')}"
    elif action in ("hold_set", "hold_released"):
        why = "case hold" if details.get("case_hold") else "item hold"
    return what, why


def timeline(entries: list[dict[str, Any]], indices: list[int], purposes: Mapping[str, str]) -> list[TimelineRow]:
    """The rows of an item's verified chain, oldest first."""
    rows = []
    for entry, index in zip(entries, indices, strict=True):
        event = entry.get("event") or {}
        who, role = _who(event.get("actor") or {})
        what, why = describe(event, purposes)
        rows.append(
            TimelineRow(
                seq=int(entry.get("item_seq") or 0),
                index=index,
                time=str(event.get("time") or entry.get("logged_at") or "—"),
                action=str(event.get("action")),
                who=who,
                role=role,
                what=what,
                why=why,
                event_id=str(event.get("id")),
            )
        )
    return rows
