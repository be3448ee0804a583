"""Chunked AES-256-GCM in the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015).

One *part* (the bytes of one accepted tus PATCH) is stored as::

    header   = MAGIC (4) ‖ VERSION (1) ‖ nonce prefix (7 random bytes)
    segments = AES-256-GCM(DEK, nonce = prefix ‖ counter (4, big-endian) ‖ last (1), plaintext ≤ SEGMENT)

Every segment is bound to the header, the evidence id and the part's plaintext offset
(associated data), so a flipped bit, a swapped segment, a segment moved to another
part or item, or a truncation (no segment flagged last) fails authentication.
An empty part is one empty segment flagged last.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from custody_common.errors import IntegrityError

MAGIC = b"CSTY"
VERSION = 1
SEGMENT = 64 * 1024
TAG = 16
HEADER = len(MAGIC) + 1 + 7


def ciphertext_size(plaintext_size: int) -> int:
    """Stored size of a part holding ``plaintext_size`` bytes."""
    segments = max(1, -(-plaintext_size // SEGMENT))
    return HEADER + plaintext_size + segments * TAG


def _associated_data(header: bytes, evidence_id: uuid.UUID, offset: int) -> bytes:
    return header + evidence_id.bytes + offset.to_bytes(8, "big")


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class PartEncryptor:
    """Encrypts one part incrementally: ``header()``, then ``update()``s, then ``finalize()``."""

    def __init__(self, dek: bytes, evidence_id: uuid.UUID, offset: int) -> None:
        self._aead = AESGCM(dek)
        self._prefix = os.urandom(7)
        self._header = MAGIC + bytes([VERSION]) + self._prefix
        self._ad = _associated_data(self._header, evidence_id, offset)
        self._counter = 0
        self._pending = bytearray()
        self.plaintext_size = 0

    def header(self) -> bytes:
        """The part's header, to be stored before the first segment."""
        return self._header

    def _seal(self, segment: bytes | bytearray | memoryview, last: bool) -> bytes:
        if self._counter >= 2**32 - 1:
            raise ValueError("part too large for one STREAM")
        out = self._aead.encrypt(_nonce(self._prefix, self._counter, last), segment, self._ad)
        self._counter += 1
        return out

    def update(self, data: bytes) -> bytes:
        """Ciphertext of every segment completed by ``data``; the last full one is held back."""
        self.plaintext_size += len(data)
        view = memoryview(data)
        out = []
        # Keep at least one byte pending: only finalize() knows which segment is last.
        if self._pending:
            need = SEGMENT - len(self._pending)
            if len(view) <= need:
                self._pending += view
                return b""
            self._pending += view[:need]
            view = view[need:]
            out.append(self._seal(self._pending, last=False))
            self._pending.clear()
        while len(view) > SEGMENT:
            out.append(self._seal(view[:SEGMENT], last=False))
            view = view[SEGMENT:]
        self._pending += view
        return b"".join(out)

    def finalize(self) -> bytes:
        """The last segment, flagged as last."""
        out = self._seal(bytes(self._pending), last=True)
        self._pending.clear()
        return out


def encrypt_part(dek: bytes, evidence_id: uuid.UUID, offset: int, plaintext: bytes) -> bytes:
    """A whole part in one call (small parts and tests)."""
    enc = PartEncryptor(dek, evidence_id, offset)
    return enc.header() + enc.update(plaintext) + enc.finalize()


class PartDecryptor:
    """Decrypts one stored part incrementally, authenticating every segment before yielding it.

    ``first_segment`` lets a reader start mid-part (range requests): pass the header
    separately with ``header`` and feed ciphertext starting at that segment.
    """

    def __init__(
        self, dek: bytes, evidence_id: uuid.UUID, offset: int, header: bytes, first_segment: int = 0
    ) -> None:
        if len(header) != HEADER or header[:4] != MAGIC:
            raise IntegrityError("stored part has no valid header")
        if header[4] != VERSION:
            raise IntegrityError(f"stored part has unknown format version {header[4]}")
        self._aead = AESGCM(dek)
        self._prefix = header[5:]
        self._ad = _associated_data(header, evidence_id, offset)
        self._counter = first_segment
        self._pending = bytearray()
        self.finished = False

    def _open(self, segment: bytes | bytearray | memoryview, last: bool) -> bytes:
        try:
            return self._aead.decrypt(_nonce(self._prefix, self._counter, last), segment, self._ad)
        except InvalidTag:
            raise IntegrityError(
                f"segment {self._counter} failed authentication (altered, moved or truncated)"
            ) from None

    def update(self, data: bytes) -> Iterator[bytes]:
        """Plaintext of every full segment in ``data`` (the one that may be last is held back)."""
        if self.finished and data:
            raise IntegrityError("data found after the last segment")
        full = SEGMENT + TAG
        view = memoryview(data)
        # Decrypt straight from the caller's buffer; only a segment split across calls is copied.
        if self._pending:
            need = full - len(self._pending)
            if len(view) <= need:
                self._pending += view
                return
            self._pending += view[:need]
            view = view[need:]
            segment = self._open(self._pending, last=False)
            self._pending.clear()
            self._counter += 1
            yield segment
        while len(view) > full:
            segment = self._open(view[:full], last=False)
            view = view[full:]
            self._counter += 1
            yield segment
        self._pending += view

    def finalize(self, expect_last: bool = True) -> bytes:
        """The remaining segment; with ``expect_last`` it must carry the last flag."""
        chunk = bytes(self._pending)
        self._pending.clear()
        if not chunk:
            raise IntegrityError("part is truncated: no final segment")
        if len(chunk) < TAG:
            raise IntegrityError("part is truncated inside a segment")
        if expect_last:
            out = self._open(chunk, last=True)
            self.finished = True
            return out
        out = self._open(chunk, last=False)
        self._counter += 1
        return out


def decrypt_part(
    dek: bytes, evidence_id: uuid.UUID, offset: int, chunks: Iterable[bytes]
) -> Iterator[bytes]:
    """Authenticated plaintext of a whole stored part, segment by segment.

    Raises IntegrityError before yielding any byte of a segment that does not verify.
    """
    buffered = bytearray()
    dec: PartDecryptor | None = None
    for chunk in chunks:
        if dec is None:
            buffered += chunk
            if len(buffered) < HEADER:
                continue
            dec = PartDecryptor(dek, evidence_id, offset, bytes(buffered[:HEADER]))
            chunk = bytes(buffered[HEADER:])
        yield from dec.update(chunk)
    if dec is None:
        raise IntegrityError("stored part is shorter than its header")
    yield dec.finalize()


def segment_span(plaintext_size: int, start: int, end: int) -> tuple[int, int, int, int]:
    """For plaintext bytes [start, end) of a part: (first segment, last segment, ciphertext
    start, ciphertext end) — the stored byte range to read, header excluded from the range."""
    if not 0 <= start < end <= plaintext_size:
        raise ValueError("range outside the part")
    first = start // SEGMENT
    last = (end - 1) // SEGMENT
    c_start = HEADER + first * (SEGMENT + TAG)
    c_end = min(HEADER + (last + 1) * (SEGMENT + TAG), ciphertext_size(plaintext_size))
    return first, last, c_start, c_end
