"""The offline verifier of court packages, against packages built here from the format's
description (docs/package-format.md) alone: a whole one holds, and each kind of tampering
fails naming what failed; the log key and the time-stamping authority must come from outside;
no network is touched and nothing beyond the standard library, cryptography and
rfc3161-client is imported."""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import io
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody_client import cli
from custody_client.package import (
    EXIT_FAILED,
    EXIT_NOT_PINNED,
    EXIT_OK,
    canonical_json,
    describe,
    verify_package,
)
from custody_client.verify import LogKey
from custody_common.events import canonical, sign_event
from tests.support.json_damage import damaged
from tests.support.rfc6962 import audit_path, tree_hash
from tests.support.tsa import OpensslTsa

ORIGIN = "custody.test/court-log"
CASE = "UA-2024-017"
PURPOSE = "Trial of the camp's commander, hearing 2024-117"


# --- a package made from the format's description -------------------------------------------


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def verifier_key(key: Ed25519PrivateKey, origin: str = ORIGIN) -> str:
    raw = _raw(key)
    key_id = hashlib.sha256(origin.encode() + b"\n\x01" + raw).digest()[:4]
    return f"{origin}+{key_id.hex()}+{base64.b64encode(bytes([1]) + raw).decode()}"


def sign_note(body: str, key: Ed25519PrivateKey, origin: str = ORIGIN) -> str:
    key_id = hashlib.sha256(origin.encode() + b"\n\x01" + _raw(key)).digest()[:4]
    return f"{body}\n\u2014 {origin} {base64.b64encode(key_id + key.sign(body.encode())).decode()}\n"


def _commit(text: str) -> tuple[str, str]:
    salt = os.urandom(16)
    return salt.hex(), hashlib.sha256(salt + text.encode()).hexdigest()


@dataclass
class Package:
    """The parts of a package, to be altered by a test, then written as a zip."""

    files: dict[str, bytes] = field(default_factory=dict)
    log_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    evidence_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def write(self, path: Path) -> Path:
        with zipfile.ZipFile(path, "w") as archive:
            for name, content in self.files.items():
                archive.writestr(name, content)
        return path

    @property
    def pinned(self) -> LogKey:
        return LogKey.parse(verifier_key(self.log_key))

    def manifest(self) -> dict[str, Any]:
        return json.loads(self.files["manifest.json"])

    def chain(self, evidence_id: str) -> dict[str, Any]:
        return json.loads(self.files[f"custody/{evidence_id}.json"])

    def put_chain(self, evidence_id: str, chain: dict[str, Any]) -> None:
        self.files[f"custody/{evidence_id}.json"] = json.dumps(chain, indent=2).encode()

    def sign_manifest(self, manifest: dict[str, Any], key: Ed25519PrivateKey | None = None) -> None:
        key = key or self.evidence_key
        body = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
        self.files["manifest.json"] = body
        self.files["manifest.sig"] = key.sign(body)
        self.files["manifest.pub.pem"] = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if "reading-aids.sig" in self.files:
            self.sign_reading_aids(key)

    def sign_reading_aids(self, key: Ed25519PrivateKey | None = None) -> None:
        """State the SHA-256 of VERIFY.md and report.pdf, as the vault does, signed by ``key``."""
        sums = "".join(f"{hashlib.sha256(self.files[n]).hexdigest()}  {n}\n" for n in ("VERIFY.md", "report.pdf"))
        self.files["reading-aids.sha256"] = sums.encode()
        self.files["reading-aids.sig"] = (key or self.evidence_key).sign(sums.encode())


