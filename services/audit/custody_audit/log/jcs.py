"""RFC 8785 (JSON Canonicalization Scheme) at the speed the sequencer needs.

Custody events are objects of ASCII keys, strings, safe integers, booleans and nulls. For
such values RFC 8785 and the C JSON encoder with sorted keys and no whitespace agree byte
for byte: the same escapes (only ``"``, ``\\`` and control characters, short forms where
JSON has them, else lowercase ``\\u00xx``), code-point order equals UTF-16 order for ASCII
keys, and integers print alike. Anything else — floats, non-ASCII keys, integers beyond
2^53, subclasses — goes through the reference implementation.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_SAFE_INTEGER = 2**53 - 1
_encoder = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _encoder_agrees(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if -_SAFE_INTEGER <= item <= _SAFE_INTEGER:
                continue
            return False
        if kind is dict:
            for key, member in item.items():
                if type(key) is not str or not key.isascii():
                    return False
                stack.append(member)
            continue
        if kind is list:
            stack.extend(item)
            continue
        return False
    return True


def canonical(value: Any) -> bytes:
    """The RFC 8785 bytes of ``value`` (raises ValueError where RFC 8785 does)."""
    if _encoder_agrees(value):
        try:
            return _encoder.encode(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: let the reference implementation refuse it
    return rfc8785.dumps(value)


def json_number(text: str) -> int | float:
    """``parse_int`` for ``json.loads`` so parsing undoes :func:`canonical`: RFC 8785 numbers
    are IEEE 754 doubles, so an integer literal beyond 2^53 means the nearest double."""
    value = int(text)
    return value if -_SAFE_INTEGER <= value <= _SAFE_INTEGER else float(text)
