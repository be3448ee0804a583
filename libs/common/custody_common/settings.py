"""Settings, built once at start-up from the environment (prefix ``CUSTODY_``) and passed in."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from custody_common.addresses import AUDIT_URL, EVIDENCE_URL, INTAKE_URL

CORS_EXPOSED_HEADERS = (
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Expires",
    "Upload-Metadata",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Repr-Digest",
    "Content-Range",
    "Content-Length",
    "Content-Disposition",
    "Accept-Ranges",
    "ETag",
    "Retry-After",
    "X-Request-ID",
)
"""Response headers a web page on an allowed origin may read: tus's and retrieval's."""


class Settings(BaseSettings):
    """Everything a service or the command line needs to know about its surroundings."""

    # Inputs stay out of validation errors: a URL or a key may carry a secret.
    model_config = SettingsConfigDict(env_prefix="CUSTODY_", extra="ignore", frozen=True, hide_input_in_errors=True)

    home: Path = Field(default=Path(".custody"), description="Keys and the embedded default's data.")
    nats_url: str = "nats://127.0.0.1:4222"
    nats_namespace: str = Field(
        default="custody",
        description="Prefix of subjects, stream and consumer names, so several stacks share one NATS.",
    )
    nats_user: str | None = None
    nats_password: str | None = None
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default a SQLite file per service under home."
    )
    object_store: str | None = Field(
        default=None, description="A folder path, or s3://BUCKET; default a folder under home."
    )
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    s3_secure: bool = False

    token_public_key: Path | None = Field(
        default=None, description="PEM public key that verifies tokens; default the local stack's key."
    )
    token_jwks_url: str | None = None
    token_issuer: str = "custody-local"
    token_audience: str = "custody"
    token_leeway_seconds: int = 30
    revoked_tokens: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(), description="Token ids (jti) refused on every request; comma-separated."
    )
    revoked_subjects: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(), description="Subjects refused on every request (a seized device, a departed person)."
    )

    keys_dir: Path | None = Field(default=None, description="Default: home/keys.")
    log_origin: str = "custody.localhost/log"
    log_anchor: Path | None = Field(
        default=None,
        description="File where audit keeps the newest checkpoint it signed, outside the database, and "
        "against which it checks the stored log before appending; default: log-checkpoint.txt in the key folder.",
    )
    retention: timedelta = Field(default=timedelta(days=3650), description="WORM retention of sealed items.")
    max_upload_size: int = 64 * 1024**3
    upload_expiry: timedelta = timedelta(days=7)

    tsa_url: str = Field(
        default="",
        description="RFC 3161 time-stamping authority that audit asks for tokens over the log's checkpoints "
        "(http or https; basic-auth credentials may stand in the URL); empty: none.",
    )
    tsa_ca: Path | None = Field(
        default=None,
        description="PEM root certificate(s) of the time-stamping authority: audit checks each reply's "
        "signature against them before keeping it, and `custody verify` pins them.",
    )
    tsa_timeout_seconds: float = Field(default=10.0, gt=0, description="How long one request to the authority may take.")
    tsa_interval_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How often audit time-stamps the newest checkpoint, when it has no token yet; "
        "a token of size N covers every entry before N.",
    )

    bind_host: str = Field(default="127.0.0.1", description="Address the services listen on.")
    intake_url: str = INTAKE_URL
    evidence_url: str = EVIDENCE_URL
    audit_url: str = AUDIT_URL

    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Origins whose web pages may call the services (comma-separated); "
        "default the origin of intake_url, where the web app is served.",
    )
    cors_expose_headers: Annotated[tuple[str, ...], NoDecode] = Field(
        default=CORS_EXPOSED_HEADERS, description="Response headers scripts on those origins may read (comma-separated)."
    )

    @field_validator("cors_origins", "cors_expose_headers", mode="before")
    @classmethod
    def _comma_separated_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("cors_origins")
    @classmethod
    def _plain_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and _origin(origin) != origin:
                raise ValueError(f"{origin!r} is not an origin: give scheme://host[:port], without a path")
        return value

    @field_validator("tsa_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{redacted_url(value)!r} is not an http(s) URL of a time-stamping authority")
        return value

    @field_validator("revoked_tokens", "revoked_subjects", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(v.strip() for v in value.split(",") if v.strip())
        return value

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """Origins allowed to call the services from a browser: ``cors_origins``, or the
        origin of ``intake_url`` (where the web app is served)."""
        return self.cors_origins or (_origin(self.intake_url),)

    @property
    def nats_servers(self) -> list[str]:
        """``nats_url`` split at commas: every node of a cluster can be named, so a service
        starts even while the node it would have named alone is down."""
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    @property
    def key_folder(self) -> Path:
        """Where keys live: ``keys_dir`` or ``home/keys``."""
        return self.keys_dir or self.home / "keys"

    def database_url_for(self, service: str) -> str:
        """The async SQLAlchemy URL for ``service``'s own database."""
        url = self.database_url or f"sqlite+aiosqlite:///{(self.home / f'{service}.db').resolve()}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        if url.startswith("sqlite:///"):
            url = "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
        return url


def _origin(url: str) -> str:
    """The origin (``scheme://host[:port]``) of ``url``, as a browser sends it."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def redacted_url(url: str) -> str:
    """``url`` without user, password, query or fragment: fit for a log or an error message."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
