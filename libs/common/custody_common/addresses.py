"""Where the services are reached: their single-machine defaults, and the ``CUSTODY_*_URL``
variables that override them. Plain Python, so the ``custody`` command learns its three URLs
without loading the settings model (pydantic and pydantic-settings: most of its start-up)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

INTAKE_URL = "http://127.0.0.1:8001"
EVIDENCE_URL = "http://127.0.0.1:8002"
AUDIT_URL = "http://127.0.0.1:8003"


@dataclass(frozen=True)
class ServiceUrls:
    """The base URL of each service."""

    intake: str
    evidence: str
    audit: str


def service_urls(environ: Mapping[str, str]) -> ServiceUrls:
    """The URLs ``CUSTODY_INTAKE_URL``, ``CUSTODY_EVIDENCE_URL`` and ``CUSTODY_AUDIT_URL`` give in
    ``environ``, the defaults where they are absent: as :class:`custody_common.settings.Settings`
    reads them (names in any case)."""
    named = {name.upper(): value for name, value in environ.items()}
    return ServiceUrls(
        intake=named.get("CUSTODY_INTAKE_URL", INTAKE_URL),
        evidence=named.get("CUSTODY_EVIDENCE_URL", EVIDENCE_URL),
        audit=named.get("CUSTODY_AUDIT_URL", AUDIT_URL),
    )
