import os
import uuid

import pytest

from custody_common.crypto.stream import (
    HEADER,
    SEGMENT,
    TAG,
    PartDecryptor,
    PartEncryptor,
    ciphertext_size,
    decrypt_part,
    encrypt_part,
    segment_span,
)
from custody_common.errors import IntegrityError

DEK = bytes(range(32))
EID = uuid.UUID("01890000-0000-7000-8000-000000000001")


def _decrypt(ct: bytes, evidence_id: uuid.UUID = EID, offset: int = 0, chunk: int = 7000) -> bytes:
    return b"".join(decrypt_part(DEK, evidence_id, offset, [ct[i : i + chunk] for i in range(0, len(ct), chunk)]))


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 3 * SEGMENT + 17])
def test_round_trip_any_size_and_chunking(size: int) -> None:
    data = os.urandom(size)
    ct = encrypt_part(DEK, EID, 0, data)
    assert len(ct) == ciphertext_size(size)
    assert _decrypt(ct) == data
    assert _decrypt(ct, chunk=1) == data


def test_incremental_encryption_matches_sizes() -> None:
    enc = PartEncryptor(DEK, EID, 10)
    out = enc.header() + b"".join(enc.update(os.urandom(1000)) for _ in range(200)) + enc.finalize()
    assert len(out) == ciphertext_size(200_000)
    assert enc.plaintext_size == 200_000


def test_ciphertext_holds_no_plaintext() -> None:
    marker = b"PLAINTEXT-MARKER-" * 1000
    assert b"PLAINTEXT-MARKER" not in encrypt_part(DEK, EID, 0, marker)


def test_flipped_bit_is_detected() -> None:
    ct = bytearray(encrypt_part(DEK, EID, 0, os.urandom(2 * SEGMENT)))
    ct[HEADER + SEGMENT + 100] ^= 1
    with pytest.raises(IntegrityError):
        _decrypt(bytes(ct))


def test_truncation_at_segment_boundary_is_detected() -> None:
    ct = encrypt_part(DEK, EID, 0, os.urandom(3 * SEGMENT))
    with pytest.raises(IntegrityError):
        _decrypt(ct[: HEADER + 2 * (SEGMENT + TAG)])


def test_swapped_segments_are_detected() -> None:
    ct = encrypt_part(DEK, EID, 0, os.urandom(3 * SEGMENT))
    s = SEGMENT + TAG
    a, b = ct[HEADER : HEADER + s], ct[HEADER + s : HEADER + 2 * s]
    with pytest.raises(IntegrityError):
        _decrypt(ct[:HEADER] + b + a + ct[HEADER + 2 * s :])


def test_part_bound_to_its_item_and_offset() -> None:
    ct = encrypt_part(DEK, EID, 0, b"evidence")
    with pytest.raises(IntegrityError):
        _decrypt(ct, evidence_id=uuid.uuid4())
    with pytest.raises(IntegrityError):
        _decrypt(ct, offset=8)


def test_bytes_after_last_segment_are_detected() -> None:
    ct = encrypt_part(DEK, EID, 0, os.urandom(SEGMENT + 5))
    with pytest.raises(IntegrityError):
        _decrypt(ct + ct[HEADER:])


def test_unknown_version_refused() -> None:
    ct = bytearray(encrypt_part(DEK, EID, 0, b"x"))
    ct[4] = 9
    with pytest.raises(IntegrityError, match="version"):
        _decrypt(bytes(ct))


def test_decrypting_from_a_middle_segment() -> None:
    data = os.urandom(5 * SEGMENT + 123)
    ct = encrypt_part(DEK, EID, 0, data)
    first, last, c_start, c_end = segment_span(len(data), 2 * SEGMENT + 5, 5 * SEGMENT + 100)
    assert (first, last) == (2, 5)
    dec = PartDecryptor(DEK, EID, 0, ct[:HEADER], first_segment=first)
    plain = b"".join(dec.update(ct[c_start:c_end])) + dec.finalize(expect_last=(c_end == len(ct)))
    assert plain == data[first * SEGMENT : (last + 1) * SEGMENT]
