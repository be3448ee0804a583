"""Names of files inside a package: safe everywhere, unique ignoring case and normalization, as
``custody verify`` checks a package's paths."""

from __future__ import annotations

import tempfile
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from custody_client.package import verify_package
from custody_evidence.export.names import MAX_NAME_BYTES, package_names, sanitized
from custody_evidence.export.package import small, zip_stream

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


_HOSTILE = st.sampled_from([
    "/", "\\", ":", ".", "..", " ", "\x00", "\x1f", "\x7f", "\x85", "e", "E", "\u0301", "\u00e9", "\u00c9", "\u00df",
    "SS", "\u0130", "i\u0307", "\u2126", "\u212a", "\ufb01", "fi", "CON", "nul", "manifest.json", "custody", "files",
    "\u0436", "\U0001f4f7", "\uff0f", "\u202e",
])
"""Pieces of names that a path check or a case-insensitive, normalizing file system reads
specially: separators, dots, controls, composed and decomposed letters, letters whose case
folds to others (ß, İ, the Kelvin and Ohm signs, the ﬁ ligature), reserved and package names."""


_SPELLINGS = [
    str.upper, str.lower, str.swapcase, str.casefold, lambda n: unicodedata.normalize("NFD", n),
    lambda n: unicodedata.normalize("NFKC", n), lambda n: n,
]
"""Other spellings of a name, which a case-insensitive, normalizing file system may take for it."""


@st.composite
def _hostile_names(draw: st.DrawFn) -> list[str]:
    """Names built of hostile pieces, each also spelled in other ways, in any order."""
    name = st.lists(st.one_of(_HOSTILE, st.text(max_size=4)), max_size=70).map("".join)
    bases = draw(st.lists(name, min_size=1, max_size=6))
    spelled = [draw(st.sampled_from(_SPELLINGS))(draw(st.sampled_from(bases))) for _ in range(draw(st.integers(0, 6)))]
    return draw(st.permutations(bases + spelled))


@settings(max_examples=200, deadline=None)
@given(_hostile_names())
def test_any_names_pass_the_verifiers_path_checks(originals: list[str]) -> None:
    """The names, as paths of a package the zip stream writes, pass ``custody verify``'s checks
    of the zip's paths and layout: spelled plainly, once ignoring case and normalization."""
    names = package_names([(name, f"0190a1b2-0000-7000-8000-{i:012}") for i, name in enumerate(originals)])
    fixed = ["manifest.json", "manifest.sig", "manifest.pub.pem", "checkpoint.txt", "log-key.txt", "VERIFY.md"]
    paths = [*fixed, *(f"files/{name}" for name in names), "report.pdf"]
    with tempfile.TemporaryDirectory() as folder:
        package = Path(folder) / "package.zip"
        package.write_bytes(b"".join(zip_stream([small(p, b"x") for p in paths], datetime(2025, 5, 1, tzinfo=UTC))))
        findings = verify_package(package, None).findings
    zip_checks = [f for f in findings if f.check in ("zip paths", "zip entries")]
    assert [f.check for f in zip_checks] == ["zip paths"] and zip_checks[0].ok, zip_checks
