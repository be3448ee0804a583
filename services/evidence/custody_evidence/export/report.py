"""The chain-of-custody report: a PDF a person reads, per item its identity, hashes, the checks
made and a timeline of every custody event (who, role, what, when, why). What it says is
gathered here; :mod:`custody_evidence.export.pdf` lays it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from custody_evidence.export.timeline import TimelineRow


@dataclass(frozen=True)
class Check:
    """One verification and its outcome, as a sentence."""

    ok: bool
    text: str


@dataclass(frozen=True)
class ReportItem:
    """What the report says about one evidence item."""

    evidence_id: str
    case: str
    identity: list[tuple[str, str]]
    """(label, value) rows: file name, title, submitter, dates…"""
    sha256: str
    size: int
    checks: list[Check]
    timeline: list[TimelineRow]


@dataclass(frozen=True)
class ReportCover:
    """The report's first page: what it covers, for whom, against which checkpoint."""

    title: str
    generated_at: datetime
    facts: list[tuple[str, str]]
    """(label, value) rows: package id, exported by, purpose, checkpoint, keys…"""
    excluded: list[tuple[str, str]] = field(default_factory=list)
    """(evidence id, reason) of items left out."""
    note: str = ""


def render_report(cover: ReportCover, items: list[ReportItem], reference: str) -> bytes:
    """The PDF of ``cover`` and one section per item; ``reference`` is printed on every page."""
    # fpdf2 and fontTools weigh about 20 MiB resident: loaded at the first export, not at start.
    from custody_evidence.export.pdf import render

    return render(cover, items, reference)
