"""The tus header grammar: sizes, Upload-Metadata, Upload-Checksum, dates, discovery."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody_intake.uploads.errors import InvalidUploadRequest
from custody_intake.uploads.protocol import (
    discovery_headers,
    encode_metadata,
    http_date,
    is_offset_stream,
    parse_checksum,
    parse_metadata,
    parse_size,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("value, expected", [("0", 0), ("1048576", 1048576), (" 42 ", 42)])
def test_sizes_are_plain_decimals(value: str, expected: int) -> None:
    assert parse_size(value, "Upload-Length") == expected


@pytest.mark.parametrize("value", [None, "", "-1", "1.5", "1e6", "0x10", "12 34", "99999999999999999999"])
def test_malformed_sizes_name_the_header(value: str | None) -> None:
    with pytest.raises(InvalidUploadRequest, match="Upload-Length"):
        parse_size(value, "Upload-Length")


def test_metadata_pairs_decode_and_keys_without_value_are_empty() -> None:
    header = f"case {b64('UA-1')},filename {b64('photo 1.jpg')}, title {b64('Ünïcode – ok')},flag"
    assert parse_metadata(header) == {"case": "UA-1", "filename": "photo 1.jpg", "title": "Ünïcode – ok", "flag": ""}


def test_absent_metadata_is_empty() -> None:
    assert parse_metadata(None) == {} and parse_metadata("  ") == {}


@pytest.mark.parametrize(
    "header, fragment",
    [
        (f"case {b64('a')},case {b64('b')}", "twice"),
        ("case not*base64", "base64"),
        (f"case {b64('a')} extra", "pairs"),
        (",", "pairs"),
        ("case " + base64.b64encode(b"\xff\xfe").decode(), "UTF-8"),
        (f"cäse {b64('a')}", "ASCII"),
    ],
)
def test_malformed_metadata_is_refused_with_a_reason(header: str, fragment: str) -> None:
    with pytest.raises(InvalidUploadRequest, match=fragment):
        parse_metadata(header)


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), st.text(max_size=40), max_size=6))
def test_metadata_round_trips(pairs: dict[str, str]) -> None:
    assert parse_metadata(encode_metadata(pairs)) == pairs


@pytest.mark.parametrize("algorithm", ["crc32", "sha256", "sha1", "SHA256"])
def test_checksums_of_supported_algorithms_parse(algorithm: str) -> None:
    if algorithm == "crc32":
        digest = bytes.fromhex("352441c2")  # CRC-32 of "abc", as gzip and PNG compute it
    else:
        digest = hashlib.new(algorithm.lower(), b"abc").digest()
    checksum = parse_checksum(f"{algorithm} {base64.b64encode(digest).decode()}")
    assert checksum is not None and checksum.algorithm == algorithm.lower() and checksum.digest == digest
    hasher = checksum.hasher()
    hasher.update(b"abc")
    assert hasher.digest() == digest


def test_no_checksum_header_means_no_checksum() -> None:
    assert parse_checksum(None) is None


@pytest.mark.parametrize(
    "header, fragment",
    [
        ("md5 " + base64.b64encode(hashlib.md5(b"x").digest()).decode(), "not supported"),
        ("sha256", "algorithm and a base64 digest"),
        ("sha256 !!!", "base64"),
        ("sha256 " + base64.b64encode(b"short").decode(), "32 bytes"),
        ("crc32 " + base64.b64encode(b"short").decode(), "4 bytes"),
    ],
)
def test_bad_checksums_are_refused(header: str, fragment: str) -> None:
    with pytest.raises(InvalidUploadRequest, match=fragment):
        parse_checksum(header)


def test_offset_stream_content_type() -> None:
    assert is_offset_stream("application/offset+octet-stream")
    assert is_offset_stream("Application/Offset+Octet-Stream; charset=binary")
    assert not is_offset_stream("application/octet-stream")
    assert not is_offset_stream(None)


def test_http_dates_are_rfc_7231() -> None:
    moment = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
    assert http_date(moment) == "Wed, 01 May 2024 10:00:00 GMT"
    assert http_date(moment.astimezone(timezone(timedelta(hours=3)))) == "Wed, 01 May 2024 10:00:00 GMT"


def test_discovery_lists_version_extensions_size_and_algorithms() -> None:
    headers = discovery_headers(1234)
    assert headers["Tus-Version"] == "1.0.0"
    assert headers["Tus-Extension"] == "creation,creation-with-upload,checksum,termination,expiration"
    assert headers["Tus-Max-Size"] == "1234"
    assert headers["Tus-Checksum-Algorithm"] == "crc32,sha256,sha1"
