"""Offline verification of a court export package (``docs/package-format.md``).

Nothing here touches the network. It relies on the standard library, ``cryptography``, the
Merkle and checkpoint checks of :mod:`custody_client.verify` (themselves only the standard
library and ``cryptography``) and, for a package that holds a time-stamp, ``rfc3161-client``.

Trust comes from outside the package: the custody log's verifier key (pinned by the caller)
and, for the time-stamp, the time-stamping authority's root certificates. Without a pinned log
key the package's own ``log-key.txt`` is used, and the verdict says so (exit code 4): a forger
who rewrites the package can sign a checkpoint with a key of their own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from custody_client.errors import VerificationFailed
from custody_client.verify import Checkpoint, LogKey, open_checkpoint, verify_chain

PACKAGE_TYPE = "custody-package/v1"
MAX_DOCUMENT = 64 * 1024 * 1024
"""The largest manifest or custody chain read into memory."""
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_PINNED = 4
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class Finding:
    """One check and its outcome."""

    ok: bool
    check: str
    """What was checked, in a few words."""
    detail: str
    """What was found, as a sentence."""


@dataclass
class ItemVerdict:
    """The checks of one exported item."""

    evidence_id: str
    path: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check of the item holds."""
        return all(f.ok for f in self.findings)


@dataclass
class PackageVerdict:
    """Everything ``verify_package`` established, item by item."""

    path: Path
    package_id: str | None = None
    created_at: str | None = None
    exported_by: str | None = None
    purpose: str | None = None
    log_key: LogKey | None = None
    key_pinned: bool = False
    """Whether the log key came from outside the package."""
    checkpoint: Checkpoint | None = None
    findings: list[Finding] = field(default_factory=list)
    """Checks of the package as a whole."""
    items: list[ItemVerdict] = field(default_factory=list)
    excluded: list[Mapping[str, Any]] = field(default_factory=list)
    timestamp_pinned: bool | None = None
    """None when the package holds no time-stamp; else whether its TSA roots were pinned."""

    @property
    def ok(self) -> bool:
        """Whether every check, of the package and of each item, holds."""
        return all(f.ok for f in self.findings) and all(item.ok for item in self.items)

    @property
    def failures(self) -> list[str]:
        """Each failed check, named with its item where it has one."""
        failed = [f"{f.check}: {f.detail}" for f in self.findings if not f.ok]
        for item in self.items:
            failed += [f"item {item.evidence_id}: {f.check}: {f.detail}" for f in item.findings if not f.ok]
        return failed

    @property
    def exit_code(self) -> int:
        """0 everything holds against pinned keys; 1 something failed; 4 everything holds, but
        against a key the package brought itself."""
        if not self.ok:
            return EXIT_FAILED
        if not self.key_pinned or self.timestamp_pinned is False:
            return EXIT_NOT_PINNED
        return EXIT_OK


