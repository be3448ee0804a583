"""Routes of the web app. The page and its assets need no token (they hold no data); every
call the page makes to the services carries the person's bearer token."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, Response

from custody_common.auth import Principal, current_principal
from custody_intake.settings import IntakeSettings
from custody_intake.web.schemas import Identity, OidcProvider, WebConfig

STATIC = Path(__file__).resolve().parent / "static"
"""Where ``npm run build`` in ``web/`` puts the page and its assets."""
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_NOT_BUILT = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Custody</title>
<p>The web app has not been built on this machine. Run <code>make setup</code> (or
<code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>) and reload this page.</p></html>"""

router = APIRouter(tags=["web app"])


def _settings(request: Request) -> IntakeSettings:
    return request.app.state.settings


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def web_config(settings: IntakeSettings) -> WebConfig:
    """The page's view of the deployment, from intake's settings."""
    oidc = None
    if settings.web_oidc_issuer and settings.web_oidc_client_id:
        oidc = OidcProvider(
            issuer=settings.web_oidc_issuer.rstrip("/"),
            client_id=settings.web_oidc_client_id,
            scope=settings.web_oidc_scope,
        )
    return WebConfig(
        intake_url=settings.intake_url.rstrip("/"),
        evidence_url=(settings.web_evidence_url or settings.evidence_url).rstrip("/"),
        audit_url=(settings.web_audit_url or settings.audit_url).rstrip("/"),
        log_key=settings.web_log_key.strip() if settings.web_log_key else None,
        oidc=oidc,
    )


def content_security_policy(config: WebConfig) -> str:
    """Scripts and styles from this origin only; calls to the services (and the OIDC provider);
    WebAssembly for hashing in the browser; no frames, plugins or foreign forms."""
    connect = ["'self'", _origin(config.evidence_url), _origin(config.audit_url)]
    if config.oidc is not None:
        connect.append(_origin(config.oidc.issuer))
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {' '.join(dict.fromkeys(connect))}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


@router.get("/", include_in_schema=False)
async def page(request: Request) -> Response:
    """The web app's one page."""
    index = STATIC / "index.html"
    if not index.is_file():
        return HTMLResponse(_NOT_BUILT, status_code=503, headers={"Retry-After": "60"})
    headers = {
        "Content-Security-Policy": content_security_policy(web_config(_settings(request))),
        "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return FileResponse(index, media_type="text/html; charset=utf-8", headers=headers)


@router.get("/assets/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    """A built script, style sheet or image of the page."""
    path = STATIC / "assets" / name
    suffix = Path(name).suffix
    if not _ASSET_NAME.match(name) or suffix not in _MEDIA_TYPES or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the web app has no asset {name[:60]!r}; reload the page")
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type=_MEDIA_TYPES[suffix], headers=headers)


@router.get("/config.json", response_model=WebConfig, tags=["web app"])
async def config(request: Request, response: Response) -> WebConfig:
    """Where the page finds evidence and audit, the pinned log key and the OIDC provider (no token needed)."""
    response.headers["Cache-Control"] = "no-cache"
    return web_config(_settings(request))


@router.get("/v1/whoami", response_model=Identity, tags=["web app"])
async def whoami(principal: Annotated[Principal, Depends(current_principal)]) -> Identity:
    """Who the bearer token names: subject, roles and cases, as this service verified them."""
    return Identity(sub=principal.sub, roles=sorted(principal.roles), cases=sorted(principal.cases))
