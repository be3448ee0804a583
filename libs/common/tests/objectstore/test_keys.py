"""Which object keys and prefixes are accepted."""

from __future__ import annotations

import pytest

from custody_common.objectstore.keys import validate_key, validate_prefix


@pytest.mark.parametrize(
    "key",
    [
        "evidence/0193b6a2-7c1e-7b4e-9f0a-2d3c4b5a6978/parts/000001",
        "evidence/0193b6a2/manifest.v2.json",
        "a",
        "a..b/c.",
        "ünïcode/ключ",
        "x" * 1024,
    ],
)
def test_valid_keys_pass_unchanged(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        *("", "/abs", "../x", "a/../b", "a/..", "./a", "a/./b", "a//b", "a/", ".hidden", "a/.tmp-x"),
        *("a\\b", "a\nb", "a\x7fb", "x" * 1025, "é" * 513),
    ],
)
def test_invalid_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError):
        validate_key(key)


def test_a_key_must_be_text() -> None:
    with pytest.raises(ValueError):
        validate_key(b"evidence/a")  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["", "evidence/", "evidence/01", "evidence/a/parts/0000", "e"])
def test_valid_prefixes_pass_unchanged(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "/evidence", "../", "..", "a/../", "a//", "a/.", ".locks/", "a\x00"])
def test_invalid_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError):
        validate_prefix(prefix)
