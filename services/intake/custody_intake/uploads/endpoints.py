"""The HTTP side of uploads: tus 1.0.0 at ``/v1/uploads`` (core, creation, creation-with-upload,
checksum, termination, expiration) and the submitter's status at ``/v1/submissions/{id}``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.requests import ClientDisconnect

from custody_common.auth import Principal, require_role
from custody_intake.settings import IntakeSettings
from custody_intake.uploads.errors import (
    InvalidUploadRequest,
    TusVersionUnsupported,
    UnsupportedMediaType,
    UploadError,
    UploadNotFound,
    UploadTooLarge,
)
from custody_intake.uploads.protocol import (
    TUS_VERSION,
    discovery_headers,
    encode_metadata,
    http_date,
    is_offset_stream,
    parse_checksum,
    parse_digest,
    parse_metadata,
    parse_size,
)
from custody_intake.uploads.schemas import NewSubmission, SubmissionStatus, UploadRecord
from custody_intake.uploads.service import UploadService

UPLOADS = "/v1/uploads"


def require_tus(request: Request) -> None:
    """Every tus request but OPTIONS names the protocol version; only 1.0.0 is spoken here."""
    version = request.headers.get("tus-resumable")
    if version != TUS_VERSION:
        raise TusVersionUnsupported(
            f"this server speaks tus {TUS_VERSION}; send Tus-Resumable: {TUS_VERSION}"
            + ("" if version is None else f" (not {version[:20]!r})"),
            headers={"Tus-Version": TUS_VERSION},
        )


def upload_service(request: Request) -> UploadService:
    """The running service's upload rules."""
    return request.app.state.uploads


Uploads = Annotated[UploadService, Depends(upload_service)]
Investigator = Annotated[Principal, Depends(require_role("investigator"))]

router = APIRouter(tags=["uploads"])


class _RequestBody:
    """The request body as it arrives; a client that goes away mid-body ends it early."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self.interrupted = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._request.stream():
                yield chunk
        except ClientDisconnect:
            self.interrupted = True


@router.options(UPLOADS, include_in_schema=False)
@router.options(UPLOADS + "/{evidence_id}", include_in_schema=False)
async def discover(request: Request) -> Response:
    """tus discovery: version, extensions, size limit and checksum algorithms (no token needed)."""
    settings: IntakeSettings = request.app.state.settings
    return Response(status_code=204, headers=discovery_headers(settings.max_upload_size))


@router.post(UPLOADS, status_code=201, dependencies=[Depends(require_tus)])
async def create_upload(request: Request, principal: Investigator, uploads: Uploads) -> Response:
    """tus creation (and creation-with-upload): a new upload for the file ``Upload-Metadata``
    describes, at ``Location``; its evidence id names the item for good."""
    settings: IntakeSettings = request.app.state.settings
    headers = request.headers
    if "upload-defer-length" in headers:
        raise InvalidUploadRequest("deferred length is not supported: send Upload-Length with the file's size")
    length = parse_size(headers.get("upload-length"), "Upload-Length")
    if length > settings.max_upload_size:
        raise UploadTooLarge(
            f"Upload-Length {length} exceeds this server's limit of {settings.max_upload_size} bytes (Tus-Max-Size)"
        )
    submission = NewSubmission.from_tus(parse_metadata(headers.get("upload-metadata")), length)
    with_body = _has_body(request)
    checksum = digest = None
    content_length = _content_length(request)
    if with_body:
        if not is_offset_stream(headers.get("content-type")):
            raise UnsupportedMediaType(
                "data sent with the creation must be Content-Type: application/offset+octet-stream"
            )
        checksum = parse_checksum(headers.get("upload-checksum"))
        digest = parse_digest(headers.get("repr-digest"))
        if content_length is not None and content_length > length:
            raise UploadTooLarge(f"the body carries {content_length} bytes but Upload-Length is {length}")
    record = await uploads.create(principal, submission, _request_id(request))
    location = _upload_url(request, record.evidence_id)
    if with_body and record.status == "uploading":
        try:
            record = await uploads.append(
                principal,
                record.evidence_id,
                0,
                _RequestBody(request),
                content_length=content_length,
                checksum=checksum,
                digest=digest,
                request_id=_request_id(request),
            )
        except UploadError as exc:
            exc.headers["Location"] = location  # the upload exists: the client may resume it
            raise
    return Response(status_code=201, headers={"Location": location, **_offset_headers(record)})


@router.head(UPLOADS + "/{evidence_id}", dependencies=[Depends(require_tus)])
async def upload_offset(evidence_id: str, principal: Investigator, uploads: Uploads) -> Response:
    """tus core: how many bytes of the caller's upload are stored (``Upload-Offset``)."""
    record = await uploads.own(principal, _evidence_id(evidence_id))
    if record.status in ("terminated", "expired"):
        return Response(status_code=410, headers={"Cache-Control": "no-store"})
    headers = _offset_headers(record)
    headers["Upload-Length"] = str(record.length)
    headers["Upload-Metadata"] = encode_metadata(await uploads.declared_metadata(record))
    headers["Cache-Control"] = "no-store"
    return Response(status_code=200, headers=headers)


