"""Settings of the time-stamping authority: read from the environment, an URL that is not
http(s) refused at start-up without repeating its credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from custody_common.settings import Settings, redacted_url


def test_no_authority_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CUSTODY_TSA_URL", "CUSTODY_TSA_CA", "CUSTODY_TSA_TIMEOUT_SECONDS", "CUSTODY_TSA_INTERVAL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.tsa_url == "" and settings.tsa_ca is None
    assert settings.tsa_timeout_seconds == 10 and settings.tsa_interval_seconds == 300


def test_the_authority_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CUSTODY_TSA_URL", " https://tsa.example/tsr ")
    monkeypatch.setenv("CUSTODY_TSA_CA", str(tmp_path / "root.pem"))
    monkeypatch.setenv("CUSTODY_TSA_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("CUSTODY_TSA_INTERVAL_SECONDS", "60")
    settings = Settings()
    assert settings.tsa_url == "https://tsa.example/tsr"
    assert settings.tsa_ca == tmp_path / "root.pem"
    assert (settings.tsa_timeout_seconds, settings.tsa_interval_seconds) == (2.5, 60)


@pytest.mark.parametrize("url", ["ftp://user:s3cret@tsa.example/", "tsa.example", "https://:s3cret@/"])
def test_an_url_that_is_not_http_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(ValidationError, match="is not an http\\(s\\) URL") as raised:
        Settings(tsa_url=url)
    assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize("seconds", [0, -1])
def test_pauses_and_timeouts_are_positive(seconds: float) -> None:
    with pytest.raises(ValidationError):
        Settings(tsa_interval_seconds=seconds)
    with pytest.raises(ValidationError):
        Settings(tsa_timeout_seconds=seconds)


def test_redacted_url_keeps_where_not_who() -> None:
    assert redacted_url("https://user:pw@tsa.example:8443/tsr?key=k#x") == "https://tsa.example:8443/tsr"
    assert redacted_url("http://[::1]:3180/") == "http://[::1]:3180/"
