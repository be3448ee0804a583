"""HTTP routes of court exports and chain-of-custody reports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from custody_common.auth import Principal, require_role

from custody_evidence.export.schemas import ExportRequest
from custody_evidence.export.service import ExportService

router = APIRouter(tags=["exports"])

Prosecutor = Annotated[Principal, Depends(require_role("prosecutor"))]


def _service(request: Request) -> ExportService:
    return request.app.state.exports


def _bearer(request: Request) -> str:
    """The caller's own token, already verified, to read the custody chains as the caller."""
    return request.headers["authorization"].split(" ", 1)[1].strip()


@router.post(
    "/v1/exports",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {}}, "description": "The court package, streamed."},
        409: {"description": "Nothing to export: every item asked for is rejected or damaged."},
        503: {"description": "The custody ledger cannot be reached."},
        504: {"description": "The custody ledger did not log the exports in time."},
    },
)
async def export_package(request: Request, body: ExportRequest, principal: Prosecutor) -> StreamingResponse:
    """A court package of a case, or of named items: the files, their signed manifest, every
    custody chain proven against one signed checkpoint, a report and how to verify it. Each
    exported item gets an ``exported`` custody event, logged before the package is sent."""
    service = _service(request)
    prepared = await service.prepare(principal, _bearer(request), body, request.state.request_id)
    return StreamingResponse(
        service.stream(prepared),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{prepared.filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Custody-Package-Id": str(prepared.package_id),
            "Custody-Package-Files-Size": str(prepared.files_size),
        },
    )


@router.get(
    "/v1/evidence/{evidence_id}/report",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The chain-of-custody report."}},
)
async def custody_report(request: Request, evidence_id: str, principal: Prosecutor) -> Response:
    """The chain-of-custody report of one item (PDF), its chain checked against the log's checkpoint."""
    pdf = await _service(request).item_report(principal, _bearer(request), evidence_id)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="custody-report-{evidence_id}.pdf"',
            "Cache-Control": "no-store",
        },
    )