def build(contents: dict[str, bytes] | None = None, event_changes: dict[str, Any] | None = None) -> Package:
    """A package of ``contents`` ({file name: bytes}), its events logged among others, each
    event with the members ``event_changes`` sets."""
    contents = contents or {"Депортація дітей.mp4": os.urandom(70_000), "witness.pdf": b"%PDF-1.4 statement"}
    package = Package()
    evidence_key = package.evidence_key
    evidence_key_id = hashlib.sha256(_raw(evidence_key)).hexdigest()
    package_id = "0190a1b2-ffff-7000-8000-00000000abcd"
    purpose_salt, purpose_digest = _commit(PURPOSE)
    items, per_item = [], []
    for n, (name, content) in enumerate(contents.items()):
        evidence_id = f"0190a1b2-0000-7000-8000-{n:012d}"
        metadata = {"filename": name, "title": f"Item {n} — Херсон"}
        salts, commitments = {}, {}
        for key, text in metadata.items():
            salts[key], commitments[key] = _commit(text)
        sha256 = hashlib.sha256(content).hexdigest()
        items.append(
            {
                "evidence_id": evidence_id,
                "case": CASE,
                "path": f"files/{name}",
                "sha256": sha256,
                "size": len(content),
                "custody": f"custody/{evidence_id}.json",
                "submitter": "olena",
                "created_at": "2025-05-01T10:00:00.000Z",
                "received_at": "2025-05-01T10:01:00.000Z",
                "sealed_at": "2025-05-01T10:01:01.000Z",
                "metadata": metadata,
                "metadata_salts": salts,
            }
        )
        per_item.append((evidence_id, sha256, len(content), commitments))
        package.files[f"files/{name}"] = content
    manifest = {
        "type": "custody-package/v1",
        "package_id": package_id,
        "created_at": "2025-05-09T12:00:00.000Z",
        "exported_by": {"sub": "petra", "roles": ["prosecutor"]},
        "purpose": {"text": PURPOSE, "salt": purpose_salt},
        "selection": {"case": CASE},
        "log": {"origin": ORIGIN},
        "evidence_service_key": {"key_id": evidence_key_id, "public_key": base64.b64encode(_raw(evidence_key)).decode()},
        "items": items,
        "excluded": [{"evidence_id": "0190a1b2-0000-7000-8000-0000000000ff", "case": CASE, "reason": "rejected: hash_mismatch"}],
    }
    package.sign_manifest(manifest)
    manifest_sha256 = hashlib.sha256(package.files["manifest.json"]).hexdigest()

    intake_key = Ed25519PrivateKey.generate()
    leaves: list[bytes] = [canonical({"event": {"action": "key_announced"}, "item_seq": None, "prev_leaf": None,
                                      "logged_at": "2025-05-01T09:00:00.000Z"})]
    positions: dict[str, list[int]] = {}
    previous: dict[str, str | None] = {}
    for step in ("submitted", "sealed", "exported"):
        for evidence_id, sha256, size, commitments in per_item:
            fields: dict[str, Any] = {
                "type": "custody-event/v1",
                "id": f"{step}-{evidence_id}",
                "action": step,
                "evidence_id": evidence_id,
                "case": CASE,
                "time": "2025-05-01T10:00:00.000Z",
                "sha256": sha256,
                "size": size,
            }
            if step == "submitted":
                signer, extra = intake_key, {"actor": {"sub": "olena", "roles": ["investigator"]},
                                             "service": "intake", "commitments": commitments}
            elif step == "sealed":
                signer, extra = evidence_key, {"actor": {"service": "evidence"}, "service": "evidence"}
            else:
                signer, extra = evidence_key, {
                    "actor": {"sub": "petra", "roles": ["prosecutor"]},
                    "service": "evidence",
                    "commitments": {"purpose": purpose_digest},
                    "details": {"package_id": package_id, "manifest_sha256": manifest_sha256,
                                "signing_key": evidence_key_id, "request_id": "r-1"},
                }
            event = sign_event(fields | extra | (event_changes or {}), signer)
            seq = len(positions.get(evidence_id, [])) + 1
            entry = {"event": event, "item_seq": seq, "prev_leaf": previous.get(evidence_id),
                     "logged_at": "2025-05-01T10:00:00.500Z"}
            leaves.append(canonical(entry))
            positions.setdefault(evidence_id, []).append(len(leaves) - 1)
            previous[evidence_id] = leaf_hash(leaves[-1]).hex()
            leaves.append(canonical({"event": {"action": "accessed", "evidence_id": "another"}, "item_seq": 1,
                                     "prev_leaf": None, "logged_at": "2025-05-01T10:00:00.600Z"}))
    hashes = [leaf_hash(leaf) for leaf in leaves]
    note = sign_note(f"{ORIGIN}\n{len(leaves)}\n{base64.b64encode(tree_hash(hashes)).decode()}\n", package.log_key)
    package.files["checkpoint.txt"] = note.encode()
    package.files["log-key.txt"] = (verifier_key(package.log_key) + "\n").encode()
    for evidence_id, indices in positions.items():
        package.put_chain(
            evidence_id,
            {
                "checkpoint": note,
                "events": [
                    {"index": i, "leaf": base64.b64encode(leaves[i]).decode(), "entry": json.loads(leaves[i]),
                     "inclusion": [base64.b64encode(h).decode() for h in audit_path(i, hashes)]}
                    for i in indices
                ],
            },
        )
    package.files["report.pdf"] = b"%PDF-1.4 for people"
    package.files["VERIFY.md"] = b"# How to verify"
    package.sign_reading_aids()
    return package


# --- a whole package --------------------------------------------------------------------------


def test_a_whole_package_holds_against_the_pinned_key(tmp_path: Path) -> None:
    package = build()
    verdict = verify_package(package.write(tmp_path / "p.zip"), package.pinned)
    assert verdict.ok, verdict.failures
    assert verdict.exit_code == EXIT_OK
    assert verdict.key_pinned and verdict.timestamp_pinned is None
    assert len(verdict.items) == 2 and all(item.ok for item in verdict.items)
    checks = {f.check for item in verdict.items for f in item.findings}
    assert checks == {"file SHA-256", "custody chain", "sealed event", "exported event", "evidence key", "metadata"}
    assert verdict.package_id == "0190a1b2-ffff-7000-8000-00000000abcd" and verdict.purpose == PURPOSE
    report = describe(verdict)
    assert "VERIFIED: 2 item(s)" in report and "Депортація дітей.mp4" in report
    assert "not exported: 0190a1b2-0000-7000-8000-0000000000ff" in report and "hash_mismatch" in report


def test_without_a_pinned_key_it_says_so_and_exits_4(tmp_path: Path) -> None:
    package = build()
    verdict = verify_package(package.write(tmp_path / "p.zip"), None)
    assert verdict.ok and not verdict.key_pinned
    assert verdict.exit_code == EXIT_NOT_PINNED
    assert "NOT PINNED" in describe(verdict)


# --- each kind of tampering -----------------------------------------------------------------


def _first(package: Package) -> str:
    return package.manifest()["items"][0]["evidence_id"]


