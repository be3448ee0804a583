"""The tus 1.0.0 wire format: the headers intake reads and writes, parsed strictly."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from custody_common.digests import sha256_of
from custody_intake.uploads.errors import InvalidUploadRequest

TUS_VERSION = "1.0.0"
EXTENSIONS = ("creation", "creation-with-upload", "checksum", "termination", "expiration")
CHECKSUM_ALGORITHMS = ("crc32", "sha256", "sha1")
"""What ``Upload-Checksum`` may name: CRC-32 as ``custody submit`` and the web app send it, SHA-1 as
tus requires of every server, SHA-256."""
OFFSET_OCTET_STREAM = "application/offset+octet-stream"

_DECIMAL = re.compile(r"^[0-9]{1,19}$")
_METADATA_KEY = re.compile(r"^[^\s,]+$")


@dataclass(frozen=True)
class Checksum:
    """An ``Upload-Checksum``: the algorithm and the digest the client computed over the PATCH body."""

    algorithm: str
    digest: bytes

    def hasher(self) -> hashlib._Hash | _Crc32:
        """A fresh hash object of this checksum's algorithm."""
        return _hasher_of(self.algorithm)


class _Crc32:
    """zlib's CRC-32 (that of gzip and PNG) as a hash object: ``update``, and ``digest`` in 4
    bytes, big-endian."""

    digest_size = 4

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


def _hasher_of(algorithm: str) -> hashlib._Hash | _Crc32:
    return _Crc32() if algorithm == "crc32" else hashlib.new(algorithm)


def parse_size(value: str | None, header: str) -> int:
    """A non-negative decimal header such as ``Upload-Length`` or ``Upload-Offset``."""
    if value is None:
        raise InvalidUploadRequest(f"the {header} header is missing; send it as a whole number of bytes")
    value = value.strip()
    if not _DECIMAL.match(value):
        raise InvalidUploadRequest(f"the {header} header must be a whole number of bytes, not {value[:40]!r}")
    return int(value)


def parse_metadata(header: str | None) -> dict[str, str]:
    """The key-value pairs of ``Upload-Metadata`` (``key base64value`` separated by commas),
    values decoded as UTF-8. A key given without a value maps to the empty string."""
    if header is None or not header.strip():
        return {}
    pairs: dict[str, str] = {}
    for item in header.split(","):
        fields = item.strip().split(" ")
        if len(fields) > 2 or not fields[0]:
            raise InvalidUploadRequest(
                "Upload-Metadata must be comma-separated pairs of a key and its base64 value, separated by one space"
            )
        key = fields[0]
        if not _METADATA_KEY.match(key) or not key.isascii():
            raise InvalidUploadRequest(f"Upload-Metadata key {key[:40]!r} must be ASCII without spaces or commas")
        if key in pairs:
            raise InvalidUploadRequest(f"Upload-Metadata gives the key {key!r} twice; send it once")
        raw = fields[1] if len(fields) == 2 else ""
        try:
            pairs[key] = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise InvalidUploadRequest(
                f"the Upload-Metadata value of {key!r} must be UTF-8 text encoded in standard base64"
            ) from None
    return pairs


def encode_metadata(pairs: dict[str, str]) -> str:
    """``pairs`` in the ``Upload-Metadata`` form."""
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items())


def parse_checksum(header: str | None) -> Checksum | None:
    """The ``Upload-Checksum`` header (``crc32 <base64 digest>``, or with ``sha256`` or
    ``sha1``), or None when absent."""
    if header is None:
        return None
    fields = header.strip().split(" ")
    if len(fields) != 2:
        raise InvalidUploadRequest("Upload-Checksum must be an algorithm and a base64 digest separated by a space")
    algorithm, encoded = fields[0].lower(), fields[1]
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise InvalidUploadRequest(
            f"checksum algorithm {algorithm[:20]!r} is not supported; use one of {', '.join(CHECKSUM_ALGORITHMS)}"
        )
    try:
        digest = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidUploadRequest("the Upload-Checksum digest must be standard base64") from None
    size = _hasher_of(algorithm).digest_size
    if len(digest) != size:
        raise InvalidUploadRequest(f"{algorithm} digests have {size} bytes; this one has {len(digest)}")
    return Checksum(algorithm, digest)


def parse_digest(header: str | None) -> str | None:
    """The whole file's SHA-256 (hex) a ``Repr-Digest`` header states, or None when absent."""
    if header is None:
        return None
    digest = sha256_of(header)
    if digest is None:
        raise InvalidUploadRequest(
            "Repr-Digest must state the file's SHA-256 as sha-256=:BASE64 OF THE 32-BYTE DIGEST: (RFC 9530)"
        )
    return digest.hex()


def is_offset_stream(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` announces tus PATCH data."""
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == OFFSET_OCTET_STREAM


def http_date(moment: datetime) -> str:
    """``moment`` as an RFC 7231 HTTP date (``Upload-Expires``)."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def discovery_headers(max_size: int) -> dict[str, str]:
    """What an ``OPTIONS`` answer tells a client about this server."""
    return {
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": ",".join(EXTENSIONS),
        "Tus-Max-Size": str(max_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }
