"""A time-stamping authority for tests, made with ``openssl ts``: a root CA and a TSA
certificate generated per test session, replies made by ``openssl ts -reply``, and a small
HTTP server that answers RFC 3161 queries (``application/timestamp-query``) on a free port.

The server can be stopped and started again on the same port (an outage), told to answer
with an HTTP error, or to send back an earlier reply (a replay)."""

from __future__ import annotations

import http.server
import subprocess
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.nats import free_port

CONFIG = """
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
serial = ./serial
crypto_device = builtin
signer_cert = ./tsa.pem
certs = ./tsa.pem
signer_key = ./tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.2
digests = @DIGESTS@
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
[ v3_tsa ]
basicConstraints = CA:FALSE
extendedKeyUsage = critical,timeStamping
keyUsage = critical,digitalSignature
[ v3_ca ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
"""


@dataclass
class OpensslTsa:
    """A TSA in ``folder``: ``root`` is its root certificate (PEM), the one to pin."""

    folder: Path
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def root(self) -> Path:
        return self.folder / "ca.pem"

    @classmethod
    def create(cls, folder: Path, name: str = "Test TSA", digests: str = "sha256") -> OpensslTsa:
        """Generate a root CA and a TSA certificate it issued (P-256, valid two days); the TSA
        grants tokens over the hash algorithms ``digests`` only and refuses the others."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tsa.cnf").write_text(textwrap.dedent(CONFIG).replace("@DIGESTS@", digests))
        (folder / "serial").write_text("01\n")
        tsa = cls(folder)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        tsa._openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", f"/CN={name} Root",
                     "-days", "2", "-extensions", "v3_ca", "-config", "tsa.cnf")
        tsa._openssl("req", *ec, "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", f"/CN={name}")
        tsa._openssl("x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", "tsa.pem", "-days", "2", "-extfile", "tsa.cnf", "-extensions", "v3_tsa")
        return tsa

    def _openssl(self, *args: str) -> None:
        done = subprocess.run(["openssl", *args], cwd=self.folder, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed: {done.stderr}")

    def reply(self, query: bytes) -> bytes:
        """``openssl ts -reply`` to a DER TimeStampReq: a granted token, or a refusal (e.g. for a
        hash other than SHA-256)."""
        with self._lock, tempfile.TemporaryDirectory(dir=self.folder) as work:
            (Path(work) / "query.tsq").write_bytes(query)
            self._openssl("ts", "-reply", "-config", "tsa.cnf", "-queryfile", f"{work}/query.tsq",
                          "-out", f"{work}/reply.tsr")
            return (Path(work) / "reply.tsr").read_bytes()

    def stamp(self, data: bytes) -> bytes:
        """A reply over SHA-256 of ``data``, as ``openssl ts -query -sha256 -cert`` asks for it."""
        with self._lock, tempfile.TemporaryDirectory(dir=self.folder) as work:
            (Path(work) / "data").write_bytes(data)
            self._openssl("ts", "-query", "-data", f"{work}/data", "-sha256", "-cert", "-out", f"{work}/query.tsq")
            query = (Path(work) / "query.tsq").read_bytes()
        return self.reply(query)


@dataclass
class Received:
    """One request the server took."""

    content_type: str | None
    authorization: str | None
    body: bytes


class TsaServer:
    """``tsa`` behind HTTP on 127.0.0.1: POST a TimeStampReq, get a TimeStampResp."""

    def __init__(self, tsa: OpensslTsa) -> None:
        self.tsa = tsa
        self.port = free_port()
        self.received: list[Received] = []
        self.replies: list[bytes] = []
        self.failing_status: int | None = None
        """Answer every request with this HTTP status (and no token) while set."""
        self.replaying = False
        """Answer every request with the first reply ever sent, while set."""
        self._server: http.server.HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tsa"

    def start(self) -> None:
        """Listen (again) on ``port``."""
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.received.append(Received(self.headers.get("Content-Type"), self.headers.get("Authorization"), body))
                if owner.failing_status is not None:
                    self.send_error(owner.failing_status, "the test TSA is failing on purpose")
                    return
                try:
                    reply = owner.replies[0] if owner.replaying and owner.replies else owner.tsa.reply(body)
                except RuntimeError:
                    self.send_error(400, "not a time-stamp query")
                    return
                owner.replies.append(reply)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = http.server.HTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-tsa", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: connections are refused until ``start``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None


@pytest.fixture(scope="session")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> OpensslTsa:
    """A time-stamping authority made with openssl, shared by the session."""
    return OpensslTsa.create(tmp_path_factory.mktemp("tsa"))


@pytest.fixture
def tsa_server(tsa: OpensslTsa) -> Iterator[TsaServer]:
    """``tsa`` answering over HTTP on a free port, for one test."""
    server = TsaServer(tsa)
    server.start()
    try:
        yield server
    finally:
        server.stop()
