"""A small OpenID Connect provider for the browser tests: discovery, an authorization endpoint
that signs in a fixed person at once, and a token endpoint that checks the PKCE verifier and
issues an access token signed with the stack's token key. It speaks real HTTP on a loopback
port, so the page's whole code flow runs as it would against Keycloak."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.support.nats import free_port


class IdentityProvider:
    """Signs in whoever asks as the person ``mint()`` makes a token for."""

    def __init__(self, mint: Callable[[], str]) -> None:
        self.mint = mint
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.codes: dict[str, dict[str, str]] = {}
        self.issued: list[str] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                return

            def _send(self, status: int, body: dict[str, object] | None = None, headers: dict[str, str] | None = None) -> None:
                payload = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_OPTIONS(self) -> None:  # noqa: N802 — the token endpoint's CORS preflight
                self._send(204, headers={"Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "Content-Type"})

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    self._send(200, {
                        "issuer": provider.issuer,
                        "authorization_endpoint": f"{provider.issuer}/authorize",
                        "token_endpoint": f"{provider.issuer}/token",
                    })
                elif url.path == "/authorize":
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = query
                    target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
                    self._send(302, headers={"Location": target})
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                asked = provider.codes.pop(form.get("code", ""), None)
                challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest()).rstrip(b"=").decode()
                if asked is None or asked["code_challenge"] != challenge or asked["redirect_uri"] != form.get("redirect_uri"):
                    self._send(400, {"error": "invalid_grant", "error_description": "the code or its verifier is wrong"})
                    return
                token = provider.mint()
                provider.issued.append(token)
                self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 300})

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
