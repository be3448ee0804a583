"""The object store on an S3 API server with Object Lock: Ceph RGW, MinIO, AWS S3 and the like.

The bucket must have versioning and Object Lock enabled and no default retention: a default
would lock the parts of every unfinished upload too, so expired uploads could never be deleted.
``S3Store.ensure_bucket()`` creates such a bucket, or checks that an existing one is one.

A lock is COMPLIANCE retention on one version of an object. The server itself then refuses to
delete that version or to shorten its retention, whatever the credentials. Object Lock protects
versions, not keys: S3 would accept a new version on top of a locked one, so ``put`` refuses
when the current version is retained or held, and reads follow the current version.

Uploads of a size given in advance (up to 5 GiB) are streamed as they come in one PutObject,
without buffering: on RGW every request costs tens of milliseconds, so one request per object
instead of a multipart upload of several is what makes writes fast (32 MiB objects: about
200 MiB/s streamed against 55 MiB/s in 8 MiB parts). Such a request carries no checksum of the
body, since the body is not known when it starts; what reads the object back must check it (the
vault decrypts and hashes every part it seals). Uploads of unknown length are sent as multipart
uploads of ``part_size`` bytes, one part at a time from one reusable buffer, so memory stays near
one part whatever the object's size (and near the object's size when it is smaller than a part).
An upload that fails is aborted; nothing becomes visible under the key unless it completes.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import BinaryIO, NoReturn, cast

import certifi
import urllib3
from minio import Minio
from minio.datatypes import CompleteMultipartUploadResult, Part
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import DictType, ObjectWriteResult
from minio.retention import COMPLIANCE, Retention
from urllib3.response import BaseHTTPResponse

from custody_common.objectstore.base import (
    ObjectInfo,
    ObjectLocked,
    ObjectNotFound,
    ObjectStoreError,
    ObjectStoreUnavailable,
)
from custody_common.objectstore.keys import validate_key, validate_prefix
from custody_common.objectstore.retention import retain_until
from custody_common.objectstore.streams import CHUNK_SIZE, exactly, iter_chunks

_log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MIB
"""What one upload of unknown length holds in memory (intake's parts of PATCHes without a
checksum, the web app's): sent as 8 MiB parts, a large PATCH takes no more than an 8 MiB one."""
MIN_PART_SIZE = 5 * MIB
"""S3's smallest part, except the last."""
MAX_PART_SIZE = 5 * 1024 * MIB
MAX_PARTS = 10_000
MAX_STREAMED_PUT = 5 * 1024 * MIB
"""S3's largest PutObject."""
_PRESIGNED_FOR = timedelta(minutes=15)
"""How long the URL of one streamed PutObject is valid: the server checks it when the request starts."""

_CONTENT_TYPE = "application/octet-stream"
_NO_LOCK_CONFIGURATION = frozenset({"ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration"})
_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchVersion"})
_BUSY = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed"})
_CREDENTIALS = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "AuthorizationHeaderMalformed"}
)


def parse_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """``host[:port]`` and whether to use TLS, from an endpoint given with or without a scheme.

    A scheme, where given, decides TLS (``https://`` on, ``http://`` off); otherwise ``secure``.
    """
    address = endpoint.strip()
    scheme, separator, rest = address.partition("://")
    if separator:
        if scheme.lower() not in ("http", "https"):
            raise ValueError(f"S3 endpoint {endpoint!r} has scheme {scheme!r}; use http:// or https://")
        secure = scheme.lower() == "https"
        address = rest
    address = address.rstrip("/")
    if not address or "/" in address:
        raise ValueError(f"S3 endpoint {endpoint!r} must be host[:port], without a path")
    return address, secure


