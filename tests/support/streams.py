"""Large byte streams for tests, made one chunk at a time, and the memory code holds while it
handles them."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MIB = 1024 * 1024


def numbered_chunks(total: int, chunk_size: int = MIB) -> Iterator[bytes]:
    """``total`` bytes in chunks whose content differs from chunk to chunk, made one at a time."""
    for number, start in enumerate(range(0, total, chunk_size)):
        size = min(chunk_size, total - start)
        pattern = number.to_bytes(8, "big")
        yield pattern * (size // 8) + pattern[: size % 8]


def sha256_of(chunks: Iterable[bytes]) -> str:
    """Hex SHA-256 of the concatenated chunks."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


@dataclass
class TracedMemory:
    """Python allocations made inside a ``traced_memory`` block, in bytes, read as it ended."""

    held: int = 0
    """Still allocated when the block ended."""
    peak: int = 0
    """The most allocated at any moment of the block."""


@contextmanager
def traced_memory() -> Iterator[TracedMemory]:
    """Trace Python's allocations for the block; the readings are filled in when it ends."""
    traced = TracedMemory()
    tracemalloc.start()
    try:
        yield traced
        traced.held, traced.peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
