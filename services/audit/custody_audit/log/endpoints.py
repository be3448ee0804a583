"""HTTP routes of the custody log: public checkpoints and key; entries and proofs for auditors
and admins; custody chains for them and for prosecutors of the item's case. Checkpoint
time-stamps are served by :mod:`custody_audit.timestamps.endpoints`."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import PlainTextResponse

from custody_audit.errors import NotFound, OutOfRange
from custody_audit.log import schemas
from custody_audit.log.service import CustodyLog
from custody_common.auth import Principal, require_role

router = APIRouter(tags=["custody log"])

_auditor = require_role("auditor", "admin")
_chain_reader = require_role("auditor", "admin", "prosecutor")


def _log(request: Request) -> CustodyLog:
    return request.app.state.custody_log


Log = Annotated[CustodyLog, Depends(_log)]


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _http(exc: Exception) -> HTTPException:
    if isinstance(exc, OutOfRange):
        return HTTPException(status.HTTP_400_BAD_REQUEST, str(exc))
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))


@router.get("/v1/log/checkpoint", response_class=PlainTextResponse)
async def checkpoint(
    custody_log: Log,
    tree_size: Annotated[
        int | None, Query(description="Size of an earlier stored checkpoint (e.g. a time-stamped one).")
    ] = None,
) -> PlainTextResponse:
    """The latest signed checkpoint (C2SP signed note), or the stored one of ``tree_size``. Public."""
    if tree_size is not None and not 0 < tree_size < 2**63:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"tree_size {tree_size} is out of range")
    try:
        if tree_size is None:
            return PlainTextResponse((await custody_log.latest_checkpoint()).note, headers={"Cache-Control": "no-store"})
        found = await custody_log.checkpoint(tree_size)
    except (OutOfRange, NotFound) as exc:
        raise _http(exc) from None
    return PlainTextResponse(found.note)


@router.get("/v1/log/key", response_class=PlainTextResponse)
async def key(custody_log: Log) -> PlainTextResponse:
    """The verifier key of the log's checkpoints (C2SP note verifier key). Public."""
    return PlainTextResponse(custody_log.verifier_key + "\n")


@router.get("/v1/log/entries", response_model=schemas.Entries)
async def entries(
    custody_log: Log,
    _principal: Annotated[Principal, Depends(_auditor)],
    start: Annotated[int, Query(description="Index of the first entry.")],
    limit: Annotated[int, Query(description="At most 1000.")] = 100,
) -> schemas.Entries:
    """Consecutive log entries."""
    try:
        found = await custody_log.entries(start, limit)
    except (OutOfRange, NotFound) as exc:
        raise _http(exc) from None
    return schemas.Entries(entries=[schemas.Entry(index=index, leaf=_b64(leaf)) for index, leaf in found])


@router.get("/v1/log/proof/inclusion", response_model=schemas.InclusionProof)
async def inclusion(
    custody_log: Log,
    _principal: Annotated[Principal, Depends(_auditor)],
    index: int,
    tree_size: int,
) -> schemas.InclusionProof:
    """The inclusion proof of one entry in the tree of ``tree_size`` entries."""
    try:
        proof = await custody_log.inclusion(index, tree_size)
    except (OutOfRange, NotFound) as exc:
        raise _http(exc) from None
    return schemas.InclusionProof(index=index, tree_size=tree_size, hashes=[_b64(h) for h in proof])


@router.get("/v1/log/proof/consistency", response_model=schemas.ConsistencyProof)
async def consistency(
    custody_log: Log,
    _principal: Annotated[Principal, Depends(_auditor)],
    first: int,
    second: int,
) -> schemas.ConsistencyProof:
    """The consistency proof between two tree sizes."""
    try:
        proof = await custody_log.consistency(first, second)
    except (OutOfRange, NotFound) as exc:
        raise _http(exc) from None
    return schemas.ConsistencyProof(first=first, second=second, hashes=[_b64(h) for h in proof])


@router.get("/v1/custody/{evidence_id}", response_model=schemas.CustodyChain)
async def custody_chain(
    custody_log: Log,
    principal: Annotated[Principal, Depends(_chain_reader)],
    evidence_id: str,
    tree_size: int | None = None,
) -> schemas.CustodyChain:
    """An item's custody chain: every logged event, each with its inclusion proof against one
    checkpoint (the latest, or the stored one of ``tree_size``)."""
    if tree_size is not None and not 0 < tree_size < 2**63:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"tree_size {tree_size} is out of range")
    try:
        chain = await custody_log.custody_chain(evidence_id, principal, tree_size)
    except (OutOfRange, NotFound) as exc:
        raise _http(exc) from None
    return schemas.CustodyChain(
        checkpoint=chain.checkpoint.note,
        events=[
            schemas.ChainEvent(
                index=event.index,
                leaf=_b64(event.leaf),
                entry=event.entry,
                inclusion=[_b64(h) for h in event.inclusion],
            )
            for event in chain.events
        ],
    )