@router.patch(UPLOADS + "/{evidence_id}", status_code=204, dependencies=[Depends(require_tus)])
async def append_part(evidence_id: str, request: Request, principal: Investigator, uploads: Uploads) -> Response:
    """tus core (with checksum): the body's bytes continue the upload at ``Upload-Offset``. The
    PATCH that completes an upload created without a ``sha256`` states it in ``Repr-Digest``."""
    identity = _evidence_id(evidence_id)
    if not is_offset_stream(request.headers.get("content-type")):
        raise UnsupportedMediaType("a PATCH body must be sent as Content-Type: application/offset+octet-stream")
    offset = parse_size(request.headers.get("upload-offset"), "Upload-Offset")
    checksum = parse_checksum(request.headers.get("upload-checksum"))
    digest = parse_digest(request.headers.get("repr-digest"))
    record = await uploads.append(
        principal,
        identity,
        offset,
        _RequestBody(request),
        content_length=_content_length(request),
        checksum=checksum,
        digest=digest,
        request_id=_request_id(request),
    )
    return Response(status_code=204, headers=_offset_headers(record))


@router.delete(UPLOADS + "/{evidence_id}", status_code=204, dependencies=[Depends(require_tus)])
async def terminate_upload(evidence_id: str, request: Request, principal: Investigator, uploads: Uploads) -> Response:
    """tus termination: end an upload still in progress and delete its stored parts."""
    await uploads.terminate(principal, _evidence_id(evidence_id), _request_id(request))
    return Response(status_code=204)


@router.get("/v1/submissions/{evidence_id}", response_model=SubmissionStatus, tags=["submissions"])
async def submission_status(
    evidence_id: str, request: Request, principal: Investigator, uploads: Uploads
) -> SubmissionStatus:
    """Where the caller's own submission stands at intake. Once ``received``, the evidence
    service seals or rejects it: follow ``evidence_status_url``."""
    settings: IntakeSettings = request.app.state.settings
    record = await uploads.own(principal, _evidence_id(evidence_id))
    received = record.status == "received"
    return SubmissionStatus(
        evidence_id=record.evidence_id,
        status=record.status,
        case=record.case,
        size=record.length,
        offset=record.offset,
        created_at=record.created_at,
        expires_at=record.expires_at if record.status == "uploading" else None,
        finished_at=record.finished_at,
        upload_url=_upload_url(request, record.evidence_id) if record.status == "uploading" else None,
        evidence_url=f"{settings.evidence_url}/v1/evidence/{record.evidence_id}" if received else None,
        evidence_status_url=f"{settings.evidence_url}/v1/evidence/{record.evidence_id}/status" if received else None,
    )


def _evidence_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise UploadNotFound(f"there is no upload {text[:40]!r}: an upload URL ends in its evidence id") from None


def _offset_headers(record: UploadRecord) -> dict[str, str]:
    headers = {"Upload-Offset": str(record.offset)}
    if record.status == "uploading":
        headers["Upload-Expires"] = http_date(record.expires_at)
    return headers


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return None if value is None else parse_size(value, "Content-Length")


def _has_body(request: Request) -> bool:
    if "transfer-encoding" in request.headers:
        return True
    length = _content_length(request)
    return length is not None and length > 0


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _upload_url(request: Request, evidence_id: uuid.UUID) -> str:
    return f"{str(request.base_url).rstrip('/')}{UPLOADS}/{evidence_id}"
