"""HTTP routes of retrieval (thin: the rules are in the service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from custody_common.auth import Principal, require_role
from custody_common.manifest import CASE_PATTERN

from custody_evidence.retrieval.schemas import ItemDetail, ItemPage, ItemStatusView
from custody_evidence.retrieval.service import PURPOSE_MAX, RetrievalService

router = APIRouter(prefix="/v1/evidence", tags=["evidence"])

Prosecutor = Annotated[Principal, Depends(require_role("prosecutor"))]


def _service(request: Request) -> RetrievalService:
    return request.app.state.retrieval


@router.get("", response_model=ItemPage)
async def list_evidence(
    request: Request,
    principal: Prosecutor,
    case: Annotated[str, Query(pattern=CASE_PATTERN, description="A case you prosecute.")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> ItemPage:
    """The items of a case, in evidence-id order, a page at a time."""
    return await _service(request).list_items(principal, case, limit, cursor)


@router.get("/{evidence_id}", response_model=ItemDetail)
async def get_evidence(request: Request, evidence_id: str, principal: Prosecutor) -> ItemDetail:
    """One item with its decrypted metadata."""
    return await _service(request).item(principal, evidence_id)


@router.get("/{evidence_id}/status", response_model=ItemStatusView)
async def evidence_status(
    request: Request,
    evidence_id: str,
    principal: Annotated[Principal, Depends(require_role("prosecutor", "investigator"))],
) -> ItemStatusView:
    """Whether an item is sealed, rejected or damaged (404 until intake has handed it over)."""
    return await _service(request).status(principal, evidence_id)


@router.get(
    "/{evidence_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The whole file."},
        206: {"description": "One byte range of the file."},
        409: {"description": "The item was rejected or is damaged: it is never served."},
        416: {"description": "The range lies outside the file."},
    },
)
async def evidence_content(
    request: Request,
    evidence_id: str,
    principal: Prosecutor,
    purpose: Annotated[
        str | None, Query(description=f"Why you need the file (1 to {PURPOSE_MAX} characters); recorded, sealed.")
    ] = None,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    if_range: Annotated[str | None, Header(alias="If-Range")] = None,
) -> StreamingResponse:
    """The file's verified bytes, whole or one range; the access is a custody event."""
    delivery = await _service(request).deliver(
        principal, evidence_id, purpose, range_header, if_range, request.state.request_id
    )
    return StreamingResponse(delivery.body, status_code=delivery.status_code, headers=delivery.headers)