# --- RFC 8785, for the custody events' signatures ----------------------------------------


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of ``value``, for the JSON custody events hold: objects, arrays,
    strings, integers, booleans and null. Raises VerificationFailed on other numbers."""
    return _jcs(value).encode()


def _jcs(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if abs(value) > 2**53 - 1:
            raise VerificationFailed("a custody event holds an integer too large for RFC 8785")
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= 2**53 - 1:
            return str(int(value))
        raise VerificationFailed("a custody event holds a fractional number; it cannot be canonicalized here")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(_jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        members = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_jcs(v)}" for k, v in members) + "}"
    raise VerificationFailed(f"a custody event holds a {type(value).__name__}, which JSON does not have")


def event_signed_by(event: Mapping[str, Any], key: Ed25519PublicKey) -> bool:
    """Whether custody event ``event``'s ``sig`` is ``key``'s signature of its RFC 8785 form without ``sig``."""
    try:
        signature = base64.b64decode(str(event.get("sig")), validate=True)
        key.verify(signature, canonical_json({k: v for k, v in event.items() if k != "sig"}))
    except (InvalidSignature, binascii.Error, ValueError, VerificationFailed):
        return False
    return True


def commitment_holds(salt_hex: str, text: str, digest_hex: str) -> bool:
    """Whether SHA-256(salt ‖ UTF-8 text) is ``digest_hex``."""
    try:
        computed = hashlib.sha256(bytes.fromhex(salt_hex) + text.encode()).hexdigest()
    except (ValueError, TypeError, AttributeError):
        return False
    return hmac.compare_digest(computed, str(digest_hex))


# --- reading the zip ------------------------------------------------------------------------


class _Zip:
    """The package's entries, read with bounded memory."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.names = [info.filename for info in archive.infolist() if not info.is_dir()]

    def unsafe_names(self) -> list[str]:
        unsafe = []
        for name in self.names:
            parts = PurePosixPath(name).parts
            if name.startswith("/") or "\\" in name or ".." in parts or not parts or ":" in parts[0]:
                unsafe.append(name)
        return unsafe

    def duplicates(self) -> list[str]:
        seen: set[str] = set()
        return [n for n in self.names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]

    def has(self, name: str) -> bool:
        return name in self.names

    def read(self, name: str, limit: int = MAX_DOCUMENT) -> bytes:
        info = self.archive.getinfo(name)
        if info.file_size > limit:
            raise VerificationFailed(f"{name} is {info.file_size} bytes, more than the {limit} a package may hold there")
        with self.archive.open(info) as stream:
            return stream.read(limit + 1)[:limit]

    def digest(self, name: str) -> tuple[str, int]:
        """SHA-256 (hex) and size of an entry, read a block at a time (the zip's CRC is checked too)."""
        digest = hashlib.sha256()
        size = 0
        with self.archive.open(name) as stream:
            while block := stream.read(_BLOCK):
                digest.update(block)
                size += len(block)
        return digest.hexdigest(), size


# --- the checks -------------------------------------------------------------------------------


def verify_package(
    path: Path,
    log_key: LogKey | None,
    *,
    tsa_roots: Sequence[x509.Certificate] = (),
) -> PackageVerdict:
    """Check the package at ``path`` offline: every file's SHA-256 against the manifest and the
    custody events, the manifest's signature and that its key is the evidence service's key in
    the log, every inclusion proof against the checkpoint, the checkpoint's signature by
    ``log_key`` (the package's own ``log-key.txt`` when None: then the verdict is not pinned),
    each item's ``item_seq``/``prev_leaf`` chain, and the RFC 3161 time-stamp if present
    (against ``tsa_roots``). Never raises for what the package holds: each problem is a failed
    :class:`Finding`."""
    verdict = PackageVerdict(path=Path(path), key_pinned=log_key is not None)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        verdict.findings.append(Finding(False, "zip archive", f"{path} is not a readable zip archive ({exc})"))
        return verdict
    with archive:
        _verify(_Zip(archive), log_key, tuple(tsa_roots), verdict)
    return verdict


