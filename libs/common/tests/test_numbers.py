import pytest

from custody_common.numbers import is_decimal


@pytest.mark.parametrize("text", ["0", "42", "0042", "9" * 20])
def test_plain_ascii_digits_are_decimal(text: str) -> None:
    assert is_decimal(text)
    int(text)


@pytest.mark.parametrize(
    "text",
    ["", "-1", "+1", "1.5", " 42", "42\n", "1_000", "4\u00b2", "\u0664\u0662", "\uff14\uff12", "9" * 21, "9" * 5000],
)
def test_anything_else_is_not(text: str) -> None:
    """``²`` passes isdigit() and int() refuses it; Arabic-Indic and full-width digits pass
    int() but are no header's or note's number; over 4,300 digits int() refuses."""
    assert not is_decimal(text)
