"""The Custody client: submit evidence, wait for its seal, fetch it verified, read its custody chain.

It talks to the three services over HTTP only (intake, evidence, audit) with a bearer token.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx

from custody_client.errors import (
    AuthError,
    ClientError,
    InvalidRequest,
    NetworkError,
    NotFound,
    Rejected,
    VerificationFailed,
    error_for,
)
from custody_client.content import (
    BackgroundWriter,
    Content,
    direct_connections_possible,
    open_content,
    tls_context,
)
from custody_client.resume import ResumeState, state_folder
from custody_client.tus import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, Backoff, TusUploader
from custody_common.addresses import service_urls
from custody_common.digests import sha256_of
from custody_common.durable import fsync_folder
from custody_common.numbers import is_decimal

__all__ = [
    "AuthError",
    "ClientError",
    "CustodyClient",
    "ExportedPackage",
    "FetchedItem",
    "InvalidRequest",
    "ItemStatus",
    "NetworkError",
    "NotFound",
    "Progress",
    "Rejected",
    "VerificationFailed",
    "client_from_environment",
    "parse_repr_digest",
]

UPLOADS_PATH = "/v1/uploads"
OUTCOMES = frozenset({"sealed", "rejected", "damaged"})
"""Statuses after which an item's status no longer changes by itself."""
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Progress:
    """How far a long step has come."""

    phase: Literal["uploading", "downloading", "exporting"]
    done: int
    total: int | None
    """Bytes in all, when known."""


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class ItemStatus:
    """Where an evidence item stands in the vault."""

    evidence_id: str
    status: str
    """``sealed``, ``rejected``, or a state on the way there."""
    reason: str | None = None
    """Why it was rejected, when it was."""


@dataclass(frozen=True)
class ExportedPackage:
    """A court package written to disk (check it with :func:`custody_client.package.verify_package`)."""

    path: Path
    package_id: str
    size: int


@dataclass(frozen=True)
class FetchedItem:
    """An item's bytes written to disk after both digests matched."""

    path: Path
    sha256: str
    size: int


def parse_repr_digest(header: str) -> bytes:
    """The SHA-256 in a ``Repr-Digest`` field (RFC 9530: ``sha-256=:BASE64:``, maybe beside others)."""
    value = sha256_of(header)
    if value is None:
        raise VerificationFailed(f"the evidence service's Repr-Digest holds no valid sha-256: {header[:120]!r}")
    return value


def _evidence_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidRequest(f"{value!r} is not an evidence id (a UUID)") from None


