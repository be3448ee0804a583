"""Receiving an item's content. Over a direct connection the body is read with the standard
library into one reusable buffer of a MiB: httpx hands it over in pieces of 64 KiB and spends
about five times the CPU per byte doing so, which made the client, not the vault, the limit of
a download. httpx still carries it where a transport is given (tests) or a proxy applies."""

from __future__ import annotations

import http.client
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import httpx

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
        if declared is not None and declared.isdigit() and received < int(declared):
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


@contextmanager
def open_content(
    client: httpx.Client, direct: bool, path: str, params: dict[str, str], headers: dict[str, str]
) -> Iterator[Content]:
    """GET ``path`` of ``client``'s base URL, with its headers (the token) and ``headers``; the
    body is left to read. ``direct``: over a connection of its own (see the module's note)."""
    if not direct:
        with client.stream("GET", path, params=params, headers=headers) as response:
            yield _HttpxContent(response)
        return
    request = client.build_request("GET", path, params=params, headers=headers)
    url = request.url
    timeout = client.timeout
    if url.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            url.host, url.port, timeout=timeout.connect, context=httpx.create_ssl_context()
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
