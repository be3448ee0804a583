"""Progress of a long transfer on stderr: a live bar on a terminal, occasional plain lines elsewhere."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

WINDOW = 10.0
"""Seconds of history the rate is measured over."""
PLAIN_EVERY = 30.0
"""Seconds between plain lines when nothing else prompts one."""
PLAIN_GAP = 2.0
"""Least seconds between plain lines, however fast the work goes."""


def human_bytes(count: float) -> str:
    """``count`` bytes in binary units: ``512 B``, ``3.4 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """``seconds`` as ``H:MM:SS``."""
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class TransferMeter:
    """Rate and time left, measured over the last :data:`WINDOW` seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, done: int) -> None:
        """Record that ``done`` bytes are through now."""
        now = self._clock()
        if self._samples and done < self._samples[-1][1]:
            self._samples.clear()  # a retry went back: the old samples no longer describe the link
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > WINDOW:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Bytes per second, once there is enough history."""
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else None

    def time_left(self, done: int, total: int) -> float | None:
        """Seconds until ``total`` at the current rate."""
        rate = self.rate()
        return (total - done) / rate if rate else None


class ProgressLine:
    """Shows one phase of work (hashing, uploading, downloading) on ``stream``."""

    def __init__(self, stream: TextIO, label: str, *, live: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._label = label
        self._live = live
        self._clock = clock
        self._meter = TransferMeter(clock)
        self._last_draw = float("-inf")
        self._last_tenth = -1
        self._done = 0
        self._total: int | None = None
        self._drawn = False
        self._last_drawn = -1

    def update(self, done: int, total: int | None) -> None:
        """Record progress and redraw when it is time to."""
        self._done, self._total = done, total
        self._meter.add(done)
        now = self._clock()
        if self._live:
            if now - self._last_draw >= 0.1:
                self._draw(now)
            return
        tenth = done * 10 // total if total else -1
        since = now - self._last_draw
        if (tenth > self._last_tenth and since >= PLAIN_GAP) or since >= PLAIN_EVERY:
            self._last_tenth = max(tenth, self._last_tenth)
            self._draw(now)

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if self._live:
            self._draw(self._clock())
            self._stream.write("\n")
        elif self._last_drawn != self._done or not self._drawn:
            self._draw(self._clock())
        self._stream.flush()

    def describe(self) -> str:
        """The progress as one line of text."""
        done, total = self._done, self._total
        parts = [f"{self._label:<11}"]
        if total:
            share = min(done / total, 1.0)
            parts.append(f"{share * 100:5.1f}%")
            if self._live:
                filled = int(share * 24)
                parts.append("[" + "#" * filled + "." * (24 - filled) + "]")
            parts.append(f"{human_bytes(done)} / {human_bytes(total)}")
        else:
            parts.append(human_bytes(done))
        rate = self._meter.rate()
        if rate is not None:
            parts.append(f"{human_bytes(rate)}/s")
            left = self._meter.time_left(done, total) if total else None
            if left is not None and done < (total or 0):
                parts.append(f"{human_duration(left)} left")
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        text = self.describe()
        if self._live:
            self._stream.write("\r" + text + "\x1b[K")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
        self._last_draw = now
        self._last_drawn = self._done
        self._drawn = True
