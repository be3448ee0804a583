"""Intake's settings: the shared ones plus the few only intake reads (same ``CUSTODY_`` prefix)."""

from __future__ import annotations

from pydantic import Field

from custody_common.settings import Settings


class IntakeSettings(Settings):
    """Settings of the intake service."""

    upload_lock_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a PATCH may go without progress before another may take its upload over.",
    )
    expiry_sweep_interval: float = Field(
        default=60.0, gt=0, description="Seconds between two looks for uploads past their expiry."
    )
    part_writers: int = Field(
        default=64, ge=1, description="Threads that write incoming parts to the object store at once."
    )

    web_evidence_url: str | None = Field(
        default=None, description="The evidence service as browsers reach it; default evidence_url."
    )
    web_audit_url: str | None = Field(default=None, description="The audit service as browsers reach it; default audit_url.")
    web_log_key: str | None = Field(
        default=None,
        description="The custody log's verifier key (as `GET /v1/log/key` gives it) that the web app pins; "
        "unset, each auditor pins one in their browser.",
    )
    web_oidc_issuer: str | None = Field(
        default=None, description="An OIDC provider's issuer URL: the web app then offers sign-in with it."
    )
    web_oidc_client_id: str | None = Field(default=None, description="The web app's public client id at that provider.")
    web_oidc_scope: str = Field(default="openid", description="Scopes the web app asks the provider for.")
