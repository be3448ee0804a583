"""How much of a file the page cache holds."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def resident_bytes(path: Path) -> int:
    """Bytes of ``path`` in the page cache, by util-linux's ``fincore``. Skips the calling test
    where that cannot be told: no ``fincore``, or a file system kept in memory (tmpfs), whose
    pages are the files themselves."""
    fincore = shutil.which("fincore")
    if fincore is None:
        pytest.skip("util-linux's fincore is not installed: cannot tell what the page cache holds")
    kind = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=True)
    if kind.stdout.strip() in ("tmpfs", "ramfs"):
        pytest.skip(f"{path} is on {kind.stdout.strip()}, whose pages are never dropped from memory")
    found = subprocess.run(
        [fincore, "--bytes", "--noheadings", "--output", "RES", str(path)], capture_output=True, text=True, check=True
    )
    return int(found.stdout.strip())


def recorded_advice(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The (start, end) of every ``posix_fadvise`` call from now on, which are recorded instead of made."""
    advised: list[tuple[int, int]] = []

    def record(fd: int, offset: int, length: int, advice: int) -> None:
        advised.append((offset, offset + length))

    monkeypatch.setattr(os, "posix_fadvise", record)
    return advised
