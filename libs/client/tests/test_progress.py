"""Progress display: rate and time left from a sliding window; a live line on a terminal,
occasional plain lines elsewhere (times come from a fake clock)."""

from __future__ import annotations

import io

from custody_client.progress import ProgressLine, TransferMeter, human_bytes, human_duration

MiB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_and_time_left_follow_the_recent_window() -> None:
    clock = Clock()
    meter = TransferMeter(clock)
    meter.add(0)
    assert meter.rate() is None
    for _ in range(5):
        clock.now += 1
        meter.add(meter._samples[-1][1] + 2 * MiB)
    assert meter.rate() == 2 * MiB
    assert meter.time_left(10 * MiB, 30 * MiB) == 10
    for _ in range(20):  # the link slows down; after the window only the new rate counts
        clock.now += 1
        meter.add(meter._samples[-1][1] + MiB // 2)
    assert meter.rate() == MiB // 2


def test_a_retry_that_goes_back_restarts_the_measurement() -> None:
    clock = Clock()
    meter = TransferMeter(clock)
    meter.add(0)
    clock.now += 1
    meter.add(5 * MiB)
    clock.now += 1
    meter.add(4 * MiB)
    assert meter.rate() is None


def test_units() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(3.5 * MiB) == "3.5 MiB"
    assert human_bytes(5 * 1024**4) == "5.0 TiB"
    assert human_duration(3725) == "1:02:05"


def test_a_terminal_gets_one_redrawn_line_with_rate_and_time_left() -> None:
    clock, out = Clock(), io.StringIO()
    line = ProgressLine(out, "uploading", live=True, clock=clock)
    for second in range(11):
        clock.now = 1000.0 + second
        line.update(second * MiB, 20 * MiB)
    line.finish()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    last = text.rstrip("\n").split("\r")[-1]
    assert "50.0%" in last and "10.0 MiB / 20.0 MiB" in last and "1.0 MiB/s" in last and "0:00:10 left" in last


def test_elsewhere_plain_lines_come_at_each_tenth_not_per_update() -> None:
    clock, out = Clock(), io.StringIO()
    line = ProgressLine(out, "uploading", live=False, clock=clock)
    for step in range(1001):
        clock.now += 0.1
        line.update(step * 1000, 1_000_000)
    line.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 11, lines
    assert "\r" not in out.getvalue()
    assert "100.0%" in lines[-1]


def test_elsewhere_fast_work_gives_few_lines_but_always_the_last() -> None:
    clock, out = Clock(), io.StringIO()
    line = ProgressLine(out, "hashing", live=False, clock=clock)
    for step in range(101):
        clock.now += 0.01
        line.update(step, 100)
    line.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "100.0%" in lines[-1]


def test_elsewhere_a_slow_transfer_still_shows_a_line_now_and_then() -> None:
    clock, out = Clock(), io.StringIO()
    line = ProgressLine(out, "uploading", live=False, clock=clock)
    line.update(0, 100 * MiB)
    for _ in range(4):
        clock.now += 31
        line.update(line._done + 1, 100 * MiB)
    assert len(out.getvalue().splitlines()) == 5
