"""The published RFC 6962 / RFC 9162 test vectors in ``shared/testdata/merkle`` beside the
repository, read the way every Merkle test needs them."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.support import SHARED

VECTORS = SHARED / "testdata" / "merkle"


def vector_files(kind: str) -> list[Path]:
    """Every ``kind`` (``inclusion`` or ``consistency``) vector file; fails if there are none."""
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert files, f"no {kind} vectors under {VECTORS}; the shared test data must sit beside the repository"
    return files


def b64(value: str | None) -> bytes:
    """A vector's base64 field (absent or null: empty)."""
    return base64.b64decode(value or "")


def proof(values: list[str] | None) -> list[bytes]:
    """A vector's proof (absent or null: empty)."""
    return [b64(v) for v in values or []]