def _verify(package: _Zip, pinned: LogKey | None, tsa_roots: tuple[x509.Certificate, ...], verdict: PackageVerdict) -> None:
    found = verdict.findings
    bad_names = package.unsafe_names() + package.duplicates()
    found.append(
        Finding(not bad_names, "zip paths", "every path is relative, unique and stays inside the package")
        if not bad_names
        else Finding(False, "zip paths", f"unsafe or repeated paths: {', '.join(bad_names[:5])}")
    )
    missing = [n for n in ("manifest.json", "manifest.sig", "manifest.pub.pem", "checkpoint.txt") if not package.has(n)]
    if missing:
        found.append(Finding(False, "package contents", f"missing: {', '.join(missing)}"))
        return

    manifest_bytes = package.read("manifest.json")
    manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
    evidence_key = _manifest_signature(package, manifest_bytes, found)
    try:
        manifest = json.loads(manifest_bytes)
        if not isinstance(manifest, dict) or manifest.get("type") != PACKAGE_TYPE:
            raise ValueError(f"it is not a {PACKAGE_TYPE} manifest")
        if not isinstance(manifest.get("items"), list):
            raise ValueError("it lists no items")
    except ValueError as exc:
        found.append(Finding(False, "manifest", f"manifest.json cannot be read: {exc}"))
        return
    verdict.package_id = str(manifest.get("package_id"))
    verdict.created_at = str(manifest.get("created_at"))
    exporter = manifest.get("exported_by") or {}
    verdict.exported_by = f"{exporter.get('sub')} ({', '.join(exporter.get('roles') or [])})"
    purpose = manifest.get("purpose") or {}
    verdict.purpose = purpose.get("text") if isinstance(purpose.get("text"), str) else None
    verdict.excluded = [e for e in manifest.get("excluded") or [] if isinstance(e, Mapping)]
    key_id = _manifest_key(manifest, evidence_key, found)

    checkpoint_text = package.read("checkpoint.txt").decode("utf-8", "replace")
    key = _log_key(package, pinned, found)
    verdict.log_key = key
    checkpoint = None
    if key is not None:
        try:
            checkpoint = open_checkpoint(checkpoint_text, key)
            found.append(
                Finding(
                    True,
                    "checkpoint",
                    f"signed by {'the pinned' if pinned else 'the package’s own (NOT PINNED)'} log key "
                    f"{key.name}+{key.key_id.hex()}: tree size {checkpoint.size}, root {checkpoint.root_b64}",
                )
            )
        except VerificationFailed as failure:
            found.append(Finding(False, "checkpoint", str(failure)))
    verdict.checkpoint = checkpoint
    origin = (manifest.get("log") or {}).get("origin")
    if checkpoint is not None and origin != checkpoint.origin:
        found.append(Finding(False, "log", f"the manifest names log {origin!r}, the checkpoint is of {checkpoint.origin!r}"))

    listed: set[str] = set()
    for position, entry in enumerate(manifest["items"], start=1):
        item = _verify_item(
            package, entry, position, manifest, manifest_sha256, checkpoint_text, checkpoint, key, evidence_key, key_id
        )
        verdict.items.append(item)
        if isinstance(entry, Mapping):
            listed.update({str(entry.get("path")), str(entry.get("custody"))})
    unlisted = [
        n for n in package.names if (n.startswith("files/") or n.startswith("custody/")) and n not in listed
    ]
    if unlisted:
        found.append(Finding(False, "package contents", f"not listed in the manifest: {', '.join(unlisted[:5])}"))
    if not verdict.items:
        found.append(Finding(False, "package contents", "the manifest lists no exported item"))
    if package.has("checkpoint.tsr"):
        verdict.timestamp_pinned = bool(tsa_roots)
        found.append(_timestamp(package.read("checkpoint.tsr"), checkpoint_text, tsa_roots))


def _manifest_signature(package: _Zip, manifest_bytes: bytes, found: list[Finding]) -> Ed25519PublicKey | None:
    try:
        key = serialization.load_pem_public_key(package.read("manifest.pub.pem", 64 * 1024))
    except ValueError:
        found.append(Finding(False, "manifest signature", "manifest.pub.pem holds no public key"))
        return None
    if not isinstance(key, Ed25519PublicKey):
        found.append(Finding(False, "manifest signature", "manifest.pub.pem is not an Ed25519 key"))
        return None
    signature = package.read("manifest.sig", 1024)
    try:
        if len(signature) != 64:
            raise InvalidSignature
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        found.append(
            Finding(False, "manifest signature", "manifest.sig is not the signature of manifest.json by manifest.pub.pem")
        )
        return key
    found.append(Finding(True, "manifest signature", "manifest.json is signed by the key in manifest.pub.pem"))
    return key


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _manifest_key(manifest: Mapping[str, Any], key: Ed25519PublicKey | None, found: list[Finding]) -> str | None:
    if key is None:
        return None
    key_id = hashlib.sha256(_raw(key)).hexdigest()
    named = manifest.get("evidence_service_key") or {}
    if named.get("key_id") != key_id or named.get("public_key") != base64.b64encode(_raw(key)).decode():
        found.append(Finding(False, "manifest key", "the manifest names another key than the one it is signed with"))
    return key_id


def _log_key(package: _Zip, pinned: LogKey | None, found: list[Finding]) -> LogKey | None:
    stated: LogKey | None = None
    if package.has("log-key.txt"):
        try:
            stated = LogKey.parse(package.read("log-key.txt", 4096).decode("utf-8", "replace"))
        except VerificationFailed as failure:
            found.append(Finding(False, "log key", f"log-key.txt: {failure}"))
    if pinned is None:
        if stated is None:
            found.append(Finding(False, "log key", "no log key was pinned and the package states none"))
        else:
            found.append(
                Finding(
                    True,
                    "log key",
                    f"NOT PINNED: checked against the package's own log-key.txt ({stated}); pass --log-key or "
                    "set CUSTODY_LOG_KEY with the log's key from a source you trust",
                )
            )
        return stated
    if stated is not None and str(stated) != str(pinned):
        found.append(Finding(False, "log key", f"log-key.txt states {stated}, not the pinned key {pinned}"))
    else:
        found.append(Finding(True, "log key", f"pinned: {pinned}"))
    return pinned


