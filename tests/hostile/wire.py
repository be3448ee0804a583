"""HTTP spoken by hand on a raw socket, for requests no well-behaved client would send: headers
past every limit, bodies longer than they say, bytes dripped one a second. Plus the few tus
requests the attacks start from, sent properly with httpx."""

from __future__ import annotations

import base64
import hashlib
import socket
import time
from dataclasses import dataclass, field

import httpx

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = "application/offset+octet-stream"


@dataclass(frozen=True)
class Answer:
    """What came back on a raw connection: a parsed response, or nothing before the server closed."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    closed_without_answer: str | None = None
    """Why no response could be read (``reset``, ``eof``), when ``status`` is None."""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def connect(port: int, timeout: float = 60) -> socket.socket:
    """A TCP connection to a service on loopback."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    """The request line and header block, ready to send."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def send_quietly(conn: socket.socket, data: bytes) -> bool:
    """Send ``data``; False if the server had already closed (it may still have answered)."""
    try:
        conn.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def read_answer(conn: socket.socket) -> Answer:
    """Read one response (status, headers, a Content-Length body) from ``conn``."""
    buffer = b""
    try:
        while b"\r\n\r\n" not in buffer:
            chunk = conn.recv(65536)
            if not chunk:
                return Answer(None, closed_without_answer="eof" if not buffer else "truncated")
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
        return Answer(int(status_line.split(" ")[1]), headers, rest[:length])
    except ConnectionResetError:
        return Answer(None, closed_without_answer="reset")


def exchange(port: int, data: bytes, timeout: float = 60) -> Answer:
    """Send ``data`` on a fresh connection and read the answer."""
    with connect(port, timeout) as conn:
        send_quietly(conn, data)
        return read_answer(conn)


def encode_metadata(pairs: dict[str, str]) -> str:
    """tus ``Upload-Metadata``: comma-separated ``key base64(value)``."""
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items())


def submission_metadata(case: str, content: bytes, filename: str = "photo.jpg") -> str:
    """The ``Upload-Metadata`` a correct client sends for ``content``."""
    return encode_metadata({"case": case, "filename": filename, "sha256": hashlib.sha256(content).hexdigest()})


def create_upload(intake: httpx.Client, case: str, content: bytes) -> str:
    """Create a tus upload for ``content`` (nothing sent yet); returns its path ``/v1/uploads/{id}``."""
    created = intake.post(
        "/v1/uploads",
        headers={**TUS, "Upload-Length": str(len(content)), "Upload-Metadata": submission_metadata(case, content)},
    )
    assert created.status_code == 201, f"{created.status_code} {created.text}"
    return httpx.URL(created.headers["Location"]).path


def stored_offset(intake: httpx.Client, upload: str) -> int:
    """``Upload-Offset`` of ``upload`` as intake reports it."""
    answer = intake.head(upload, headers=TUS)
    assert answer.status_code == 200, answer.status_code
    return int(answer.headers["Upload-Offset"])


def patch(intake: httpx.Client, upload: str, offset: int, body: bytes) -> httpx.Response:
    """One well-formed tus PATCH."""
    return intake.patch(
        upload, content=body, headers={**TUS, "Upload-Offset": str(offset), "Content-Type": OFFSET_STREAM}
    )


def resume(intake: httpx.Client, upload: str, content: bytes, patience: float = 60) -> tuple[int, httpx.Response]:
    """Send the rest of ``content`` from where intake says the upload stands, as a tus client
    does: a 423 (another PATCH, perhaps one whose client vanished, still holds the upload until it
    ends or stalls past the lock timeout) or a 409 (it moved meanwhile) means ask again. Returns
    the offset resumed from and the last answer."""
    deadline = time.monotonic() + patience
    while True:
        offset = stored_offset(intake, upload)
        answer = patch(intake, upload, offset, content[offset:])
        if answer.status_code not in (409, 423) or time.monotonic() > deadline:
            return offset, answer
        time.sleep(0.2)