class CustodyClient:
    """A client of one Custody deployment, acting with one token."""

    def __init__(
        self,
        intake_url: str,
        evidence_url: str,
        audit_url: str,
        token: str | None,
        *,
        resume: ResumeState | None = None,
        chunk_size: int | None = None,
        backoff: Backoff = Backoff(),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: httpx.Timeout = httpx.Timeout(connect=15, read=120, write=120, pool=30),
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._tls = tls_context(intake_url, evidence_url, audit_url)
        common: dict[str, Any] = {"headers": headers, "timeout": timeout, "transport": transport, "verify": self._tls}
        self._intake = httpx.Client(base_url=intake_url.rstrip("/"), **common)
        self._evidence = httpx.Client(base_url=evidence_url.rstrip("/"), **common)
        self._audit = httpx.Client(base_url=audit_url.rstrip("/"), **common)
        self._has_token = bool(token)
        self._direct_content = transport is None and direct_connections_possible(evidence_url)
        self._resume = resume if resume is not None else ResumeState(state_folder())
        self._backoff = backoff
        self._sleep = sleep
        self._uploader = TusUploader(
            self._intake,
            f"{intake_url.rstrip('/')}{UPLOADS_PATH}",
            resume=self._resume,
            # By default PATCHes adapt to the connection; a given size is kept to.
            chunk_size=chunk_size or DEFAULT_CHUNK_SIZE,
            max_chunk_size=None if chunk_size else MAX_CHUNK_SIZE,
            backoff=backoff,
            sleep=sleep,
        )

    def close(self) -> None:
        """Close the connections."""
        for http in (self._intake, self._evidence, self._audit):
            http.close()

    def __enter__(self) -> CustodyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- submitting -----------------------------------------------------------------

    def submit(
        self,
        path: Path,
        *,
        case: str,
        title: str | None = None,
        captured_at: datetime | None = None,
        lat: float | None = None,
        lon: float | None = None,
        notes: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> str:
        """Hash ``path``, upload it to ``case`` with what is said about it, and return the new
        evidence item's id. An upload an earlier run left unfinished is resumed, and one that
        finished but whose outcome was not seen yet is not sent twice."""
        # imported here: the metadata model (pydantic) is needed only to submit
        from pydantic import ValidationError

        from custody_common.manifest import CASE_PATTERN, SubmissionMetadata

        self._need_token("submitting")
        path = Path(path)
        if not re.match(CASE_PATTERN, case):
            raise InvalidRequest(f"case {case!r} is not a case name (letters, digits and . _ : -, up to 64)")
        if (lat is None) != (lon is None):
            raise InvalidRequest("give both --lat and --lon, or neither")
        try:
            described = SubmissionMetadata(
                filename=path.name, title=title, captured_at=captured_at, lat=lat, lon=lon, notes=notes
            )
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise InvalidRequest(f"the submission's metadata is not acceptable: {problems}") from None
        if not path.is_file():
            raise InvalidRequest(f"{path} is not a readable file")
        before = path.stat()
        report = on_progress or (lambda progress: None)
        upload = self._uploader.upload(
            path,
            metadata={"case": case, **described.personal_fields()},
            on_progress=lambda done, total: report(Progress("uploading", done, total)),
        )
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise VerificationFailed(
                f"{path} changed while it was being submitted; the vault will reject this upload. "
                "Submit the file again once nothing writes to it."
            )
        evidence_id = upload.url.rstrip("/").rsplit("/", 1)[-1]
        try:
            return str(uuid.UUID(evidence_id))
        except ValueError:
            raise NetworkError(f"intake's upload URL {upload.url} does not end in an evidence id") from None

    def status(self, evidence_id: str) -> ItemStatus | None:
        """The item's status in the vault; None while the vault has not heard of it yet."""
        evidence_id = _evidence_id(evidence_id)
        response = self._get(self._evidence, f"/v1/evidence/{evidence_id}/status", "asking for the item's status")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise error_for(response, "asking for the item's status")
        body = _json_object(response, f"for the status of {evidence_id}", "CUSTODY_EVIDENCE_URL")
        return ItemStatus(
            evidence_id=str(body.get("evidence_id", evidence_id)),
            status=str(body.get("status")),
            reason=body.get("reason"),
        )

    def wait_sealed(
        self,
        evidence_id: str,
        *,
        timeout: float | None = None,
        on_status: Callable[[ItemStatus | None], None] | None = None,
    ) -> ItemStatus:
        """Poll until the item is ``sealed`` or ``rejected`` (or found ``damaged``) and return that
        status; a 404 means the vault has not received it yet. Raises NetworkError when
        ``timeout`` seconds pass first."""
        self._need_token("waiting for the seal")
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = 0.25
        last: ItemStatus | None = None
        while True:
            current = self.status(evidence_id)
            if current != last and on_status:
                on_status(current)
            last = current
            if current is not None and current.status in OUTCOMES:
                self._resume.forget_evidence(current.evidence_id)
                return current
            if deadline is not None and time.monotonic() + interval > deadline:
                state = current.status if current else "not yet known to the vault"
                raise NetworkError(
                    f"item {evidence_id} was not sealed within {timeout:g} s (it is {state}); "
                    "its upload is complete, so check again later with `custody chain`"
                )
            self._sleep(interval)
            interval = min(interval * 1.5, 5.0)

    # --- retrieving -----------------------------------------------------------------

    def item(self, evidence_id: str) -> dict[str, Any]:
        """The vault's record of an item (``GET /v1/evidence/{id}``)."""
        evidence_id = _evidence_id(evidence_id)
        response = self._get(self._evidence, f"/v1/evidence/{evidence_id}", "reading the item's record")
        if response.status_code != 200:
            raise error_for(response, f"reading the record of item {evidence_id}")
        return _json_object(response, f"for the record of item {evidence_id}", "CUSTODY_EVIDENCE_URL")

    def fetch(
        self,
        evidence_id: str,
        path: Path,
        *,
        purpose: str,
        overwrite: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> FetchedItem:
        """Download an item to ``path`` for the stated ``purpose`` (recorded in its custody chain).
        The bytes go to a file of this download's own beside ``path`` (``PATH.<random>.part``:
        another fetch to the same path never writes into it) while their SHA-256 is computed; ``path`` appears only if
        that digest matches both the response's ``Repr-Digest`` and the vault's record. On any
        failure the partial file is deleted."""
        self._need_token("fetching")
        evidence_id = _evidence_id(evidence_id)
        path = Path(path)
        purpose = purpose.strip()
        if not purpose:
            raise InvalidRequest("state the purpose of this retrieval (--purpose); it is recorded in the custody chain")
        if path.exists() and not overwrite:
            raise InvalidRequest(f"{path} exists already; choose another path")
        record = self.item(evidence_id)
        if record.get("status") == "rejected":
            raise Rejected(
                f"item {evidence_id} was rejected by the vault ({record.get('reason') or 'no reason given'}); "
                "it is never served",
                detail=record.get("reason"),
            )
        if record.get("status") == "damaged":
            raise VerificationFailed(
                f"the vault found item {evidence_id} damaged ({record.get('reason') or 'no reason given'}); "
                "it is not served until restored and verified",
                detail=record.get("reason"),
            )
        expected = record.get("sha256")
        if not isinstance(expected, str) or not _SHA256_HEX.match(expected):
            raise VerificationFailed(
                f"the vault's record of {evidence_id} holds no SHA-256 to check the download against"
            )
        fd, part = _new_part(path)
        report = on_progress or (lambda progress: None)
        try:
            with os.fdopen(fd, "wb") as file:
                writer = BackgroundWriter(file)
                try:
                    actual, size, announced = self._download(evidence_id, purpose, writer, report)
                finally:
                    writer.close()
                file.flush()
                os.fsync(file.fileno())
            if actual != announced:
                raise VerificationFailed(
                    f"the downloaded bytes of {evidence_id} hash to {actual.hex()}, but the response's Repr-Digest "
                    f"says {announced.hex()}: they were damaged on the way"
                )
            if actual.hex() != expected:
                raise VerificationFailed(
                    f"the downloaded bytes of {evidence_id} hash to {actual.hex()}, but the vault recorded "
                    f"{expected} at seal"
                )
            if isinstance(record.get("size"), int) and record["size"] != size:
                raise VerificationFailed(f"the download has {size} bytes; the vault recorded {record['size']}")
            _put_in_place(part, path, overwrite)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return FetchedItem(path=path, sha256=expected, size=size)

    def _download(
        self, evidence_id: str, purpose: str, file: Any, report: ProgressCallback
    ) -> tuple[bytes, int, bytes]:
        """Stream the content into ``file``, resuming by Range after a broken connection.
        Returns (SHA-256 of the bytes, their count, SHA-256 the Repr-Digest announced)."""
        url = f"/v1/evidence/{evidence_id}/content"
        digest = hashlib.sha256()
        written = 0
        announced: bytes | None = None
        etag: str | None = None
        failures = 0
        while True:
            # identity: Repr-Digest then covers exactly the bytes written to disk
            headers = {"Accept-Encoding": "identity"}
            if written:
                headers["Range"] = f"bytes={written}-"
                if etag:
                    headers["If-Range"] = etag
            try:
                with open_content(
                    self._evidence, self._direct_content, url, {"purpose": purpose}, headers, self._tls
                ) as response:
                    status = response.status_code
                    if status in (423, 429) or status >= 500:
                        raise _ServiceBusy(f"the evidence service answered HTTP {status}")
                    if status == 409:
                        failure = error_for(response.read(), f"fetching item {evidence_id}")
                        raise Rejected(str(failure), detail=failure.detail, status=status)
                    if status not in (200, 206):
                        raise error_for(response.read(), f"fetching item {evidence_id}")
                    etag = etag or response.headers.get("ETag")
                    if status == 206 and not _range_starts_at(response, written):
                        raise VerificationFailed("the evidence service answered a different range than asked for")
                    if status == 200 and written:
                        file.seek(0)
                        file.truncate()
                        digest, written = hashlib.sha256(), 0
                    field = response.headers.get("Repr-Digest")
                    if field is None:
                        raise VerificationFailed(
                            "the evidence service sent no Repr-Digest; the download cannot be checked"
                        )
                    said = parse_repr_digest(field)
                    if announced is not None and said != announced:
                        raise VerificationFailed("the evidence service announced two different digests for one item")
                    announced = said
                    total = _total_length(response, written)
                    for block in response.chunks():
                        file.write(block)
                        digest.update(block)
                        written += len(block)
                        report(Progress("downloading", written, total))
                    return digest.digest(), written, announced
            except (httpx.TransportError, _ServiceBusy) as exc:
                failures += 1
                if failures >= self._backoff.attempts:
                    raise NetworkError(
                        f"fetching item {evidence_id} failed {failures} times in a row ({exc}); "
                        "check the connection and run the command again"
                    ) from None
                self._sleep(self._backoff.delay(failures))

    # --- court packages and reports -----------------------------------------------------

    def export(
        self,
        path: Path,
        *,
        purpose: str,
        case: str | None = None,
        evidence_ids: Sequence[str] = (),
        overwrite: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> ExportedPackage:
        """Ask for a court package of ``case`` or of ``evidence_ids``, for the stated ``purpose``
        (recorded with every item's ``exported`` custody event), and write it to ``path``. The
        bytes go to ``PATH.<random>.part``; ``path`` appears only once the whole archive arrived and its
        central directory reads back. Not retried: each request is an export of its own."""
        self._need_token("exporting")
        path = Path(path)
        purpose = purpose.strip()
        if not purpose:
            raise InvalidRequest("state the purpose of this export (--purpose); it is recorded in every item's chain")
        if (case is None) == (not evidence_ids):
            raise InvalidRequest("export either a case (--case) or named evidence items, not both and not neither")
        body: dict[str, Any] = {"purpose": purpose}
        if case is not None:
            body["case"] = case
        else:
            body["evidence_ids"] = [_evidence_id(e) for e in evidence_ids]
        if path.exists() and not overwrite:
            raise InvalidRequest(f"{path} exists already; choose another path")
        fd, part = _new_part(path)
        report = on_progress or (lambda progress: None)
        try:
            with os.fdopen(fd, "wb") as file:
                package_id, written = self._receive_package(body, file, report)
                file.flush()
                os.fsync(file.fileno())
            _check_archive(part)
            _put_in_place(part, path, overwrite)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return ExportedPackage(path=path, package_id=package_id, size=written)

    def _receive_package(self, body: dict[str, Any], file: Any, report: ProgressCallback) -> tuple[str, int]:
        written = 0
        try:
            with self._evidence.stream("POST", "/v1/exports", json=body) as response:
                if response.status_code != 200:
                    raise error_for(response, "exporting the package")
                announced = response.headers.get("Custody-Package-Files-Size", "")
                total = int(announced) if is_decimal(announced) else None
                for block in response.iter_bytes():
                    file.write(block)
                    written += len(block)
                    report(Progress("exporting", written, max(total, written) if total is not None else None))
                return response.headers.get("Custody-Package-Id", ""), written
        except httpx.TransportError as exc:
            raise NetworkError(
                f"the package stopped arriving after {written} bytes ({type(exc).__name__}); nothing was kept. "
                "Export again; if it keeps stopping at the same point, an item may be damaged (see its chain)"
            ) from None

    def report(self, evidence_id: str, path: Path, *, overwrite: bool = False) -> Path:
        """The chain-of-custody report (PDF) of one item, written to ``path``."""
        self._need_token("reading the report")
        evidence_id = _evidence_id(evidence_id)
        path = Path(path)
        if path.exists() and not overwrite:
            raise InvalidRequest(f"{path} exists already; choose another path")
        response = self._get(self._evidence, f"/v1/evidence/{evidence_id}/report", "reading the item's report")
        if response.status_code != 200:
            raise error_for(response, f"reading the report of item {evidence_id}")
        if not response.content.startswith(b"%PDF-"):
            raise NetworkError("the evidence service's report is not a PDF document")
        fd, part = _new_part(path)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(response.content)
            _put_in_place(part, path, overwrite)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return path

    # --- the custody ledger ---------------------------------------------------------

    def chain(self, evidence_id: str) -> dict[str, Any]:
        """The item's custody chain with a checkpoint and an inclusion proof per event
        (``GET /v1/custody/{id}``), as the ledger returns it: check it with :func:`verify_chain`."""
        self._need_token("reading the custody chain")
        evidence_id = _evidence_id(evidence_id)
        response = self._get(self._audit, f"/v1/custody/{evidence_id}", "reading the custody chain")
        if response.status_code != 200:
            raise error_for(response, f"reading the custody chain of {evidence_id}")
        custody = _json_object(response, f"for the custody chain of {evidence_id}", "CUSTODY_AUDIT_URL")
        events = custody.get("events")
        if not isinstance(events, list) or not all(isinstance(event, dict) for event in events):
            raise NetworkError(
                f"the audit service's answer for {evidence_id} is not a custody chain (its events are not a list of "
                "objects); check CUSTODY_AUDIT_URL, or report the answer to the log's operator"
            )
        return custody

    def checkpoint(self) -> str:
        """The log's newest signed checkpoint (a C2SP signed note)."""
        response = self._get(self._audit, "/v1/log/checkpoint", "reading the log's checkpoint")
        if response.status_code != 200:
            raise error_for(response, "reading the log's checkpoint")
        return response.text

    def log_key(self) -> str:
        """The log's verifier key as the ledger announces it; pin it once, out of band."""
        response = self._get(self._audit, "/v1/log/key", "reading the log's key")
        if response.status_code != 200:
            raise error_for(response, "reading the log's key")
        return response.text.strip()

    # --- plumbing -------------------------------------------------------------------

    def _need_token(self, doing: str) -> None:
        if not self._has_token:
            raise AuthError(f"{doing} needs a token: set CUSTODY_TOKEN (get one with `custody token`)")

    def _get(self, http: httpx.Client, url: str, doing: str) -> httpx.Response:
        """GET with retries on network errors and 5xx/423/429; other answers are the caller's."""
        failures = 0
        while True:
            try:
                response = http.get(url)
            except httpx.TransportError as exc:
                reason: str = f"the connection failed ({type(exc).__name__})"
            else:
                if response.status_code not in (423, 429) and response.status_code < 500:
                    return response
                reason = f"the service answered HTTP {response.status_code}"
            failures += 1
            if failures >= self._backoff.attempts:
                raise NetworkError(f"{doing} failed {failures} times in a row, last because {reason}")
            self._sleep(self._backoff.delay(failures))


def _check_archive(path: Path) -> None:
    """Raise NetworkError unless ``path`` is a whole zip archive with a manifest (a package cut
    short lacks the central directory at its end)."""
    try:
        with zipfile.ZipFile(path) as archive:
            archive.getinfo("manifest.json")
    except (zipfile.BadZipFile, KeyError, OSError):
        raise NetworkError(
            "the package arrived incomplete (the zip archive has no central directory or no manifest); export again"
        ) from None


def _new_part(path: Path) -> tuple[int, Path]:
    """A new file beside ``path`` for its bytes to arrive in (mode 0600), never one another
    download is writing: two fetches to one path each write their own, and only verified
    bytes are moved to ``path``."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".part")
    return fd, Path(name)


def _put_in_place(part: Path, path: Path, overwrite: bool) -> None:
    """Move the verified ``part`` to ``path`` atomically, never clobbering a file that appeared
    meanwhile unless ``overwrite``; then make the rename durable."""
    if overwrite:
        os.replace(part, path)
    else:
        try:
            os.link(part, path)
        except FileExistsError:
            raise InvalidRequest(f"{path} appeared while the item was downloading; choose another path") from None
        part.unlink()
    fsync_folder(path.parent)


class _ServiceBusy(Exception):
    """The service answered with a status worth retrying."""


def _range_starts_at(response: Content, offset: int) -> bool:
    match = re.match(r"bytes ([0-9]{1,20})-[0-9]{1,20}/([0-9]{1,20}|\*)", response.headers.get("Content-Range", ""))
    return bool(match) and int(match.group(1)) == offset


def _total_length(response: Content, written: int) -> int | None:
    match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length")
    return written + int(length) if length and is_decimal(length) else None


def client_from_environment(environ: Mapping[str, str] | None = None, **kwargs: Any) -> CustodyClient:
    """A client for the URLs in ``CUSTODY_*_URL`` (as Settings reads them) with the token in ``CUSTODY_TOKEN``."""
    env = os.environ if environ is None else environ
    urls = service_urls(env)
    return CustodyClient(urls.intake, urls.evidence, urls.audit, env.get("CUSTODY_TOKEN") or None, **kwargs)


def _json_object(response: httpx.Response, what: str, setting: str) -> dict[str, Any]:
    """The JSON object ``response`` carries; NetworkError when it carries none (the address may
    name something that is not the service)."""
    try:
        body = response.json()
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        body = None
    if not isinstance(body, dict):
        raise NetworkError(f"the answer {what} is not a JSON object; check {setting}, or report it to the operator")
    return body