def changed_byte(package: Package) -> None:
    name = package.manifest()["items"][0]["path"]
    content = bytearray(package.files[name])
    content[len(content) // 2] ^= 0x01
    package.files[name] = bytes(content)


def removed_event(package: Package) -> None:
    chain = package.chain(_first(package))
    del chain["events"][1]
    package.put_chain(_first(package), chain)


def removed_last_event(package: Package) -> None:
    chain = package.chain(_first(package))
    del chain["events"][-1]
    package.put_chain(_first(package), chain)


def edited_entry(package: Package) -> None:
    chain = package.chain(_first(package))
    chain["events"][0]["entry"]["event"]["actor"]["sub"] = "someone-else"
    package.put_chain(_first(package), chain)


def edited_leaf(package: Package) -> None:
    """The event rewritten consistently in leaf and entry: the proof no longer reaches the root."""
    chain = package.chain(_first(package))
    entry = chain["events"][0]["entry"]
    entry["event"]["time"] = "2025-04-01T00:00:00.000Z"
    leaf = canonical(entry)
    chain["events"][0]["leaf"] = base64.b64encode(leaf).decode()
    package.put_chain(_first(package), chain)


def changed_proof_hash(package: Package) -> None:
    chain = package.chain(_first(package))
    proof = chain["events"][2]["inclusion"]
    proof[0] = base64.b64encode(bytes(b ^ 0xFF for b in base64.b64decode(proof[0]))).decode()
    package.put_chain(_first(package), chain)


def resigned_checkpoint(package: Package) -> None:
    """A forger's log: the checkpoint (and every chain's copy) signed with another key, and
    log-key.txt replaced by the forger's key."""
    forger = Ed25519PrivateKey.generate()
    old = package.files["checkpoint.txt"].decode()
    note = sign_note(old[: old.index("\n\n") + 1], forger)
    package.files["checkpoint.txt"] = note.encode()
    package.files["log-key.txt"] = verifier_key(forger).encode()
    for item in package.manifest()["items"]:
        chain = package.chain(item["evidence_id"])
        chain["checkpoint"] = note
        package.put_chain(item["evidence_id"], chain)


def edited_manifest(package: Package) -> None:
    manifest_bytes = package.files["manifest.json"].replace(PURPOSE.encode(), b"Routine review")
    package.files["manifest.json"] = manifest_bytes


def resigned_manifest(package: Package) -> None:
    """The manifest edited (another purpose and title) and signed again with a forger's key."""
    manifest = package.manifest()
    manifest["items"][0]["metadata"]["title"] = "Something else"
    forger = Ed25519PrivateKey.generate()
    manifest["evidence_service_key"] = {
        "key_id": hashlib.sha256(_raw(forger)).hexdigest(),
        "public_key": base64.b64encode(_raw(forger)).decode(),
    }
    package.sign_manifest(manifest, forger)


def swapped_file(package: Package) -> None:
    """A file replaced and its manifest entry changed to match: the signature breaks."""
    manifest = package.manifest()
    replacement = b"a different video"
    manifest["items"][0]["sha256"] = hashlib.sha256(replacement).hexdigest()
    manifest["items"][0]["size"] = len(replacement)
    package.files[manifest["items"][0]["path"]] = replacement
    package.files["manifest.json"] = json.dumps(manifest, indent=2, ensure_ascii=False).encode()


def extra_file(package: Package) -> None:
    package.files["files/planted.jpg"] = b"not evidence"


TAMPERING: list[tuple[Callable[[Package], None], list[str]]] = [
    (changed_byte, ["file SHA-256", "sealed event", "exported event"]),
    (removed_event, ["custody chain"]),
    (removed_last_event, ["exported event"]),
    (edited_entry, ["custody chain"]),
    (edited_leaf, ["custody chain"]),
    (changed_proof_hash, ["custody chain"]),
    (resigned_checkpoint, ["log key", "checkpoint"]),
    (edited_manifest, ["manifest signature", "exported event"]),
    (resigned_manifest, ["exported event", "evidence key", "metadata"]),
    (swapped_file, ["manifest signature", "sealed event", "exported event"]),
    (extra_file, ["package contents"]),
]


@pytest.mark.parametrize(("tamper", "failed"), TAMPERING, ids=[t.__name__ for t, _ in TAMPERING])
def test_tampering_fails_naming_what_failed(tmp_path: Path, tamper, failed: list[str]) -> None:  # type: ignore[no-untyped-def]
    package = build()
    pinned = package.pinned
    tamper(package)
    verdict = verify_package(package.write(tmp_path / "p.zip"), pinned)
    assert not verdict.ok
    assert verdict.exit_code == EXIT_FAILED
    named = {f.check for f in verdict.findings if not f.ok} | {
        f.check for item in verdict.items for f in item.findings if not f.ok
    }
    assert set(failed) <= named, (named, verdict.failures)
    assert "FAILED:" in describe(verdict)


def test_a_forged_log_passes_only_unpinned(tmp_path: Path) -> None:
    """Why the key must come from outside: a forger's consistent package holds against the
    key it brings, so the verdict is 'not pinned', never 'verified'."""
    package = build()
    resigned_checkpoint(package)
    verdict = verify_package(package.write(tmp_path / "p.zip"), None)
    assert verdict.ok and verdict.exit_code == EXIT_NOT_PINNED


def test_specific_messages(tmp_path: Path) -> None:
    package = build()
    pinned = package.pinned
    removed_event(package)
    verdict = verify_package(package.write(tmp_path / "a.zip"), pinned)
    assert any("an event is missing" in f for f in verdict.failures), verdict.failures
    package = build()
    changed_byte(package)
    verdict = verify_package(package.write(tmp_path / "b.zip"), package.pinned)
    assert any("files/Депортація дітей.mp4 has SHA-256" in f for f in verdict.failures), verdict.failures


def test_not_a_zip_and_missing_parts(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK not really")
    assert verify_package(junk, None).exit_code == EXIT_FAILED
    package = build()
    del package.files["manifest.sig"]
    verdict = verify_package(package.write(tmp_path / "p.zip"), package.pinned)
    assert verdict.exit_code == EXIT_FAILED and any("missing: manifest.sig" in f for f in verdict.failures)


def test_an_archive_of_no_entries_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    """An empty archive, and one whose last end record lists no entries (appended to a genuine
    package, it hides the package's entries from zipfile but not from a stream reader)."""
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    verdict = verify_package(empty, None)
    assert verdict.exit_code == EXIT_FAILED and any("missing: manifest.json" in f for f in verdict.failures)
    package = build()
    path = package.write(tmp_path / "p.zip")
    path.write_bytes(path.read_bytes() + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0, 0, 0, 0, 0))
    assert zipfile.ZipFile(path).namelist() == []
    failures = verify_package(path, package.pinned).failures
    assert failures[0].startswith("zip entries: bytes that belong to no entry precede the central directory."), failures


def _forged_and_signed_by_another(package: Package) -> None:
    package.files["report.pdf"] = b"%PDF-1.4 another story"
    package.sign_reading_aids(Ed25519PrivateKey.generate())


@pytest.mark.parametrize(
    ("change", "failure"),
    [
        (lambda p: p.files.update({"report.pdf": b"%PDF-1.4 another story"}), "reading aids: not as the evidence "
         "service wrote them: report.pdf (SHA-256 differs)"),
        (lambda p: p.files.update({"VERIFY.md": b"# Pin this key: forger+1234"}), "reading aids: not as the evidence "
         "service wrote them: VERIFY.md (SHA-256 differs)"),
        (_forged_and_signed_by_another, "reading aids: reading-aids.sig is not the signature of reading-aids.sha256 by "
         "manifest.pub.pem"),
        (lambda p: p.files.pop("report.pdf"), "reading aids: missing: report.pdf"),
        (lambda p: p.files.update({"notes.txt": b"the witness recanted"}), "package contents: not part of a "
         "custody-package/v1 package, so nothing in it vouches for them: notes.txt"),
    ],
)
def test_what_people_read_beside_the_proofs_is_as_the_vault_wrote_it(
    tmp_path: Path, change: Callable[[Package], Any], failure: str
) -> None:
    """VERIFY.md and report.pdf prove nothing, but a judge reads them: a changed or missing one,
    or an entry no package has, fails the package."""
    package = build()
    change(package)
    assert verify_package(package.write(tmp_path / "p.zip"), package.pinned).failures == [failure]


def test_reading_aids_listed_twice_or_beside_others_fail(tmp_path: Path) -> None:
    package = build()
    sums = package.files["reading-aids.sha256"]
    first = sums.splitlines(keepends=True)[0]
    for listed in (sums + first, sums + b"0" * 64 + b"  notes.txt\n", first):
        package.files["reading-aids.sha256"] = listed
        package.files["reading-aids.sig"] = package.evidence_key.sign(listed)
        failures = verify_package(package.write(tmp_path / "p.zip"), package.pinned).failures
        expected = "reading aids: reading-aids.sha256 is not one SHA-256 line for each of VERIFY.md, report.pdf"
        assert failures == [expected], listed


def test_unsafe_paths_are_refused(tmp_path: Path) -> None:
    package = build()
    path = package.write(tmp_path / "p.zip")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("../outside.txt", b"x")
    verdict = verify_package(path, package.pinned)
    assert any("unsafe or repeated paths: ../outside.txt" in f for f in verdict.failures)


# --- what an extractor sees is what was checked ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shadow"),
    [
        ("witness.pdf", "./files/witness.pdf"),
        ("witness.pdf", "FILES/witness.pdf"),
        ("witness.pdf", "files/WITNESS.pdf"),
        ("witness.pdf", "files//witness.pdf"),
        ("witness.pdf", "files/./witness.pdf"),
        ("witness.pdf", "custody/../files/witness.pdf"),
        ("témoin.pdf", "files/te\u0301moin.pdf"),
        ("witness.pdf", "MANIFEST.JSON"),
    ],
)
def test_another_spelling_of_a_path_fails_as_it_could_replace_that_file_when_extracted(
    tmp_path: Path, name: str, shadow: str
) -> None:
    package = build({name: b"%PDF-1.4 statement"})
    package.files[shadow] = b"%PDF-1.4 FORGED statement"  # written after the genuine entry
    verdict = verify_package(package.write(tmp_path / "p.zip"), package.pinned)
    assert verdict.exit_code == EXIT_FAILED
    assert any(f.startswith(f"zip paths: unsafe or repeated paths: {shadow} ") for f in verdict.failures), verdict.failures


