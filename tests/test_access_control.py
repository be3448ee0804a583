"""Every route of every service × every kind of caller, against the real stack.

The table below is the role table of DESIGN.md made concrete. A route in a service's OpenAPI
document without an entry here fails the test: a new route must say who may call it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from custody_common.keys import token_signing_key
from tests.support.nats import NATS_URL, provision_namespace, remove_namespace
from tests.support.stack import BIN, Stack
from tests.support.tsa import OpensslTsa, TsaServer

CASE = "C-1"
TUS = {"Tus-Resumable": "1.0.0"}

# Callers, by the claims of their token.
CALLERS: dict[str, tuple[str, list[str], list[str]]] = {
    "investigator": ("alice", ["investigator"], [CASE]),  # submitted the item
    "investigator_other": ("mallory", ["investigator"], [CASE]),  # same case, not the submitter
    "prosecutor": ("bob", ["prosecutor"], [CASE]),
    "prosecutor_other": ("eve", ["prosecutor"], ["C-2"]),
    "prosecutor_star": ("trent", ["prosecutor"], ["*"]),  # `*` never widens a prosecutor
    "auditor": ("carol", ["auditor"], ["*"]),
    "admin": ("dave", ["admin"], ["*"]),
}
BAD_TOKENS = ("none", "expired", "other_audience", "alg_none", "hs256_public_key", "rs256_foreign_key")

ALL = set(CALLERS)
OK = 200


@dataclass
class Route:
    """How to call one route, and what each caller must get."""

    request: Callable[["World"], dict]
    expect: dict[str, int]
    public: bool = False
    order: int = 0
    """Routes with side effects run after those without."""


def expect(default: int, **overrides: int) -> dict[str, int]:
    return {caller: overrides.get(caller, default) for caller in CALLERS}


@dataclass
class World:
    stack: Stack
    evidence_id: str
    tokens: dict[str, str] = field(default_factory=dict)


def _metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _new_upload(_w: World) -> dict:
    return {"headers": TUS | {"Upload-Length": "5", "Upload-Metadata": _metadata(case=CASE, filename="a.txt", sha256="0" * 64)}}


def _checkpoint_size(w: World) -> int:
    """The size of the log's latest checkpoint (the log grows as the test reads)."""
    return int(httpx.get(f"{w.stack.url('audit')}/v1/log/checkpoint", timeout=10).text.split("\n")[1])


