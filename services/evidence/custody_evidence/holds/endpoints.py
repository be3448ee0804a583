"""HTTP routes of legal holds (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from custody_common.auth import Principal, require_role
from custody_common.manifest import CASE_PATTERN

from custody_evidence.holds.schemas import CaseHold, ItemHold
from custody_evidence.holds.service import HoldService

router = APIRouter(tags=["legal holds"])

Admin = Annotated[Principal, Depends(require_role("admin"))]
Case = Annotated[str, Path(pattern=CASE_PATTERN)]


def _service(request: Request) -> HoldService:
    return request.app.state.holds


@router.put("/v1/evidence/{evidence_id}/legal-hold", response_model=ItemHold)
async def hold_item(request: Request, evidence_id: str, principal: Admin) -> ItemHold:
    """Put one item under legal hold: its objects cannot be deleted, even after retention."""
    return await _service(request).hold_item(principal, evidence_id, True, request.state.request_id)


@router.delete("/v1/evidence/{evidence_id}/legal-hold", response_model=ItemHold)
async def release_item(request: Request, evidence_id: str, principal: Admin) -> ItemHold:
    """Release an admin's hold on one item (a hold on its case still applies)."""
    return await _service(request).hold_item(principal, evidence_id, False, request.state.request_id)


@router.put("/v1/cases/{case}/legal-hold", response_model=CaseHold)
async def hold_case(request: Request, case: Case, principal: Admin) -> CaseHold:
    """Put every item of a case under legal hold, including items sealed later."""
    return await _service(request).hold_case(principal, case, True, request.state.request_id)


@router.delete("/v1/cases/{case}/legal-hold", response_model=CaseHold)
async def release_case(request: Request, case: Case, principal: Admin) -> CaseHold:
    """Release the hold on a case (items held by themselves stay held)."""
    return await _service(request).hold_case(principal, case, False, request.state.request_id)
