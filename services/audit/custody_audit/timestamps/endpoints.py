"""``GET /v1/log/timestamp``: the RFC 3161 time-stamp of a checkpoint, for auditors, admins
and prosecutors (the evidence service fetches it for a court package with the exporting
prosecutor's token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import Response

from custody_audit.errors import LogDamaged, NotFound, OutOfRange
from custody_audit.timestamps.authority import REPLY_TYPE, AuthorityUnavailable, ReplyRejected
from custody_audit.timestamps.repository import StoredTimestamp
from custody_audit.timestamps.service import MAX_SIZE, CheckpointTimestamps
from custody_common.auth import Principal, require_role

router = APIRouter(tags=["custody log"])

_reader = require_role("auditor", "admin", "prosecutor")

TREE_SIZE_HEADER = "Custody-Tree-Size"
RETRY_SECONDS = 30


def _timestamps(request: Request) -> CheckpointTimestamps:
    return request.app.state.timestamps


Timestamps = Annotated[CheckpointTimestamps, Depends(_timestamps)]


def _reply(stored: StoredTimestamp, cache: str) -> Response:
    return Response(
        stored.response,
        media_type=REPLY_TYPE,
        headers={
            TREE_SIZE_HEADER: str(stored.size),
            "Content-Disposition": f'attachment; filename="checkpoint-{stored.size}.tsr"',
            "Cache-Control": cache,
        },
    )


@router.get(
    "/v1/log/timestamp",
    response_class=Response,
    responses={
        200: {
            "content": {REPLY_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            "description": f"DER TimeStampResp over SHA-256 of the checkpoint's body; its size in {TREE_SIZE_HEADER}.",
        },
        400: {"description": "tree_size is not a size the log has reached."},
        404: {"description": "No time-stamp: no checkpoint of that size, or none and no authority to ask."},
        502: {"description": "The authority's reply was not a valid token over the checkpoint; nothing kept."},
        503: {"description": "The authority cannot be reached now; retry after Retry-After seconds."},
    },
)
async def timestamp(
    timestamps: Timestamps,
    _principal: Annotated[Principal, Depends(_reader)],
    tree_size: Annotated[
        int | None,
        Query(description="Size of a stored checkpoint; without it, the largest time-stamped checkpoint."),
    ] = None,
) -> Response:
    """The RFC 3161 time-stamp response over SHA-256 of the body (``ORIGIN\\nSIZE\\nROOT\\n``, the
    signed note before its blank line) of the checkpoint of ``tree_size``: the stored token, or
    one the configured authority grants now. Without ``tree_size``: the token of the largest
    time-stamped checkpoint, whose size ``Custody-Tree-Size`` names; ``GET
    /v1/log/checkpoint?tree_size=S`` serves that checkpoint's note."""
    if tree_size is not None and not 1 <= tree_size <= MAX_SIZE:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"tree_size {tree_size} is out of range: give 1 or more")
    try:
        if tree_size is None:
            return _reply(await timestamps.latest(), "no-store")
        return _reply(await timestamps.of_size(tree_size), "private, max-age=86400, immutable")
    except OutOfRange as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except AuthorityUnavailable as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"{exc}; the checkpoint is time-stamped once it answers: retry later",
            headers={"Retry-After": str(RETRY_SECONDS)},
        ) from None
    except ReplyRejected as exc:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, f"the time-stamping authority's reply was refused and not kept: {exc}"
        ) from None
    except LogDamaged as exc:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, f"{exc}; run custody-audit verify-log") from None
