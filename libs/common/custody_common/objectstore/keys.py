"""The shape of object keys, checked the same way by every adapter.

A key is a ``/``-separated relative path such as ``evidence/<id>/parts/000001-<attempt>``. Segments are
non-empty, are never ``.`` or ``..``, never begin with a dot (names beginning with a dot are
reserved for an adapter's own bookkeeping, such as the local folder's lock records and
half-written files) and hold no control characters or backslashes. A key is at most 1024 bytes
in UTF-8, the S3 limit. The same key is therefore valid on a local folder and on any S3 server,
and can never escape the local store's root.
"""

from __future__ import annotations

MAX_KEY_BYTES = 1024


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid object key; raise ValueError saying why not."""
    if not isinstance(key, str):
        raise ValueError(f"object key must be a string, not {type(key).__name__}")
    if not key:
        raise ValueError("object key is empty")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"object key is longer than {MAX_KEY_BYTES} bytes")
    _refuse_forbidden_characters(key)
    if key.startswith("/"):
        raise ValueError(f"object key {key!r} is absolute; keys are relative paths")
    for segment in key.split("/"):
        _check_segment(key, segment)
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged if it can begin a valid key (``""`` selects every key)."""
    if not isinstance(prefix, str):
        raise ValueError(f"key prefix must be a string, not {type(prefix).__name__}")
    if not prefix:
        return prefix
    _refuse_forbidden_characters(prefix)
    if prefix.startswith("/"):
        raise ValueError(f"key prefix {prefix!r} is absolute; keys are relative paths")
    *complete, last = prefix.split("/")
    for segment in complete:
        _check_segment(prefix, segment)
    if last in (".", ".."):
        raise ValueError(f"key prefix {prefix!r} contains a {last!r} segment")
    return prefix


def _refuse_forbidden_characters(text: str) -> None:
    if "\\" in text:
        raise ValueError(f"object key {text!r} contains a backslash; use '/' between segments")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ValueError(f"object key {text!r} contains a control character")


def _check_segment(key: str, segment: str) -> None:
    if not segment:
        raise ValueError(f"object key {key!r} has an empty segment ('//' or a leading/trailing '/')")
    if segment in (".", ".."):
        raise ValueError(f"object key {key!r} contains a {segment!r} segment")
    if segment.startswith("."):
        raise ValueError(
            f"object key {key!r} has a segment beginning with '.', which is reserved for the store itself"
        )