def _verify_item(
    package: _Zip,
    entry: Any,
    position: int,
    manifest: Mapping[str, Any],
    manifest_sha256: str,
    checkpoint_text: str,
    checkpoint: Checkpoint | None,
    key: LogKey | None,
    evidence_key: Ed25519PublicKey | None,
    key_id: str | None,
) -> ItemVerdict:
    if not isinstance(entry, Mapping):
        verdict = ItemVerdict(evidence_id=f"#{position}", path="?")
        verdict.findings.append(Finding(False, "manifest entry", f"item {position} of the manifest is not an object"))
        return verdict
    evidence_id, path = str(entry.get("evidence_id")), str(entry.get("path"))
    verdict = ItemVerdict(evidence_id=evidence_id, path=path)
    add = verdict.findings.append
    sha256, size = entry.get("sha256"), entry.get("size")
    if not (_UUID.match(evidence_id) and isinstance(sha256, str) and _HEX64.match(sha256) and isinstance(size, int)):
        add(Finding(False, "manifest entry", "the entry lacks a valid evidence_id, sha256 or size"))
        return verdict

    actual: tuple[str, int] | None = None
    if not path.startswith("files/") or not package.has(path):
        add(Finding(False, "file", f"{path} is not in the package"))
    else:
        try:
            actual = package.digest(path)
        except (zipfile.BadZipFile, OSError) as exc:
            add(Finding(False, "file", f"{path} cannot be read from the zip ({exc}): it was altered"))
        else:
            matches = actual == (sha256, size)
            add(
                Finding(True, "file SHA-256", f"{path}: {size} bytes, SHA-256 {sha256}, as the manifest says")
                if matches
                else Finding(
                    False,
                    "file SHA-256",
                    f"{path} has SHA-256 {actual[0]} and {actual[1]} bytes; the manifest says {sha256} and {size}",
                )
            )

    custody_path = str(entry.get("custody"))
    if custody_path != f"custody/{evidence_id}.json" or not package.has(custody_path):
        add(Finding(False, "custody chain", f"custody/{evidence_id}.json is not in the package"))
        return verdict
    try:
        custody = json.loads(package.read(custody_path))
        if not isinstance(custody, dict):
            raise ValueError("not an object")
    except (ValueError, VerificationFailed) as exc:
        add(Finding(False, "custody chain", f"{custody_path} cannot be read: {exc}"))
        return verdict
    if custody.get("checkpoint") != checkpoint_text:
        add(Finding(False, "custody chain", f"{custody_path} is proven against another checkpoint than checkpoint.txt"))
        return verdict
    if checkpoint is None or key is None:
        add(Finding(False, "custody chain", "not checked: the checkpoint does not verify"))
        return verdict
    try:
        report = verify_chain(custody, key, evidence_id)
    except VerificationFailed as failure:
        add(Finding(False, "custody chain", str(failure)))
        return verdict
    add(
        Finding(
            True,
            "custody chain",
            f"{report.events} events, each included in checkpoint {checkpoint.size}; item_seq 1…{report.events} "
            "with every prev_leaf linked",
        )
    )
    events = [event["entry"]["event"] for event in custody["events"]]
    file_hash = actual or (None, None)
    _check_case(events, entry, add)
    _check_sealed(events, file_hash, add)
    _check_exported(events, manifest, manifest_sha256, file_hash, key_id, add)
    _check_signatures(events, evidence_key, add)
    _check_metadata(events, entry, add)
    return verdict


def _check_case(events: list[dict[str, Any]], entry: Mapping[str, Any], add: Any) -> None:
    cases = {e.get("case") for e in events}
    if cases != {entry.get("case")}:
        add(Finding(False, "case", f"the manifest says case {entry.get('case')!r}; the events name {sorted(map(str, cases))}"))