def _without_last_central_record(path: Path) -> None:
    """Drop the archive's last entry from its central directory, leaving its bytes in place."""
    data = path.read_bytes()
    end = data.rindex(b"PK\x05\x06")
    last = data.rindex(b"PK\x01\x02", 0, end)
    (count,) = struct.unpack_from("<H", data, end + 10)
    (size,) = struct.unpack_from("<I", data, end + 12)
    trimmed = bytearray(data[:last] + data[end:])
    struct.pack_into("<HHI", trimmed, last + 8, count - 1, count - 1, size - (end - last))
    path.write_bytes(trimmed)


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_an_entry_the_central_directory_does_not_list_fails(tmp_path: Path) -> None:
    """``jar xf`` and other extractors that read the archive from its start would extract it."""
    package = build()
    path = package.write(tmp_path / "p.zip")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("files/witness.pdf", b"%PDF-1.4 FORGED statement")
    _without_last_central_record(path)
    assert zipfile.ZipFile(path).namelist().count("files/witness.pdf") == 1
    verdict = verify_package(path, package.pinned)
    assert verdict.exit_code == EXIT_FAILED
    assert [f for f in verdict.failures if f.startswith("zip entries:")], verdict.failures


def _zip_by_hand(
    path: Path,
    files: dict[str, bytes],
    deflated: set[str] = frozenset(),  # type: ignore[assignment]
    slack: dict[str, bytes] | None = None,
    *,
    streamed: bool = False,
    methods: dict[str, int] | None = None,
    local_extra: dict[str, bytes] | None = None,
) -> None:
    """A zip of ``files`` written field by field: the entries in ``deflated`` compressed, and
    after an entry's compressed data the bytes ``slack`` gives it, counted in its stated
    compressed size, which zipfile (reading through the central directory) then ignores.
    ``streamed``: CRC and sizes follow each entry in a data descriptor, as the vault writes
    them. ``methods`` claims other compression methods for entries stored as they are, and
    ``local_extra`` gives an entry's local header sizes of 0xFFFFFFFF and that extra field."""
    local, central = bytearray(), bytearray()
    for name, content in files.items():
        method = zipfile.ZIP_DEFLATED if name in deflated else (methods or {}).get(name, zipfile.ZIP_STORED)
        if method == zipfile.ZIP_DEFLATED:
            compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            data = compressor.compress(content) + compressor.flush()
        else:
            data = content
        data += (slack or {}).get(name, b"")
        crc, raw = zlib.crc32(content), name.encode()
        flags = 0x800 | (0x08 if streamed else 0)  # 0x800: UTF-8 name; 0x08: a data descriptor follows
        fields = (20, flags, method, 0, 0x21, crc, len(data), len(content), len(raw))
        central += struct.pack("<4sH", b"PK\x01\x02", 20) + struct.pack("<HHHHHIIIH", *fields)
        central += struct.pack("<HHHHII", 0, 0, 0, 0, 0o644 << 16, len(local)) + raw
        head = fields if not streamed else (*fields[:5], 0, 0, 0, fields[8])
        extra = (local_extra or {}).get(name, b"")
        if extra:
            head = (*head[:6], 0xFFFFFFFF, 0xFFFFFFFF, head[8])
        local += struct.pack("<4s", b"PK\x03\x04") + struct.pack("<HHHHHIIIH", *head) + struct.pack("<H", len(extra))
        local += raw + extra + data
        if streamed:
            local += struct.pack("<4sIII", b"PK\x07\x08", crc, len(data), len(content))
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(files), len(files), len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))


