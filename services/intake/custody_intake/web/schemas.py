"""What the web app reads from intake before it calls anything else."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class OidcProvider(BaseModel):
    """An OpenID Connect provider the page may send people to for a token (code flow with PKCE)."""

    model_config = ConfigDict(frozen=True)

    issuer: str = Field(description="Issuer URL; its discovery document is at /.well-known/openid-configuration.")
    client_id: str
    scope: str


class WebConfig(BaseModel):
    """Where the page finds the services, and what it trusts."""

    model_config = ConfigDict(frozen=True)

    intake_url: str = Field(description="This service, as the page reaches it (its own origin).")
    evidence_url: str
    audit_url: str
    log_key: str | None = Field(
        description="The custody log's verifier key pinned by the operator; None: each auditor pins one."
    )
    oidc: OidcProvider | None = Field(description="None when sign-in is by pasted token only.")


class Identity(BaseModel):
    """The caller as their verified token names them."""

    model_config = ConfigDict(frozen=True)

    sub: str
    roles: list[str] = Field(description="Roles this service recognises, sorted.")
    cases: list[str] = Field(description="Assigned cases, sorted; ``*`` widens only auditor and admin powers.")
