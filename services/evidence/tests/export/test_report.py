"""The chain-of-custody report: a PDF whose text says what the chain says, in any script."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from pypdf import PdfReader

from custody_evidence.export.report import Check, ReportCover, ReportItem, render_report
from custody_evidence.export.timeline import timeline

ITEM = "0190a1b2-0000-7000-8000-000000000001"


def _entries() -> list[dict]:
    actors = [
        ("submitted", {"sub": "olena.k", "roles": ["investigator"]}, "intake", {}),
        ("sealed", {"service": "evidence"}, "evidence", {}),
        ("accessed", {"sub": "petra", "roles": ["prosecutor"]}, "evidence", {"range": "full", "request_id": "r1"}),
        ("verified", {"service": "evidence"}, "evidence", {"check": "sweep", "ok": True}),
        ("exported", {"sub": "petra", "roles": ["prosecutor"]}, "evidence", {"package_id": "pkg-1"}),
    ]
    entries = []
    for seq, (action, actor, service, details) in enumerate(actors, start=1):
        event = {
            "id": f"event-{seq}",
            "action": action,
            "actor": actor,
            "service": service,
            "time": f"2025-05-0{seq}T10:00:0{seq}.123Z",
            "evidence_id": ITEM,
            "sha256": "ab" * 32,
            "size": 1234,
            "details": details,
        }
        if action in ("accessed", "exported"):
            event["commitments"] = {"purpose": "cd" * 32}
        entries.append({"event": event, "item_seq": seq, "prev_leaf": None, "logged_at": event["time"]})
    return entries


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_the_report_reads_as_the_chain_says() -> None:
    entries = _entries()
    purposes = {"event-5": "Суд, слухання 2024-117"}
    rows = timeline(entries, [10, 20, 30, 40, 50], purposes)
    item = ReportItem(
        evidence_id=ITEM,
        case="UA-2024-017",
        identity=[("File name", "Депортація дітей.mp4"), ("Title", "Автобус, Херсон")],
        sha256="ab" * 32,
        size=1234,
        checks=[Check(True, "Custody chain: 5 events verified."), Check(False, "Something did not hold.")],
        timeline=rows,
    )
    cover = ReportCover(
        title="Chain-of-custody report",
        generated_at=datetime(2025, 5, 9, 12, 0, tzinfo=UTC),
        facts=[("Package", "pkg-1"), ("Checkpoint root", "W5wJ0kdE+FRNeOv7vw1jXYPFkpdu+E9S54RERK5HPPo=")],
        excluded=[("0190a1b2-0000-7000-8000-000000000009", "UA-2024-017: rejected: hash_mismatch")],
    )
    pdf = render_report(cover, [item], "package pkg-1")
    assert pdf.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 2
    assert reader.metadata.title == "Chain-of-custody report"
    text = _text(pdf)
    for expected in (
        ITEM, "UA-2024-017", "Депортація дітей.mp4", "Автобус, Херсон", "ab" * 32, "1 234 bytes",
        "Суд, слухання 2024-117", "hash_mismatch", "page 1 of 2", "Something did not hold.",
    ):
        assert expected in text, expected
    # every event: who, role, what, when
    for entry, row in zip(entries, rows, strict=True):
        event = entry["event"]
        assert event["action"] in text
        assert event["time"][:10] in text and event["time"][11:23] in text
        assert row.who in text
    assert "olena.k" in text and "investigator" in text and "evidence service" in text
    # a purpose the reader is not entitled to is not shown, only that one was recorded
    assert "not disclosed to this reader" in text
    assert "check: sweep" in text