def test_bytes_hidden_after_an_entry_s_compressed_data_fail(tmp_path: Path) -> None:
    """Inflating stops where the deflate stream ends; an extractor reading the archive from its
    start looks for the next entry right there, and would find one no check saw."""
    package = build()
    hidden = io.BytesIO()
    with zipfile.ZipFile(hidden, "w") as archive:
        archive.writestr("files/witness.pdf", b"%PDF-1.4 FORGED statement")
    plain = tmp_path / "plain.zip"
    _zip_by_hand(plain, package.files, {"manifest.json", "VERIFY.md"}, {})
    assert verify_package(plain, package.pinned).ok, "a package deflated by hand verifies"

    path = tmp_path / "p.zip"
    _zip_by_hand(path, package.files, {"manifest.json", "VERIFY.md"}, {"VERIFY.md": hidden.getvalue()})
    assert zipfile.ZipFile(path).read("VERIFY.md") == package.files["VERIFY.md"]
    verdict = verify_package(path, package.pinned)
    assert verdict.failures == [
        "zip entries: VERIFY.md: its compressed data does not end exactly at its stated size: bytes are hidden "
        "after it. Extractors that read the archive from its start could find there an entry, or contents, "
        "that no check saw"
    ]


def test_an_entry_followed_by_a_data_descriptor_fails(tmp_path: Path) -> None:
    """A stream reader cannot know where a stored entry with a data descriptor ends: it ends it
    at the first descriptor signature inside (libarchive does, without further checks when it
    skips the entry), and reads what follows as further entries: here a forged witness
    statement. Nor do readers agree on a deflated entry's descriptor (its width follows a ZIP64
    field for libarchive, the gap for others), so a package uses none."""
    package = build()
    plain = tmp_path / "plain.zip"
    _zip_by_hand(plain, package.files, {"VERIFY.md", "manifest.json"})
    assert verify_package(plain, package.pinned).ok, "a package written by hand verifies"

    text = package.files["VERIFY.md"]
    forged = b"%PDF-1.4 FORGED statement"
    hidden = struct.pack("<4sIII", b"PK\x07\x08", zlib.crc32(text), len(text), len(text))
    hidden += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0x21, zlib.crc32(forged), len(forged), len(forged), 17, 0)
    package.files["VERIFY.md"] = text + hidden + b"files/witness.pdf" + forged
    path = tmp_path / "p.zip"
    _zip_by_hand(path, package.files, streamed=True)
    failures = verify_package(path, package.pinned).failures
    assert failures[0].startswith(
        "zip entries: files/Депортація дітей.mp4: its flags 0x0808 ask for a data descriptor or encryption"
    ), failures


def test_extra_fields_other_than_one_zip64_field_in_its_form_fail(tmp_path: Path) -> None:
    """Readers disagree about which of two ZIP64 fields counts (Java's stream reader takes the
    last, the verifier would have taken the first): only the vault's one form passes."""
    package = build()
    size = len(package.files["VERIFY.md"])
    one = struct.pack("<HHQQ", 1, 16, size, size)
    path = tmp_path / "one.zip"
    _zip_by_hand(path, package.files, local_extra={"VERIFY.md": one})
    assert verify_package(path, package.pinned).ok, "one ZIP64 field of both sizes is the vault's own form"

    for extra in (struct.pack("<HHQQ", 1, 16, 3, 3) + one, one + struct.pack("<HH", 0x5455, 5) + b"\x01abcd"):
        _zip_by_hand(path, package.files, local_extra={"VERIFY.md": extra})
        failures = verify_package(path, package.pinned).failures
        assert failures == [
            "zip entries: VERIFY.md: its extra fields are not the one ZIP64 field a package uses, once and in its "
            "one form. Extractors that read the archive from its start could find there an entry, or contents, "
            "that no check saw"
        ]


def test_other_compression_methods_and_zip_bombs_fail_before_anything_is_inflated(tmp_path: Path) -> None:
    package = build()
    path = tmp_path / "bz2.zip"
    _zip_by_hand(path, package.files, methods={"VERIFY.md": zipfile.ZIP_BZIP2})
    assert any("VERIFY.md: it is compressed by method 12" in f for f in verify_package(path, package.pinned).failures)

    package.files["report.pdf"] = bytes(50 * 1024 * 1024)
    path = tmp_path / "bomb.zip"
    _zip_by_hand(path, package.files, {"report.pdf"})
    inflated: list[int] = []
    real = zlib.decompressobj

    def counting(*args: Any) -> Any:
        inflated.append(1)
        return real(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zlib, "decompressobj", counting)
        failures = verify_package(path, package.pinned).failures
    assert failures[0].startswith("zip entries: report.pdf: it inflates to 52428800 bytes from ")
    assert not inflated

    del package.files["report.pdf"]
    _zip_by_hand(path, package.files, set(package.files))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("custody_client.package._MAX_DEFLATED", 1000)  # many bombs, each within the ratio
        failures = verify_package(path, package.pinned).failures
    assert failures[0].startswith("zip entries: its deflated entries inflate to ")


@pytest.mark.parametrize(
    ("field", "offset", "value"),
    [("name", 30, b"VERIFX.md"), ("size", 18, struct.pack("<I", 3)), ("method", 8, struct.pack("<H", 8))],
)
def test_a_local_header_that_tells_another_story_than_the_central_directory_fails(
    tmp_path: Path, field: str, offset: int, value: bytes
) -> None:
    """zipfile reads an entry by the central directory; an extractor streaming the archive
    reads it by its local header, so the two must agree in every field that places or names it."""
    package = build()
    path = package.write(tmp_path / "p.zip")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo("VERIFY.md").header_offset
    data[local + offset : local + offset + len(value)] = value
    path.write_bytes(data)
    verdict = verify_package(path, package.pinned)
    assert verdict.failures[0].startswith("zip entries: VERIFY.md: its local header"), verdict.failures


