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
import lzma
import re
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
    except (InvalidSignature, binascii.Error, ValueError, RecursionError, VerificationFailed):
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
        # Not ZipInfo.is_dir(), which fails on an empty name (an unsafe path, reported as such).
        self.names = [info.filename for info in archive.infolist() if not info.filename.endswith("/")]

    def unsafe_names(self) -> list[str]:
        """Entries not spelled the one way every extractor reads alike (``./files/x``,
        ``files//x``, ``/x``, ``a\\b``, ``C:x``, ``..``): each could land on another entry's path."""
        return [info.filename for info in self.archive.infolist() if not _canonical(info.filename)]

    def duplicates(self) -> list[str]:
        """Entries whose path, ignoring case and Unicode normalization, an earlier one has:
        extracted, the later would overwrite the earlier (``FILES/x`` over ``files/x``)."""
        seen: set[str] = set()
        repeated = []
        for info in self.archive.infolist():
            key = _path_key(info.filename)
            if key in seen:
                repeated.append(info.filename)
            seen.add(key)
        return repeated

    def layout_problem(self) -> str | None:
        """What an extractor reading the archive from its start by each entry's own (local)
        header, as ``jar xf`` or a stream does, would find that the central directory, which
        the checks read, does not say; None when the two agree exactly. Each entry must start
        where the one before it ends, its local header must state the central directory's
        name, flags, method, sizes and CRC (or leave them to a data descriptor that states
        them), its compressed data must end exactly at its stated size, and the central
        directory must follow the last entry. Otherwise bytes lie where no check looked: an
        entry the directory does not list, or one with other contents."""
        infos = sorted(self.archive.infolist(), key=lambda i: i.header_offset)
        documents = sum(info.file_size for info in infos if info.compress_type == zipfile.ZIP_DEFLATED)
        if documents > _MAX_DEFLATED:
            return f"its deflated entries inflate to {documents} bytes in all, more than the {_MAX_DEFLATED} a package holds"
        if not infos:
            return "bytes that belong to no entry precede the central directory" if self.archive.start_dir else None
        ends = [info.header_offset for info in infos[1:]] + [self.archive.start_dir]
        position = 0
        for info, next_start in zip(infos, ends, strict=True):
            if info.header_offset != position:
                return f"{info.filename} does not start where the entry before it ends"
            problem = self._entry_problem(info, next_start)
            if problem:
                return f"{info.filename}: {problem}"
            position = next_start
        return None

    def _entry_problem(self, info: zipfile.ZipInfo, next_start: int) -> str | None:
        fp = self.archive.fp
        fp.seek(info.header_offset)
        header = fp.read(_LOCAL.size)
        if len(header) < _LOCAL.size or header[:4] != b"PK\x03\x04":
            return "no local header where the central directory says the entry starts"
        _, _, flags, method, _, _, crc, compressed, size, name_length, extra_length = _LOCAL.unpack(header)
        name = fp.read(name_length)
        extra = fp.read(extra_length)
        if (flags, method, name) != (info.flag_bits, info.compress_type, _raw_name(info)):
            return "its local header states another name, flags or compression method than the central directory"
        if method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            return f"it is compressed by method {method}: a package holds stored and deflated entries only"
        if flags & ~_UTF8_NAME:
            return (
                f"its flags {flags:#06x} ask for a data descriptor or encryption: a package states every entry's "
                "CRC and sizes before its data, which readers taking the archive as a stream rely on"
            )
        stated = _stated_sizes(extra, compressed, size)
        if stated is None or not _plain_extra(info.extra):
            return "its extra fields are not the one ZIP64 field a package uses, once and in its one form"
        if (crc, *stated) != (info.CRC, info.compress_size, info.file_size):
            return "its local header states another size or CRC than the central directory"
        start = info.header_offset + _LOCAL.size + name_length + extra_length
        end = start + info.compress_size
        if next_start != end:
            return "bytes follow its data that belong to no entry"
        if method == zipfile.ZIP_DEFLATED:
            if info.file_size > min(MAX_DOCUMENT, _MAX_RATIO * max(info.compress_size, 1)):
                return (
                    f"it inflates to {info.file_size} bytes from {info.compress_size}: a package deflates only "
                    f"documents, of at most {MAX_DOCUMENT} bytes and at most {_MAX_RATIO} times smaller"
                )
            if not self._deflate_ends_at(start, info.compress_size, info.file_size):
                return "its compressed data does not end exactly at its stated size: bytes are hidden after it"
        return None

    def _deflate_ends_at(self, start: int, compressed: int, size: int) -> bool:
        """Whether the deflate stream at ``start`` inflates to ``size`` bytes and ends exactly
        ``compressed`` bytes later; never inflates more than ``size`` + a block."""
        fp = self.archive.fp
        fp.seek(start)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        left, produced, pending = compressed, 0, b""
        try:
            while not inflater.eof:
                if not pending:
                    if not left:
                        return False  # the stream goes on past the stated size
                    pending = fp.read(min(_BLOCK, left))
                    if not pending:
                        return False
                    left -= len(pending)
                produced += len(inflater.decompress(pending, _BLOCK))
                pending = inflater.unconsumed_tail
                if produced > size:
                    return False
        except zlib.error:
            return False
        return not left and not pending and not inflater.unused_data and produced == size

    def has(self, name: str) -> bool:
        return name in self.names

    def size(self, name: str) -> int:
        """The entry's size as the central directory states it, read without decompressing."""
        return self.archive.getinfo(name).file_size

    def read(self, name: str, limit: int = MAX_DOCUMENT) -> bytes:
        """The entry's bytes; raises VerificationFailed if it holds more than ``limit`` or is damaged."""
        info = self.archive.getinfo(name)
        if info.file_size > limit:
            raise VerificationFailed(f"{name} is {info.file_size} bytes, more than the {limit} a package may hold there")
        try:
            with self.archive.open(info) as stream:
                return stream.read(limit + 1)[:limit]
        except _DAMAGED as exc:
            raise _damaged(name, exc) from None

    def digest(self, name: str, size: int) -> str:
        """SHA-256 (hex) of an entry the central directory says holds ``size`` bytes, read a
        block at a time, never more than ``size`` + 1 bytes (the zip's CRC is checked too);
        raises VerificationFailed if it is damaged."""
        digest = hashlib.sha256()
        left = size + 1
        try:
            with self.archive.open(name) as stream:
                while left > 0 and (block := stream.read(min(_BLOCK, left))):
                    digest.update(block)
                    left -= len(block)
        except _DAMAGED as exc:
            raise _damaged(name, exc) from None
        return digest.hexdigest()


