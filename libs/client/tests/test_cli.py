"""The ``custody`` command: exit codes, ``custody token``, and each command's output, with the
services replaced by in-memory fakes (the stack tests run it against the real ones)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custody_client import cli
from custody_client.api import CustodyClient
from custody_client.errors import NetworkError
from custody_client.resume import ResumeState
from custody_client.tus import Backoff
from custody_client.verify import ed25519_key_id, leaf_hash
from custody_common.events import canonical

CUSTODY = Path(sys.executable).parent / "custody"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    return subprocess.run([str(CUSTODY), *args], capture_output=True, text=True, env={**base, **(env or {})}, timeout=60)


# --- usage ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["unknown-command"],
        ["token", "--sub", "alice"],
        ["token", "--sub", "alice", "--role", "superuser"],
        ["token", "--sub", "alice", "--role", "auditor", "--ttl", "-5"],
        ["submit", "file.bin"],
        ["submit", "file.bin", "--case", "C", "--captured-at", "2024-05-01T10:00:00"],
        ["submit", "file.bin", "--case", "C", "--captured-at", "yesterday"],
        ["submit", "file.bin", "--case", "C", "--lat", "91", "--lon", "0"],
        ["fetch", "not-a-uuid", "-o", "x", "--purpose", "trial"],
        ["fetch", str(uuid.uuid4()), "-o", "x"],
        ["fetch", str(uuid.uuid4()), "--purpose", "trial"],
        ["chain", "42"],
    ],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(args) == 2
    assert "usage:" in capsys.readouterr().err


def test_usage_errors_found_after_parsing_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUSTODY_LOG_KEY", raising=False)
    present = tmp_path / "f.bin"
    present.write_bytes(b"x")
    assert cli.main(["submit", str(present), "--case", "C", "--lat", "10"]) == 2
    assert "both --lat and --lon" in capsys.readouterr().err
    assert cli.main(["submit", str(tmp_path / "missing.bin"), "--case", "C"]) == 2
    assert "not a readable file" in capsys.readouterr().err
    assert cli.main(["chain", str(uuid.uuid4()), "--verify"]) == 2
    assert "--log-key" in capsys.readouterr().err
    assert cli.main(["chain", str(uuid.uuid4()), "--verify", "--log-key", "garbage"]) == 2
    capsys.readouterr()
    binary = tmp_path / "log-key.bin"
    binary.write_bytes(b"\xff\xfe not a key")
    assert cli.main(["chain", str(uuid.uuid4()), "--verify", "--log-key", str(binary)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_the_console_script_exits_2_on_usage_and_0_on_help() -> None:
    assert _run("fetch", "not-a-uuid", "-o", "x", "--purpose", "p").returncode == 2
    helped = _run("--help")
    assert helped.returncode == 0 and "Exit codes" in helped.stdout


def test_fetching_loads_neither_the_settings_model_nor_httpx_s_own_command_line() -> None:
    # Start-up is paid on every download: pydantic and httpx's CLI (rich, click) took most of it.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, custody_client.cli; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert not {"pydantic", "pydantic_settings", "rich", "click", "custody_common.settings"} & set(loaded)


def test_invalid_settings_exit_2_for_the_commands_that_read_them(tmp_path: Path) -> None:
    result = _run("token", "--sub", "kim", "--role", "auditor", env={"CUSTODY_HOME": str(tmp_path), "CUSTODY_TSA_URL": "ftp://x"})
    assert result.returncode == 2
    assert "the CUSTODY_* settings are not valid" in result.stderr


def test_the_cli_knows_the_roles_auth_knows() -> None:
    from custody_common.auth import ROLES

    assert set(cli.ROLES) == ROLES


# --- custody token ----------------------------------------------------------------------------


def test_token_prints_a_token_with_the_claims_asked_for(tmp_path: Path) -> None:
    result = _run(
        "token", "--sub", "prosecutor.kim", "--role", "prosecutor", "--role", "auditor", "--case", "UA-1", "UA-2",
        "--case", "UA-1", "--ttl", "600",
        env={"CUSTODY_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    token = result.stdout.strip()
    public = (tmp_path / "keys" / "token-signing.pub").read_bytes()
    claims = jwt.decode(token, public, algorithms=["EdDSA"], audience="custody", issuer="custody-local")
    assert claims["sub"] == "prosecutor.kim"
    assert claims["roles"] == ["prosecutor", "auditor"]
    assert claims["cases"] == ["UA-1", "UA-2"]
    assert claims["exp"] - claims["iat"] == 600

    from custody_common.auth import TokenVerifier
    from custody_common.settings import Settings

    principal = TokenVerifier(Settings(home=tmp_path)).verify(token)
    assert principal.sub == "prosecutor.kim" and principal.sees_case("UA-2", "prosecutor")


def test_missing_token_exits_3(tmp_path: Path) -> None:
    evidence_id = str(uuid.uuid4())
    result = _run("chain", evidence_id, env={"CUSTODY_AUDIT_URL": "http://127.0.0.1:9"})
    assert result.returncode == 3
    assert "CUSTODY_TOKEN" in result.stderr


# --- commands against fakes -------------------------------------------------------------------


@pytest.fixture
def use_fakes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, router):
    """Point the command at fake services: ``use_fakes(intake=..., evidence=..., audit=...)``."""

    def install(**servers: Any) -> None:
        def client() -> CustodyClient:
            return CustodyClient(
                "http://intake", "http://evidence", "http://audit", "t0ken",
                resume=ResumeState(tmp_path / "state"), chunk_size=64 * 1024, backoff=Backoff(attempts=3),
                transport=router(**servers), sleep=lambda s: None,
            )

        monkeypatch.setattr(cli, "_client", client)

    return install


def test_submit_prints_the_evidence_id_last_and_waits_for_the_seal(
    tmp_path: Path, tus_server, evidence_server, use_fakes, capsys
) -> None:
    path = tmp_path / "video.mp4"
    path.write_bytes(os.urandom(300_000))
    evidence = evidence_server(b"")
    evidence.statuses = [(404, None), (200, {"status": "received"}), (200, {"status": "sealed"})]

    def status_for_any_id(request: httpx.Request) -> httpx.Response:
        evidence.evidence_id = request.url.path.split("/")[3]
        return evidence(request)

    use_fakes(intake=tus_server, evidence=status_for_any_id)
    assert cli.main(["submit", str(path), "--case", "UA-7", "--title", "Convoy"]) == 0
    out, err = capsys.readouterr()
    last = out.strip().splitlines()[-1]
    assert str(uuid.UUID(last)) == last and last in tus_server.uploads
    assert "sealed" in err and "uploading" in err
    assert "\r" not in err, "stderr is not a terminal: plain lines only"


def test_a_rejected_submission_exits_1_and_still_names_the_item(tmp_path: Path, tus_server, use_fakes, capsys) -> None:
    path = tmp_path / "doc.pdf"
    path.write_bytes(b"%PDF-1.7")
    use_fakes(
        intake=tus_server,
        evidence=lambda r: httpx.Response(200, json={"evidence_id": r.url.path.split("/")[3], "status": "rejected",
                                                     "reason": "the bytes do not match the declared SHA-256"}),
    )
    assert cli.main(["submit", str(path), "--case", "C"]) == 1
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1] in tus_server.uploads
    assert "do not match the declared SHA-256" in err


def test_submit_no_wait_does_not_ask_evidence(tmp_path: Path, tus_server, use_fakes, capsys) -> None:
    path = tmp_path / "a.txt"
    path.write_text("statement")
    use_fakes(intake=tus_server)
    assert cli.main(["submit", str(path), "--case", "C", "--no-wait"]) == 0
    assert capsys.readouterr().out.strip() in tus_server.uploads


def test_a_network_outage_exits_3(tmp_path: Path, use_fakes, capsys) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    path = tmp_path / "a.txt"
    path.write_text("statement")
    use_fakes(intake=refuse)
    assert cli.main(["submit", str(path), "--case", "C"]) == 3
    assert "run the same command again" in capsys.readouterr().err


def test_fetch_prints_the_checked_digest_and_exits_1_on_mismatch(tmp_path: Path, evidence_server, use_fakes, capsys) -> None:
    content = os.urandom(10_000)
    server = evidence_server(content)
    use_fakes(evidence=server)
    target = tmp_path / "copy.bin"
    assert cli.main(["fetch", server.evidence_id, "-o", str(target), "--purpose", "expert examination"]) == 0
    assert capsys.readouterr().out == f"{hashlib.sha256(content).hexdigest()}  {target}\n"

    server.announced_digest = hashlib.sha256(b"other").digest()
    assert cli.main(["fetch", server.evidence_id, "-o", str(tmp_path / "again.bin"), "--purpose", "trial"]) == 1
    assert "VERIFICATION FAILED" in capsys.readouterr().err
    assert not (tmp_path / "again.bin").exists() and not list(tmp_path.glob("again.bin*.part"))


def test_fetch_denied_exits_3(tmp_path: Path, use_fakes, capsys) -> None:
    use_fakes(evidence=lambda r: httpx.Response(403, json={"detail": "you are not assigned case UA-7"}))
    assert cli.main(["fetch", str(uuid.uuid4()), "-o", str(tmp_path / "x"), "--purpose", "trial"]) == 3
    assert "you are not assigned case UA-7" in capsys.readouterr().err


# --- custody chain ----------------------------------------------------------------------------

ORIGIN = "custody.test/cli"


def _signed_single_event_log(key: Ed25519PrivateKey, evidence_id: str) -> tuple[dict[str, Any], str]:
    entry = {
        "event": {
            "type": "custody-event/v1",
            "id": str(uuid.uuid4()),
            "action": "submitted",
            "evidence_id": evidence_id,
            "case": "C",
            "time": "2024-05-01T10:00:00.000Z",
            "actor": {"sub": "alice", "roles": ["investigator"]},
            "service": "intake",
            "sha256": "ab" * 32,
            "sig": "c2ln",
        },
        "item_seq": 1,
        "prev_leaf": None,
        "logged_at": "2024-05-01T10:00:01.000Z",
    }
    leaf = canonical(entry)
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = ed25519_key_id(ORIGIN, raw)
    body = f"{ORIGIN}\n1\n{base64.b64encode(leaf_hash(leaf)).decode()}\n"
    note = f"{body}\n\u2014 {ORIGIN} {base64.b64encode(key_id + key.sign(body.encode())).decode()}\n"
    vkey = f"{ORIGIN}+{key_id.hex()}+{base64.b64encode(bytes([1]) + raw).decode()}"
    event = {"index": 0, "leaf": base64.b64encode(leaf).decode(), "entry": entry, "inclusion": []}
    custody = {"checkpoint": note, "events": [event]}
    return custody, vkey


def test_chain_lists_one_event_per_line(use_fakes, capsys) -> None:
    evidence_id = str(uuid.uuid4())
    custody, _ = _signed_single_event_log(Ed25519PrivateKey.generate(), evidence_id)
    use_fakes(audit=lambda r: httpx.Response(200, json=custody))
    assert cli.main(["chain", evidence_id]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.split() == ["0", "2024-05-01T10:00:00.000Z", "submitted", "alice[investigator]", "intake", "ab" * 32]
    assert cli.main(["chain", evidence_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == custody


def test_chain_verify_takes_the_key_from_an_argument_a_file_or_the_environment(
    tmp_path: Path, use_fakes, capsys, monkeypatch
) -> None:
    evidence_id = str(uuid.uuid4())
    custody, vkey = _signed_single_event_log(Ed25519PrivateKey.generate(), evidence_id)
    use_fakes(audit=lambda r: httpx.Response(200, json=custody))
    assert cli.main(["chain", evidence_id, "--verify", "--log-key", vkey]) == 0
    assert "verified: 1 custody events" in capsys.readouterr().err
    key_file = tmp_path / "log.vkey"
    key_file.write_text(vkey + "\n")
    assert cli.main(["chain", evidence_id, "--verify", "--log-key", str(key_file)]) == 0
    monkeypatch.setenv("CUSTODY_LOG_KEY", vkey)
    assert cli.main(["chain", evidence_id, "--verify"]) == 0


def test_chain_verify_exits_1_naming_the_failure(use_fakes, capsys) -> None:
    evidence_id = str(uuid.uuid4())
    custody, vkey = _signed_single_event_log(Ed25519PrivateKey.generate(), evidence_id)
    _, other_key = _signed_single_event_log(Ed25519PrivateKey.generate(), evidence_id)
    use_fakes(audit=lambda r: httpx.Response(200, json=custody))
    assert cli.main(["chain", evidence_id, "--verify", "--log-key", other_key]) == 1
    out, err = capsys.readouterr()
    assert "VERIFICATION FAILED" in err and "not signed by the pinned log key" in err
    assert out == "", "nothing unverified is printed"

    forged = json.loads(json.dumps(custody))
    forged["events"][0]["entry"]["event"]["action"] = "hold_released"
    forged["events"][0]["leaf"] = base64.b64encode(canonical(forged["events"][0]["entry"])).decode()
    use_fakes(audit=lambda r: httpx.Response(200, json=forged))
    assert cli.main(["chain", evidence_id, "--verify", "--log-key", vkey]) == 1
    assert "inclusion proof" in capsys.readouterr().err


def test_chain_verify_says_the_events_shown_have_no_gap_but_later_ones_could_be_left_out(use_fakes, capsys) -> None:
    evidence_id = str(uuid.uuid4())
    custody, vkey = _signed_single_event_log(Ed25519PrivateKey.generate(), evidence_id)
    use_fakes(audit=lambda r: httpx.Response(200, json=custody))
    assert cli.main(["chain", evidence_id, "--verify", "--log-key", vkey]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "no event of the item is missing up to the last one shown (log index 0)" in said
    assert "This does not show that no later event exists" in said
    assert "within checkpoint 1" in said


@pytest.mark.parametrize(
    "body",
    [b"<html>Bad gateway</html>", b"[1, 2]", b'{"events": [1]}', b'{"events": "none"}', b"[" * 100_000 + b"]" * 100_000],
    ids=["html", "list", "events-not-objects", "events-not-a-list", "nested-too-deep"],
)
@pytest.mark.parametrize("verify", [False, True], ids=["shown", "verified"])
def test_chain_exits_3_when_the_answer_is_not_a_custody_chain(use_fakes, capsys, body: bytes, verify: bool) -> None:
    evidence_id = str(uuid.uuid4())
    _, vkey = _signed_single_event_log(Ed25519PrivateKey.generate(), evidence_id)
    use_fakes(audit=lambda r: httpx.Response(200, content=body, headers={"Content-Type": "application/json"}))
    assert cli.main(["chain", evidence_id, *(["--verify", "--log-key", vkey] if verify else [])]) == 3
    out, err = capsys.readouterr()
    assert out == "" and "custody chain" in err and evidence_id in err and "CUSTODY_AUDIT_URL" in err


def test_chain_shows_events_of_any_shape_escaping_what_cannot_be_printed(use_fakes, capsys) -> None:
    evidence_id = str(uuid.uuid4())
    odd = {"index": {}, "entry": {"event": {"action": ["sealed"], "actor": {"sub": "\ud800", "roles": [1]}, "service": 5}}}
    custody = {"checkpoint": "", "events": [odd, {"entry": "not an object"}]}
    body = json.dumps(custody).encode()  # ASCII: the lone surrogate travels as the JSON escape \ud800
    use_fakes(audit=lambda r: httpx.Response(200, content=body, headers={"Content-Type": "application/json"}))
    assert cli.main(["chain", evidence_id]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first.split() == ["{}", "-", "['sealed']", "\\ud800[1]", "5", "-"]
    assert second.split() == ["?", "-", "-", "-", "-", "-"]
    assert cli.main(["chain", evidence_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == custody


@pytest.mark.parametrize("body", [b"<html>Bad gateway</html>", b"[1, 2]"], ids=["html", "list"])
def test_an_evidence_answer_that_is_no_json_object_names_the_setting_to_check(router, tmp_path: Path, body: bytes) -> None:
    client = CustodyClient(
        "http://intake", "http://evidence", "http://audit", "t0ken", resume=ResumeState(tmp_path / "state"),
        transport=router(evidence=lambda r: httpx.Response(200, content=body)), sleep=lambda s: None,
    )
    evidence_id = str(uuid.uuid4())
    for ask in (client.status, client.item):
        with pytest.raises(NetworkError, match="is not a JSON object; check CUSTODY_EVIDENCE_URL"):
            ask(evidence_id)
