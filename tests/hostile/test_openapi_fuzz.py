"""Schemathesis against each service's own OpenAPI document, as each role with a valid token:
no answer may be a 5xx, no request may go unanswered, and every service is still up after.

The documents are fuzzed as the services publish them, with what they cannot say added here:

- intake reads the tus headers (``Tus-Resumable``, ``Upload-Length``, ``Upload-Offset``,
  ``Upload-Metadata``, ``Upload-Checksum``) and the ``application/offset+octet-stream`` body by
  hand, so its document declares none of them; they are described below, or every tus request
  would stop at 412 and the parsers behind would never be reached;
- every service reads ``X-Request-ID``;
- ids and cases that exist (sealed, rejected, still uploading, terminated items of the case the
  tokens are assigned) are offered beside random ones, or the fuzzer would meet only 404s.

Every 5xx counts, ``/readyz``'s 503 included: nothing the services depend on is down here.
Nothing is excluded. What a fuzzer cannot do to a tus PATCH is stream it: it always sends a whole
body whose Content-Length is true, at full speed. Bodies longer than they claim, bytes dripped
one a second and PATCHes racing each other are in ``test_intake_abuse.py``.

``CUSTODY_TEST_FUZZ_SEED`` replays a run's examples (each failure message names its seed);
``CUSTODY_TEST_FUZZ_DETAIL=1`` prints the answers per operation and status.
"""

from __future__ import annotations

import base64
import collections
import copy
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.engine import events, from_schema

from tests.hostile.conftest import CASE, ROLES
from tests.hostile.outcome import custody_actions, log_excerpt, still_up, wait_for_outcome
from tests.hostile.wire import OFFSET_STREAM, TUS, create_upload, encode_metadata, patch, submission_metadata
from tests.support.stack import SERVICES, Stack

MAX_EXAMPLES = 20
"""Of the fuzzing phase, per operation; with the schema's examples and its coverage cases that
makes 40 to 90 requests per operation and role, some 7000 in all (12 runs)."""
RUN_BUDGET_SECONDS = 60
"""Wall-clock bound of one (service, role) run; past it the run is stopped, and an operation it
never reached fails the test."""
REQUEST_TIMEOUT_SECONDS = 30
PATCH_BODY_LIMIT = 16 * 1024
MAX_UPLOAD_SIZE = 64 * 1024**3
"""Intake's default limit (Tus-Max-Size): positive examples stay within it."""
CHAIN_WAIT_SECONDS = 60
"""How long audit may take to log the known items (seconds, in all)."""
KNOWN_UPLOAD_OFFSET = 1000
"""Bytes already sent to the uploads left half done."""

# The media type tus gives PATCH bodies; a fuzzer needs to be told it is raw bytes.
schemathesis.openapi.media_type(OFFSET_STREAM, st.binary(max_size=PATCH_BODY_LIMIT))


@dataclass(frozen=True)
class KnownItems:
    """Items in every state, made before the fuzzing so that random requests can find them."""

    sealed: list[str]
    rejected: list[str]
    uploading: list[str]
    terminated: list[str]

    @property
    def ids(self) -> list[str]:
        return self.sealed + self.rejected + self.uploading + self.terminated


@dataclass
class Tally:
    """What one fuzzing run sent and got back."""

    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    engine_errors: list[str] = field(default_factory=list)
    stopped_at_budget: bool = False

    def record(self, event: events.ScenarioFinished) -> None:
        recorder = event.recorder
        for case_id, interaction in recorder.interactions.items():
            node = recorder.cases.get(case_id)
            label = node.value.operation.label if node is not None else recorder.label
            self.requests[label] += 1
            request = interaction.request
            if interaction.response is None:
                self.unanswered.append(f"{label}: {request.method} {request.uri} got no answer")
                continue
            status = interaction.response.status_code
            self.statuses[(label, status)] += 1
            if status >= 500:
                self.server_errors.append(_described(label, request, interaction.response))


def _described(label: str, request: Any, response: Any) -> str:
    headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
    text = (response.content or b"")[:300].decode("utf-8", "replace")
    return (
        f"{label}: {request.method} {request.uri} headers={headers} body={request.body_size or 0} bytes "
        f"-> {response.status_code} {text!r}"
    )


