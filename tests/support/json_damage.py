"""Hypothesis strategies for damaged JSON documents: any value inside a document replaced with
any JSON value, lone surrogates (what a ``\\udXXX`` escape decodes to) and out-of-range numbers
included."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

ANY_CHARACTER = st.characters(exclude_categories=())
"""Any code point, lone surrogates too."""

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(ANY_CHARACTER, max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path to every value inside ``value``, itself included."""
    found = [path]
    members = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, member in members:
        found += _paths(member, (*path, key))
    return found


def damaged(data: st.DataObject, document: Any, most: int = 3) -> Any:
    """A copy of ``document`` with one to ``most`` of the values inside it replaced."""
    document = copy.deepcopy(document)
    for _ in range(data.draw(st.integers(1, most))):
        *parents, last = data.draw(st.sampled_from(_paths(document)[1:]))
        holder = document
        for key in parents:
            holder = holder[key]
        holder[last] = data.draw(ANY_JSON)
    return document
