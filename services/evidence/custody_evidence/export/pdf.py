"""The layout of the chain-of-custody report (:mod:`custody_evidence.export.report`) as a PDF.

Fonts are DejaVu (bundled with this package, Bitstream Vera licence), so names and titles in
any European script, Cyrillic included, print as they were written.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fpdf import FPDF, FontFace
from fpdf.enums import XPos, YPos

from custody_evidence.export.report import Check, ReportCover, ReportItem
from custody_evidence.export.timeline import TimelineRow

FONTS = Path(__file__).resolve().parent / "fonts"
# fontTools logs the glyphs it keeps when it subsets a font: the characters of names and titles.
logging.getLogger("fontTools").setLevel(logging.WARNING)
OK_MARK = "\u2713"
LABEL = FontFace(family="Sans", emphasis="BOLD", size_pt=8.5)
TEXT = FontFace(family="Sans", emphasis="", size_pt=8.5)
MONO = FontFace(family="Mono", emphasis="", size_pt=7.5)
SMALL = FontFace(family="Sans", emphasis="", size_pt=7.5)
SMALL_BOLD = FontFace(family="Sans", emphasis="BOLD", size_pt=7.5, fill_color=(232, 232, 232))
SMALL_MONO = FontFace(family="Mono", emphasis="", size_pt=6.8)
FAIL_MARK = "\u2717"


class _Document(FPDF):
    def __init__(self, reference: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self._reference = reference
        self.add_font("Sans", "", str(FONTS / "DejaVuSansCondensed.ttf"))
        self.add_font("Sans", "B", str(FONTS / "DejaVuSansCondensed-Bold.ttf"))
        self.add_font("Mono", "", str(FONTS / "DejaVuSansMono.ttf"))
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=18)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Sans", "", 8)
        self.set_text_color(90)
        self.cell(0, 5, f"{self._reference}   \u2014   page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0)


def _heading(pdf: FPDF, text: str, size: float = 13) -> None:
    pdf.set_font("Sans", "B", size)
    pdf.multi_cell(0, size * 0.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1.5)


def _facts(pdf: FPDF, rows: list[tuple[str, str]], mono: frozenset[str] = frozenset()) -> None:
    pdf.set_font("Sans", "", 8.5)
    with pdf.table(
        col_widths=(42, 138),
        first_row_as_headings=False,
        line_height=4.6,
        text_align="LEFT",
        borders_layout="HORIZONTAL_LINES",
    ) as table:
        for label, value in rows:
            row = table.row()
            row.cell(label, style=LABEL)
            row.cell(value or "—", style=MONO if label in mono else TEXT)
    pdf.ln(3)


def _checks(pdf: FPDF, checks: list[Check]) -> None:
    for check in checks:
        pdf.set_font("Sans", "B", 9)
        pdf.set_text_color(0, 110, 0) if check.ok else pdf.set_text_color(180, 0, 0)
        pdf.cell(6, 4.8, OK_MARK if check.ok else FAIL_MARK)
        pdf.set_text_color(0)
        pdf.set_font("Sans", "", 8.5)
        pdf.multi_cell(0, 4.8, check.text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)


def _timeline(pdf: FPDF, rows: list[TimelineRow]) -> None:
    pdf.set_font("Sans", "", 7.5)
    with pdf.table(
        col_widths=(7, 22, 18, 30, 18, 45, 40),
        line_height=3.8,
        text_align="LEFT",
        headings_style=SMALL_BOLD,
        repeat_headings=1,
    ) as table:
        heading = table.row()
        for title in ("#", "When (UTC)", "Action", "Who", "Role", "What", "Why"):
            heading.cell(title)
        for entry in rows:
            row = table.row()
            row.cell(str(entry.seq), style=SMALL)
            row.cell(_when(entry.time, entry.index), style=SMALL)
            row.cell(entry.action, style=SMALL)
            row.cell(entry.who, style=SMALL)
            row.cell(entry.role, style=SMALL)
            row.cell(entry.what, style=SMALL)
            row.cell(entry.why, style=SMALL)
    pdf.ln(2)


def _when(time: str, index: int) -> str:
    """An RFC 3339 UTC time on two lines (date, then time), then the log index."""
    date, _, clock = time.partition("T")
    return f"{date}\n{clock.rstrip('Z')}\nlog index {index}" if clock else f"{time}\nlog index {index}"


def render(cover: ReportCover, items: list[ReportItem], reference: str) -> bytes:
    """The PDF of ``cover`` and one section per item; ``reference`` is printed on every page."""
    pdf = _Document(reference)
    pdf.set_title(cover.title)
    pdf.set_author("Custody evidence service")
    pdf.set_creator("custody-evidence")
    pdf.set_creation_date(cover.generated_at)
    pdf.add_page()
    _heading(pdf, cover.title, 17)
    pdf.set_font("Sans", "", 9)
    pdf.multi_cell(0, 4.6, f"Generated {cover.generated_at.strftime('%Y-%m-%d %H:%M:%S UTC')}.", new_x=XPos.LMARGIN,
                   new_y=YPos.NEXT)
    pdf.ln(2)
    _facts(pdf, cover.facts, mono=frozenset({"Checkpoint root", "Log key", "Evidence service key", "Manifest SHA-256"}))
    if cover.note:
        pdf.set_font("Sans", "", 8.5)
        pdf.multi_cell(0, 4.4, cover.note, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(3)
    _heading(pdf, f"Items ({len(items)})", 12)
    pdf.set_font("Sans", "", 8)
    with pdf.table(col_widths=(54, 26, 100), line_height=4.4, text_align="LEFT", headings_style=SMALL_BOLD) as table:
        head = table.row()
        for title in ("Evidence id", "Case", "SHA-256"):
            head.cell(title)
        for item in items:
            row = table.row()
            row.cell(item.evidence_id, style=SMALL_MONO)
            row.cell(item.case, style=SMALL)
            row.cell(item.sha256, style=SMALL_MONO)
    pdf.ln(3)
    if cover.excluded:
        _heading(pdf, f"Not exported ({len(cover.excluded)})", 12)
        pdf.set_font("Sans", "", 8)
        with pdf.table(col_widths=(54, 126), line_height=4.4, text_align="LEFT", headings_style=SMALL_BOLD) as table:
            head = table.row()
            for title in ("Evidence id", "Why it was left out"):
                head.cell(title)
            for evidence_id, reason in cover.excluded:
                row = table.row()
                row.cell(evidence_id, style=SMALL_MONO)
                row.cell(reason, style=SMALL)
        pdf.ln(3)

    for item in items:
        pdf.add_page()
        _heading(pdf, f"Evidence item {item.evidence_id}", 13)
        _facts(pdf, [("Case", item.case), *item.identity])
        _heading(pdf, "Hashes", 11)
        _facts(pdf, [("SHA-256", item.sha256), ("Size", f"{item.size:,} bytes".replace(",", " "))],
               mono=frozenset({"SHA-256"}))
        _heading(pdf, "Verification", 11)
        _checks(pdf, item.checks)
        _heading(pdf, f"Custody events ({len(item.timeline)})", 11)
        _timeline(pdf, item.timeline)
    return bytes(pdf.output())