@pytest.fixture(scope="module")
def known_items(running_stack: Stack, tokens: dict[str, str]) -> KnownItems:
    """Two sealed items, one rejected, four uploads partly sent and one terminated, all of CASE."""
    sealed, rejected, uploading, terminated = [], [], [], []
    with running_stack.client("intake", tokens["investigator"]) as intake:
        for size in (1, 70_000):
            content = os.urandom(size)
            upload = create_upload(intake, CASE, content)
            assert patch(intake, upload, 0, content).status_code == 204
            sealed.append(upload.rsplit("/", 1)[1])
        content = os.urandom(5000)
        wrong = encode_metadata({"case": CASE, "filename": "scan.pdf", "sha256": "0" * 64})
        created = intake.post("/v1/uploads", headers={**TUS, "Upload-Length": "5000", "Upload-Metadata": wrong})
        upload = httpx.URL(created.headers["Location"]).path
        assert patch(intake, upload, 0, content).status_code == 204
        rejected.append(upload.rsplit("/", 1)[1])
        for _ in range(4):
            content = os.urandom(100_000)
            upload = create_upload(intake, CASE, content)
            assert patch(intake, upload, 0, content[:KNOWN_UPLOAD_OFFSET]).status_code == 204
            uploading.append(upload.rsplit("/", 1)[1])
        upload = create_upload(intake, CASE, b"abc")
        assert intake.delete(upload, headers=TUS).status_code == 204
        terminated.append(upload.rsplit("/", 1)[1])
    for evidence_id in sealed:
        assert wait_for_outcome(running_stack, tokens["prosecutor"], evidence_id)["status"] == "sealed"
    assert wait_for_outcome(running_stack, tokens["prosecutor"], rejected[0])["status"] == "rejected"
    return KnownItems(sealed, rejected, uploading, terminated)


@pytest.fixture(scope="module")
def unlogged_items(running_stack: Stack, tokens: dict[str, str], known_items: KnownItems) -> list[str]:
    """Waits (once per module) until the sealed known items' chains are in audit's log, so that
    audit is fuzzed with ids that lead somewhere; returns why any is missing. Audit is fuzzed
    either way: the test below fails on its own if an item never reached the log."""
    missing = []
    deadline = time.monotonic() + CHAIN_WAIT_SECONDS
    for evidence_id in known_items.sealed:
        try:
            patience = max(1.0, deadline - time.monotonic())
            custody_actions(running_stack, tokens["auditor"], evidence_id, until="sealed", timeout=patience)
        except AssertionError as exc:
            missing.append(str(exc))
    return missing


def test_known_items_reached_the_custody_log(unlogged_items: list[str]) -> None:
    assert not unlogged_items, "\n".join(unlogged_items)


