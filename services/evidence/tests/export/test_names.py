"""Names of files inside a package: safe everywhere, unique ignoring case."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from custody_evidence.export.names import MAX_NAME_BYTES, package_names, sanitized

FALLBACK = "0190a1b2-0000-7000-8000-000000000001"


def test_plain_names_are_kept() -> None:
    assert sanitized("photo 1.jpg", FALLBACK) == "photo 1.jpg"
    assert sanitized("Звіт про депортацію.pdf", FALLBACK) == "Звіт про депортацію.pdf"


def test_reserved_and_control_characters_are_replaced() -> None:
    assert sanitized('a<b>c:d"e|f?g*h\x07.txt', FALLBACK) == "a_b_c_d_e_f_g_h_.txt"
    assert sanitized("..hidden", FALLBACK) == "hidden"
    assert sanitized(" trailing. ", FALLBACK) == "trailing"
    assert sanitized("...", FALLBACK) == FALLBACK
    assert sanitized("CON.txt", FALLBACK) == "_CON.txt"
    assert sanitized("nul", FALLBACK) == "_nul"
    assert sanitized("e\u0301cole.jpg", FALLBACK) == "\u00e9cole.jpg"  # NFC


def test_long_names_are_cut_on_a_character_keeping_the_extension() -> None:
    name = sanitized("ж" * 300 + ".mp4", FALLBACK)
    assert name.endswith(".mp4") and len(name.encode()) <= MAX_NAME_BYTES
    assert name[:-4] == "ж" * ((MAX_NAME_BYTES - 4) // 2)


def test_names_are_unique_ignoring_case() -> None:
    names = package_names([("photo.jpg", "1"), ("Photo.JPG", "2"), ("photo.jpg", "3"), ("notes", "4"), ("notes", "5")])
    assert names == ["photo.jpg", "Photo (2).JPG", "photo (3).jpg", "notes", "notes (2)"]


@given(st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=12))
def test_any_names_become_safe_unique_components(originals: list[str]) -> None:
    names = package_names([(name, f"id-{i}") for i, name in enumerate(originals)])
    assert len({n.casefold() for n in names}) == len(names)
    for name in names:
        assert name and "/" not in name and "\\" not in name and name not in {".", ".."}
        assert not any(ord(c) < 0x20 or c in '<>:"|?*' for c in name)
        assert len(name.encode()) <= MAX_NAME_BYTES + 10
        assert not name.startswith((".", " ")) and not name.endswith((".", " "))
