"""Court export packages, for real: a case of several items (one rejected) exported with
`custody export` from the running stack, checked offline with `custody verify`, then broken in
each way a forger or an accident could break it; the report read back as text; the export of
a 1 GiB item with the evidence service's memory measured."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import resource
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pypdf import PdfReader

from tests.support.nats import NATS_URL, provision_namespace, remove_namespace
from tests.support.stack import BIN, Stack
from tests.support.tsa import OpensslTsa, TsaServer
from tests.support.submissions import submit_with_wrong_hash, wait_status

CASE = "UA-2024-017"
MIB = 1024 * 1024
EXPORT_PURPOSE = "Disclosure to the defence, trial of the camp's commander, hearing 2024-117"
FETCH_PURPOSE = "Preparing the witness hearing of 12 May"


def custody(stack: Stack, token: str | None, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run the real `custody` command against the stack."""
    env = stack.env() | ({"CUSTODY_TOKEN": token} if token else {})
    env.pop("CUSTODY_LOG_KEY", None)
    return subprocess.run([str(BIN / "custody"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def _write(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        left = size
        while left > 0:
            block = os.urandom(min(MIB, left))
            f.write(block)
            left -= len(block)
    return path


@dataclass
class Court:
    """A stack with a case exported once."""

    stack: Stack
    folder: Path
    prosecutor: str
    auditor: str
    sources: dict[str, Path]
    """{evidence id: the file submitted}"""
    rejected_id: str
    package: Path
    log_key: str


def _start(folder: Path) -> tuple[Stack, str]:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    provision_namespace(NATS_URL, namespace)
    home = folder / "home"
    home.mkdir(parents=True)
    stack = Stack(home=home, namespace=namespace)
    stack.start()
    return stack, namespace


@pytest.fixture(scope="module")
def court(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Court]:
    folder = tmp_path_factory.mktemp("court")
    stack, namespace = _start(folder)
    try:
        investigator = stack.token("olena", ["investigator"], [CASE])
        prosecutor = stack.token("petra", ["prosecutor"], [CASE])
        auditor = stack.token("carol", ["auditor"], ["*"])
        sources: dict[str, Path] = {}
        for n, (name, size, title) in enumerate([
            ("photo.jpg", 300_000, "Bus at the checkpoint"),
            ("photo.jpg", 5, "Second photo, same name"),
            ("Свідчення свідка.pdf", 2 * MIB + 17, "Свідчення про депортацію дітей"),
        ]):
            (folder / "in" / str(n)).mkdir(parents=True)
            source = _write(folder / "in" / str(n) / name, size)
            done = custody(stack, investigator, "submit", str(source), "--case", CASE, "--title", title)
            assert done.returncode == 0, done.stderr
            sources[done.stdout.strip().splitlines()[-1]] = source
        first = next(iter(sources))
        fetched = custody(
            stack, prosecutor, "fetch", first, "-o", str(folder / "fetched.bin"), "--purpose", FETCH_PURPOSE
        )
        assert fetched.returncode == 0, fetched.stderr
        rejected_id = submit_with_wrong_hash(stack, investigator, CASE, os.urandom(1000), "tampered.bin")
        wait_status(stack, prosecutor, rejected_id, "rejected")

        package = folder / "package.zip"
        exported = custody(stack, prosecutor, "export", "--case", CASE, "--purpose", EXPORT_PURPOSE, "-o", str(package))
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout.strip().splitlines()[-1] == str(package)
        assert "exporting" in exported.stderr and "custody verify" in exported.stderr
        log_key = httpx.get(f"{stack.url('audit')}/v1/log/key").text.strip()
        yield Court(stack, folder, prosecutor, auditor, sources, rejected_id, package, log_key)
    finally:
        stack.stop()
        remove_namespace(NATS_URL, namespace)


def _entries(package: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(package) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rezip(entries: dict[str, bytes], path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return path


# --- a whole package ---------------------------------------------------------------------------


def test_the_package_holds_what_was_sealed_and_verifies(court: Court) -> None:
    entries = _entries(court.package)
    manifest = json.loads(entries["manifest.json"])
    ids = sorted(court.sources)
    assert [item["evidence_id"] for item in manifest["items"]] == ids
    assert [item["path"] for item in manifest["items"]] == [
        "files/photo.jpg", "files/photo (2).jpg", "files/Свідчення свідка.pdf"
    ]
    for item in manifest["items"]:
        assert entries[item["path"]] == court.sources[item["evidence_id"]].read_bytes()
        assert item["sha256"] == hashlib.sha256(entries[item["path"]]).hexdigest()
    assert manifest["exported_by"] == {"sub": "petra", "roles": ["prosecutor"]}
    assert manifest["purpose"]["text"] == EXPORT_PURPOSE
    [excluded] = manifest["excluded"]
    assert excluded["evidence_id"] == court.rejected_id and excluded["reason"].startswith("rejected: hash_mismatch")
    assert f"custody/{court.rejected_id}.json" not in entries
    assert entries["log-key.txt"].decode().strip() == court.log_key
    assert entries["report.pdf"].startswith(b"%PDF-") and b"How to verify" in entries["VERIFY.md"]

    # the manifest is signed by the evidence service's key, as openssl checks it
    folder = court.folder / "by-hand"
    folder.mkdir(exist_ok=True)
    for name in ("manifest.json", "manifest.sig", "manifest.pub.pem"):
        (folder / name).write_bytes(entries[name])
    checked = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "manifest.pub.pem", "-rawin", "-in", "manifest.json",
         "-sigfile", "manifest.sig"],
        cwd=folder, capture_output=True, text=True,
    )
    assert checked.returncode == 0 and "Signature Verified Successfully" in checked.stdout, checked.stderr
    # ... and that key is the one the evidence service announced in the log
    manifest_key = serialization.load_pem_public_key(entries["manifest.pub.pem"]).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    with court.stack.client("audit", court.auditor) as audit:
        logged = audit.get("/v1/log/entries", params={"start": 0, "limit": 1000}).json()["entries"]
    announced = [
        json.loads(base64.b64decode(e["leaf"]))["event"]
        for e in logged
        if json.loads(base64.b64decode(e["leaf"]))["event"]["action"] == "key_announced"
    ]
    [by_evidence] = [a for a in announced if a["service"] == "evidence"]
    assert base64.b64decode(by_evidence["details"]["public_key"]) == manifest_key
    assert by_evidence["details"]["key_id"] == manifest["evidence_service_key"]["key_id"]

    # each chain is the audit service's own answer against the package's checkpoint
    note = entries["checkpoint.txt"].decode()
    size = int(note.split("\n")[1])
    with court.stack.client("audit", court.auditor) as audit:
        for evidence_id in ids:
            served = audit.get(f"/v1/custody/{evidence_id}", params={"tree_size": size}).json()
            assert json.loads(entries[f"custody/{evidence_id}.json"]) == served
            actions = [e["entry"]["event"]["action"] for e in served["events"]]
            assert actions[-1] == "exported" and actions[:3] == ["submitted", "received", "sealed"]
            exported = served["events"][-1]["entry"]["event"]
            assert exported["details"]["package_id"] == manifest["package_id"]
            assert exported["details"]["manifest_sha256"] == hashlib.sha256(entries["manifest.json"]).hexdigest()
            assert EXPORT_PURPOSE not in json.dumps(served)

    verified = custody(court.stack, None, "verify", str(court.package), "--log-key", court.log_key)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for evidence_id in ids:
        assert f"item {evidence_id}" in verified.stdout
    assert verified.stdout.count("VERIFIED") == len(ids) + 1
    assert f"not exported: {court.rejected_id}" in verified.stdout


def test_the_guide_s_commands_check_the_package_by_hand(court: Court) -> None:
    """Every command of VERIFY.md, run as written in the unzipped package: sha256sum, openssl
    and the Python snippet for the Merkle proofs."""
    folder = court.folder / "unzipped"
    with zipfile.ZipFile(court.package) as archive:
        archive.extractall(folder)
    guide = (folder / "VERIFY.md").read_text()
    shell = []
    for section in re.split(r"^## ", guide, flags=re.M)[1:]:
        if section[:2] in ("0.", "1.", "2.", "3."):
            shell += [line[4:] for line in section.splitlines() if line.startswith("    ")]
    assert len(shell) >= 7, shell
    ran = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(shell)], cwd=folder, capture_output=True,
                         text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.count("Signature Verified Successfully") == 3, ran.stdout  # manifest, reading aids, checkpoint
    assert ran.stdout.count(": OK") == len(court.sources) + 2, ran.stdout  # the files, VERIFY.md and report.pdf
    snippet = re.search(r"```python\n(.*?)```", guide, re.S)
    assert snippet is not None
    proofs = subprocess.run([sys.executable, "-c", snippet.group(1)], cwd=folder, capture_output=True, text=True)
    assert proofs.returncode == 0, proofs.stderr
    assert sorted(line.split()[1] for line in proofs.stdout.splitlines()) == sorted(court.sources)

    # and the same commands catch a changed file and a forged checkpoint
    path = json.loads((folder / "manifest.json").read_text())["items"][0]["path"]
    (folder / path).write_bytes(b"changed")
    ran = subprocess.run(["bash", "-c", "\n".join(shell[:3])], cwd=folder, capture_output=True, text=True)
    assert "FAILED" in ran.stdout and ran.returncode != 0


def test_without_a_pinned_log_key_verify_exits_4(court: Court) -> None:
    unpinned = custody(court.stack, None, "verify", str(court.package))
    assert unpinned.returncode == 4
    assert "NOT PINNED" in unpinned.stdout and "NOT PINNED" in unpinned.stderr


# --- each kind of tampering ----------------------------------------------------------------------


def _first_id(entries: dict[str, bytes]) -> str:
    return json.loads(entries["manifest.json"])["items"][0]["evidence_id"]


def _edit_chain(entries: dict[str, bytes], change: Callable[[dict], None]) -> None:
    name = f"custody/{_first_id(entries)}.json"
    chain = json.loads(entries[name])
    change(chain)
    entries[name] = json.dumps(chain, indent=2, ensure_ascii=False).encode()


def changed_byte(entries: dict[str, bytes]) -> None:
    path = json.loads(entries["manifest.json"])["items"][2]["path"]
    content = bytearray(entries[path])
    content[123_456] ^= 0x20
    entries[path] = bytes(content)


def removed_event(entries: dict[str, bytes]) -> None:
    _edit_chain(entries, lambda chain: chain["events"].pop(1))


def edited_event(entries: dict[str, bytes]) -> None:
    def change(chain: dict) -> None:
        event = chain["events"][0]["entry"]["event"]
        event["actor"]["sub"] = "somebody-else"
        leaf = json.loads(base64.b64decode(chain["events"][0]["leaf"]))
        leaf["event"]["actor"]["sub"] = "somebody-else"
        chain["events"][0]["leaf"] = base64.b64encode(
            json.dumps(leaf, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
        ).decode()

    _edit_chain(entries, change)


def changed_proof_hash(entries: dict[str, bytes]) -> None:
    def change(chain: dict) -> None:
        proof = chain["events"][2]["inclusion"]
        proof[-1] = base64.b64encode(hashlib.sha256(b"forged").digest()).decode()

    _edit_chain(entries, change)


def resigned_checkpoint(entries: dict[str, bytes]) -> None:
    forger = Ed25519PrivateKey.generate()
    raw = forger.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    note = entries["checkpoint.txt"].decode()
    body = note[: note.index("\n\n") + 1]
    origin = body.split("\n")[0]
    key_id = hashlib.sha256(origin.encode() + b"\n\x01" + raw).digest()[:4]
    forged = f"{body}\n\u2014 {origin} {base64.b64encode(key_id + forger.sign(body.encode())).decode()}\n"
    entries["checkpoint.txt"] = forged.encode()
    entries["log-key.txt"] = f"{origin}+{key_id.hex()}+{base64.b64encode(bytes([1]) + raw).decode()}\n".encode()
    for name in [n for n in entries if n.startswith("custody/")]:
        chain = json.loads(entries[name])
        chain["checkpoint"] = forged
        entries[name] = json.dumps(chain).encode()


def edited_manifest(entries: dict[str, bytes]) -> None:
    entries["manifest.json"] = entries["manifest.json"].replace(b"Disclosure to the defence", b"Routine internal review")


def forged_report(entries: dict[str, bytes]) -> None:
    """A PDF's incremental update, appended, can change what every page shows."""
    entries["report.pdf"] += b"1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n"


TAMPERING = [
    (changed_byte, ["file SHA-256", "sealed event"]),
    (removed_event, ["custody chain", "an event is missing"]),
    (edited_event, ["custody chain", "does not lead to the root"]),
    (changed_proof_hash, ["custody chain", "does not lead to the root"]),
    (resigned_checkpoint, ["checkpoint is not signed by the pinned log key", "log-key.txt states"]),
    (edited_manifest, ["manifest signature", "exported event"]),
    (forged_report, ["reading aids", "report.pdf (SHA-256 differs)"]),
]


@pytest.mark.parametrize(("tamper", "named"), TAMPERING, ids=[t.__name__ for t, _ in TAMPERING])
def test_each_kind_of_tampering_fails_and_is_named(court: Court, tamper, named: list[str]) -> None:  # type: ignore[no-untyped-def]
    entries = _entries(court.package)
    tamper(entries)
    broken = _rezip(entries, court.folder / f"{tamper.__name__}.zip")
    result = custody(court.stack, None, "verify", str(broken), "--log-key", court.log_key)
    assert result.returncode == 1, result.stdout
    failures = result.stdout[result.stdout.index("FAILED:"):]
    for words in named:
        assert words in failures, failures


# --- the report ------------------------------------------------------------------------------------


def _pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _flat(text: str) -> str:
    """``text`` with every run of whitespace (table cells wrap lines) made one space."""
    return " ".join(text.split())


def test_the_report_tells_the_chain(court: Court) -> None:
    entries = _entries(court.package)
    text = _pdf_text(entries["report.pdf"])
    manifest = json.loads(entries["manifest.json"])
    assert manifest["package_id"] in text and EXPORT_PURPOSE in _flat(text)
    assert court.rejected_id in text and "hash_mismatch" in text
    for item in manifest["items"]:
        assert item["evidence_id"] in text and item["sha256"] in text
        assert item["metadata"]["filename"] in text and item["metadata"]["title"] in text
        section = text[text.index(f"Evidence item {item['evidence_id']}"):]
        chain = json.loads(entries[item["custody"]])
        for event in chain["events"]:
            body = event["entry"]["event"]
            date, clock = body["time"].rstrip("Z").split("T")
            assert date in section and clock in section, body["time"]
            assert body["action"] in section
            assert f"log index {event['index']}" in section
            actor = body["actor"]
            assert (actor.get("sub") or f"{actor.get('service')} service") in section
        assert "Stored bytes read back while this package was written" in section
    # the prosecutor's own fetch shows why it happened
    first = manifest["items"][0]["evidence_id"]
    assert FETCH_PURPOSE in _flat(text[text.index(f"Evidence item {first}"):])


def test_custody_report_of_one_item(court: Court) -> None:
    evidence_id = sorted(court.sources)[2]
    target = court.folder / "item-report.pdf"
    made = custody(court.stack, court.prosecutor, "report", evidence_id, "-o", str(target))
    assert made.returncode == 0, made.stderr
    text = _pdf_text(target.read_bytes())
    assert f"Evidence item {evidence_id}" in text and "Свідчення свідка.pdf" in text
    with court.stack.client("audit", court.auditor) as audit:
        chain = audit.get(f"/v1/custody/{evidence_id}").json()
    for event in chain["events"]:
        assert event["entry"]["event"]["action"] in text
    assert EXPORT_PURPOSE in _flat(text)  # the export is in the chain, with its purpose
    rejected = court.folder / "rejected-report.pdf"
    made = custody(court.stack, court.prosecutor, "report", court.rejected_id, "-o", str(rejected))
    assert made.returncode == 0, made.stderr
    said = _flat(_pdf_text(rejected.read_bytes()))
    assert "The item is rejected: hash_mismatch" in said and "rejected at seal" in said
    stranger = court.stack.token("eve", ["prosecutor"], ["OTHER-CASE"])
    refused = custody(court.stack, stranger, "report", evidence_id, "-o", str(court.folder / "no.pdf"))
    assert refused.returncode == 3 and not (court.folder / "no.pdf").exists()


# --- who may export --------------------------------------------------------------------------------


def test_only_the_prosecutor_of_the_case_exports(court: Court) -> None:
    stack = court.stack
    some_id = sorted(court.sources)[0]
    stranger = stack.token("eve", ["prosecutor"], ["OTHER-CASE"])
    investigator = stack.token("olena", ["investigator"], [CASE])
    with stack.client("evidence", stranger) as other:
        assert other.post("/v1/exports", json={"evidence_ids": [some_id], "purpose": "x"}).status_code == 404
        assert other.post("/v1/exports", json={"case": CASE, "purpose": "x"}).status_code == 403
    with stack.client("evidence", investigator) as evidence:
        assert evidence.post("/v1/exports", json={"case": CASE, "purpose": "x"}).status_code == 403
    with stack.client("evidence", court.prosecutor) as evidence:
        both = evidence.post("/v1/exports", json={"case": CASE, "evidence_ids": [some_id], "purpose": "x"})
        assert both.status_code == 422
        assert evidence.post("/v1/exports", json={"case": CASE, "purpose": " "}).status_code == 422
        nothing = evidence.post("/v1/exports", json={"evidence_ids": [court.rejected_id], "purpose": "x"})
        assert nothing.status_code == 409 and "nothing to export" in nothing.json()["detail"]
    refused = custody(stack, stranger, "export", some_id, "--purpose", "x", "-o", str(court.folder / "no.zip"))
    assert refused.returncode == 3 and not (court.folder / "no.zip").exists()
    assert not list(court.folder.glob("no.zip*.part"))


def test_named_items_export_and_verify(court: Court) -> None:
    wanted = sorted(court.sources)[1:]
    target = court.folder / "named.zip"
    made = custody(court.stack, court.prosecutor, "export", *wanted, "--purpose", "Expert examination", "-o", str(target))
    assert made.returncode == 0, made.stderr
    manifest = json.loads(_entries(target)["manifest.json"])
    assert [item["evidence_id"] for item in manifest["items"]] == wanted
    assert manifest["selection"] == {"evidence_ids": wanted} and manifest["excluded"] == []
    verified = custody(court.stack, None, "verify", str(target), "--log-key", court.log_key)
    assert verified.returncode == 0, verified.stdout


# --- the checkpoint's RFC 3161 time-stamp ------------------------------------------------------------


def test_a_time_stamped_package_verifies_and_a_token_over_another_checkpoint_fails(
    local_stack: Stack, tsa: OpensslTsa, tsa_server: TsaServer, tmp_path: Path
) -> None:
    stack = local_stack
    stack.extra_env.update(CUSTODY_TSA_URL=tsa_server.url, CUSTODY_TSA_CA=str(tsa.root))
    stack.start()
    investigator = stack.token("olena", ["investigator"], [CASE])
    prosecutor = stack.token("petra", ["prosecutor"], [CASE])
    done = custody(stack, investigator, "submit", str(_write(tmp_path / "photo.jpg", 5000)), "--case", CASE)
    assert done.returncode == 0, done.stderr
    package = tmp_path / "package.zip"
    made = custody(stack, prosecutor, "export", "--case", CASE, "--purpose", "hearing", "-o", str(package))
    assert made.returncode == 0, made.stderr
    log_key = httpx.get(f"{stack.url('audit')}/v1/log/key").text.strip()
    entries = _entries(package)
    assert "checkpoint.tsr" in entries  # a token over the very checkpoint of the package

    verified = custody(stack, None, "verify", str(package), "--log-key", log_key, "--tsa-ca", str(tsa.root))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "signed by a pinned time-stamping authority" in verified.stdout

    # VERIFY.md's commands for the time-stamp, as written, with the authority's root beside them
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    (folder / "TSA-ROOT.pem").write_bytes(tsa.root.read_bytes())
    section = re.split(r"^## ", (folder / "VERIFY.md").read_text(), flags=re.M)[1:]
    [stamp_section] = [part for part in section if part.startswith("5.")]
    commands = [line[4:] for line in stamp_section.splitlines() if line.startswith("    ")]
    assert any(c.startswith("openssl ts -verify") for c in commands), commands
    ran = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(commands)], cwd=folder, capture_output=True,
                         text=True)
    assert ran.returncode == 0 and "Verification: OK" in ran.stdout, ran.stdout + ran.stderr

    # a genuine token of the same log, but over an earlier checkpoint, does not hold for this one
    size = int(entries["checkpoint.txt"].decode().split("\n")[1])
    auditor = stack.token("carol", ["auditor"], ["*"])
    with stack.client("audit", auditor) as audit:
        earlier = audit.get("/v1/log/timestamp", params={"tree_size": 1})
    assert earlier.status_code == 200 and size > 1, earlier.text
    entries["checkpoint.tsr"] = earlier.content
    swapped = _rezip(entries, tmp_path / "swapped.zip")
    refused = custody(stack, None, "verify", str(swapped), "--log-key", log_key, "--tsa-ca", str(tsa.root))
    assert refused.returncode == 1, refused.stdout
    assert "checkpoint.tsr time-stamps another document than the body of checkpoint.txt" in refused.stdout


# --- the ledger out of reach ------------------------------------------------------------------------


def test_an_export_waits_for_the_ledger_and_says_when_it_cannot(local_stack: Stack, tmp_path: Path) -> None:
    stack = local_stack
    stack.start()
    investigator = stack.token("olena", ["investigator"], [CASE])
    prosecutor = stack.token("petra", ["prosecutor"], [CASE])
    source = _write(tmp_path / "a.bin", 1000)
    done = custody(stack, investigator, "submit", str(source), "--case", CASE)
    assert done.returncode == 0, done.stderr
    stack.kill("audit")
    with stack.client("evidence", prosecutor) as evidence:
        answer = evidence.post("/v1/exports", json={"case": CASE, "purpose": "hearing"})
    assert answer.status_code == 503
    assert "custody ledger" in answer.json()["detail"] and answer.headers["retry-after"] == "5"
    # once the ledger is back, the export recorded meanwhile is logged and a new one goes through
    stack.start("audit")
    target = tmp_path / "p.zip"
    made = custody(stack, prosecutor, "export", "--case", CASE, "--purpose", "hearing", "-o", str(target))
    assert made.returncode == 0, made.stderr
    log_key = httpx.get(f"{stack.url('audit')}/v1/log/key").text.strip()
    verified = custody(stack, None, "verify", str(target), "--log-key", log_key)
    assert verified.returncode == 0, verified.stdout
    chain = json.loads(_entries(target)[f"custody/{done.stdout.strip().splitlines()[-1]}.json"])
    assert [e["entry"]["event"]["action"] for e in chain["events"]].count("exported") == 2


# --- damage found while packaging, and the other backends -------------------------------------------


def _chain_actions(stack: Stack, evidence_id: str, until: str, timeout: float = 60) -> list[str]:
    auditor = stack.token("carol", ["auditor"], ["*"])
    deadline = time.monotonic() + timeout
    with stack.client("audit", auditor) as audit:
        while True:
            answer = audit.get(f"/v1/custody/{evidence_id}")
            actions = [e["entry"]["event"]["action"] for e in answer.json()["events"]] if answer.status_code == 200 else []
            if until in actions or time.monotonic() > deadline:
                return actions
            time.sleep(0.3)


def test_damage_found_while_packaging_leaves_no_package(local_stack: Stack, tmp_path: Path) -> None:
    """A stored byte flipped behind the vault's back (same size, so only reading finds it): the
    stream stops before the zip's central directory, the command keeps nothing, the item is
    marked damaged and the damage is on record."""
    stack = local_stack
    stack.start()
    investigator = stack.token("olena", ["investigator"], [CASE])
    prosecutor = stack.token("petra", ["prosecutor"], [CASE])
    source = _write(tmp_path / "video.mp4", 2 * MIB + 5)
    done = custody(stack, investigator, "submit", str(source), "--case", CASE)
    assert done.returncode == 0, done.stderr
    evidence_id = done.stdout.strip().splitlines()[-1]
    [stored] = (stack.home / "objects" / "evidence" / evidence_id / "parts").iterdir()
    content = bytearray(stored.read_bytes())
    content[3 * MIB // 2] ^= 0x01
    stored.chmod(0o600)
    stored.write_bytes(bytes(content))
    stored.chmod(0o400)

    target = tmp_path / "package.zip"
    made = custody(stack, prosecutor, "export", "--case", CASE, "--purpose", "hearing", "-o", str(target))
    assert made.returncode == 3, made.stderr
    assert "stopped arriving" in made.stderr, made.stderr  # the connection was cut, not the body ended
    assert not target.exists() and not list(Path(target).parent.glob(f"{Path(target).name}*.part"))
    wait_status(stack, prosecutor, evidence_id, "damaged")
    actions = _chain_actions(stack, evidence_id, until="damaged")
    assert actions[-2:] == ["exported", "damaged"], actions
    # a damaged item is left out of the next package, with the reason
    with stack.client("evidence", prosecutor) as evidence:
        refused = evidence.post("/v1/exports", json={"case": CASE, "purpose": "hearing"})
    assert refused.status_code == 409 and "damaged" in refused.json()["detail"]


@pytest.mark.s3
def test_export_on_postgresql_and_s3(pg_s3_stack: Stack, tmp_path: Path) -> None:
    stack = pg_s3_stack
    stack.start()
    investigator = stack.token("olena", ["investigator"], [CASE])
    prosecutor = stack.token("petra", ["prosecutor"], [CASE])
    sources = {}
    for name, size in [("a.jpg", 5 * MIB + 3), ("b.txt", 10)]:
        source = _write(tmp_path / name, size)
        done = custody(stack, investigator, "submit", str(source), "--case", CASE)
        assert done.returncode == 0, done.stderr
        sources[done.stdout.strip().splitlines()[-1]] = source
    target = tmp_path / "package.zip"
    made = custody(stack, prosecutor, "export", "--case", CASE, "--purpose", "hearing", "-o", str(target))
    assert made.returncode == 0, made.stderr
    entries = _entries(target)
    for item in json.loads(entries["manifest.json"])["items"]:
        assert entries[item["path"]] == sources[item["evidence_id"]].read_bytes()
    log_key = httpx.get(f"{stack.url('audit')}/v1/log/key").text.strip()
    verified = custody(stack, None, "verify", str(target), "--log-key", log_key)
    assert verified.returncode == 0, verified.stdout


# --- memory ------------------------------------------------------------------------------------------


def _status(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for process {pid}")


@pytest.mark.slow
def test_exporting_a_1_gib_item_keeps_memory_flat(local_stack: Stack, tmp_path: Path) -> None:
    stack = local_stack
    stack.start()
    investigator = stack.token("olena", ["investigator"], [CASE])
    prosecutor = stack.token("petra", ["prosecutor"], [CASE])
    big = _write(tmp_path / "video.mp4", 1024 * MIB)
    done = custody(stack, investigator, "submit", str(big), "--case", CASE, timeout=1800)
    assert done.returncode == 0, done.stderr
    evidence_pid = stack.processes["evidence"].pid

    # warm up (imports, fonts) on a small export, then reset the peak (Linux: clear_refs 5)
    warm_case = "UA-WARM"
    warm = _write(tmp_path / "warm.bin", 1000)
    assert custody(stack, stack.token("olena", ["investigator"], [warm_case]), "submit", str(warm), "--case",
                   warm_case).returncode == 0
    warm_token = stack.token("petra", ["prosecutor"], [warm_case])
    assert custody(stack, warm_token, "export", "--case", warm_case, "--purpose", "warm-up", "-o",
                   str(tmp_path / "warm.zip")).returncode == 0
    Path(f"/proc/{evidence_pid}/clear_refs").write_text("5")
    before = _status(evidence_pid, "VmRSS")

    target = tmp_path / "big.zip"
    started = time.perf_counter()
    made = custody(stack, prosecutor, "export", "--case", CASE, "--purpose", "hearing", "-o", str(target), timeout=1800)
    elapsed = time.perf_counter() - started
    assert made.returncode == 0, made.stderr
    peak = _status(evidence_pid, "VmHWM")
    client_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    with zipfile.ZipFile(target) as archive:
        info = archive.getinfo("files/video.mp4")
        assert info.file_size == 1024 * MIB
    log_key = httpx.get(f"{stack.url('audit')}/v1/log/key").text.strip()
    verified = custody(stack, None, "verify", str(target), "--log-key", log_key, timeout=1800)
    assert verified.returncode == 0, verified.stdout
    figures = {
        "export_1GiB_s": round(elapsed, 1),
        "evidence_rss_before_MiB": round(before, 1),
        "evidence_peak_during_export_MiB": round(peak, 1),
        "largest_child_peak_MiB": round(client_peak, 1),
    }
    print(f"\ncourt package figures: {json.dumps(figures)}", file=sys.stderr)
    assert peak - before < 96, figures
    for large in (big, target):
        large.unlink()
