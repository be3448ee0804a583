"""Validation of what an investigator's client declares: each rule, and a message that says
which field is wrong and how to fix it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from custody_intake.uploads.errors import InvalidUploadRequest
from custody_intake.uploads.schemas import NewSubmission

SHA = hashlib.sha256(b"evidence").hexdigest()


def declared(**changes: str | None) -> dict[str, str]:
    pairs = {"case": "UA-2024-017", "filename": "photo.jpg", "sha256": SHA}
    pairs.update({k: v for k, v in changes.items() if v is not None})
    for key in [k for k, v in changes.items() if v is None]:
        pairs.pop(key, None)
    return pairs


def test_a_complete_declaration_is_accepted() -> None:
    submission = NewSubmission.from_tus(
        declared(title="Witness 4", captured_at="2024-05-01T10:00:00Z", lat="47.1", lon="37.5", notes="line 1\nline 2"),
        1024,
    )
    assert submission.case == "UA-2024-017" and submission.declared_sha256 == SHA and submission.length == 1024
    fields = submission.metadata.personal_fields()
    assert set(fields) == {"filename", "title", "captured_at", "lat", "lon", "notes"}
    assert submission.metadata.lat == 47.1


def test_the_sha256_may_be_left_to_the_completing_patch() -> None:
    assert NewSubmission.from_tus(declared(sha256=None), 1024).declared_sha256 is None


def test_an_empty_file_declares_its_sha256_at_creation() -> None:
    with pytest.raises(InvalidUploadRequest) as raised:
        NewSubmission.from_tus(declared(sha256=None), 0)
    assert "'sha256'" in str(raised.value) and "Upload-Length 0" in str(raised.value)


def test_optional_fields_may_be_absent_or_empty() -> None:
    submission = NewSubmission.from_tus(declared(title=""), 0)
    assert submission.metadata.personal_fields() == {"filename": "photo.jpg"}


@pytest.mark.parametrize(
    "changes, field, advice",
    [
        ({"case": None}, "case", "case name"),
        ({"case": ""}, "case", "case name"),
        ({"case": "UA 2024"}, "case", "letters, digits"),
        ({"case": "-leading-dash"}, "case", "letters, digits"),
        ({"case": "x" * 65}, "case", "letters, digits"),
        ({"filename": None}, "filename", "bare name"),
        ({"filename": "folder/photo.jpg"}, "filename", "bare name"),
        ({"filename": "..\\photo.jpg"}, "filename", "bare name"),
        ({"filename": "photo\x00.jpg"}, "filename", "control characters"),
        ({"filename": "a" * 256}, "filename", "bare name"),
        ({"sha256": SHA.upper()}, "sha256", "64 lowercase hex"),
        ({"sha256": SHA[:-1]}, "sha256", "64 lowercase hex"),
        ({"sha256": "g" * 64}, "sha256", "64 lowercase hex"),
        ({"title": "t" * 501}, "title", "500 characters"),
        ({"title": "bell\x07"}, "title", "control characters"),
        ({"notes": "n" * 10_001}, "notes", "10000 characters"),
        ({"captured_at": "2024-05-01T10:00:00"}, "captured_at", "time zone"),
        ({"captured_at": "yesterday"}, "captured_at", "ISO 8601"),
        ({"captured_at": (datetime.now(UTC) + timedelta(days=2)).isoformat()}, "captured_at", "future"),
        ({"lat": "91"}, "lat", "between -90 and 90"),
        ({"lat": "north"}, "lat", "latitude"),
        ({"lat": "nan"}, "lat", "latitude"),
        ({"lon": "-180.5"}, "lon", "between -180 and 180"),
        ({"lon": "inf"}, "lon", "longitude"),
        ({"filetype": "image/jpeg"}, "filetype", "keys are case, filename and optionally sha256"),
    ],
)
def test_each_rule_names_the_field_and_the_fix(changes: dict[str, str | None], field: str, advice: str) -> None:
    with pytest.raises(InvalidUploadRequest) as raised:
        NewSubmission.from_tus(declared(**changes), 10)
    message = str(raised.value)
    assert f"'{field}'" in message and advice in message, message
    assert raised.value.status == 400


def test_messages_never_repeat_the_declared_values() -> None:
    secret = "Name-Of-A-Child-" + "x" * 500
    with pytest.raises(InvalidUploadRequest) as raised:
        NewSubmission.from_tus(declared(title=secret), 10)
    assert "Name-Of-A-Child" not in str(raised.value)
