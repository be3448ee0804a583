"""Whole numbers read from text another party wrote: headers, signed notes, arguments."""

from __future__ import annotations


def is_decimal(text: str) -> bool:
    """Whether ``text`` is a whole number that int() reads safely: ASCII digits only
    (``isdigit`` passes ``²``, which int() refuses), and at most 20 of them (int() refuses
    over 4,300; no size or count here needs more than 20)."""
    return text.isascii() and text.isdigit() and len(text) <= 20
