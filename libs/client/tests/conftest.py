"""In-memory stand-ins for intake's tus endpoint and evidence's read routes, for the client's
pure unit tests (served through httpx.MockTransport; no sockets). Real servers are exercised
by the stack tests."""

from __future__ import annotations

import base64
import hashlib
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from custody_client.tus import decode_metadata
from custody_common.digests import sha256_of

Fault = Callable[[httpx.Request], httpx.Response | None]
"""Consulted before a request is served: returns a response to send instead, raises an
httpx transport error to drop the connection, or returns None to serve it normally."""


@dataclass
class StoredUpload:
    length: int
    metadata: dict[str, str]
    data: bytearray = field(default_factory=bytearray)
    stated_sha256: str | None = None
    """What the PATCH that completed it stated in ``Repr-Digest``."""


@dataclass
class TusServer:
    """A tus 1.0 server (creation + checksum) that keeps uploads in memory."""

    uploads: dict[str, StoredUpload] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    """Consulted in order, one per request, before serving it."""
    down: bool = False
    """Every request fails to connect."""
    max_chunk: int | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.faults:
            replaced = self.faults.pop(0)(request)
            if replaced is not None:
                return replaced
        if request.headers.get("Tus-Resumable") != "1.0.0":
            return httpx.Response(412, json={"detail": "Tus-Resumable 1.0.0 is required"})
        path = request.url.path
        if request.method == "POST" and path == "/v1/uploads":
            upload_id = str(uuid.uuid4())
            self.uploads[upload_id] = StoredUpload(
                length=int(request.headers["Upload-Length"]),
                metadata=decode_metadata(request.headers.get("Upload-Metadata", "")),
            )
            return httpx.Response(201, headers={"Location": f"/v1/uploads/{upload_id}", "Tus-Resumable": "1.0.0"})
        upload = self.uploads.get(path.rsplit("/", 1)[-1])
        if upload is None:
            return httpx.Response(404, json={"detail": "no such upload"})
        if request.method == "HEAD":
            return httpx.Response(
                200, headers={"Upload-Offset": str(len(upload.data)), "Upload-Length": str(upload.length)}
            )
        if request.method == "PATCH":
            if request.headers.get("Content-Type") != "application/offset+octet-stream":
                return httpx.Response(415)
            if int(request.headers["Upload-Offset"]) != len(upload.data):
                return httpx.Response(409, json={"detail": "offset mismatch"})
            if self.max_chunk is not None and len(body) > self.max_chunk:
                return httpx.Response(413, json={"detail": "chunk too large"})
            algorithm, _, digest = request.headers["Upload-Checksum"].partition(" ")
            if algorithm != "crc32" or base64.b64decode(digest) != zlib.crc32(body).to_bytes(4, "big"):
                return httpx.Response(460, json={"detail": "checksum mismatch"})
            if len(upload.data) + len(body) > upload.length:
                return httpx.Response(400, json={"detail": "beyond Upload-Length"})
            if len(upload.data) + len(body) == upload.length:
                # As intake: the completing PATCH states the file's SHA-256 unless creation declared it.
                stated = sha256_of(request.headers.get("Repr-Digest", ""))
                if stated is None and "sha256" not in upload.metadata:
                    return httpx.Response(400, json={"detail": "the completing PATCH must carry Repr-Digest"})
                upload.stated_sha256 = stated.hex() if stated else None
            upload.data.extend(body)
            return httpx.Response(204, headers={"Upload-Offset": str(len(upload.data))})
        return httpx.Response(405)

    def patches(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "PATCH"]

    def only_upload(self) -> StoredUpload:
        assert len(self.uploads) == 1, f"expected one upload, the server has {len(self.uploads)}"
        return next(iter(self.uploads.values()))


def drop_connection_after(fraction: float) -> Fault:
    """A fault: the server keeps the first ``fraction`` of a PATCH's bytes, then the connection drops."""

    def fault(request: httpx.Request) -> httpx.Response | None:
        if request.method != "PATCH":
            return None
        raise _PartialWrite(int(len(request.content) * fraction))

    return fault


class _PartialWrite(Exception):
    def __init__(self, keep: int) -> None:
        self.keep = keep


