"""Names of files inside a package: the original names, made safe on every file system and
unique within the package."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

MAX_NAME_BYTES = 200
"""Room for the name inside ``files/`` on file systems that allow 255 bytes per name."""
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
)


def sanitized(name: str, fallback: str) -> str:
    """``name`` safe as one path component on Windows, macOS and Linux: NFC, no control or
    reserved characters, no leading dots or spaces, no trailing dots or spaces, not a reserved
    device name, at most :data:`MAX_NAME_BYTES` UTF-8 bytes (the extension kept); ``fallback``
    when nothing is left."""
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE.sub("_", name).strip(" .")
    if not name:
        return fallback
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        stem, extension = name, ""
    if stem.upper() in _WINDOWS_RESERVED or stem.split(".")[0].upper() in _WINDOWS_RESERVED:
        stem = f"_{stem}"
    extension = _clip(extension, 20)
    suffix = f".{extension}" if extension else ""
    stem = _clip(stem, MAX_NAME_BYTES - len(suffix.encode()))
    return (stem + suffix) if stem else fallback


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode(errors="ignore").rstrip(" .")


def _compared(name: str) -> str:
    """``name`` as a case-insensitive, normalizing file system compares it, and as a verifier
    does (docs/package-format.md §1): NFC, then case folded."""
    return unicodedata.normalize("NFC", name).casefold()


def package_names(originals: Sequence[tuple[str, str]]) -> list[str]:
    """For each ``(original name, evidence id)``, in order, a sanitized name unique within the
    package, ignoring case and Unicode normalization (as macOS and Windows do): the second
    ``photo.jpg`` becomes ``photo (2).jpg``."""
    taken: set[str] = set()
    names = []
    for original, evidence_id in originals:
        base = sanitized(original, evidence_id)
        stem, dot, extension = base.rpartition(".")
        if not dot or not stem:
            stem, extension = base, ""
        suffix = f".{extension}" if extension else ""
        candidate, counter = base, 1
        while _compared(candidate) in taken:
            counter += 1
            marker = f" ({counter})"
            candidate = _clip(stem, MAX_NAME_BYTES - len((marker + suffix).encode())) + marker + suffix
        taken.add(_compared(candidate))
        names.append(candidate)
    return names
