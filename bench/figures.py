"""What one measurement yields: our figure beside its baseline, both from the same run."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Runs:
    """Repeated measurements of one quantity; the median is what is reported."""

    values: tuple[float, ...]
    unit: str
    """``s``, ``MiB/s``, ``events/s``, ``rows/s``, ``ms`` or ``MiB``."""

    @classmethod
    def of(cls, values: Sequence[float], unit: str) -> Runs:
        if not values:
            raise ValueError("a figure needs at least one run")
        return cls(tuple(values), unit)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


@dataclass(frozen=True)
class Figure:
    """One row of the table."""

    name: str
    ours: Runs
    baseline: Runs | None
    baseline_name: str
    target: str
    """As the issue states it, e.g. ``≤ 1.5×`` or ``≥ 0.7×`` or ``< 150 MiB``."""
    ratio: float | None
    """Ours against the baseline, in the sense the target is stated."""
    met: bool
    notes: tuple[str, ...] = field(default_factory=tuple)
    threshold: float | None = None
    """The ratio or the bound the target names."""


def time_ratio(name: str, ours: Runs, baseline: Runs, baseline_name: str, at_most: float, notes: Sequence[str] = ()) -> Figure:
    """A duration figure (lower is better): met when ours ≤ ``at_most`` × the baseline's."""
    ratio = ours.median / baseline.median
    return Figure(name, ours, baseline, baseline_name, f"≤ {at_most:g}×", ratio, ratio <= at_most, tuple(notes), at_most)


def rate_ratio(name: str, ours: Runs, baseline: Runs, baseline_name: str, at_least: float, notes: Sequence[str] = ()) -> Figure:
    """A rate figure (higher is better): met when ours ≥ ``at_least`` × the baseline's."""
    ratio = ours.median / baseline.median
    return Figure(name, ours, baseline, baseline_name, f"≥ {at_least:g}×", ratio, ratio >= at_least, tuple(notes), at_least)


def limit(name: str, ours: Runs, below: float, *, typical: bool = False, notes: Sequence[str] = ()) -> Figure:
    """A figure with an absolute bound and no baseline: met when every run is below it, or with
    ``typical`` (latencies of many requests) when the median is."""
    judged = ours.median if typical else max(ours.values)
    return Figure(name, ours, None, "", f"< {below:g} {ours.unit}", None, judged < below, tuple(notes), below)