_DAMAGED = (
    zipfile.BadZipFile,
    NotImplementedError,
    RuntimeError,
    EOFError,
    OSError,
    UnicodeDecodeError,
    zlib.error,
    lzma.LZMAError,
)
"""What zipfile raises for an entry it cannot read: a bad CRC or header, a local header's
name marked UTF-8 that is not, an unsupported compression method, encryption, compressed data
cut short or corrupt."""
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
"""A local file header: signature, version needed, flags, method, time, date, CRC-32,
compressed size, size, name length, extra field length."""
_UTF8_NAME = 0x800
"""General purpose flag bit 11, the only one a package sets: the name is UTF-8."""
_ZIP64 = 0xFFFFFFFF
_MAX_RATIO = 200
"""How many times its compressed size a deflated entry may inflate to: documents compress a
few times; a zip bomb a thousand."""
_MAX_DEFLATED = 4 * 1024**3
"""What all deflated entries together may inflate to: documents, never evidence files."""


def _raw_name(info: zipfile.ZipInfo) -> bytes:
    """The entry's name as the central directory spells it (UTF-8 when flag bit 11 says so)."""
    return info.orig_filename.encode("utf-8" if info.flag_bits & _UTF8_NAME else "cp437")


def _stated_sizes(extra: bytes, compressed: int, size: int) -> tuple[int, int] | None:
    """The compressed size and size a local header states: its own fields, or, when both are
    0xFFFFFFFF, its one ZIP64 field of both sizes; None for any other extra field (readers
    disagree about which of two ZIP64 fields counts, and what follows an overlong one)."""
    if not extra and _ZIP64 not in (compressed, size):
        return compressed, size
    if (compressed, size) != (_ZIP64, _ZIP64) or len(extra) != 20 or extra[:4] != b"\x01\x00\x10\x00":
        return None
    size, compressed = struct.unpack_from("<QQ", extra, 4)
    return compressed, size


