"""Log entries: the leaf written member by member is exactly RFC 8785 of the entry."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from custody_audit.log.entry import build_leaf, parse_leaf
from custody_audit.log.jcs import canonical

events = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text() | st.floats(allow_nan=False, allow_infinity=False),
    max_size=8,
)


@given(events, st.none() | st.integers(1, 10**9), st.none() | st.binary(min_size=32, max_size=32))
def test_leaf_is_rfc8785_of_the_entry(event, item_seq, prev_leaf) -> None:  # type: ignore[no-untyped-def]
    logged_at = "2025-01-02T03:04:05.678Z"
    leaf = build_leaf(canonical(event), item_seq, prev_leaf, logged_at)
    entry = {"event": event, "item_seq": item_seq, "prev_leaf": prev_leaf.hex() if prev_leaf else None,
             "logged_at": logged_at}
    assert leaf == rfc8785.dumps(entry)
    assert parse_leaf(leaf) == entry


@pytest.mark.parametrize(
    "leaf",
    [
        b'{"event":{},"item_seq":null,"logged_at":"t"}',
        b'{"event":{},"item_seq":null,"logged_at":"t","prev_leaf":null,"x":1}',
        b'{"event": {},"item_seq":null,"logged_at":"t","prev_leaf":null}',
        b'{"event":[],"item_seq":null,"logged_at":"t","prev_leaf":null}',
    ],
)
def test_parse_refuses_what_is_not_a_canonical_entry(leaf: bytes) -> None:
    with pytest.raises(ValueError):
        parse_leaf(leaf)
