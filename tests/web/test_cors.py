"""CORS, as every service's ``create_app`` sets it up for the web app: the page on intake's
origin may call evidence and audit with its bearer token and read tus's and retrieval's headers;
any other origin gets no CORS permission at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import Response
from fastapi.testclient import TestClient

from custody_common.settings import CORS_EXPOSED_HEADERS, Settings
from custody_common.web import create_app

PAGE = "http://127.0.0.1:8001"


def _client(tmp_path: Path, **settings: object) -> TestClient:
    app = create_app("evidence", Settings(home=tmp_path, intake_url=f"{PAGE}/", **settings), lifespan=None)

    @app.get("/v1/evidence/{evidence_id}/content")
    async def content(evidence_id: str) -> Response:
        return Response(b"x", headers={"Repr-Digest": "sha-256=:AA==:", "Content-Range": "bytes 0-0/1"})

    return TestClient(app)


def test_the_page_on_intakes_origin_may_call_with_its_token_and_read_the_headers(tmp_path: Path) -> None:
    client = _client(tmp_path)
    preflight = client.options(
        "/v1/evidence/x/content",
        headers={
            "Origin": PAGE,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, range, x-request-id",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == PAGE
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "range", "upload-offset", "upload-metadata", "tus-resumable"):
        assert header in allowed
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in preflight.headers  # bearer tokens, never cookies

    answer = client.get("/v1/evidence/x/content", headers={"Origin": PAGE})
    assert answer.headers["access-control-allow-origin"] == PAGE
    exposed = {h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")}
    assert {h.lower() for h in CORS_EXPOSED_HEADERS} <= exposed
    assert {"location", "upload-offset", "upload-length", "tus-resumable", "repr-digest", "content-range"} <= exposed


def test_another_origin_gets_no_permission(tmp_path: Path) -> None:
    client = _client(tmp_path)
    preflight = client.options(
        "/v1/evidence/x/content",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    answer = client.get("/v1/evidence/x/content", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in answer.headers


def test_origins_and_exposed_headers_are_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTODY_CORS_ORIGINS", "https://custody.example.org, https://field.example.org")
    monkeypatch.setenv("CUSTODY_CORS_EXPOSE_HEADERS", "Location,Upload-Offset")
    settings = Settings(home=tmp_path)
    assert settings.allowed_origins == ("https://custody.example.org", "https://field.example.org")
    client = TestClient(create_app("audit", settings, lifespan=None))
    answer = client.get("/healthz", headers={"Origin": "https://field.example.org"})
    assert answer.headers["access-control-allow-origin"] == "https://field.example.org"
    assert answer.headers["access-control-expose-headers"] == "Location, Upload-Offset"


def test_an_origin_with_a_path_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give scheme://host"):
        Settings(home=tmp_path, cors_origins=("https://custody.example.org/app",))