def _plain_extra(extra: bytes) -> bool:
    """Whether the central directory's extra field is empty or exactly one ZIP64 field (of the
    values its fixed fields leave to it)."""
    if not extra:
        return True
    tag, length = struct.unpack_from("<HH", extra) if len(extra) >= 4 else (None, None)
    return tag == 1 and length == len(extra) - 4 and length in (8, 16, 24)


def _damaged(name: str, exc: Exception) -> VerificationFailed:
    return VerificationFailed(
        f"{name} cannot be read from the zip ({type(exc).__name__}: {exc}): it was damaged or altered"
    )


def _canonical(name: str) -> bool:
    path = name.removesuffix("/")  # a directory entry
    segments = path.split("/")
    return "\\" not in path and ":" not in segments[0] and not any(s in ("", ".", "..") for s in segments)


def _path_key(name: str) -> str:
    """The path as a case-insensitive or normalizing file system (macOS, Windows) sees it."""
    return unicodedata.normalize("NFC", name.removesuffix("/")).casefold()


# --- the checks -------------------------------------------------------------------------------

_NULL = type(None)
_MANIFEST: dict[str, Any] = {
    "package_id": str,
    "created_at": str,
    "exported_by": {"sub": str, "roles": [str]},
    "purpose": {"text": str, "salt": str},
    "log": {"origin": str},
    "evidence_service_key": {"key_id": str, "public_key": str},
    "items": [
        {
            "evidence_id": str,
            "case": str,
            "path": str,
            "sha256": str,
            "size": int,
            "custody": str,
            "metadata": dict,
            "metadata_salts": (dict, _NULL),
        }
    ],
    "excluded": [dict],
}
"""The members of a manifest the checks rely on, and their JSON types (§2)."""
_EVENT: dict[str, Any] = {"case": str, "actor": (dict, _NULL), "details": (dict, _NULL), "commitments": (dict, _NULL)}
"""The members of a custody event the checks rely on, and their JSON types."""