def test_a_package_streamed_with_data_descriptors_is_refused(tmp_path: Path) -> None:
    """zipfile writing to a sink that cannot seek puts every entry's CRC and sizes after it."""

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, block: Any) -> int:
            self.data += block
            return len(block)

    package = build()
    sink = Unseekable()
    with zipfile.ZipFile(sink, "w") as archive:
        for name, content in package.files.items():
            archive.writestr(name, content, compress_type=zipfile.ZIP_DEFLATED)
    path = tmp_path / "p.zip"
    path.write_bytes(sink.data)
    failures = verify_package(path, package.pinned).failures
    assert failures[0].startswith("zip entries: ") and "ask for a data descriptor" in failures[0], failures

def test_a_file_of_another_size_than_the_manifest_says_fails_without_being_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small entry may inflate to gigabytes: its stated size is compared before any byte is read."""
    package = build()
    package.files["files/witness.pdf"] = bytes(1024 * 1024)
    path = package.write(tmp_path / "p.zip")
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(name.filename if isinstance(name, zipfile.ZipInfo) else name)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    verdict = verify_package(path, package.pinned)
    assert "files/witness.pdf holds 1048576 bytes; the manifest says 18" in "\n".join(verdict.failures)
    assert "files/witness.pdf" not in opened


# --- a damaged or misshapen package is a finding, never an exception ----------------------------


def _damage(path: Path, name: str, how: str) -> None:
    """Damage entry ``name`` in place: "crc" flips a byte of its data, "method" claims an
    unknown compression method, "encrypted" sets its encryption flag."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo(name).header_offset
        central = data.index(name.encode(), archive.start_dir) - 46
    if how == "crc":
        name_length, extra_length = struct.unpack_from("<HH", data, local + 26)
        data[local + 30 + name_length + extra_length] ^= 0x01
    elif how == "method":
        struct.pack_into("<H", data, local + 8, 99)
        struct.pack_into("<H", data, central + 10, 99)
    else:
        data[local + 6] |= 0x01
        data[central + 8] |= 0x01
    path.write_bytes(data)


@pytest.mark.parametrize("how", ["crc", "method", "encrypted"])
@pytest.mark.parametrize("entry", ["manifest.json", "checkpoint.txt", "custody", "file"])
def test_a_damaged_entry_is_a_finding_naming_it(tmp_path: Path, entry: str, how: str) -> None:
    package = build()
    item = package.manifest()["items"][0]
    name = {"custody": item["custody"], "file": item["path"]}.get(entry, entry)
    path = package.write(tmp_path / "p.zip")
    _damage(path, name, how)
    verdict = verify_package(path, package.pinned)
    assert verdict.exit_code == EXIT_FAILED
    assert any(f"{name} cannot be read from the zip" in f for f in verdict.failures), verdict.failures


def test_a_name_marked_utf_8_that_is_not_is_a_finding(tmp_path: Path) -> None:
    package = build()
    path = package.write(tmp_path / "p.zip")
    data = bytearray(path.read_bytes().replace(b"VERIFY.md", b"VERIFY\xffmd"))
    with zipfile.ZipFile(path) as archive:
        central = data.index(b"VERIFY\xffmd", archive.start_dir) - 46
    data[central + 9] |= 0x08  # general purpose bit 11: the name is UTF-8
    path.write_bytes(data)
    verdict = verify_package(path, package.pinned)
    assert verdict.exit_code == EXIT_FAILED
    assert verdict.failures[0].startswith("zip archive:") and "is not a readable zip archive" in verdict.failures[0]


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(manifest: dict[str, Any]) -> None:
        target = manifest
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_set(["exported_by"], "petra"), "exported_by"),
        (_set(["exported_by", "roles"], [1]), "exported_by.roles[0]"),
        (_set(["purpose"], "why"), "purpose"),
        (_set(["purpose", "text"], None), "purpose.text"),
        (_set(["log"], ["custody.test/court-log"]), "log"),
        (_set(["evidence_service_key"], ["key"]), "evidence_service_key"),
        (_set(["excluded"], 5), "excluded"),
        (_set(["excluded"], ["rejected"]), "excluded[0]"),
        (_set(["items", 0, "case"], ["UA-2024-017"]), "items[0].case"),
        (_set(["items", 1], "files/witness.pdf"), "items[1]"),
        (_set(["items"], {}), "items"),
    ],
)
def test_a_manifest_of_another_shape_is_one_finding_naming_the_member(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], named: str
) -> None:
    package = build()
    manifest = package.manifest()
    change(manifest)
    package.sign_manifest(manifest)
    verdict = verify_package(package.write(tmp_path / "p.zip"), package.pinned)
    assert verdict.exit_code == EXIT_FAILED
    [failure] = verdict.failures
    assert failure.startswith(f"manifest: manifest.json is not a custody-package/v1 manifest: {named} missing"), failure


@pytest.mark.parametrize("manifest", [["custody-package/v1"], {"type": "custody-package/v2"}])
def test_a_manifest_of_another_type_is_refused(tmp_path: Path, manifest: Any) -> None:
    package = build()
    package.sign_manifest(manifest)
    verdict = verify_package(package.write(tmp_path / "p.zip"), package.pinned)
    assert verdict.failures == ["manifest: manifest.json is not a custody-package/v1 manifest"]


@pytest.mark.parametrize("changes", [{"case": ["UA-2024-017"]}, {"details": "exported"}, {"actor": "petra"}])
def test_custody_events_of_another_shape_are_a_finding(tmp_path: Path, changes: dict[str, Any]) -> None:
    package = build(event_changes=changes)
    verdict = verify_package(package.write(tmp_path / "p.zip"), package.pinned)
    assert verdict.exit_code == EXIT_FAILED
    member = next(iter(changes))
    assert any(f"event 1.{member}" in f and "missing or of the wrong type" in f for f in verdict.failures)


def test_json_nested_too_deep_is_a_finding(tmp_path: Path) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    package = build()
    package.files["manifest.json"] = deep
    verdict = verify_package(package.write(tmp_path / "a.zip"), package.pinned)
    assert any(f.startswith("manifest: manifest.json is not JSON") for f in verdict.failures), verdict.failures
    package = build()
    package.files[f"custody/{_first(package)}.json"] = deep
    verdict = verify_package(package.write(tmp_path / "b.zip"), package.pinned)
    assert any("custody chain: custody/" in f and "is not a JSON object" in f for f in verdict.failures)