ROUTES: dict[tuple[str, str, str], Route] = {
    # intake: investigators submit to their cases; only the submitter sees an upload
    ("intake", "POST", "/v1/uploads"): Route(
        _new_upload, expect(403, investigator=201, investigator_other=201), order=1
    ),
    ("intake", "HEAD", "/v1/uploads/{evidence_id}"): Route(
        lambda w: {"url": f"/v1/uploads/{w.evidence_id}", "headers": TUS},
        expect(403, investigator=OK, investigator_other=404),
    ),
    ("intake", "PATCH", "/v1/uploads/{evidence_id}"): Route(
        lambda w: {
            "url": f"/v1/uploads/{w.evidence_id}",
            "headers": TUS | {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
            "content": b"x",
        },
        expect(403, investigator=409, investigator_other=404),  # 409: the upload is complete
    ),
    ("intake", "DELETE", "/v1/uploads/{evidence_id}"): Route(
        lambda w: {"url": f"/v1/uploads/{w.evidence_id}", "headers": TUS},
        expect(403, investigator=409, investigator_other=404),  # 409: only while uploading
    ),
    ("intake", "GET", "/v1/submissions/{evidence_id}"): Route(
        lambda w: {"url": f"/v1/submissions/{w.evidence_id}"},
        expect(403, investigator=OK, investigator_other=404),
    ),
    ("intake", "GET", "/v1/whoami"): Route(lambda w: {"url": "/v1/whoami"}, expect(OK)),
    ("intake", "GET", "/config.json"): Route(lambda w: {"url": "/config.json"}, expect(OK), public=True),
    # evidence: prosecutors of the case; admins hold; nobody else reads
    ("evidence", "GET", "/v1/evidence"): Route(
        lambda w: {"params": {"case": CASE}},
        expect(403, prosecutor=OK),
    ),
    ("evidence", "GET", "/v1/evidence/{evidence_id}"): Route(
        lambda w: {"url": f"/v1/evidence/{w.evidence_id}"},
        expect(403, prosecutor=OK, prosecutor_other=404, prosecutor_star=404),
    ),
    ("evidence", "GET", "/v1/evidence/{evidence_id}/status"): Route(
        lambda w: {"url": f"/v1/evidence/{w.evidence_id}/status"},
        expect(403, prosecutor=OK, investigator=OK, investigator_other=404, prosecutor_other=404, prosecutor_star=404),
    ),
    ("evidence", "GET", "/v1/evidence/{evidence_id}/content"): Route(
        lambda w: {"url": f"/v1/evidence/{w.evidence_id}/content", "params": {"purpose": "access-control test"}},
        expect(403, prosecutor=OK, prosecutor_other=404, prosecutor_star=404),
    ),
    ("evidence", "POST", "/v1/evidence/{evidence_id}/verify"): Route(
        lambda w: {"url": f"/v1/evidence/{w.evidence_id}/verify"},
        expect(403, prosecutor=OK, prosecutor_other=404, prosecutor_star=404),
    ),
    ("evidence", "PUT", "/v1/evidence/{evidence_id}/legal-hold"): Route(
        lambda w: {"url": f"/v1/evidence/{w.evidence_id}/legal-hold"}, expect(403, admin=OK), order=2
    ),
    ("evidence", "DELETE", "/v1/evidence/{evidence_id}/legal-hold"): Route(
        lambda w: {"url": f"/v1/evidence/{w.evidence_id}/legal-hold"}, expect(403, admin=OK), order=3
    ),
    ("evidence", "PUT", "/v1/cases/{case}/legal-hold"): Route(
        lambda w: {"url": f"/v1/cases/{CASE}/legal-hold"}, expect(403, admin=OK), order=2
    ),
    ("evidence", "DELETE", "/v1/cases/{case}/legal-hold"): Route(
        lambda w: {"url": f"/v1/cases/{CASE}/legal-hold"}, expect(403, admin=OK), order=3
    ),
    ("evidence", "GET", "/v1/evidence/{evidence_id}/report"): Route(
        lambda w: {"url": f"/v1/evidence/{w.evidence_id}/report"},
        expect(403, prosecutor=OK, prosecutor_other=404, prosecutor_star=404),
    ),
    ("evidence", "POST", "/v1/exports"): Route(
        lambda w: {"json": {"evidence_ids": [w.evidence_id], "purpose": "access-control test"}},
        expect(403, prosecutor=OK, prosecutor_other=404, prosecutor_star=404),
        order=1,
    ),
    ("evidence", "POST", "/v1/evidence/{evidence_id}/downloads"): Route(
        lambda w: {"url": f"/v1/evidence/{w.evidence_id}/downloads", "json": {"purpose": "access-control test"}},
        expect(403, prosecutor=201, prosecutor_other=404, prosecutor_star=404),
        order=1,
    ),
    # the link itself is the credential; an unknown one serves nothing to anybody
    ("evidence", "GET", "/v1/downloads/{token}"): Route(
        lambda w: {"url": f"/v1/downloads/{'A' * 43}"}, expect(404), public=True
    ),
    # audit: checkpoints and keys are public; the log for auditors and admins; chains also
    # for prosecutors of the item's case
    ("audit", "GET", "/v1/log/checkpoint"): Route(lambda w: {}, expect(OK), public=True),
    ("audit", "GET", "/v1/log/key"): Route(lambda w: {}, expect(OK), public=True),
    ("audit", "GET", "/v1/log/entries"): Route(
        lambda w: {"params": {"start": 0, "limit": 1}}, expect(403, auditor=OK, admin=OK)
    ),
    ("audit", "GET", "/v1/log/proof/inclusion"): Route(
        lambda w: {"params": {"index": 0, "tree_size": 2}}, expect(403, auditor=OK, admin=OK)
    ),
    ("audit", "GET", "/v1/log/proof/consistency"): Route(
        lambda w: {"params": {"first": 1, "second": 2}}, expect(403, auditor=OK, admin=OK)
    ),
    # a checkpoint's time-stamp concerns the whole log, no case: every prosecutor may have it
    # for a court package; auditors and admins too
    ("audit", "GET", "/v1/log/timestamp"): Route(
        lambda w: {"params": {"tree_size": _checkpoint_size(w)}},
        expect(403, auditor=OK, admin=OK, prosecutor=OK, prosecutor_other=OK, prosecutor_star=OK),
    ),
    ("audit", "GET", "/v1/custody/{evidence_id}"): Route(
        lambda w: {"url": f"/v1/custody/{w.evidence_id}"},
        expect(403, auditor=OK, admin=OK, prosecutor=OK, prosecutor_other=404, prosecutor_star=404),
    ),
}
# Routes outside the OpenAPI documents on purpose, so that they are listed here too.
UNDOCUMENTED = {("intake", "OPTIONS", "/v1/uploads"), ("intake", "GET", "/"), ("intake", "GET", "/assets/{name}")}


def _bad_token(kind: str, stack: Stack) -> str | None:
    settings = stack.settings
    now = int(time.time())
    claims = {"iss": settings.token_issuer, "aud": settings.token_audience, "sub": "mallory",
              "roles": ["admin", "auditor", "prosecutor", "investigator"], "cases": [CASE],
              "iat": now, "nbf": now, "exp": now + 600}
    key = token_signing_key(settings)
    b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    if kind == "none":
        return None
    if kind == "expired":
        return jwt.encode(claims | {"exp": now - 3600, "nbf": now - 7200}, key, algorithm="EdDSA")
    if kind == "other_audience":
        return jwt.encode(claims | {"aud": "another-system"}, key, algorithm="EdDSA")
    if kind == "alg_none":
        return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    if kind == "rs256_foreign_key":  # an algorithm the services' Ed25519 key is not for
        return jwt.encode(claims, rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256")
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}"
    secret = (settings.key_folder / "token-signing.pub").read_bytes()
    sig = base64.urlsafe_b64encode(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=")
    return f"{signing_input}.{sig.decode()}"


@pytest.fixture(scope="module")
def world(tmp_path_factory, tsa: OpensslTsa) -> Iterator[World]:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    provision_namespace(NATS_URL, namespace)
    home = tmp_path_factory.mktemp("access") / "home"
    home.mkdir()
    authority = TsaServer(tsa)
    authority.start()
    stack = Stack(home=home, namespace=namespace,
                  extra_env={"CUSTODY_TSA_URL": authority.url, "CUSTODY_TSA_CA": str(tsa.root)})
    try:
        stack.start()
        tokens = {name: stack.token(*claims) for name, claims in CALLERS.items()}
        source = home.parent / "statement.txt"
        source.write_bytes(b"statement of witness 4\n")
        env = stack.env() | {"CUSTODY_TOKEN": tokens["investigator"]}
        done = subprocess.run([str(BIN / "custody"), "submit", str(source), "--case", CASE],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        evidence_id = done.stdout.strip().splitlines()[-1]
        with stack.client("audit", tokens["auditor"]) as audit:  # wait until the log has it
            for _ in range(100):
                if audit.get(f"/v1/custody/{evidence_id}").status_code == 200:
                    break
                time.sleep(0.2)
        yield World(stack, evidence_id, tokens)
    finally:
        stack.stop()
        authority.stop()
        remove_namespace(NATS_URL, namespace)


def _documented_routes(stack: Stack) -> set[tuple[str, str, str]]:
    routes = set()
    for service in ("intake", "evidence", "audit"):
        document = httpx.get(f"{stack.url(service)}/openapi.json", timeout=10).json()
        for path, operations in document["paths"].items():
            for method in operations:
                if path not in ("/healthz", "/readyz"):
                    routes.add((service, method.upper(), path))
    return routes


def test_every_route_has_an_entry(world: World) -> None:
    missing = _documented_routes(world.stack) - set(ROUTES)
    assert not missing, f"routes without an access-control entry: {sorted(missing)}"


def _call(world: World, key: tuple[str, str, str], token: str | None) -> httpx.Response:
    service, method, path = key
    spec = {"url": path} | ROUTES[key].request(world)
    headers = dict(spec.pop("headers", {}))
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(base_url=world.stack.url(service), timeout=30) as client:
        return client.request(method, headers=headers, **spec)


def test_each_caller_gets_what_the_role_table_says(world: World) -> None:
    wrong = []
    for key, route in sorted(ROUTES.items(), key=lambda kv: kv[1].order):
        for caller in CALLERS:
            response = _call(world, key, world.tokens[caller])
            if response.status_code != route.expect[caller]:
                wrong.append(f"{key} as {caller}: {response.status_code} (want {route.expect[caller]}) {response.text[:120]}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_bad_tokens_are_refused_everywhere_but_public_routes(world: World, kind: str) -> None:
    token = _bad_token(kind, world.stack)
    wrong = []
    for key, route in ROUTES.items():
        if route.order:  # side effects are exercised by the role table
            continue
        status = _call(world, key, token).status_code
        want = route.expect["auditor"] if route.public else 401
        if status != want:
            wrong.append(f"{key}: {status} (want {want})")
    assert not wrong, "\n".join(wrong)


def test_a_revoked_subject_is_refused(world: World, tmp_path: Path) -> None:
    stack = world.stack
    stack.stop()
    stack.extra_env["CUSTODY_REVOKED_SUBJECTS"] = "bob"
    try:
        stack.start()
        with stack.client("evidence", world.tokens["prosecutor"]) as evidence:
            assert evidence.get(f"/v1/evidence/{world.evidence_id}").status_code == 401
    finally:
        stack.stop()
        stack.extra_env.pop("CUSTODY_REVOKED_SUBJECTS")
        stack.start()
