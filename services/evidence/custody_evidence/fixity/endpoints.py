"""HTTP routes of fixity checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from custody_common.auth import Principal, require_role

from custody_evidence.fixity.schemas import FixityReport
from custody_evidence.fixity.service import FixityService

router = APIRouter(prefix="/v1/evidence", tags=["fixity"])


@router.post("/{evidence_id}/verify", response_model=FixityReport)
async def verify_evidence(
    request: Request,
    evidence_id: str,
    principal: Annotated[Principal, Depends(require_role("prosecutor"))],
) -> FixityReport:
    """Read the item back once and compare it with its seal; the check is a custody event."""
    fixity: FixityService = request.app.state.fixity
    return await fixity.verify(principal, evidence_id, request.state.request_id)