def _check_sealed(events: list[dict[str, Any]], file_hash: tuple[Any, Any], add: Any) -> None:
    sealed = [e for e in events if e.get("action") == "sealed"]
    if not sealed:
        add(Finding(False, "sealed event", "the chain holds no sealed event"))
        return
    recorded = (sealed[-1].get("sha256"), sealed[-1].get("size"))
    if recorded != file_hash:
        add(
            Finding(
                False,
                "sealed event",
                f"the sealed event records SHA-256 {recorded[0]} and {recorded[1]} bytes; the file has "
                f"{file_hash[0]} and {file_hash[1]}",
            )
        )
    else:
        add(Finding(True, "sealed event", f"records the file's SHA-256 and size ({sealed[-1].get('time')})"))


def _check_exported(
    events: list[dict[str, Any]],
    manifest: Mapping[str, Any],
    manifest_sha256: str,
    file_hash: tuple[Any, Any],
    key_id: str | None,
    add: Any,
) -> None:
    package_id = manifest.get("package_id")
    mine = [
        e for e in events
        if e.get("action") == "exported" and (e.get("details") or {}).get("package_id") == package_id
    ]
    if not mine:
        add(Finding(False, "exported event", f"the chain holds no exported event of package {package_id}"))
        return
    event = mine[0]
    details = event.get("details") or {}
    problems = []
    if details.get("manifest_sha256") != manifest_sha256:
        problems.append(f"it names manifest SHA-256 {details.get('manifest_sha256')}, not {manifest_sha256}")
    if (event.get("sha256"), event.get("size")) != file_hash:
        problems.append("it names another file hash or size")
    purpose = manifest.get("purpose") or {}
    committed = (event.get("commitments") or {}).get("purpose")
    if not (isinstance(purpose.get("text"), str) and commitment_holds(str(purpose.get("salt")), purpose["text"], str(committed))):
        problems.append("the manifest's purpose is not the one committed to in the log")
    if key_id is not None and details.get("signing_key") != key_id:
        problems.append(f"it names evidence key {details.get('signing_key')}, not the manifest's {key_id}")
    actor = event.get("actor") or {}
    exporter = manifest.get("exported_by") or {}
    if actor.get("sub") != exporter.get("sub"):
        problems.append(f"it was done by {actor.get('sub')!r}, not {exporter.get('sub')!r}")
    add(
        Finding(False, "exported event", "; ".join(problems))
        if problems
        else Finding(True, "exported event", f"logged {event.get('time')}: names this manifest, the file and the purpose")
    )


def _check_signatures(events: list[dict[str, Any]], key: Ed25519PublicKey | None, add: Any) -> None:
    by_evidence = [e for e in events if e.get("service") == "evidence"]
    if key is None:
        add(Finding(False, "evidence key", "no manifest key to check the evidence service's events with"))
        return
    unsigned = [str(e.get("id")) for e in by_evidence if not event_signed_by(e, key)]
    if unsigned or not by_evidence:
        add(
            Finding(
                False,
                "evidence key",
                f"events {', '.join(unsigned)} of the evidence service do not verify under manifest.pub.pem"
                if unsigned
                else "no event of the evidence service to tie manifest.pub.pem to the log",
            )
        )
    else:
        add(
            Finding(
                True,
                "evidence key",
                f"manifest.pub.pem signed the {len(by_evidence)} logged events of the evidence service",
            )
        )


def _check_metadata(events: list[dict[str, Any]], entry: Mapping[str, Any], add: Any) -> None:
    metadata, salts = entry.get("metadata"), entry.get("metadata_salts")
    submitted = [e for e in events if e.get("action") == "submitted"]
    if not isinstance(metadata, Mapping) or not metadata:
        add(Finding(False, "metadata", "the manifest holds no metadata for the item"))
        return
    if not isinstance(salts, Mapping) or not submitted:
        add(Finding(True, "metadata", "not bound to the log: the item's submission carries no disclosed commitments"))
        return
    committed = submitted[0].get("commitments") or {}
    wrong = [
        name for name, text in metadata.items()
        if not (isinstance(text, str) and name in committed and commitment_holds(str(salts.get(name)), text, committed[name]))
    ]
    undisclosed = sorted(set(committed) - set(metadata))
    if wrong or undisclosed:
        said = [f"{', '.join(wrong)} do not match what was committed at submission"] if wrong else []
        said += [f"{', '.join(undisclosed)} committed at submission but not shown"] if undisclosed else []
        add(Finding(False, "metadata", "; ".join(said)))
    else:
        add(Finding(True, "metadata", f"{', '.join(metadata)} match the commitments of the submitted event"))