def described_for_fuzzing(service: str, document: dict[str, Any], known: KnownItems) -> dict[str, Any]:
    """``document`` with the headers, bodies and known values a service reads but does not declare."""
    described = copy.deepcopy(document)
    for path, operations in described["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "head", "post", "put", "patch", "delete"):
                continue
            parameters = operation.setdefault("parameters", [])
            for parameter in parameters:
                if parameter["name"] == "evidence_id":
                    # uploads still open get a branch of their own: only they take a PATCH
                    offered = [{"enum": known.uploading}, {"enum": known.ids}, parameter.get("schema", {})]
                    parameter["schema"] = {"anyOf": offered}
                elif parameter["name"] == "case":
                    parameter["schema"] = {"anyOf": [{"enum": [CASE]}, parameter.get("schema", {})]}
            declared = {p["name"].lower() for p in parameters}
            if "x-request-id" not in declared:
                parameters.append(_header("X-Request-ID", {"type": "string"}))
            if service == "intake" and path.startswith("/v1/uploads"):
                parameters.extend(_tus_headers(method))
                if method in ("post", "patch"):
                    operation["requestBody"] = {
                        "required": method == "patch",
                        "content": {OFFSET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
                    }
    return described


def _header(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required, "schema": schema}


def _tus_headers(method: str) -> list[dict[str, Any]]:
    headers = [_header("Tus-Resumable", {"type": "string", "enum": ["1.0.0"]}, required=True)]
    if method == "post":
        valid = [
            submission_metadata(CASE, b"fuzz"),
            encode_metadata(
                {
                    "case": CASE,
                    "filename": "testimony.mp4",
                    "sha256": "ab" * 32,
                    "title": "Testimony 7",
                    "captured_at": "2024-05-01T10:00:00Z",
                    "lat": "48.5",
                    "lon": "35.1",
                    "notes": "recorded at the shelter",
                }
            ),
        ]
        headers += [
            _header("Upload-Length", {"type": "integer", "minimum": 0, "maximum": MAX_UPLOAD_SIZE}, required=True),
            _header("Upload-Metadata", {"anyOf": [{"enum": valid}, {"type": "string"}]}, required=True),
            _header("Upload-Defer-Length", {"type": "string"}),
        ]
    if method == "patch":
        offsets = {"anyOf": [{"enum": [0, KNOWN_UPLOAD_OFFSET]}, {"type": "integer", "minimum": 0}]}
        headers.append(_header("Upload-Offset", offsets, required=True))
    if method in ("post", "patch"):
        well_formed = f"sha256 {base64.b64encode(bytes(32)).decode()}"
        any_form = {"type": "string", "pattern": "^(sha256|sha1) [A-Za-z0-9+/=]*$"}
        checksums = {"anyOf": [{"enum": [well_formed]}, any_form]}
        headers.append(_header("Upload-Checksum", checksums))
    return headers


def fuzz(stack: Stack, service: str, token: str, known: KnownItems, seed: int) -> Tally:
    """One bounded schemathesis run against ``service`` with ``token``."""
    document = httpx.get(f"{stack.url(service)}/openapi.json", timeout=30).json()
    config = schemathesis.Config.from_dict(
        {
            "seed": seed,
            "headers": {"Authorization": f"Bearer {token}"},
            # one worker: Python 3.11's compile() is not thread-safe (gh-106905) and the fuzzer compiles
            "workers": 1,
            "request-timeout": REQUEST_TIMEOUT_SECONDS,
            "cache": {"enabled": False},
            "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "database": "none"},
            "checks": {"enabled": False, "not_a_server_error": {"enabled": True}},
        }
    )
    schema = schemathesis.openapi.from_dict(described_for_fuzzing(service, document, known), config=config)
    schema.config.update(base_url=stack.url(service))
    tally = Tally()
    stream = from_schema(schema).execute()
    deadline = time.monotonic() + RUN_BUDGET_SECONDS
    for event in stream:
        if isinstance(event, events.ScenarioFinished):
            tally.record(event)
        elif isinstance(event, events.NonFatalError):
            tally.engine_errors.append(f"{event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            tally.engine_errors.append(f"fatal: {event.exception!r}")
        if time.monotonic() > deadline and not tally.stopped_at_budget:
            tally.stopped_at_budget = True
            stream.stop()
    return tally


def _operations(document: dict[str, Any]) -> set[str]:
    return {
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("get", "head", "post", "put", "patch", "delete")
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("service", SERVICES)
def test_no_server_error_and_still_up(
    request: pytest.FixtureRequest,
    running_stack: Stack,
    tokens: dict[str, str],
    known_items: KnownItems,
    service: str,
    role: str,
) -> None:
    if service == "audit":
        request.getfixturevalue("unlogged_items")
    seed = int(os.environ.get("CUSTODY_TEST_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    tally = fuzz(running_stack, service, tokens[role], known_items, seed)
    replay = f"(seed {seed}: CUSTODY_TEST_FUZZ_SEED={seed} replays it)"

    assert not tally.server_errors, (
        f"{service} answered {len(tally.server_errors)} request(s) as {role} with a 5xx {replay}:\n"
        + "\n".join(tally.server_errors[:10])
        + f"\n--- {service} log ---\n{log_excerpt(running_stack, service)}"
    )
    assert not tally.unanswered, f"{service} left requests unanswered {replay}:\n" + "\n".join(tally.unanswered[:10])
    assert not tally.engine_errors, f"the fuzzer could not test {service} {replay}:\n" + "\n".join(tally.engine_errors)
    document = httpx.get(f"{running_stack.url(service)}/openapi.json", timeout=30).json()
    untested = _operations(document) - set(tally.requests)
    assert not untested, f"never exercised {sorted(untested)} {replay}; sent {dict(tally.requests)}"
    if OWNERS[service] == role:
        served = {label for (label, status) in tally.statuses if 200 <= status < 300 and _needs_token(label)}
        assert served, f"as {role}, no request to {service} got past the gates {replay}: {dict(tally.statuses)}"
    assert still_up(running_stack) == dict.fromkeys(running_stack.processes, "ok")

    answered = collections.Counter()
    for (label, status), count in sorted(tally.statuses.items(), key=lambda item: (item[0][1], item[0][0])):
        answered[status] += count
        if os.environ.get("CUSTODY_TEST_FUZZ_DETAIL"):
            print(f"  {label} -> {status}: {count}")
    budget = " (stopped at the time budget)" if tally.stopped_at_budget else ""
    print(f"\nfuzz {service} as {role}: {tally.requests.total()} requests, statuses {dict(answered)}{budget} {replay}")


OWNERS = {"intake": "investigator", "evidence": "prosecutor", "audit": "auditor"}
"""The role each service mainly serves: fuzzing as it must reach past authentication and routing."""


def _needs_token(label: str) -> bool:
    path = label.split(" ", 1)[1]
    return path.startswith("/v1/") and path not in ("/v1/log/checkpoint", "/v1/log/key")


EXTREMES = [
    str(2**63),
    str(-(2**63) - 1),
    str(2**64),
    "1" + "0" * 400,
    "-1",
    "NaN",
    "1e999",
    "",
    "\u00fc\u00df\u2603",
    "a" * 10_000,
    "../../../etc/passwd",
    "' OR '1'='1",
    "bytes=0-" + "9" * 30,
    "\x00",
]
"""Values every parameter is sent in turn: past 64 bits, not numbers, empty, huge, hostile."""


def _plain(parameter: dict[str, Any], known: KnownItems) -> str:
    """An unremarkable value for a required parameter that is not the one under attack."""
    name = parameter["name"].lower()
    schema = parameter.get("schema", {})
    kinds = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
    if name == "evidence_id":
        return known.sealed[-1]
    if name == "case":
        return CASE
    if name == "tus-resumable":
        return "1.0.0"
    if name == "upload-metadata":
        return submission_metadata(CASE, b"x")
    if "integer" in kinds or name.startswith("upload-"):
        return "1"
    return "review"


def _header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable() and value.strip() == value


@pytest.mark.parametrize("service", SERVICES)
def test_extreme_values_in_every_parameter(
    request: pytest.FixtureRequest, running_stack: Stack, known_items: KnownItems, service: str
) -> None:
    """Every declared parameter of every operation, each extreme value in turn (the other required
    parameters plain, the optional ones left out), as a caller of every role: a deterministic
    complement to the random runs above."""
    if service == "audit":
        request.getfixturevalue("unlogged_items")
    token = running_stack.token("investigator-1", list(ROLES), [CASE])
    published = httpx.get(f"{running_stack.url(service)}/openapi.json", timeout=30).json()
    document = described_for_fuzzing(service, published, known_items)
    server_errors, sent = [], 0
    with httpx.Client(base_url=running_stack.url(service), timeout=REQUEST_TIMEOUT_SECONDS) as http:
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                parameters = [p for p in operation.get("parameters", []) if p["in"] in ("path", "query", "header")]
                for target in parameters:
                    for value in EXTREMES:
                        if target["in"] == "header" and not _header_safe(value):
                            continue
                        url, query, headers = path, {}, {"Authorization": f"Bearer {token}"}
                        for parameter in parameters:
                            if parameter is not target and not parameter.get("required"):
                                continue
                            given = value if parameter is target else _plain(parameter, known_items)
                            if parameter["in"] == "path":
                                url = url.replace("{" + parameter["name"] + "}", quote(given, safe="") or "%20")
                            elif parameter["in"] == "query":
                                query[parameter["name"]] = given
                            else:
                                headers[parameter["name"]] = given
                        sent += 1
                        attack = f"{method.upper()} {path} with {target['in']} {target['name']}={value[:40]!r}"
                        try:
                            answer = http.request(method.upper(), url, params=query, headers=headers)
                        except httpx.TransportError as exc:
                            server_errors.append(f"{attack} -> no answer ({exc!r})")
                            continue
                        if answer.status_code >= 500:
                            server_errors.append(f"{attack} -> {answer.status_code} {answer.text[:200]!r}")
    log_tail = log_excerpt(running_stack, service)
    assert not server_errors, (
        f"{service} answered {len(server_errors)} of {sent} requests with a 5xx or not at all:\n"
        + "\n".join(server_errors[:20])
        + f"\n--- {service} log ---\n{log_tail}"
    )
    assert still_up(running_stack) == dict.fromkeys(running_stack.processes, "ok")
    print(f"\nextreme values, {service}: {sent} requests, no 5xx")