class FaultyTusServer(TusServer):
    """A TusServer whose dropped connections may leave part of a PATCH stored, as tus allows."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().__call__(request)
        except _PartialWrite as partial:
            upload = self.uploads[request.url.path.rsplit("/", 1)[-1]]
            upload.data.extend(request.content[: partial.keep])
            raise httpx.WriteError("connection reset by peer", request=request) from None


def status(code: int, detail: str | None = None, headers: dict[str, str] | None = None) -> Fault:
    """A fault answering ``code`` instead of serving the request."""

    def fault(request: httpx.Request) -> httpx.Response:
        return httpx.Response(code, json={"detail": detail} if detail else None, headers=headers)

    return fault


@dataclass
class EvidenceServer:
    """The evidence read routes for one item: record, status, and content with Range."""

    content: bytes
    evidence_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    recorded_sha256: str | None = None
    announced_digest: bytes | None = None
    statuses: list[tuple[int, dict[str, Any] | None]] = field(default_factory=list)
    break_content_after: list[int] = field(default_factory=list)
    """For each of the next content responses, the byte count after which the stream breaks."""
    requests: list[httpx.Request] = field(default_factory=list)
    record_status: str = "sealed"
    content_range: str | None = None
    """The Content-Range of a 206 answer, when not the range asked for."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        base = f"/v1/evidence/{self.evidence_id}"
        if path == base:
            return httpx.Response(
                200,
                json={
                    "evidence_id": self.evidence_id,
                    "status": self.record_status,
                    "sha256": self.recorded_sha256 or hashlib.sha256(self.content).hexdigest(),
                    "size": len(self.content),
                },
            )
        if path == f"{base}/status":
            code, body = self.statuses.pop(0) if self.statuses else (200, {"status": "sealed"})
            if body is not None:
                body = {"evidence_id": self.evidence_id, **body}
            return httpx.Response(code, json=body if body is not None else {"detail": "not known yet"})
        if path == f"{base}/content":
            if not request.url.params.get("purpose"):
                return httpx.Response(422, json={"detail": "state a purpose"})
            digest = self.announced_digest or hashlib.sha256(self.content).digest()
            headers = {
                "Repr-Digest": f"sha-256=:{base64.b64encode(digest).decode()}:",
                "ETag": f'"{hashlib.sha256(self.content).hexdigest()}"',
            }
            start = 0
            code = 200
            if self.record_status != "sealed":
                return httpx.Response(409, json={"detail": f"item is {self.record_status}, so it is never served"})
            if "Range" in request.headers:
                start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
                code = 206
                headers["Content-Range"] = (
                    self.content_range or f"bytes {start}-{len(self.content) - 1}/{len(self.content)}"
                )
            body = self.content[start:]
            headers["Content-Length"] = str(len(body))
            cut = self.break_content_after.pop(0) if self.break_content_after else None
            return httpx.Response(code, headers=headers, stream=_BreakingStream(body, cut, request))
        return httpx.Response(404, json={"detail": "no such route"})


class _BreakingStream(httpx.SyncByteStream):
    def __init__(self, body: bytes, cut: int | None, request: httpx.Request) -> None:
        self._body, self._cut, self._request = body, cut, request

    def __iter__(self) -> Iterator[bytes]:
        limit = len(self._body) if self._cut is None else self._cut
        for start in range(0, limit, 1000):
            yield self._body[start : min(start + 1000, limit)]
        if self._cut is not None:
            raise httpx.ReadError("connection reset by peer", request=self._request)


def route(**servers: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    """One transport for several fake services, told apart by host (intake, evidence, audit)."""

    def handler(request: httpx.Request) -> httpx.Response:
        server = servers.get(request.url.host)
        if server is None:
            return httpx.Response(503, json={"detail": f"no fake for {request.url.host}"})
        return server(request)

    return httpx.MockTransport(handler)


@pytest.fixture
def sleeps() -> list[float]:
    """The back-off pauses a client took (recorded instead of slept)."""
    return []


@pytest.fixture
def tus_server() -> FaultyTusServer:
    """A fresh in-memory tus server."""
    return FaultyTusServer()


@pytest.fixture
def faults() -> SimpleNamespace:
    """Ways to make the fake servers misbehave."""
    return SimpleNamespace(drop_connection_after=drop_connection_after, status=status)


@pytest.fixture
def evidence_server() -> type[EvidenceServer]:
    """Builds a fake evidence service for one item: ``evidence_server(content, ...)``."""
    return EvidenceServer


@pytest.fixture
def router() -> Callable[..., httpx.MockTransport]:
    """Builds one transport for fake services told apart by host: ``router(intake=..., evidence=...)``."""
    return route
