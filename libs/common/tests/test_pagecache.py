"""DropBehind: what it advises while a file is passed through, and that the pages leave the cache."""

from __future__ import annotations

import os
from pathlib import Path

from custody_common.pagecache import STEP, DropBehind
from tests.support.pagecache import recorded_advice, resident_bytes

MIB = 1024 * 1024


def test_each_step_starts_writeback_of_the_new_bytes_and_drops_the_step_before(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    advised = recorded_advice(monkeypatch)
    behind = DropBehind(7, start=100)
    for _ in range(5):
        behind.passed(STEP // 2)
        behind.passed(STEP // 2)
    assert advised == [
        (100, 100 + STEP),
        (100, 100 + 2 * STEP),
        (100 + STEP, 100 + 3 * STEP),
        (100 + 2 * STEP, 100 + 4 * STEP),
        (100 + 3 * STEP, 100 + 5 * STEP),
    ]
    behind.passed(1)
    behind.finish()
    assert advised[-1] == (100, 100 + 5 * STEP + 1)


def test_bytes_short_of_a_step_are_left_alone_until_the_end(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    advised = recorded_advice(monkeypatch)
    behind = DropBehind(7)
    behind.passed(STEP - 1)
    assert advised == []
    behind.finish()
    assert advised == [(0, STEP - 1)]


def test_a_file_written_through_it_leaves_the_page_cache(tmp_path: Path) -> None:
    kept, dropped = tmp_path / "kept.bin", tmp_path / "dropped.bin"
    block = os.urandom(MIB)
    for path, follow in ((kept, False), (dropped, True)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            behind = DropBehind(fd)
            for _ in range(24):
                os.write(fd, block)
                behind.passed(MIB)
            os.fsync(fd)
            if follow:
                behind.finish()
        finally:
            os.close(fd)
    # the control shows the cache holds what is written unless told otherwise
    assert resident_bytes(kept) > 8 * MIB
    assert resident_bytes(dropped) == 0
