"""The web app's routes on intake: the page with its security headers, its assets, the settings
the page reads, and who a token names."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from custody_common.auth import mint_token
from custody_common.keys import token_signing_key
from custody_common.web import create_app
from custody_intake.settings import IntakeSettings
from custody_intake.web import endpoints
from custody_intake.web.endpoints import router


def _client(settings: IntakeSettings) -> TestClient:
    app = create_app("intake", settings, lifespan=None)
    app.include_router(router)
    return TestClient(app)


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A built web app in a folder of its own."""
    static = tmp_path / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text("<!doctype html><title>Custody</title>")
    (static / "assets" / "app.js").write_text("console.log('custody')")
    monkeypatch.setattr(endpoints, "STATIC", static)
    return static


def test_the_page_is_served_with_a_strict_policy(tmp_path: Path, built: Path) -> None:
    settings = IntakeSettings(home=tmp_path, evidence_url="https://evidence.example:8443", audit_url="https://audit.example")
    page = _client(settings).get("/")
    assert page.status_code == 200 and "Custody" in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self' 'wasm-unsafe-eval'" in policy
    assert "connect-src 'self' https://evidence.example:8443 https://audit.example" in policy
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    assert page.headers["referrer-policy"] == "no-referrer"


def test_assets_are_served_and_nothing_else(tmp_path: Path, built: Path) -> None:
    client = _client(IntakeSettings(home=tmp_path))
    script = client.get("/assets/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    for name in ("missing.js", "..%2Findex.html", "app.exe"):
        answer = client.get(f"/assets/{name}")
        assert answer.status_code == 404
        assert "reload the page" in answer.json()["detail"] or answer.json()["detail"] == "Not Found"


def test_an_unbuilt_app_says_how_to_build_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endpoints, "STATIC", tmp_path / "nothing")
    page = _client(IntakeSettings(home=tmp_path)).get("/")
    assert page.status_code == 503 and "npm run build" in page.text


def test_the_config_names_the_services_the_pinned_key_and_the_provider(tmp_path: Path) -> None:
    settings = IntakeSettings(
        home=tmp_path,
        intake_url="http://127.0.0.1:8001/",
        web_audit_url="https://audit.example/",
        web_log_key="custody.example/log+01234567+AQ==",
        web_oidc_issuer="https://id.example/realms/custody/",
        web_oidc_client_id="custody-web",
    )
    config = _client(settings).get("/config.json").json()
    assert config == {
        "intake_url": "http://127.0.0.1:8001",
        "evidence_url": "http://127.0.0.1:8002",
        "audit_url": "https://audit.example",
        "log_key": "custody.example/log+01234567+AQ==",
        "oidc": {"issuer": "https://id.example/realms/custody", "client_id": "custody-web", "scope": "openid"},
    }
    assert _client(IntakeSettings(home=tmp_path)).get("/config.json").json()["oidc"] is None


def test_whoami_names_the_verified_caller(tmp_path: Path) -> None:
    settings = IntakeSettings(home=tmp_path)
    client = _client(settings)
    token = mint_token(token_signing_key(settings), settings, "alice", ["investigator", "janitor"], ["UA-2", "UA-1"])
    answer = client.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert answer.json() == {"sub": "alice", "roles": ["investigator"], "cases": ["UA-1", "UA-2"]}
    refused = client.get("/v1/whoami")
    assert refused.status_code == 401 and "bearer token" in refused.json()["detail"]


def test_intake_serves_no_pages_whose_scripts_come_from_elsewhere(tmp_path: Path) -> None:
    """FastAPI's /docs and /redoc load their scripts from a CDN; on the web app's origin they
    could read a signed-in tab's token. The OpenAPI document itself stays."""
    from custody_intake.app import create_intake_app

    client = TestClient(create_intake_app(IntakeSettings(home=tmp_path)))  # no lifespan: nothing opened
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "Custody intake"