class S3Store:
    """An ObjectStore on one bucket of an S3 API server with versioning and Object Lock."""

    def __init__(
        self,
        bucket: str,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        secure: bool = False,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        """Talk to ``bucket`` at ``endpoint`` (``host:port``, or a URL whose scheme sets ``secure``).

        ``part_size`` is the size of each part of a multipart upload and bounds the memory one
        upload takes. ``connect_timeout`` and ``read_timeout`` (seconds) keep a dead or stalled
        server from hanging a caller; ``check()`` uses shorter ones and no retries.
        """
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes")
        host, secure = parse_endpoint(endpoint, secure)
        self._bucket = bucket
        self._region = region
        self._url = f"{'https' if secure else 'http'}://{host}"
        self._part_size = part_size

        def client(http: urllib3.PoolManager) -> _CustodyMinio:
            return _CustodyMinio(
                host, access_key=access_key, secret_key=secret_key, secure=secure, region=region, http_client=http
            )

        self._http = _pool(connect_timeout, read_timeout, 3)
        self._client = client(self._http)
        self._probe = client(_pool(min(connect_timeout, 3.0), min(read_timeout, 5.0), 0))

    @property
    def bucket(self) -> str:
        """The bucket objects live in."""
        return self._bucket

    @property
    def endpoint_url(self) -> str:
        """The server's URL, ``http(s)://host:port``."""
        return self._url

    def __repr__(self) -> str:
        return f"S3Store(bucket={self._bucket!r}, endpoint={self._url!r})"

    def ensure_bucket(self) -> None:
        """Create the bucket with versioning and Object Lock if it is missing, then check it.

        Raises ObjectStoreError if an existing bucket lacks versioning or Object Lock, or has a
        default retention (which would make unfinished uploads undeletable).
        """
        with self._speaking_s3(None, "create the bucket"):
            if not self._client.bucket_exists(self._bucket):
                location = None if self._region == "us-east-1" else self._region
                try:
                    self._client.make_bucket(self._bucket, location=location, object_lock=True)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
        self.verify_bucket()

    def verify_bucket(self) -> None:
        """Raise ObjectStoreError unless the bucket has versioning and Object Lock and no default retention."""
        with self._speaking_s3(None, "inspect the bucket"):
            versioning = self._client.get_bucket_versioning(self._bucket).status
            try:
                lock_configuration = self._client.get_object_lock_config(self._bucket)
            except S3Error as exc:
                if exc.code not in _NO_LOCK_CONFIGURATION:
                    raise
                lock_configuration = None
        if lock_configuration is None:
            raise ObjectStoreError(
                f"bucket {self._bucket!r} at {self._url} has no Object Lock; Object Lock can only be "
                "chosen when a bucket is created, so create a new bucket with it"
            )
        if versioning != "Enabled":
            raise ObjectStoreError(f"bucket {self._bucket!r} at {self._url} has versioning {versioning!r}; enable it")
        if lock_configuration.mode is not None:
            raise ObjectStoreError(
                f"bucket {self._bucket!r} at {self._url} has a default retention ({lock_configuration.mode}); "
                "remove it: unfinished uploads must stay deletable, sealed items are locked one by one"
            )

    def put(self, key: str, data: bytes | BinaryIO | Iterable[bytes], *, size: int | None = None) -> ObjectInfo:
        """Store ``data`` under ``key`` as a new version, atomically; ObjectLocked if the current one is locked.

        Errors raised by ``data`` itself propagate unchanged, after the upload is aborted.
        """
        validate_key(key)
        self._refuse_if_protected(key, "overwrite")
        chunks = iter_chunks(data)
        if size is not None:
            chunks = exactly(chunks, size, key)
            if size <= MAX_STREAMED_PUT:
                return self._put_streamed(key, chunks, size)
        elif isinstance(data, (bytes, bytearray, memoryview)) and memoryview(data).nbytes <= self._part_size:
            body = memoryview(data).cast("B")
            with self._speaking_s3(key, "store"):
                written = self._client.put_whole(self._bucket, key, body)
            return ObjectInfo(key=key, size=body.nbytes, version_id=written.version_id)

        parts = _Parts(chunks, self._part_size)
        try:
            return self._put_parts(key, parts)
        finally:
            parts.close()

    def _put_streamed(self, key: str, chunks: Iterator[memoryview], size: int) -> ObjectInfo:
        """One PutObject of ``size`` bytes sent as ``chunks`` come. Should they fail or fall
        short, the connection is dropped before the body is complete, and the server keeps nothing."""
        with self._speaking_s3(key, "store"):
            url = self._client.get_presigned_url("PUT", self._bucket, key, expires=_PRESIGNED_FOR)
            # No retries: the body is a stream and cannot be sent twice.
            response = self._http.request(
                "PUT",
                url,
                body=chunks,
                headers={"Content-Length": str(size), "Content-Type": _CONTENT_TYPE},
                retries=False,
                redirect=False,
            )
            if response.status != 200:
                raise _error_of(response)
        return ObjectInfo(key=key, size=size, version_id=response.headers.get("x-amz-version-id"))

    def _put_parts(self, key: str, parts: _Parts) -> ObjectInfo:
        first = parts.next()
        if parts.finished():
            with self._speaking_s3(key, "store"):
                written = self._client.put_whole(self._bucket, key, first)
            return ObjectInfo(key=key, size=parts.total, version_id=written.version_id)

        upload_id: str | None = None
        try:
            with self._speaking_s3(key, "store"):
                upload_id = self._client.start_upload(self._bucket, key)
                uploaded = [Part(1, self._client.upload_part(self._bucket, key, upload_id, 1, first))]
            while not parts.finished():
                part = parts.next()
                number = len(uploaded) + 1
                if number > MAX_PARTS:
                    raise ObjectStoreError(
                        f"{key!r} exceeds {MAX_PARTS} parts of {self._part_size} bytes; raise the part size"
                    )
                with self._speaking_s3(key, "store"):
                    uploaded.append(Part(number, self._client.upload_part(self._bucket, key, upload_id, number, part)))
            with self._speaking_s3(key, "store"):
                completed = self._client.complete_upload(self._bucket, key, upload_id, uploaded)
        except BaseException:
            if upload_id is not None:
                self._abort(key, upload_id)
            raise
        return ObjectInfo(key=key, size=parts.total, version_id=completed.version_id)

    def read(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The bytes [offset, offset+length) of ``key``'s current version, streamed in chunks of at most 1 MiB.

        ``length`` None reads to the end; a range past the end is cut at the end. Raises
        ObjectNotFound at once if there is no such object, ValueError if ``offset`` is beyond the
        end or negative. The connection goes back to the pool when the stream ends or is closed.
        """
        validate_key(key)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if length == 0:
            self._require_offset_within(key, offset)
            return iter(())
        try:
            with self._speaking_s3(key, "read"):
                response = self._client.get_object(self._bucket, key, offset=offset, length=length or 0)
        except _RangeNotSatisfiable:
            self._require_offset_within(key, offset)
            return iter(())
        return self._stream(key, response)

    def read_all(self, key: str) -> bytes:
        """The whole (small) object."""
        return b"".join(self.read(key))

    def stat(self, key: str) -> ObjectInfo:
        """Size and version id of ``key``'s current version; ObjectNotFound if there is none."""
        validate_key(key)
        with self._speaking_s3(key, "inspect"):
            found = self._client.stat_object(self._bucket, key)
        return ObjectInfo(key=key, size=found.size or 0, version_id=found.version_id, generation=found.version_id)

    def list(self, prefix: str) -> Iterator[str]:
        """Keys that begin with ``prefix``, in lexical order (their current versions, not deleted ones)."""
        validate_prefix(prefix)
        return self._keys(prefix)

    def delete(self, key: str) -> None:
        """Remove every version of ``key``; ObjectLocked, and nothing removed, if any is retained or held.

        A missing key is no error.
        """
        validate_key(key)
        with self._speaking_s3(key, "delete"):
            versions = [
                (found.version_id, found.is_delete_marker)
                for found in self._client.list_objects(self._bucket, prefix=key, recursive=True, include_version=True)
                if found.object_name == key
            ]
            for version_id, is_delete_marker in versions:
                if not is_delete_marker:
                    found = self._client.stat_object(self._bucket, key, version_id=version_id)
                    _refuse_if_protected(key, found.metadata, "delete")
        refusal = "the server refuses: a version is under retention or legal hold"
        with self._speaking_s3(key, "delete", refusal=refusal):
            for version_id, _ in versions:
                # Always by version id: a plain delete would only hide a locked version behind a marker.
                self._client.remove_object(self._bucket, key, version_id=version_id or "null")

    def lock(self, key: str, until: datetime) -> None:
        """COMPLIANCE retention on ``key``'s current version until ``until`` (kept to the millisecond, rounded up).

        Extending is allowed; shortening raises ObjectLocked, because the server refuses it.
        """
        validate_key(key)
        until = retain_until(until, datetime.now(UTC))
        refusal = "the server refuses: COMPLIANCE retention can be extended, never shortened"
        with self._speaking_s3(key, "lock", refusal=refusal):
            version_id = self._current_version(key)
            self._client.set_object_retention(self._bucket, key, Retention(COMPLIANCE, until), version_id=version_id)

    def retention(self, key: str) -> datetime | None:
        """The date ``key``'s current version is (or was) retained until, or None if it never was."""
        validate_key(key)
        with self._speaking_s3(key, "read the retention of"):
            document = self._client.retention_document(self._bucket, key)
        if document is None:
            return None
        return _retain_until_from(document)

    def set_legal_hold(self, key: str, on: bool) -> None:
        """Place (``on``) or release a legal hold on ``key``'s current version."""
        validate_key(key)
        with self._speaking_s3(key, "set the legal hold on"):
            version_id = self._current_version(key)
            if on:
                self._client.enable_object_legal_hold(self._bucket, key, version_id=version_id)
            else:
                self._client.disable_object_legal_hold(self._bucket, key, version_id=version_id)

    def legal_hold(self, key: str) -> bool:
        """Whether ``key``'s current version is on legal hold."""
        validate_key(key)
        with self._speaking_s3(key, "read the legal hold of"):
            try:
                return self._client.is_object_legal_hold_enabled(self._bucket, key)
            except S3Error as exc:
                if exc.code in _NO_LOCK_CONFIGURATION:
                    return False
                raise

    def check(self) -> None:
        """Raise ObjectStoreUnavailable unless the server answers within a few seconds and the bucket exists."""
        with self._speaking_s3(None, "reach the bucket"):
            exists = self._probe.bucket_exists(self._bucket)
        if not exists:
            raise ObjectStoreUnavailable(
                f"bucket {self._bucket!r} does not exist at {self._url}; create it with versioning and Object Lock"
            )

    def _current_version(self, key: str) -> str:
        version_id = self._client.stat_object(self._bucket, key).version_id
        if version_id is None:
            raise ObjectStoreError(
                f"bucket {self._bucket!r} at {self._url} does not version objects; enable versioning"
            )
        return version_id

    def _refuse_if_protected(self, key: str, action: str) -> None:
        try:
            with self._speaking_s3(key, "inspect"):
                found = self._client.stat_object(self._bucket, key)
        except ObjectNotFound:
            return
        _refuse_if_protected(key, found.metadata, action)

    def _require_offset_within(self, key: str, offset: int) -> None:
        size = self.stat(key).size
        if offset > size:
            raise ValueError(f"offset {offset} is beyond the end of {key!r} ({size} bytes)")

    def _stream(self, key: str, response: BaseHTTPResponse) -> Iterator[bytes]:
        finished = False
        try:
            with self._speaking_s3(key, "read"):
                yield from response.stream(CHUNK_SIZE, decode_content=False)
            finished = True
        finally:
            if not finished:
                # The rest of the body is still on the wire: drop the connection rather than drain it.
                response.close()
            response.release_conn()

    def _keys(self, prefix: str) -> Iterator[str]:
        with self._speaking_s3(None, f"list {prefix!r} in"):
            for found in self._client.list_objects(self._bucket, prefix=prefix or None, recursive=True):
                if found.object_name is not None and not found.is_dir:
                    yield found.object_name

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            with self._speaking_s3(key, "abort the upload of"):
                self._client.abort_upload(self._bucket, key, upload_id)
        except ObjectStoreError as exc:
            # The failed upload was never visible; the server discards its parts by lifecycle or by hand.
            _log.warning("could not abort multipart upload %s of %s: %s", upload_id, key, exc)

    @contextmanager
    def _speaking_s3(self, key: str | None, action: str, *, refusal: str | None = None) -> Iterator[None]:
        """Turn the SDK's and urllib3's errors into the port's; ``refusal`` turns AccessDenied into ObjectLocked."""
        try:
            yield
        except S3Error as exc:
            self._raise_translated(exc, key, action, refusal)
        except (ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, OSError) as exc:
            raise ObjectStoreUnavailable(f"cannot {action} {self._where(key)} now: {exc}; retry later") from exc

    def _raise_translated(self, exc: S3Error, key: str | None, action: str, refusal: str | None) -> NoReturn:
        where = self._where(key)
        code = exc.code
        if code in _NOT_FOUND:
            raise ObjectNotFound(f"no object {where}") from exc
        if code == "NoSuchBucket":
            raise ObjectStoreUnavailable(
                f"bucket {self._bucket!r} does not exist at {self._url}; create it with versioning and Object Lock"
            ) from exc
        if code == "InvalidRange":
            raise _RangeNotSatisfiable(f"the range asked of {where} lies beyond its end") from exc
        if refusal is not None and code in ("AccessDenied", "ObjectLocked"):
            raise ObjectLocked(f"cannot {action} {where}: {refusal} ({exc.message})") from exc
        if code in _CREDENTIALS:
            raise ObjectStoreError(
                f"cannot {action} {where}: {code}; check the S3 access key, secret key and the bucket's policy"
            ) from exc
        if code in _BUSY:
            raise ObjectStoreUnavailable(f"cannot {action} {where} now: {code}; retry later") from exc
        raise ObjectStoreError(f"cannot {action} {where}: {code} {exc.message or ''}".rstrip()) from exc

    def _where(self, key: str | None) -> str:
        target = f"s3://{self._bucket}" + (f"/{key}" if key is not None else "")
        return f"{target} at {self._url}"


class _RangeNotSatisfiable(ValueError):
    """The server answered 416: the offset lies at or beyond the object's end."""


class _Parts:
    """Cuts a stream of chunks into parts of ``part_size`` bytes in one reusable buffer.

    The buffer grows with the first part, so an object smaller than a part takes a buffer of its
    own size. ``close()`` frees it at once: the SDK raises errors it keeps in reference cycles
    (the 404 of the check before every put is one), and those keep the frames of ``put`` and
    everything they hold alive until the next garbage collection, a part buffer per put.
    """

    def __init__(self, chunks: Iterator[memoryview], part_size: int) -> None:
        self._chunks = chunks
        self._part_size = part_size
        self._buffer = bytearray()
        self._view: memoryview | None = None
        self._pending = memoryview(b"")
        self._exhausted = False
        self.total = 0
        """Bytes handed out so far."""

    def next(self) -> memoryview:
        """The next part: full, except the last. Valid only until the next call or ``close()``."""
        self._release_view()
        filled = 0
        while filled < self._part_size and not self.finished():
            take = min(self._part_size - filled, len(self._pending))
            # Overwrites in place once the buffer holds a whole part; until then, grows it.
            self._buffer[filled : filled + take] = self._pending[:take]
            self._pending = self._pending[take:]
            filled += take
        self.total += filled
        self._view = memoryview(self._buffer)[:filled]
        return self._view

    def finished(self) -> bool:
        """Whether the stream has nothing left, looking one chunk ahead if need be."""
        if not self._pending and not self._exhausted:
            self._pending = memoryview(b"")
            chunk = next(self._chunks, None)
            if chunk is None:
                self._exhausted = True
            else:
                self._pending = chunk
        return not self._pending

    def close(self) -> None:
        """Free the buffer, whoever still refers to the part handed out last."""
        self._buffer = bytearray()
        with suppress(BufferError):  # still exported after a failure: the collector frees it
            self._release_view()

    def _release_view(self) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None


class _CustodyMinio(Minio):
    """The minio client, plus the multipart and retention calls its public API does not offer as needed.

    Those use SDK internals that minio has kept stable across 7.x; the S3 contract tests exercise
    each of them against a real server.
    """

    def _put_object(
        self,
        bucket_name: str,
        object_name: str,
        data: bytes,
        headers: DictType | None = None,
        query_params: DictType | None = None,
    ) -> ObjectWriteResult:
        # AWS insists on a body checksum where Object Lock is involved; minio adds one only over HTTPS.
        headers = dict(headers or {})
        if "Content-MD5" not in headers:
            digest = hashlib.md5(data, usedforsecurity=False).digest()
            headers["Content-MD5"] = base64.b64encode(digest).decode()
        return super()._put_object(bucket_name, object_name, data, headers, query_params)

    def put_whole(self, bucket: str, key: str, body: memoryview) -> ObjectWriteResult:
        """PutObject of ``body`` in one request."""
        return self._put_object(bucket, key, cast(bytes, body), {"Content-Type": _CONTENT_TYPE})

    def start_upload(self, bucket: str, key: str) -> str:
        """CreateMultipartUpload; the upload id."""
        return self._create_multipart_upload(bucket, key, {"Content-Type": _CONTENT_TYPE})

    def upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: memoryview) -> str:
        """UploadPart; the part's ETag."""
        return self._upload_part(bucket, key, cast(bytes, body), None, upload_id, number)

    def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[Part]
    ) -> CompleteMultipartUploadResult:
        """CompleteMultipartUpload; the result carries the new version id."""
        return self._complete_multipart_upload(bucket, key, upload_id, parts)

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """AbortMultipartUpload."""
        self._abort_multipart_upload(bucket, key, upload_id)

    def retention_document(self, bucket: str, key: str) -> str | None:
        """The GetObjectRetention XML of ``key``'s current version, or None if it has no retention.

        The SDK's own call cannot parse RGW's nine fractional digits and raises on RGW's 404 for
        an object without retention, so the document is read here and parsed by the caller.
        """
        try:
            response = self._execute("GET", bucket, object_name=key, query_params={"retention": ""})
        except S3Error as exc:
            if exc.code in _NO_LOCK_CONFIGURATION:
                return None
            raise
        return response.data.decode()


