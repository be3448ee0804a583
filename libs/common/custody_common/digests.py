"""The ``Repr-Digest`` field of RFC 9530 with SHA-256: the digest of a whole file, sent by the
vault beside what it serves and by a client beside the PATCH that completes its upload."""

from __future__ import annotations

import base64
import binascii
import re

_MEMBER = re.compile(r"\s*([a-z0-9_\-*.]+)\s*=\s*:([A-Za-z0-9+/=]*):\s*(?:;[^,]*)?")


def repr_digest(sha256_hex: str) -> str:
    """The ``Repr-Digest`` value stating the SHA-256 ``sha256_hex``."""
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode()}:"


def sha256_of(field: str) -> bytes | None:
    """The SHA-256 a ``Repr-Digest`` value states (``sha-256=:BASE64:``, maybe beside other
    algorithms), or None when it states no well-formed one."""
    for member in field.split(","):
        match = _MEMBER.fullmatch(member)
        if match and match.group(1) == "sha-256":
            try:
                value = base64.b64decode(match.group(2), validate=True)
            except (binascii.Error, ValueError):
                return None
            return value if len(value) == 32 else None
    return None