@pytest.mark.parametrize(
    ("name", "check"),
    [("manifest.sig", "manifest signature"), ("manifest.pub.pem", "manifest signature"), ("log-key.txt", "log key"),
     ("checkpoint.tsr", "time-stamp")],
)
def test_an_oversized_part_is_a_finding(tmp_path: Path, name: str, check: str) -> None:
    package = build()
    package.files[name] = b"x" * (2 * 1024 * 1024)
    verdict = verify_package(package.write(tmp_path / "p.zip"), package.pinned)
    assert verdict.exit_code == EXIT_FAILED
    assert any(f.startswith(f"{check}:") for f in verdict.failures), verdict.failures


# --- RFC 8785, as the events are signed -------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [True, None, "é\u2028\n\"\\"], "\u20ac": {}, "\U0001f600": 0, "aa": -5},
        {"details": {"size": 9007199254740991, "text": "tab\tcontrol\x01"}},
    ],
)
def test_canonical_json_is_rfc_8785(value: dict[str, Any]) -> None:
    assert canonical_json(value) == canonical(value)


# --- the RFC 3161 time-stamp ------------------------------------------------------------------


def body_of(note: bytes) -> bytes:
    """The signed body of a checkpoint note: its lines before the blank line."""
    return note[: note.index(b"\n\n") + 1]


def _roots(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def test_a_time_stamp_of_the_checkpoint_holds_against_the_pinned_tsa(tmp_path: Path, tsa: OpensslTsa) -> None:
    package = build()
    package.files["checkpoint.tsr"] = tsa.stamp(body_of(package.files["checkpoint.txt"]))
    path = package.write(tmp_path / "p.zip")
    pinned = verify_package(path, package.pinned, tsa_roots=_roots(tsa.root))
    assert pinned.exit_code == EXIT_OK, pinned.failures
    [finding] = [f for f in pinned.findings if f.check == "time-stamp"]
    assert finding.ok and "signed by a pinned time-stamping authority" in finding.detail
    unpinned = verify_package(path, package.pinned)
    assert unpinned.ok and unpinned.timestamp_pinned is False and unpinned.exit_code == EXIT_NOT_PINNED
    assert "the time-stamping authority came from the package itself" in describe(unpinned)


def test_the_time_stamp_is_over_the_checkpoint_s_body_not_the_whole_note(tmp_path: Path, tsa: OpensslTsa) -> None:
    """The imprint is SHA-256 of ``ORIGIN\nSIZE\nROOT\n``, what the log's key signs: a token
    over the whole of checkpoint.txt (signature lines included) is over another document."""
    package = build()
    package.files["checkpoint.tsr"] = tsa.stamp(package.files["checkpoint.txt"])
    verdict = verify_package(package.write(tmp_path / "p.zip"), package.pinned, tsa_roots=_roots(tsa.root))
    assert verdict.exit_code == EXIT_FAILED
    assert verdict.failures == ["time-stamp: checkpoint.tsr time-stamps another document than the body of checkpoint.txt"]


def test_a_time_stamp_of_something_else_or_by_another_tsa_fails(tmp_path: Path, tsa: OpensslTsa) -> None:
    package = build()
    other = build()  # another log, another root: a real checkpoint, but not this package's
    assert body_of(other.files["checkpoint.txt"]) != body_of(package.files["checkpoint.txt"])
    package.files["checkpoint.tsr"] = tsa.stamp(body_of(other.files["checkpoint.txt"]))
    verdict = verify_package(package.write(tmp_path / "a.zip"), package.pinned, tsa_roots=_roots(tsa.root))
    assert verdict.exit_code == EXIT_FAILED
    assert any("time-stamps another document" in f for f in verdict.failures)

    package = build()
    package.files["checkpoint.tsr"] = tsa.stamp(body_of(package.files["checkpoint.txt"]))
    other_root = Ed25519PrivateKey.generate()
    stranger = _self_signed(other_root)
    verdict = verify_package(package.write(tmp_path / "b.zip"), package.pinned, tsa_roots=[stranger])
    assert verdict.exit_code == EXIT_FAILED
    assert any("does not verify under the pinned TSA roots" in f for f in verdict.failures)

    package = build()
    package.files["checkpoint.tsr"] = b"\x30\x03\x02\x01\x02"
    verdict = verify_package(package.write(tmp_path / "c.zip"), package.pinned, tsa_roots=_roots(tsa.root))
    assert verdict.exit_code == EXIT_FAILED and any(f.startswith("time-stamp:") for f in verdict.failures)


def _self_signed(key: Ed25519PrivateKey) -> x509.Certificate:
    import datetime as dt

    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Another TSA root")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, None)
    )


# --- offline, and nothing but the standard library and cryptography --------------------------


def test_it_never_touches_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = build()
    path = package.write(tmp_path / "p.zip")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the offline verifier tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert verify_package(path, package.pinned).exit_code == EXIT_OK