def _checkpoint_body(note: str) -> bytes | None:
    """The signed body of a checkpoint note (its origin, size and root lines, each with its
    newline: every line before the blank line that precedes the signatures), or None when the
    note has no blank line."""
    body, blank, _signatures = note.rpartition("\n\n")
    return (body + "\n").encode() if blank else None


def _timestamp(token: bytes, checkpoint_text: str, roots: tuple[x509.Certificate, ...]) -> Finding:
    """The RFC 3161 time-stamp response over SHA-256 of the body of ``checkpoint.txt``."""
    try:
        from rfc3161_client import PKIStatus, VerificationError, VerifierBuilder, decode_timestamp_response
    except ImportError:
        return Finding(False, "time-stamp", "checkpoint.tsr cannot be checked: install rfc3161-client")
    body = _checkpoint_body(checkpoint_text)
    if body is None:
        return Finding(False, "time-stamp", "checkpoint.txt has no body to compare checkpoint.tsr with")
    try:
        response = decode_timestamp_response(token)
    except (ValueError, VerificationError) as exc:
        return Finding(False, "time-stamp", f"checkpoint.tsr is not an RFC 3161 time-stamp response ({exc})")
    if response.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        return Finding(False, "time-stamp", f"checkpoint.tsr is a refusal (status {response.status})")
    try:
        info = response.tst_info
    except ValueError as exc:
        return Finding(False, "time-stamp", f"checkpoint.tsr holds no time-stamp token ({exc})")
    imprint = info.message_imprint
    if imprint.hash_algorithm.dotted_string != "2.16.840.1.101.3.4.2.1":
        return Finding(False, "time-stamp", "checkpoint.tsr does not time-stamp a SHA-256 hash")
    digest = hashlib.sha256(body).digest()
    if not hmac.compare_digest(imprint.message, digest):
        return Finding(
            False, "time-stamp", "checkpoint.tsr time-stamps another document than the body of checkpoint.txt"
        )
    when = info.gen_time.isoformat()
    if not roots:
        return Finding(
            True,
            "time-stamp",
            f"time-stamps the body of checkpoint.txt at {when}; NOT PINNED: its signature was not checked (pass "
            "--tsa-ca with the time-stamping authority's root certificate)",
        )
    try:
        VerifierBuilder(roots=list(roots)).build().verify(response, digest)
    except VerificationError as exc:
        return Finding(False, "time-stamp", f"checkpoint.tsr does not verify under the pinned TSA roots: {exc}")
    return Finding(
        True, "time-stamp", f"checkpoint.txt's body existed at {when}, signed by a pinned time-stamping authority"
    )


def describe(verdict: PackageVerdict) -> str:
    """The verdict as a report a person reads, item by item."""
    mark = {True: "ok  ", False: "FAIL"}
    lines = [f"package {verdict.path}"]
    if verdict.package_id:
        lines.append(f"  id {verdict.package_id}, made {verdict.created_at} by {verdict.exported_by}")
        lines.append(f"  purpose: {verdict.purpose}")
    lines += [f"  [{mark[f.ok]}] {f.check}: {f.detail}" for f in verdict.findings]
    for item in verdict.items:
        lines.append("")
        lines.append(f"item {item.evidence_id}  ({item.path})  {'VERIFIED' if item.ok else 'FAILED'}")
        lines += [f"  [{mark[f.ok]}] {f.check}: {f.detail}" for f in item.findings]
    for excluded in verdict.excluded:
        lines.append("")
        lines.append(f"not exported: {excluded.get('evidence_id')} ({excluded.get('case')}): {excluded.get('reason')}")
    lines.append("")
    if not verdict.ok:
        failures = verdict.failures
        lines.append(f"FAILED: {len(failures)} check(s) did not hold:")
        lines += [f"  - {failure}" for failure in failures]
    elif verdict.exit_code == EXIT_NOT_PINNED:
        what = "the log key" if not verdict.key_pinned else "the time-stamping authority"
        lines.append(
            f"NOT PINNED: every check holds, but {what} came from the package itself, so a forger could have "
            "made it; pin it from a source you trust"
        )
    else:
        lines.append(f"VERIFIED: {len(verdict.items)} item(s), every check holds against the pinned key(s)")
    return "\n".join(lines)
