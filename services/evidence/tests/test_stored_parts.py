"""Reading stored parts back: whole-item read passes and byte ranges against slices of the
original, on a local folder and on Ceph RGW."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from custody_common.crypto.stream import HEADER, SEGMENT, TAG
from custody_evidence.errors import Finding, StoredBytesDamaged
from custody_evidence.stored_parts import check_layout, plaintext_range, read_back

# parts of uneven sizes, one empty, so ranges cross part and segment boundaries
PART_SIZES = [SEGMENT + 1, 0, 3 * SEGMENT, 17, 2 * SEGMENT - 5]


@pytest.fixture
def stored(intake):  # type: ignore[no-untyped-def]
    plaintext = os.urandom(sum(PART_SIZES))
    return intake.submit(plaintext, part_sizes=PART_SIZES)


def _range(vault, submission, start: int, end: int) -> bytes:  # type: ignore[no-untyped-def]
    pieces = plaintext_range(
        vault.store, submission.dek, submission.evidence_id, submission.statement.parts, start, end
    )
    return b"".join(pieces)


def test_read_back_hashes_the_whole_plaintext(vault, stored) -> None:
    check_layout(stored.evidence_id, stored.statement.parts)
    found = read_back(vault.store, stored.dek, stored.evidence_id, stored.statement.parts)
    assert found.sha256 == hashlib.sha256(stored.plaintext).hexdigest()
    assert found.size == len(stored.plaintext)


def test_ranges_equal_slices_of_the_original(vault, stored) -> None:
    size = len(stored.plaintext)
    boundaries = [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, SEGMENT + 2, 2 * SEGMENT + 1, size - 1, size]
    chosen = {(a, b) for a in boundaries for b in boundaries if a < b}
    rng = random.Random(7)
    chosen |= {tuple(sorted(rng.sample(range(size + 1), 2))) for _ in range(20)}  # type: ignore[misc]
    for start, end in sorted(chosen):
        assert _range(vault, stored, start, end) == stored.plaintext[start:end], (start, end)


class CountingStore:
    """The vault's store, with every read it is asked for noted as (key, offset, length)."""

    def __init__(self, store) -> None:  # type: ignore[no-untyped-def]
        self.store = store
        self.reads: list[tuple[str, int, int | None]] = []

    def read(self, key, offset=0, length=None):  # type: ignore[no-untyped-def]
        self.reads.append((key, offset, length))
        return self.store.read(key, offset, length)


def test_only_the_needed_segments_are_read(vault, stored) -> None:
    counting = CountingStore(vault.store)
    part = stored.statement.parts[2]  # three full segments at plaintext offset SEGMENT + 1
    start = part.offset + SEGMENT + 10  # inside the part's segment 1 only
    pieces = plaintext_range(counting, stored.dek, stored.evidence_id, stored.statement.parts, start, start + 100)
    assert b"".join(pieces) == stored.plaintext[start : start + 100]
    assert counting.reads == [(part.key, 0, HEADER), (part.key, HEADER + SEGMENT + TAG, SEGMENT + TAG)]


def test_a_part_read_from_its_first_segment_takes_one_request_with_its_header(vault, stored) -> None:
    counting = CountingStore(vault.store)
    parts = stored.statement.parts
    whole = b"".join(plaintext_range(counting, stored.dek, stored.evidence_id, parts, 0, len(stored.plaintext)))
    assert whole == stored.plaintext
    assert counting.reads == [(part.key, 0, part.stored_size) for part in parts if part.size]
    counting.reads.clear()
    part = parts[2]  # three full segments: the first two only
    start = part.offset + 5
    pieces = plaintext_range(counting, stored.dek, stored.evidence_id, parts, start, start + SEGMENT)
    assert b"".join(pieces) == stored.plaintext[start : start + SEGMENT]
    assert counting.reads == [(part.key, 0, HEADER + 2 * (SEGMENT + TAG))]


def test_a_segment_that_fails_authentication_yields_nothing_of_itself(vault, stored) -> None:
    part = stored.statement.parts[2]
    data = bytearray(vault.store.read_all(part.key))
    data[HEADER + (SEGMENT + TAG) + 5] ^= 0x80  # segment 1 of part 2
    vault.store.put(part.key, bytes(data))

    served = bytearray()
    with pytest.raises(StoredBytesDamaged) as raised:
        for piece in plaintext_range(
            vault.store, stored.dek, stored.evidence_id, stored.statement.parts, 0, len(stored.plaintext)
        ):
            served += piece
    assert raised.value.finding == Finding.AUTHENTICATION_FAILED
    assert raised.value.part == 2
    # everything before the bad segment, nothing of it
    assert bytes(served) == stored.plaintext[: part.offset + SEGMENT]
