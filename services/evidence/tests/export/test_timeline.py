"""Custody events described for a person: who, role, what, why."""

from __future__ import annotations

from custody_evidence.export.timeline import describe, timeline


def test_each_action_says_what_happened_and_why() -> None:
    damaged = {"id": "d", "action": "damaged", "details": {"finding": "authentication_failed"}}
    assert describe(damaged, {}) == ("fixity check: stored bytes no longer match the seal", "authentication_failed")
    url = {"id": "u", "action": "accessed", "details": {"via": "download_url"}, "commitments": {"purpose": "x"}}
    assert describe(url, {"u": "to show the court"}) == ("file served (download URL made)", "purpose: to show the court")
    hold = {"id": "h", "action": "hold_set", "details": {"scope": "case", "case_hold": True}}
    assert describe(hold, {}) == ("legal hold set (case)", "case hold")
    unknown = {"id": "k", "action": "key_announced"}
    assert describe(unknown, {}) == ("key announced", "—")


def test_rows_follow_the_chain() -> None:
    entries = [
        {"event": {"id": "a", "action": "submitted", "actor": {"sub": "ivan", "roles": ["investigator"]},
                   "time": "2025-01-01T00:00:00.000Z", "sha256": "ff" * 32, "size": 2048}, "item_seq": 1},
        {"event": {"id": "b", "action": "sealed", "actor": {"service": "evidence"}, "time": "2025-01-01T00:00:01.000Z"},
         "item_seq": 2},
    ]
    rows = timeline(entries, [7, 9], {})
    assert [(r.seq, r.index, r.who, r.role) for r in rows] == [
        (1, 7, "ivan", "investigator"), (2, 9, "evidence service", "service")
    ]
    assert rows[0].what == f"upload begun: 2 048 bytes, declared SHA-256 {'ff' * 8}…"


def test_the_declared_sha256_is_shown_where_the_device_stated_it() -> None:
    stated_at_the_end = [
        {"id": "a", "action": "submitted", "size": 2048},
        {"id": "b", "action": "received", "sha256": "ee" * 32, "size": 2048},
    ]
    assert [describe(e, {})[0] for e in stated_at_the_end] == [
        "upload begun: 2 048 bytes",
        f"every byte received by intake, SHA-256 {'ee' * 8}… declared",
    ]