def test_it_imports_nothing_beyond_the_standard_library_and_cryptography(tmp_path: Path, tsa: OpensslTsa) -> None:
    """Run in a fresh interpreter where every other third-party module fails to import."""
    package = build()
    package.files["checkpoint.tsr"] = tsa.stamp(body_of(package.files["checkpoint.txt"]))
    path = package.write(tmp_path / "p.zip")
    script = textwrap.dedent(
        f"""
        import sys
        from importlib.abc import MetaPathFinder

        ALLOWED = set(sys.stdlib_module_names) | {{
            "cryptography", "_cffi_backend", "cffi", "_openssl", "rfc3161_client",
            "custody_client", "custody_common",
        }}

        class Refuse(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] not in ALLOWED:
                    raise ImportError(f"the verifier must not need {{name}}")
                if name.startswith("custody_common.") and name not in ("custody_common.errors", "custody_common.merkle"):
                    raise ImportError(f"the verifier must not need {{name}}")
                if name.startswith("custody_client.") and name not in (
                    "custody_client.package", "custody_client.verify", "custody_client.errors"
                ):
                    raise ImportError(f"the verifier must not need {{name}}")
                return None

        sys.meta_path.insert(0, Refuse())
        from cryptography import x509
        from custody_client.package import verify_package
        from custody_client.verify import LogKey
        roots = x509.load_pem_x509_certificates(open({str(tsa.root)!r}, "rb").read())
        verdict = verify_package({str(path)!r}, LogKey.parse({str(package.pinned)!r}), tsa_roots=roots)
        print(verdict.exit_code, verdict.failures)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 []"


# --- the command ----------------------------------------------------------------------------


def test_custody_verify_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("CUSTODY_LOG_KEY", raising=False)
    monkeypatch.delenv("CUSTODY_TSA_CA", raising=False)
    package = build()
    path = package.write(tmp_path / "p.zip")
    assert cli.main(["verify", str(path), "--log-key", str(package.pinned)]) == 0
    assert "VERIFIED" in capsys.readouterr().out
    key_file = tmp_path / "log.key"
    key_file.write_text(str(package.pinned) + "\n")
    monkeypatch.setenv("CUSTODY_LOG_KEY", str(key_file))
    assert cli.main(["verify", str(path)]) == 0
    monkeypatch.delenv("CUSTODY_LOG_KEY")
    assert cli.main(["verify", str(path)]) == 4
    captured = capsys.readouterr()
    assert "NOT PINNED" in captured.out and "was NOT PINNED" in captured.err
    changed_byte(package)
    broken = package.write(tmp_path / "broken.zip")
    assert cli.main(["verify", str(broken), "--log-key", str(package.pinned)]) == 1
    assert "file SHA-256" in capsys.readouterr().out
    assert cli.main(["verify", str(tmp_path / "missing.zip"), "--log-key", str(package.pinned)]) == 2
    assert cli.main(["verify", str(path), "--log-key", "not-a-key"]) == 2


def test_custody_verify_prints_text_it_cannot_encode_escaped(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    package = build()
    manifest = package.manifest()
    manifest["purpose"]["text"] = "\ud800"
    body = json.dumps(manifest).encode()  # ASCII: the lone surrogate travels as the JSON escape \ud800
    package.files["manifest.json"] = body
    package.files["manifest.sig"] = package.evidence_key.sign(body)
    path = package.write(tmp_path / "p.zip")
    assert cli.main(["verify", str(path), "--log-key", str(package.pinned)]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "purpose: \\ud800" in out and "FAILED:" in out


def test_a_package_round_trips_through_bytes(tmp_path: Path) -> None:
    """The builder itself writes what zipfile reads: a guard on this test module."""
    package = build()
    data = package.write(tmp_path / "p.zip").read_bytes()
    assert set(zipfile.ZipFile(io.BytesIO(data)).namelist()) == set(package.files)
    assert copy.deepcopy(package.manifest())["type"] == "custody-package/v1"


# --- damaged packages --------------------------------------------------------------------------


@functools.cache
def _packed() -> tuple[bytes, tuple[int, ...], LogKey, dict[str, bytes]]:
    """A genuine package as bytes (the documents deflated, the rest stored), the positions of
    its zip structures (local headers, central directory, end records), its pinned key and its
    files."""
    package = build()
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        for name, content in package.files.items():
            method = zipfile.ZIP_DEFLATED if name.endswith((".json", ".md", ".txt")) else zipfile.ZIP_STORED
            archive.writestr(name, content, compress_type=method)
    data = packed.getvalue()
    with zipfile.ZipFile(packed) as archive:
        headers = [range(i.header_offset, i.header_offset + 30 + len(i.filename.encode())) for i in archive.infolist()]
        structure = (*(p for header in headers for p in header), *range(archive.start_dir, len(data)))
    return data, structure, package.pinned, package.files


def _damaged(data: bytes, structure: tuple[int, ...]) -> st.SearchStrategy[bytes]:
    """``data`` with bytes changed, cut, inserted or removed, anywhere or (as often) where its
    zip structures are, which make up a small part of it."""
    at = st.integers(0, len(data) - 1) | st.sampled_from(structure)
    flips = st.lists(st.tuples(at, st.integers(0, 255)), min_size=1, max_size=4)

    def flipped(changes: list[tuple[int, int]]) -> bytes:
        damaged = bytearray(data)
        for position, value in changes:
            damaged[position] = value
        return bytes(damaged)

    return st.one_of(
        flips.map(flipped),
        at.map(lambda end: data[:end]),
        st.tuples(at, st.binary(min_size=1, max_size=64)).map(lambda p: data[: p[0]] + p[1] + data[p[0] :]),
        st.tuples(at, st.integers(1, 64)).map(lambda p: data[: p[0]] + data[p[0] + p[1] :]),
    )


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_damaged_package_is_findings_never_a_crash_and_verifies_only_as_it_was_packed(data: st.DataObject) -> None:
    """Bytes changed, cut, inserted or removed anywhere: ``custody verify`` gives a verdict, and
    a verdict of VERIFIED means zipfile reads exactly the files that were packed (a change may
    touch only what no reader acts on, such as a time stamp in a header)."""
    genuine, structure, pinned, files = _packed()
    damaged = data.draw(_damaged(genuine, structure))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "package.zip"
        path.write_bytes(damaged)
        verdict = verify_package(path, pinned)
    if verdict.ok:
        with zipfile.ZipFile(io.BytesIO(damaged)) as archive:
            assert {name: archive.read(name) for name in archive.namelist()} == files


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_value_of_the_manifest_or_a_chain_replaced_is_findings_never_a_crash(data: st.DataObject) -> None:
    """The manifest (signed again, so its checks run on what it now says) or a custody chain
    with any of its values replaced by any JSON value: ``custody verify`` gives a verdict."""
    package = copy.deepcopy(_built())
    target = data.draw(st.sampled_from(["manifest.json", *(n for n in package.files if n.startswith("custody/"))]))
    document = damaged(data, json.loads(package.files[target]))
    body = json.dumps(document, indent=2).encode()  # lone surrogates stay escaped
    package.files[target] = body
    if target == "manifest.json":
        package.files["manifest.sig"] = package.evidence_key.sign(body)
    with tempfile.TemporaryDirectory() as scratch:
        verdict = verify_package(package.write(Path(scratch) / "package.zip"), package.pinned)
    assert not verdict.ok or document == json.loads(_built().files[target])


@functools.cache
def _built() -> Package:
    return build()