def _error_of(response: BaseHTTPResponse) -> S3Error | ServerError:
    """The error an S3 answer other than 200 carries."""
    try:
        return S3Error.fromxml(response)
    except (ElementTree.ParseError, UnicodeDecodeError):
        if response.status >= 500:
            return ServerError(f"HTTP {response.status} without an error document", response.status)
        return S3Error(response, f"HTTP {response.status}", "no error document", None, None, None)


def _pool(connect_timeout: float, read_timeout: float, retries: int) -> urllib3.PoolManager:
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        maxsize=32,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(
            total=retries,
            backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504],
            raise_on_status=True,
        ),
    )


def _refuse_if_protected(key: str, headers: object, action: str) -> None:
    """Raise ObjectLocked if the HEAD answer ``headers`` shows a legal hold or a running retention."""
    get = getattr(headers, "get")
    if (get("x-amz-object-lock-legal-hold") or "").upper() == "ON":
        raise ObjectLocked(f"cannot {action} {key!r}: it is on legal hold; an admin must release the hold first")
    until_text = get("x-amz-object-lock-retain-until-date")
    if until_text:
        until = parse_s3_time(until_text)
        if until > datetime.now(UTC):
            raise ObjectLocked(f"cannot {action} {key!r}: it is retained until {until.isoformat()}")


def parse_s3_time(text: str) -> datetime:
    """An S3 timestamp such as ``2026-11-30T20:27:49.000000000Z`` (any number of fractional digits) in UTC."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ObjectStoreError(f"the S3 server sent an unreadable date {text!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _retain_until_from(document: str) -> datetime | None:
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError as exc:
        raise ObjectStoreError("the S3 server sent an unreadable retention document") from exc
    for element in root.iter():
        if element.tag.rpartition("}")[2] == "RetainUntilDate" and element.text:
            return parse_s3_time(element.text)
    return None
