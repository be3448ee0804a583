"""HTTP routes of download URLs, and the middleware that keeps their tokens out of the logs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse

from custody_common.auth import Principal, require_role

from custody_evidence.downloads.schemas import DownloadLink, DownloadRequest
from custody_evidence.downloads.service import DOWNLOADS_PATH, DownloadService, token_digest

router = APIRouter(tags=["downloads"])


def _service(request: Request) -> DownloadService:
    return request.app.state.downloads


@router.post("/v1/evidence/{evidence_id}/downloads", status_code=201, response_model=DownloadLink)
async def create_download(
    request: Request,
    evidence_id: str,
    body: DownloadRequest,
    principal: Annotated[Principal, Depends(require_role("prosecutor"))],
) -> JSONResponse:
    """A URL that serves the item for 60 seconds without a bearer token; the access (with its
    purpose) is recorded now."""
    link = await _service(request).create(principal, evidence_id, body.purpose, request.state.request_id)
    return JSONResponse(link.model_dump(mode="json"), status_code=201, headers={"Cache-Control": "no-store"})


# Deliberately public (no bearer token): the URL's single-use, 60-second, 256-bit token is the
# credential, so that a browser's download link or <video> element can fetch the item. The
# access was recorded, with its purpose, when the prosecutor made the URL.
@router.get(
    "/v1/downloads/{token}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The whole file (uses the URL up)."},
        206: {"description": "One byte range of the file."},
        404: {"description": "No URL has this token."},
        410: {"description": "The URL expired or was used up."},
    },
)
async def download(
    request: Request,
    token: str,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    if_range: Annotated[str | None, Header(alias="If-Range")] = None,
) -> StreamingResponse:
    """The item's verified bytes, exactly as ``GET /v1/evidence/{id}/content`` serves them."""
    real_token = getattr(request.state, "download_token", token)
    delivery = await _service(request).serve(real_token, range_header, if_range, request.state.request_id)
    return StreamingResponse(delivery.body, status_code=delivery.status_code, headers=delivery.headers)


class DownloadTokenRedaction:
    """ASGI middleware, outermost: replaces the token in ``/v1/downloads/{token}`` by
    ``sha256:<first 16 hex digits of its hash>`` before anything (the request log) sees the
    path, and hands the token to the route in the request's state."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope.get("type") == "http" and path.startswith(DOWNLOADS_PATH) and len(path) > len(DOWNLOADS_PATH):
            token = path[len(DOWNLOADS_PATH) :]
            shown = f"{DOWNLOADS_PATH}sha256:{token_digest(token)[:16]}"
            scope = dict(scope, path=shown, raw_path=shown.encode())
            scope["state"] = dict(scope.get("state") or {}, download_token=token)
        await self.app(scope, receive, send)
