import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from custody_common.auth import AuthenticationError, Principal, TokenVerifier, mint_token
from custody_common.keys import token_signing_key
from custody_common.settings import Settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path)


def test_minted_token_verifies(settings: Settings) -> None:
    token = mint_token(token_signing_key(settings), settings, "alice", ["investigator"], ["C-1"])
    principal = TokenVerifier(settings).verify(token)
    assert principal == Principal("alice", frozenset({"investigator"}), frozenset({"C-1"}), principal.token_id)


def _claims(settings: Settings, **over) -> dict:
    now = int(time.time())
    claims = {"iss": settings.token_issuer, "aud": settings.token_audience, "sub": "mallory",
              "roles": ["admin"], "cases": ["*"], "iat": now, "nbf": now, "exp": now + 600}
    claims.update(over)
    return claims


def test_expired_wrong_audience_and_issuer_refused(settings: Settings) -> None:
    key = token_signing_key(settings)
    verifier = TokenVerifier(settings)
    for bad in (
        _claims(settings, exp=int(time.time()) - 3600),
        _claims(settings, aud="another-service"),
        _claims(settings, iss="someone-else"),
        _claims(settings, nbf=int(time.time()) + 3600),
    ):
        with pytest.raises(AuthenticationError):
            verifier.verify(jwt.encode(bad, key, algorithm="EdDSA"))


def test_alg_none_and_hmac_with_public_key_refused(settings: Settings) -> None:
    verifier = TokenVerifier(settings)
    claims = _claims(settings)
    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    with pytest.raises(AuthenticationError):
        verifier.verify(f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.")
    public_pem = (settings.key_folder / "token-signing.pub").read_bytes()
    import hashlib, hmac
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}"
    sig = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    with pytest.raises(AuthenticationError):
        verifier.verify(f"{signing_input}.{sig}")


def test_rs256_against_configured_key(tmp_path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "rsa.pub"
    pem.write_bytes(rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    settings = Settings(home=tmp_path, token_public_key=pem)
    principal = TokenVerifier(settings).verify(jwt.encode(_claims(settings), rsa_key, algorithm="RS256"))
    assert principal.sub == "mallory" and principal.cases == frozenset({"*"})
    with pytest.raises(AuthenticationError):
        TokenVerifier(settings).verify(jwt.encode(_claims(settings), rsa_key, algorithm="RS384"))


def test_a_token_whose_algorithm_does_not_fit_the_key_is_refused(tmp_path) -> None:
    """RS256 against the Ed25519 key, and EdDSA against an RSA key: refused as invalid tokens."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed25519 = Settings(home=tmp_path / "ed25519")
    with pytest.raises(AuthenticationError, match="does not fit its key, which is EdDSA"):
        TokenVerifier(ed25519).verify(jwt.encode(_claims(ed25519), rsa_key, algorithm="RS256"))
    pem = tmp_path / "rsa.pub"
    pem.write_bytes(rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    rsa_settings = Settings(home=tmp_path / "rsa", token_public_key=pem)
    with pytest.raises(AuthenticationError, match="does not fit its key, which is RS256"):
        TokenVerifier(rsa_settings).verify(jwt.encode(_claims(rsa_settings), token_signing_key(ed25519), algorithm="EdDSA"))


def test_revoked_subject_and_token_refused(tmp_path) -> None:
    base = Settings(home=tmp_path)
    token = mint_token(token_signing_key(base), base, "seized-phone", ["investigator"], ["C-1"])
    with pytest.raises(AuthenticationError, match="revoked"):
        TokenVerifier(Settings(home=tmp_path, revoked_subjects="seized-phone")).verify(token)
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    with pytest.raises(AuthenticationError, match="revoked"):
        TokenVerifier(Settings(home=tmp_path, revoked_tokens=jti)).verify(token)


def test_star_widens_only_auditor_and_admin() -> None:
    p = Principal("x", frozenset({"prosecutor", "auditor"}), frozenset({"*"}))
    assert p.sees_case("C-9", "auditor")
    assert not p.sees_case("C-9", "prosecutor")
    assert not Principal("y", frozenset({"investigator"}), frozenset({"*"})).sees_case("C-9", "investigator")
    assert Principal("z", frozenset({"prosecutor"}), frozenset({"C-9"})).sees_case("C-9", "prosecutor")


def test_revocation_lists_come_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CUSTODY_REVOKED_SUBJECTS", "seized-phone, departed")
    monkeypatch.setenv("CUSTODY_REVOKED_TOKENS", "jti-1")
    settings = Settings(home=tmp_path)
    assert settings.revoked_subjects == frozenset({"seized-phone", "departed"})
    assert settings.revoked_tokens == frozenset({"jti-1"})


def test_tokens_verify_against_an_oidc_providers_jwks(tmp_path) -> None:
    """An identity provider's JWKS URL (as Keycloak publishes), served over real HTTP."""
    import http.server
    import threading

    provider_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(provider_key.public_key()))
    jwks = json.dumps({"keys": [jwk | {"kid": "provider-1", "use": "sig", "alg": "RS256"}]}).encode()

    class Jwks(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = Settings(home=tmp_path, token_jwks_url=f"http://127.0.0.1:{server.server_port}/certs")
        verifier = TokenVerifier(settings)
        good = jwt.encode(_claims(settings, sub="keycloak-user"), provider_key, algorithm="RS256", headers={"kid": "provider-1"})
        assert verifier.verify(good).sub == "keycloak-user"
        impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(_claims(settings), impostor, algorithm="RS256", headers={"kid": "provider-1"})
        with pytest.raises(AuthenticationError):
            verifier.verify(forged)
    finally:
        server.shutdown()
