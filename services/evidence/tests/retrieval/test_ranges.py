"""Range headers (RFC 9110 §14.1.2), as pure logic."""

import pytest

from custody_evidence.retrieval.ranges import ByteRange, RangeNotSatisfiable, parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", (0, 1)),
        ("bytes=0-99", (0, 100)),
        ("bytes=10-", (10, 1000)),
        ("bytes=-1", (999, 1000)),
        ("bytes=-100", (900, 1000)),
        ("bytes=-5000", (0, 1000)),  # a suffix longer than the item is the whole item
        ("bytes=990-5000", (990, 1000)),  # the last position is cut at the end
        ("bytes=999-999", (999, 1000)),
        ("BYTES = 5-6", (5, 7)),
        # numbers of thousands of digits (Python's int() refuses over 4300) are just large
        ("bytes=0-" + "9" * 5000, (0, 1000)),
        ("bytes=-" + "9" * 5000, (0, 1000)),
        ("bytes=" + "0" * 5000 + "7-8", (7, 9)),
    ],
)
def test_single_ranges(header: str, expected: tuple[int, int]) -> None:
    found = parse_range(header, 1000)
    assert found == ByteRange(*expected, 1000)
    assert found.content_range == f"bytes {expected[0]}-{expected[1] - 1}/1000"


@pytest.mark.parametrize(
    "header",
    [None, "", "items=0-5", "bytes=5-1", "bytes=a-b", "bytes=-", "bytes=0-1,5-6", "bytes 0-5", "bytes=--5"],
)
def test_headers_that_are_not_one_valid_range_are_ignored(header: str | None) -> None:
    assert parse_range(header, 1000) is None


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=1000-", 1000),
        ("bytes=1000-1001", 1000),
        ("bytes=-0", 1000),
        ("bytes=-5", 0),
        ("bytes=0-", 0),
        ("bytes=" + "9" * 5000 + "-", 1000),
    ],
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as raised:
        parse_range(header, size)
    assert raised.value.size == size
