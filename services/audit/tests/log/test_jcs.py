"""The fast RFC 8785 path gives exactly the reference implementation's bytes (or its refusal)."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from custody_audit.log.jcs import canonical

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F))
    | st.sampled_from(["\ud800", "\U0001f600", "\ue000", "\x7f", "\x00\x1f\"\\"])
)
keys = st.text() | st.sampled_from(["\ue000", "\U0001f600", "a", "b", "\x00", "é"])
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=6))


def _reference(value):  # type: ignore[no-untyped-def]
    try:
        return rfc8785.dumps(value)
    except ValueError as exc:
        return type(exc)


@settings(max_examples=1000, deadline=None)
@given(values)
def test_same_bytes_as_the_reference(value) -> None:  # type: ignore[no-untyped-def]
    expected = _reference(value)
    if isinstance(expected, bytes):
        assert canonical(value) == expected
    else:
        with pytest.raises(ValueError):
            canonical(value)


def test_utf16_key_order_is_kept() -> None:
    value = {"\ue000": 1, "\U0001f600": 2, "a": 3}
    assert canonical(value) == rfc8785.dumps(value)
    assert canonical(value).index("\U0001f600".encode()) < canonical(value).index("\ue000".encode())
