"""HTTP Range requests (RFC 9110 §14) over one item's plaintext: one range at a time."""

from __future__ import annotations

import re
from dataclasses import dataclass

from custody_evidence.errors import EvidenceError

_SPEC = re.compile(r"^\s*bytes\s*=\s*(?P<first>\d*)-(?P<last>\d*)\s*$", re.IGNORECASE)


class RangeNotSatisfiable(EvidenceError):
    """The requested range lies outside the item (answered with 416 and its size)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the requested range is outside the item, which is {size} bytes long")
        self.size = size


@dataclass(frozen=True)
class ByteRange:
    """Bytes [start, end) of an item of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` value of a 206 answer."""
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single range ``header`` asks for, or None to send the whole item.

    Forms: ``bytes=a-b``, ``bytes=a-``, ``bytes=-n``. A header that is not a single valid byte
    range (another unit, several ranges, ``b < a``, garbage) is ignored, as RFC 9110 allows:
    the whole item is sent. Raises RangeNotSatisfiable when the range starts past the end
    (or asks for the last 0 bytes, or the item is empty).
    """
    if header is None:
        return None
    match = _SPEC.match(header)
    if match is None:
        return None
    first, last = match["first"], match["last"]
    if first:
        start = _position(first)
        if last and _position(last) < start:
            return None
        if start >= size:
            raise RangeNotSatisfiable(size)
        end = min(_position(last) + 1, size) if last else size
        return ByteRange(start, end, size)
    if not last:
        return None
    suffix = _position(last)
    if suffix == 0 or size == 0:
        raise RangeNotSatisfiable(size)
    return ByteRange(max(size - suffix, 0), size, size)


def _position(digits: str) -> int:
    """A byte position as the header spells it; one beyond 2^63 (no item is that large) counts
    as 2^63 - 1, so a number of thousands of digits neither costs nor raises anything."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) < 19 else 2**63 - 1
