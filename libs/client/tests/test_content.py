"""Downloads over a direct connection (the standard library's HTTP client, the path the
`custody` command takes), against a real HTTP server on loopback that breaks connections; the
writer thread that puts them on disk."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import ssl
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from custody_client.api import CustodyClient
from custody_client.content import BackgroundWriter, direct_connections_possible, tls_context
from custody_client.errors import NotFound, VerificationFailed
from custody_client.resume import ResumeState
from custody_client.tus import Backoff
from custody_common.pagecache import STEP
from tests.support.pagecache import recorded_advice


class _Vault:
    """One sealed item, served as evidence serves it; ``break_after`` cuts the next responses'
    bodies after that many bytes (one entry per response)."""

    def __init__(self, content: bytes) -> None:
        self.content = content
        self.evidence_id = str(uuid.uuid4())
        self.sha256 = hashlib.sha256(content).digest()
        self.break_after: list[int] = []
        self.requests: list[dict[str, str]] = []


def _handler(vault: _Vault) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 — the standard library's name
            self.requests_seen = dict(self.headers)
            vault.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            if self.headers.get("Authorization") != "Bearer t0ken":
                return self._json(401, {"detail": "no token"})
            if self.path == f"/v1/evidence/{vault.evidence_id}":
                return self._json(200, {"status": "sealed", "sha256": vault.sha256.hex(), "size": len(vault.content)})
            if not self.path.startswith(f"/v1/evidence/{vault.evidence_id}/content?"):
                return self._json(404, {"detail": "no such item in your cases"})
            start = 0
            if self.headers.get("Range"):
                start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
            body = vault.content[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(vault.content) - 1}/{len(vault.content)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Repr-Digest", f"sha-256=:{base64.b64encode(vault.sha256).decode()}:")
            self.send_header("ETag", f'"{vault.sha256.hex()}"')
            self.end_headers()
            if vault.break_after:
                self.wfile.write(body[: vault.break_after.pop(0)])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def vault() -> Iterator[tuple[_Vault, str]]:
    served = _Vault(os.urandom(3 * 1024 * 1024 + 17))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _client(url: str, tmp_path: Path) -> CustodyClient:
    return CustodyClient(
        url, url, url, "t0ken", resume=ResumeState(tmp_path / "state"), backoff=Backoff(attempts=4),
        sleep=lambda seconds: None,
    )


def test_a_direct_download_resumes_by_range_after_broken_connections(vault, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    served, url = vault
    served.break_after = [1_500_000, 700_000]
    target = tmp_path / "item.bin"
    with _client(url, tmp_path) as client:
        assert client._direct_content
        fetched = client.fetch(served.evidence_id, target, purpose="trial preparation")
    assert target.read_bytes() == served.content and fetched.size == len(served.content)
    contents = [r for r in served.requests if "/content?" in r["path"]]
    assert [r.get("range") for r in contents] == [None, "bytes=1500000-", "bytes=2200000-"]
    assert all("purpose=trial+preparation" in r["path"] and r["accept-encoding"] == "identity" for r in contents)
    assert {r.get("if-range") for r in contents[1:]} == {f'"{served.sha256.hex()}"'}


def test_a_direct_download_of_other_bytes_is_refused_and_leaves_nothing(vault, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    served, url = vault
    served.content = served.content[:-1] + bytes([served.content[-1] ^ 1])  # digest and record now disagree
    target = tmp_path / "item.bin"
    with _client(url, tmp_path) as client, pytest.raises(VerificationFailed):
        client.fetch(served.evidence_id, target, purpose="trial preparation")
    assert not target.exists() and not list(tmp_path.glob("item.bin*.part"))


def test_a_direct_download_reads_the_services_refusal(vault, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    served, url = vault
    served.evidence_id, asked = str(uuid.uuid4()), served.evidence_id
    with _client(url, tmp_path) as client, pytest.raises(NotFound, match="no such item in your cases"):
        client._download(asked, "trial", open(os.devnull, "wb"), lambda progress: None)


def test_a_proxy_in_the_environment_sends_downloads_through_httpx(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert not direct_connections_possible("https://evidence.example")
    monkeypatch.setenv("NO_PROXY", "evidence.example")
    assert direct_connections_possible("https://evidence.example")


def test_the_writer_hands_what_it_wrote_to_writeback_as_it_goes(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    advised = recorded_advice(monkeypatch)
    piece = STEP // 4 + 1
    pieces = [bytes([n]) * piece for n in range(10)]
    with open(tmp_path / "item.bin", "wb") as file:
        writer = BackgroundWriter(file)
        writer.write(b"restarted from here")
        writer.seek(0)
        writer.truncate()
        for data in pieces:
            writer.write(memoryview(data))
        writer.close()
    assert (tmp_path / "item.bin").read_bytes() == b"".join(pieces)
    # from the start (after the seek), each range ending further on, up to the last few MiB
    assert advised[0][0] == 0
    assert [end for _, end in advised] == sorted({end for _, end in advised})
    assert advised[-1][1] > len(pieces) * piece - STEP


def test_the_writer_writes_to_a_file_without_a_descriptor() -> None:
    buffer = io.BytesIO()
    writer = BackgroundWriter(buffer)
    for _ in range(3):
        writer.write(b"x" * (STEP // 2))
    writer.close()
    assert buffer.getvalue() == b"x" * (3 * STEP // 2)


def test_without_https_no_certificate_is_trusted_and_with_it_the_system_s_authorities_are() -> None:
    plain = tls_context("http://127.0.0.1:8001", "http://127.0.0.1:8002", "http://127.0.0.1:8003")
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname
    assert plain.cert_store_stats()["x509_ca"] == 0
    secured = tls_context("http://127.0.0.1:8001", "https://evidence.example", "http://127.0.0.1:8003")
    assert secured.verify_mode == ssl.CERT_REQUIRED and secured.check_hostname
    assert secured.cert_store_stats()["x509_ca"] > 0
