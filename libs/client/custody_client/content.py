"""Receiving an item's content. Over a direct connection the body is read with the standard
library into one reusable buffer of a MiB: httpx hands it over in pieces of 64 KiB and spends
about five times the CPU per byte doing so, which made the client, not the vault, the limit of
a download. httpx still carries it where a transport is given (tests) or a proxy applies."""

from __future__ import annotations

import http.client
import queue
import ssl
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO, Protocol

import httpx

from custody_common.numbers import is_decimal
from custody_common.pagecache import DropBehind

READ_SIZE = 1024 * 1024


class Content(Protocol):
    """The response to a content request, its body not yet read."""

    status_code: int
    headers: httpx.Headers

    def chunks(self) -> Iterator[bytes | memoryview]:
        """The body, piece by piece; a piece is valid only until the next is asked for.
        A broken connection raises ``httpx.TransportError``."""
        ...

    def read(self) -> httpx.Response:
        """The whole (short) body, as an httpx response: for reading an error's detail."""
        ...


class _HttpxContent:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers = response.headers

    def chunks(self) -> Iterator[bytes | memoryview]:
        yield from self._response.iter_bytes()

    def read(self) -> httpx.Response:
        self._response.read()
        return self._response


class _DirectContent:
    def __init__(self, response: http.client.HTTPResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request
        self.status_code = response.status
        self.headers = httpx.Headers(response.getheaders())

    def chunks(self) -> Iterator[bytes | memoryview]:
        buffer = memoryview(bytearray(READ_SIZE))
        declared = self.headers.get("Content-Length")
        received = 0
        while True:
            try:
                count = self._response.readinto(buffer)
            except (OSError, http.client.HTTPException) as exc:
                raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=self._request) from None
            if not count:
                break
            received += count
            yield buffer[:count]
        # http.client ends a body cut short by the server without a word: count it.
        if declared is not None and is_decimal(declared) and received < int(declared):
            raise httpx.ReadError(f"the connection closed after {received} of {declared} bytes", request=self._request)

    def read(self) -> httpx.Response:
        try:
            body = self._response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=self._request) from None
        return httpx.Response(self.status_code, headers=self.headers, content=body, request=self._request)


def direct_connections_possible(base_url: str) -> bool:
    """Whether requests to ``base_url`` go straight to the server (no proxy set for it)."""
    host = urllib.parse.urlsplit(base_url).hostname or ""
    proxies = urllib.request.getproxies_environment()
    scheme = urllib.parse.urlsplit(base_url).scheme
    return not (proxies.get(scheme) or proxies.get("all")) or bool(urllib.request.proxy_bypass_environment(host))


def tls_context(*urls: str) -> ssl.SSLContext:
    """The certificate checks for requests to ``urls``: the system's trusted authorities when one
    of them is https. With none, a context that trusts no certificate at all, so nothing can go
    out unchecked: loading the authorities takes about 0.1 s, which every command paid three
    times, once per service, even over plain http."""
    if any(urllib.parse.urlsplit(url).scheme == "https" for url in urls):
        return httpx.create_ssl_context()
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


@contextmanager
def open_content(
    client: httpx.Client,
    direct: bool,
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
    tls: ssl.SSLContext | None = None,
) -> Iterator[Content]:
    """GET ``path`` of ``client``'s base URL, with its headers (the token) and ``headers``; the
    body is left to read. ``direct``: over a connection of its own (see the module's note), with
    ``tls`` (by default the system's trusted authorities) if it is https."""
    if not direct:
        with client.stream("GET", path, params=params, headers=headers) as response:
            yield _HttpxContent(response)
        return
    request = client.build_request("GET", path, params=params, headers=headers)
    url = request.url
    timeout = client.timeout
    if url.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            url.host, url.port, timeout=timeout.connect, context=tls or httpx.create_ssl_context()
        )
    else:
        connection = http.client.HTTPConnection(url.host, url.port, timeout=timeout.connect)
    try:
        try:
            connection.request("GET", url.raw_path.decode("ascii"), headers=dict(request.headers))
            if connection.sock is not None:
                connection.sock.settimeout(timeout.read)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}", request=request) from None
        yield _DirectContent(response, request)
    finally:
        connection.close()


class BackgroundWriter:
    """Writes to ``file`` in order from a thread of its own, so that the next piece is received
    and hashed while the disk takes this one: writing into the page cache costs here about as
    much CPU as receiving and hashing together. ``seek`` and ``truncate`` wait for what is queued;
    a failed write is raised by the next call.

    What it has written goes to writeback as it goes and leaves the page cache once on disk
    (:class:`~custody_common.pagecache.DropBehind`), so the caller's fsync at the end waits for
    the last few MiB rather than the whole file, and the cache does not grow by the file's size."""

    def __init__(self, file: BinaryIO, depth: int = 8) -> None:
        self._file = file
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        fd = _descriptor(file)
        self._fd = fd
        self._behind = None if fd is None else DropBehind(fd)
        self._thread = threading.Thread(target=self._run, name="custody-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            try:
                if data is None:
                    return
                if self._error is None:
                    self._file.write(data)
                    if self._behind is not None:
                        self._behind.passed(len(data))
            except BaseException as exc:  # noqa: BLE001 — handed to the caller
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, data: bytes | memoryview) -> None:
        """Queue a copy of ``data`` (the caller may reuse its buffer at once)."""
        self._raise()
        self._queue.put(bytes(data))

    def seek(self, offset: int) -> None:
        self._queue.join()
        self._raise()
        self._file.seek(offset)
        if self._fd is not None:
            self._behind = DropBehind(self._fd, offset)

    def truncate(self) -> None:
        self._queue.join()
        self._raise()
        self._file.truncate()

    def close(self) -> None:
        """Wait until everything queued is written; raise what failed."""
        self._queue.put(None)
        self._thread.join()
        self._raise()


def _descriptor(file: BinaryIO) -> int | None:
    """The file descriptor under ``file``, or None if it has none (an in-memory file)."""
    try:
        return file.fileno()
    except (OSError, ValueError):
        return None
