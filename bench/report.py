"""The table of a run, as printed and as written into ``docs/benchmarks.md`` (between markers,
so the analysis written around it stays)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.deployments import TITLES
from bench.figures import Figure, Runs
from bench.machine import Machine

BEGIN = "<!-- make bench: results begin -->"
END = "<!-- make bench: results end -->"
HEADER = ("configuration", "figure", "ours", "baseline", "ratio", "target", "met?")


@dataclass
class Run:
    """Everything one ``python -m bench`` measured."""

    started: datetime
    machine: Machine
    size_mib: int
    rounds: int
    events: int
    load_before: str
    load_after: str = ""
    seconds: float = 0.0
    figures: dict[str, list[Figure]] = field(default_factory=dict)
    """Per configuration, in the order measured."""


def quantity(runs: Runs, value: float | None = None) -> str:
    """A median (or ``value``) with its unit, rounded to what the noise allows."""
    number = runs.median if value is None else value
    if runs.unit == "s":
        text = f"{number:.2f}" if number < 10 else f"{number:.1f}"
    elif runs.unit == "ms":
        text = f"{number:.1f}" if number < 100 else f"{number:.0f}"
    elif number >= 1000:
        text = f"{number:,.0f}"
    else:
        text = f"{number:.1f}" if number < 100 else f"{number:.0f}"
    return f"{text} {runs.unit}"


def _row(kind: str, figure: Figure) -> tuple[str, ...]:
    ours = quantity(figure.ours)
    if figure.ours.unit == "ms" and len(figure.ours.values) > 2:
        ordered = sorted(figure.ours.values)
        ours += f" (p95 {ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]:.1f})"
    if figure.ours.unit == "MiB" and figure.baseline is None:
        ours = " / ".join(f"{value:.0f}" for value in figure.ours.values) + " MiB"
    baseline = f"{quantity(figure.baseline)} {figure.baseline_name}" if figure.baseline else "—"
    ratio = "—"
    if figure.ratio is not None:
        ratio = f"{figure.ratio:.2f}×"
        if figure.threshold is not None and (float(ratio[:-1]) >= figure.threshold) != (figure.ratio >= figure.threshold):
            ratio = f"{figure.ratio:.3f}×"  # two decimals would round across the target
    return (TITLES[kind].split(" (")[0], figure.name, ours, baseline, ratio, figure.target, "yes" if figure.met else "NO")


def rows(run: Run) -> list[tuple[str, ...]]:
    return [_row(kind, figure) for kind, figures in run.figures.items() for figure in figures]


def text_table(run: Run) -> str:
    """The table for a terminal."""
    table = [HEADER, *rows(run)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in table]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def _runs(runs: Runs) -> str:
    if runs.unit == "ms":
        return f"{len(runs.values)} requests"
    return ", ".join(quantity(runs, value).rsplit(" ", 1)[0] for value in runs.values) + f" {runs.unit}"


def details(run: Run) -> list[str]:
    """Every run's value and every note, figure by figure."""
    lines = []
    for kind, figures in run.figures.items():
        for figure in figures:
            line = f"{TITLES[kind].split(' (')[0]}, {figure.name}: ours {_runs(figure.ours)}"
            if figure.baseline is not None:
                line += f"; baseline ({figure.baseline_name}) {_runs(figure.baseline)}"
            if figure.notes:
                line += "; " + "; ".join(figure.notes)
            lines.append(line)
    return lines


def summary(run: Run) -> list[str]:
    """The lines above the table: when, where, with what."""
    return [
        f"Run {run.started:%Y-%m-%d %H:%M} UTC, {run.seconds / 60:.1f} minutes: a {run.size_mib} MiB file, "
        f"{run.events:,} custody events, {run.rounds} runs of each measurement (median shown).",
        *run.machine.lines(),
        f"Load average (1/5/15 min) before: {run.load_before}; after: {run.load_after}.",
    ]


def markdown(run: Run) -> str:
    """The results block of ``docs/benchmarks.md``."""
    lines = [BEGIN, "", *(f"{line}  " for line in summary(run)), ""]
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|" + "|".join("---" for _ in HEADER) + "|")
    lines.extend("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows(run))
    lines += ["", "Every run:", ""]
    lines.extend(f"- {line}" for line in details(run))
    lines += ["", END]
    return "\n".join(lines)


def write_results(document: Path, run: Run) -> None:
    """Replace the results block of ``document`` (or append one) with this run's."""
    text = document.read_text() if document.exists() else "# Benchmarks\n"
    block = markdown(run)
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    document.write_text(text)