def _misfits(value: Any, shape: Any, where: str) -> list[str]:
    """Where ``value`` departs from ``shape``: a dict of its members' shapes, a list of one
    element's shape for every element, or a type (or tuple of types) the value must be."""
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [where]
        return [
            m for name, kind in shape.items() for m in _misfits(value.get(name), kind, f"{where}.{name}" if where else name)
        ]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [where]
        return [m for n, element in enumerate(value) for m in _misfits(element, shape[0], f"{where}[{n}]")]
    return [] if isinstance(value, shape) else [where]


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
    each item's ``item_seq``/``prev_leaf`` chain, that VERIFY.md and report.pdf are as the
    evidence service wrote them, and the RFC 3161 time-stamp if present (against
    ``tsa_roots``). Never raises for what the package holds: each problem is a failed
    :class:`Finding`."""
    verdict = PackageVerdict(path=Path(path), key_pinned=log_key is not None)
    try:
        archive = zipfile.ZipFile(path)
    # ValueError: a name that is not UTF-8; NotImplementedError: a version of zip zipfile does not read
    except (OSError, EOFError, ValueError, NotImplementedError, zipfile.BadZipFile) as exc:
        verdict.findings.append(Finding(False, "zip archive", f"{path} is not a readable zip archive ({exc})"))
        return verdict
    with archive:
        _verify(_Zip(archive), log_key, tuple(tsa_roots), verdict)
    return verdict


def _verify(package: _Zip, pinned: LogKey | None, tsa_roots: tuple[x509.Certificate, ...], verdict: PackageVerdict) -> None:
    found = verdict.findings
    bad_names = package.unsafe_names() + package.duplicates()
    found.append(
        Finding(
            True, "zip paths", "every path is relative, spelled plainly, unique ignoring case, and stays inside the package"
        )
        if not bad_names
        else Finding(
            False,
            "zip paths",
            f"unsafe or repeated paths: {', '.join(bad_names[:5])} (each must be spelled plainly and once, ignoring "
            "case): extracted, such an entry can replace another, so what is extracted may not be what was checked",
        )
    )
    layout = package.layout_problem()
    if layout:
        found.append(
            Finding(
                False,
                "zip entries",
                f"{layout}. Extractors that read the archive from its start could find there an entry, or contents, "
                "that no check saw",
            )
        )
    missing = [n for n in _REQUIRED if not package.has(n)]
    if missing:
        found.append(Finding(False, "package contents", f"missing: {', '.join(missing)}"))
        return
    try:
        manifest_bytes = package.read("manifest.json")
        checkpoint_text = package.read("checkpoint.txt").decode("utf-8", "replace")
    except VerificationFailed as failure:
        found.append(Finding(False, "package contents", str(failure)))
        return

    manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
    evidence_key = _manifest_signature(package, manifest_bytes, found)
    try:
        manifest = json.loads(manifest_bytes)
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays or objects nested too deep
        found.append(Finding(False, "manifest", f"manifest.json is not JSON ({exc})"))
        return
    if not isinstance(manifest, dict) or manifest.get("type") != PACKAGE_TYPE:
        found.append(Finding(False, "manifest", f"manifest.json is not a {PACKAGE_TYPE} manifest"))
        return
    misfits = _misfits(manifest, _MANIFEST, "")
    if misfits:
        found.append(
            Finding(
                False,
                "manifest",
                f"manifest.json is not a {PACKAGE_TYPE} manifest: {', '.join(misfits[:5])} missing or of the wrong "
                "type (docs/package-format.md §2); nothing else was checked",
            )
        )
        return
    verdict.package_id = manifest["package_id"]
    verdict.created_at = manifest["created_at"]
    exporter = manifest["exported_by"]
    verdict.exported_by = f"{exporter['sub']} ({', '.join(exporter['roles'])})"
    verdict.purpose = manifest["purpose"]["text"]
    verdict.excluded = manifest["excluded"]
    key_id = _manifest_key(manifest, evidence_key, found)

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
    origin = manifest["log"]["origin"]
    if checkpoint is not None and origin != checkpoint.origin:
        found.append(Finding(False, "log", f"the manifest names log {origin!r}, the checkpoint is of {checkpoint.origin!r}"))

    listed: set[str] = set()
    for entry in manifest["items"]:
        item = _verify_item(
            package, entry, manifest, manifest_sha256, checkpoint_text, checkpoint, key, evidence_key, key_id
        )
        verdict.items.append(item)
        listed.update({entry["path"], entry["custody"]})
    # compared as a case-insensitive file system would, so FILES/x counts as under files/
    itemized = {n for n in package.names if _path_key(n).startswith(("files/", "custody/"))}
    unlisted = [n for n in package.names if n in itemized and n not in listed]
    if unlisted:
        found.append(Finding(False, "package contents", f"not listed in the manifest: {', '.join(unlisted[:5])}"))
    foreign = [n for n in package.names if n not in itemized and n not in _TOP_LEVEL]
    if foreign:
        found.append(
            Finding(
                False,
                "package contents",
                f"not part of a {PACKAGE_TYPE} package, so nothing in it vouches for them: {', '.join(foreign[:5])}",
            )
        )
    if not layout:  # an archive laid out otherwise has failed already, and may be a zip bomb
        _reading_aids(package, evidence_key, found)
    if not verdict.items:
        found.append(Finding(False, "package contents", "the manifest lists no exported item"))
    if package.has("checkpoint.tsr"):
        verdict.timestamp_pinned = bool(tsa_roots)
        try:
            token = package.read("checkpoint.tsr", 1024 * 1024)
        except VerificationFailed as failure:
            found.append(Finding(False, "time-stamp", str(failure)))
        else:
            found.append(_timestamp(token, checkpoint_text, tsa_roots))


_REQUIRED = ("manifest.json", "manifest.sig", "manifest.pub.pem", "checkpoint.txt")
"""Without these, nothing in a package can be checked."""
_READING_AIDS = ("VERIFY.md", "report.pdf")
_AIDS_SUMS, _AIDS_SIG = "reading-aids.sha256", "reading-aids.sig"
_TOP_LEVEL = frozenset({*_REQUIRED, "log-key.txt", "checkpoint.tsr", *_READING_AIDS, _AIDS_SUMS, _AIDS_SIG})
"""The names a package may hold outside ``files/`` and ``custody/``."""
_SUM_LINE = re.compile(r"([0-9a-f]{64})  (\S+)")


def _reading_aids(package: _Zip, evidence_key: Ed25519PublicKey | None, found: list[Finding]) -> None:
    """VERIFY.md and report.pdf prove nothing themselves, but people read them: check that they
    are as the evidence service wrote them (their SHA-256 in ``reading-aids.sha256``, signed
    like the manifest)."""
    missing = [name for name in (*_READING_AIDS, _AIDS_SUMS, _AIDS_SIG) if not package.has(name)]
    if missing:
        found.append(Finding(False, "reading aids", f"missing: {', '.join(missing)}"))
        return
    if evidence_key is None:
        found.append(Finding(False, "reading aids", "no evidence service key to check their signature with"))
        return
    try:
        sums = package.read(_AIDS_SUMS, 4096)
    except VerificationFailed:  # too large or damaged
        sums = None
    if sums is None or not _signature_holds(package, _AIDS_SIG, evidence_key, sums):
        found.append(
            Finding(False, "reading aids", f"{_AIDS_SIG} is not the signature of {_AIDS_SUMS} by manifest.pub.pem")
        )
        return
    stated = {}
    for line in sums.decode("ascii", "replace").splitlines():
        matched = _SUM_LINE.fullmatch(line)
        if matched is None or matched[2] in stated:
            stated = {}
            break
        stated[matched[2]] = matched[1]
    if sorted(stated) != sorted(_READING_AIDS):
        listing = f"{_AIDS_SUMS} is not one SHA-256 line for each of {', '.join(_READING_AIDS)}"
        found.append(Finding(False, "reading aids", listing))
        return
    try:
        differ = [name for name in _READING_AIDS if package.digest(name, package.size(name)) != stated[name]]
    except VerificationFailed as failure:
        found.append(Finding(False, "reading aids", str(failure)))
        return
    if differ:
        found.append(
            Finding(
                False, "reading aids", f"not as the evidence service wrote them: {', '.join(differ)} (SHA-256 differs)"
            )
        )
        return
    found.append(
        Finding(
            True,
            "reading aids",
            f"{' and '.join(_READING_AIDS)} are as the evidence service wrote them ({_AIDS_SUMS}, signed by the "
            "manifest's key); they explain the package and prove nothing themselves",
        )
    )


def _manifest_signature(package: _Zip, manifest_bytes: bytes, found: list[Finding]) -> Ed25519PublicKey | None:
    try:
        key = serialization.load_pem_public_key(package.read("manifest.pub.pem", 64 * 1024))
    except VerificationFailed as failure:
        found.append(Finding(False, "manifest signature", str(failure)))
        return None
    except ValueError:
        found.append(Finding(False, "manifest signature", "manifest.pub.pem holds no public key"))
        return None
    if not isinstance(key, Ed25519PublicKey):
        found.append(Finding(False, "manifest signature", "manifest.pub.pem is not an Ed25519 key"))
        return None
    if not _signature_holds(package, "manifest.sig", key, manifest_bytes):
        found.append(
            Finding(False, "manifest signature", "manifest.sig is not the signature of manifest.json by manifest.pub.pem")
        )
        return key
    found.append(Finding(True, "manifest signature", "manifest.json is signed by the key in manifest.pub.pem"))
    return key


def _signature_holds(package: _Zip, name: str, key: Ed25519PublicKey, message: bytes) -> bool:
    """Whether entry ``name`` is ``key``'s raw 64-byte Ed25519 signature of ``message`` (False
    also when it is too large or damaged)."""
    try:
        signature = package.read(name, 1024)
        if len(signature) != 64:
            return False
        key.verify(signature, message)
    except (InvalidSignature, VerificationFailed):
        return False
    return True


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _manifest_key(manifest: Mapping[str, Any], key: Ed25519PublicKey | None, found: list[Finding]) -> str | None:
    if key is None:
        return None
    key_id = hashlib.sha256(_raw(key)).hexdigest()
    named = manifest["evidence_service_key"]
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
    entry: Mapping[str, Any],
    manifest: Mapping[str, Any],
    manifest_sha256: str,
    checkpoint_text: str,
    checkpoint: Checkpoint | None,
    key: LogKey | None,
    evidence_key: Ed25519PublicKey | None,
    key_id: str | None,
) -> ItemVerdict:
    evidence_id, path = entry["evidence_id"], entry["path"]
    verdict = ItemVerdict(evidence_id=evidence_id, path=path)
    add = verdict.findings.append
    sha256, size = entry["sha256"], entry["size"]
    if not (_UUID.match(evidence_id) and _HEX64.match(sha256) and size >= 0):
        add(Finding(False, "manifest entry", "the entry lacks a valid evidence_id, sha256 or size"))
        return verdict

    actual: tuple[str, int] | None = None
    if not path.startswith("files/") or not package.has(path):
        add(Finding(False, "file", f"{path} is not in the package"))
    elif package.size(path) != size:
        # compared before reading: an entry may inflate to far more than the zip holds
        add(Finding(False, "file SHA-256", f"{path} holds {package.size(path)} bytes; the manifest says {size}"))
    else:
        try:
            actual = package.digest(path, size), size
        except VerificationFailed as failure:
            add(Finding(False, "file", str(failure)))
        else:
            add(
                Finding(True, "file SHA-256", f"{path}: {size} bytes, SHA-256 {sha256}, as the manifest says")
                if actual[0] == sha256
                else Finding(False, "file SHA-256", f"{path} has SHA-256 {actual[0]}; the manifest says {sha256}")
            )

    custody_path = entry["custody"]
    if custody_path != f"custody/{evidence_id}.json" or not package.has(custody_path):
        add(Finding(False, "custody chain", f"custody/{evidence_id}.json is not in the package"))
        return verdict
    try:
        custody = json.loads(package.read(custody_path))
        if not isinstance(custody, dict):
            raise ValueError("not an object")
    except VerificationFailed as failure:
        add(Finding(False, "custody chain", str(failure)))
        return verdict
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        add(Finding(False, "custody chain", f"{custody_path} is not a JSON object: {exc}"))
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
    events = [event["entry"]["event"] for event in custody["events"]]
    misfits = [m for n, event in enumerate(events, start=1) for m in _misfits(event, _EVENT, f"event {n}")]
    if misfits:
        add(Finding(False, "custody chain", f"{custody_path}: {', '.join(misfits[:5])} missing or of the wrong type"))
        return verdict
    add(
        Finding(
            True,
            "custody chain",
            f"{report.events} events, each included in checkpoint {checkpoint.size}; item_seq 1…{report.events} "
            "with every prev_leaf linked: none is missing up to the last one shown",
        )
    )
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
    purpose = manifest["purpose"]
    committed = (event.get("commitments") or {}).get("purpose")
    if not commitment_holds(purpose["salt"], purpose["text"], str(committed)):
        problems.append("the manifest's purpose is not the one committed to in the log")
    if key_id is not None and details.get("signing_key") != key_id:
        problems.append(f"it names evidence key {details.get('signing_key')}, not the manifest's {key_id}")
    actor = event.get("actor") or {}
    exporter = manifest["exported_by"]
    if actor.get("sub") != exporter["sub"]:
        problems.append(f"it was done by {actor.get('sub')!r}, not {exporter['sub']!r}")
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
