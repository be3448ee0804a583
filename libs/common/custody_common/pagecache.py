"""Large files passed through once stay out of the page cache.

Evidence is written once and then read in whole passes (the seal, a download, a fixity check),
and a download is written once by the client. Left in the page cache, such a file evicts what
other work needs, and the cache has to grow to hold it: on a virtual machine whose host takes
back the guest's free memory, every page the cache grows by costs a fault to the host, measured
here at about 2 s per GiB written, more than the disk takes to store it.

A :class:`DropBehind` follows one file descriptor from start to end and, every :data:`STEP`
bytes, advises the kernel (``posix_fadvise``, ``POSIX_FADV_DONTNEED``): pages just written start
their writeback, and pages a step older, written back or read by then, are dropped, so the
cache reuses the same few MiB instead of growing. It is advice only: nothing here changes what
is written or read, and where the call does not exist it does nothing.
"""

from __future__ import annotations

import contextlib
import os
from typing import Final

STEP: Final = 8 * 1024 * 1024
"""Bytes passed between two pieces of advice."""


class DropBehind:
    """Keeps the bytes of one file that a writer or reader has moved past out of the page cache."""

    def __init__(self, fd: int, start: int = 0) -> None:
        """Follow ``fd``, whose next byte written or read is at ``start``."""
        self._fd = fd
        self._start = start
        self._settled = start  # before this, dropped (unless it was still being written back)
        self._advised = start  # [settled, advised) was advised once: written back, or read
        self._position = start

    def passed(self, count: int) -> None:
        """``count`` more bytes were written or read."""
        self._position += count
        if self._position - self._advised >= STEP:
            self._advise(self._settled, self._position)
            self._settled, self._advised = self._advised, self._position

    def finish(self) -> None:
        """Drop everything passed; for a file written, call it once the file is fsynced."""
        self._advise(self._start, self._position)

    def _advise(self, start: int, end: int) -> None:
        if hasattr(os, "posix_fadvise") and end > start:
            with contextlib.suppress(OSError):
                os.posix_fadvise(self._fd, start, end - start, os.POSIX_FADV_DONTNEED)


__all__ = ["STEP", "DropBehind"]
