"""The services' URLs as the ``custody`` command reads them agree with Settings, set or not."""

from __future__ import annotations

import pytest

from custody_common.addresses import service_urls
from custody_common.settings import Settings

NAMES = ("CUSTODY_INTAKE_URL", "CUSTODY_EVIDENCE_URL", "CUSTODY_AUDIT_URL")


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"CUSTODY_EVIDENCE_URL": "https://evidence.example:8443"},
        {
            "CUSTODY_INTAKE_URL": "https://intake.example",
            "custody_evidence_url": "https://evidence.example",
            "Custody_Audit_Url": "https://audit.example/",
        },
    ],
)
def test_the_urls_are_those_settings_read(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]) -> None:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    urls = service_urls(environ)
    assert (urls.intake, urls.evidence, urls.audit) == (settings.intake_url, settings.evidence_url, settings.audit_url)
