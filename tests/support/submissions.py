"""Submissions made by hand over tus, and waiting on the vault's verdict, for tests that need
what the `custody` command refuses to send."""

from __future__ import annotations

import base64
import hashlib
import time
import zlib

from tests.support.stack import Stack


def upload_checksum(data: bytes, algorithm: str = "crc32") -> str:
    """The ``Upload-Checksum`` of a PATCH body, computed here rather than by the client: CRC-32
    (as ``custody submit`` and the web app send it) in 4 bytes big-endian, or a hashlib digest."""
    digest = zlib.crc32(data).to_bytes(4, "big") if algorithm == "crc32" else hashlib.new(algorithm, data).digest()
    return f"{algorithm} {base64.b64encode(digest).decode()}"


def submit_with_wrong_hash(stack: Stack, token: str, case: str, data: bytes, filename: str) -> str:
    """A tus upload whose declared SHA-256 is not its content's, as a corrupted device would
    send it; returns the evidence id."""
    meta = {"case": case, "filename": filename, "sha256": "0" * 64}
    encoded = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items())
    with stack.client("intake", token) as intake:
        created = intake.post(
            "/v1/uploads",
            headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)), "Upload-Metadata": encoded},
        )
        assert created.status_code == 201, created.text
        url = created.headers["Location"]
        patched = intake.patch(
            url,
            content=data,
            headers={"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )
        assert patched.status_code == 204, patched.text
    return url.rstrip("/").rsplit("/", 1)[1]


def wait_status(stack: Stack, token: str, evidence_id: str, wanted: str, timeout: float = 120) -> None:
    """Wait until the vault reports ``wanted`` (sealed, rejected…) for the item."""
    deadline = time.monotonic() + timeout
    with stack.client("evidence", token) as evidence:
        while time.monotonic() < deadline:
            answer = evidence.get(f"/v1/evidence/{evidence_id}/status")
            if answer.status_code == 200 and answer.json()["status"] == wanted:
                return
            time.sleep(0.3)
    raise AssertionError(f"{evidence_id} never became {wanted}")
