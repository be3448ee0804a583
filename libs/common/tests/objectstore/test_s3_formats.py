"""How the S3 adapter reads endpoints and the server's dates (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from custody_common.objectstore import ObjectStoreError
from custody_common.objectstore.s3 import S3Store, parse_endpoint, parse_s3_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-30T20:27:49.000000000Z", datetime(2026, 11, 30, 20, 27, 49, tzinfo=UTC)),
        ("2026-11-30T20:27:49.123456789Z", datetime(2026, 11, 30, 20, 27, 49, 123456, tzinfo=UTC)),
        ("2026-11-30T20:27:49.5Z", datetime(2026, 11, 30, 20, 27, 49, 500000, tzinfo=UTC)),
        ("2026-11-30T20:27:49Z", datetime(2026, 11, 30, 20, 27, 49, tzinfo=UTC)),
        ("2026-11-30T22:27:49+02:00", datetime(2026, 11, 30, 20, 27, 49, tzinfo=UTC)),
    ],
)
def test_s3_dates_are_read_with_any_number_of_fractional_digits(text: str, expected: datetime) -> None:
    assert parse_s3_time(text) == expected


def test_an_unreadable_date_is_a_store_error() -> None:
    with pytest.raises(ObjectStoreError):
        parse_s3_time("next tuesday")


@pytest.mark.parametrize(
    ("endpoint", "secure", "expected"),
    [
        ("127.0.0.1:7480", False, ("127.0.0.1:7480", False)),
        ("127.0.0.1:7480", True, ("127.0.0.1:7480", True)),
        ("http://127.0.0.1:7480", True, ("127.0.0.1:7480", False)),
        ("https://s3.example.org/", False, ("s3.example.org", True)),
        ("HTTPS://s3.example.org", False, ("s3.example.org", True)),
    ],
)
def test_endpoints_are_read_with_or_without_a_scheme(endpoint: str, secure: bool, expected: tuple[str, bool]) -> None:
    assert parse_endpoint(endpoint, secure) == expected


@pytest.mark.parametrize("endpoint", ["ftp://host", "http://host/path", "", "http://"])
def test_malformed_endpoints_are_refused(endpoint: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(endpoint, False)


@pytest.mark.parametrize("part_size", [1024, 5 * 1024 * 1024 - 1, 6 * 1024**3])
def test_part_sizes_outside_what_s3_accepts_are_refused(part_size: int) -> None:
    with pytest.raises(ValueError, match="part size"):
        S3Store("bucket", "127.0.0.1:1", "key", "secret", part_size=part_size)


def test_the_store_describes_itself_without_secrets() -> None:
    store = S3Store("evidence", "https://s3.example.org", "AKIAEXAMPLE", "very-secret")

    assert repr(store) == "S3Store(bucket='evidence', endpoint='https://s3.example.org')"
    assert store.endpoint_url == "https://s3.example.org"
