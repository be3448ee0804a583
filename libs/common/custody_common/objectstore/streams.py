"""Turning what callers hand to ``put`` into a stream of byte chunks, without copying it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from custody_common.objectstore.base import ObjectStoreError

CHUNK_SIZE = 1024 * 1024
"""How much one read from a file-like source or from a stored object asks for."""


def iter_chunks(data: bytes | BinaryIO | Iterable[bytes]) -> Iterator[memoryview]:
    """The bytes of ``data`` as non-empty byte views, in order.

    ``data`` is a bytes-like object, a binary file-like object (read in ``CHUNK_SIZE`` pieces)
    or an iterable of bytes-like chunks. Anything else, such as ``str``, raises TypeError.
    Errors the source raises propagate unchanged.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = _as_byte_view(data)
        if view.nbytes:
            yield view
        return
    if isinstance(data, str):
        raise TypeError("object data must be bytes, a binary file or an iterable of bytes, not str")
    read = getattr(data, "read", None)
    chunks: Iterable[object]
    if callable(read):
        chunks = iter(lambda: read(CHUNK_SIZE), b"")
    else:
        chunks = data
    for chunk in chunks:
        view = _as_byte_view(chunk)
        if view.nbytes:
            yield view
        # Let go of this chunk before the source makes the next one: memory holds one, not two.
        del chunk, view


def exactly(chunks: Iterator[memoryview], size: int, key: str) -> Iterator[memoryview]:
    """``chunks``, which must hold ``size`` bytes: ObjectStoreError instead of a chunk that goes
    past them, or instead of ending short of them, so a request sending them never completes."""
    sent = 0
    for chunk in chunks:
        sent += chunk.nbytes
        if sent > size:
            raise ObjectStoreError(f"the data for {key!r} holds more than the {size} bytes announced")
        yield chunk
    if sent != size:
        raise ObjectStoreError(f"the data for {key!r} holds {sent} bytes, not the {size} announced")


def _as_byte_view(chunk: object) -> memoryview:
    if isinstance(chunk, str) or not isinstance(chunk, (bytes, bytearray, memoryview)):
        raise TypeError(f"object data chunks must be bytes-like, not {type(chunk).__name__}")
    view = memoryview(chunk)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")
