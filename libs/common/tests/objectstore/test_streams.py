"""How put's input becomes chunks."""

from __future__ import annotations

import array
import io

import pytest

from custody_common.objectstore.streams import CHUNK_SIZE, iter_chunks


def as_bytes(data: object) -> list[bytes]:
    return [bytes(view) for view in iter_chunks(data)]  # type: ignore[arg-type]


def test_bytes_like_objects_are_one_chunk_and_empty_ones_none() -> None:
    assert as_bytes(b"abc") == [b"abc"]
    assert as_bytes(bytearray(b"abc")) == [b"abc"]
    assert as_bytes(memoryview(b"abc")) == [b"abc"]
    assert as_bytes(b"") == []


def test_files_are_read_in_chunk_sized_pieces() -> None:
    assert [len(chunk) for chunk in as_bytes(io.BytesIO(b"x" * (2 * CHUNK_SIZE + 1)))] == [CHUNK_SIZE, CHUNK_SIZE, 1]


def test_iterables_keep_their_chunks_and_drop_empty_ones() -> None:
    assert as_bytes([b"a", b"", bytearray(b"b")]) == [b"a", b"b"]


def test_views_of_wide_items_are_seen_as_bytes() -> None:
    numbers = array.array("I", [1, 2])

    chunks = list(iter_chunks([memoryview(numbers)]))

    assert [(view.format, view.nbytes, bytes(view)) for view in chunks] == [("B", 8, numbers.tobytes())]


@pytest.mark.parametrize("data", ["text", ["text"], [1, 2], 42])
def test_anything_but_bytes_is_refused(data: object) -> None:
    with pytest.raises(TypeError):
        as_bytes(data)
