"""The time-stamping authority (RFC 3161) as audit uses it: one request over SHA-256 of a
checkpoint's body, its reply checked (granted, same imprint, same nonce, and signed under the
configured roots when there are any) before anyone may keep it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from custody_audit.errors import AuditError
from custody_common.errors import ConfigurationError
from custody_common.settings import redacted_url

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
MAX_REPLY = 256 * 1024
"""The largest reply read: a token with its certificate chain is a few KiB."""


class TimestampFailed(AuditError):
    """No usable time-stamp came from the authority."""


class AuthorityUnavailable(TimestampFailed):
    """The authority did not answer, or answered with an HTTP error: wait and ask again."""


class ReplyRejected(TimestampFailed):
    """The authority answered, but not with a granted token over what was asked, under the
    configured roots: nothing is kept."""


@dataclass(frozen=True)
class Stamp:
    """A checked reply of the authority."""

    response: bytes
    """The DER ``TimeStampResp`` exactly as received."""
    gen_time: datetime
    """The time the authority vouches for."""


def load_roots(path: Path) -> list[x509.Certificate]:
    """The PEM certificates in ``path``; raises ConfigurationError naming what is wrong."""
    try:
        roots = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"cannot read the time-stamping authority's roots at {path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigurationError(f"{path} holds no PEM certificate; CUSTODY_TSA_CA names the authority's root(s)") from None
    return roots


def check_reply(reply: bytes, digest: bytes, nonce: int | None, roots: Sequence[x509.Certificate] = ()) -> Stamp:
    """``reply`` as a Stamp if it is a granted RFC 3161 response over SHA-256 ``digest``,
    carrying ``nonce`` and signed by a certificate chaining to one of ``roots`` (each when
    given); raises ReplyRejected otherwise. A stored token is checked with ``nonce`` None:
    only the request it answered knew the nonce."""
    try:
        response = decode_timestamp_response(reply)
    except (ValueError, VerificationError) as exc:
        raise ReplyRejected(f"the reply is not an RFC 3161 TimeStampResp ({exc})") from None
    if response.status != PKIStatus.GRANTED:
        said = "; ".join(response.status_string) or "no reason given"
        raise ReplyRejected(f"the authority refused the request (status {response.status}: {said})")
    try:
        info = response.tst_info
    except ValueError as exc:
        raise ReplyRejected(f"the granted reply holds no time-stamp token ({exc})") from None
    imprint = info.message_imprint
    if imprint.hash_algorithm != SHA256_OID or not hmac.compare_digest(imprint.message, digest):
        raise ReplyRejected("the token time-stamps another document than the checkpoint asked for")
    if nonce is not None and info.nonce != nonce:
        raise ReplyRejected("the token carries another nonce than the request: a replayed or misrouted reply")
    if roots:
        try:
            VerifierBuilder(roots=list(roots), nonce=nonce).build().verify(response, digest)
        except VerificationError as exc:
            raise ReplyRejected(f"the token does not verify under the configured roots (CUSTODY_TSA_CA): {exc}") from None
    return Stamp(response=reply, gen_time=info.gen_time)


class TimestampAuthority:
    """An RFC 3161 authority reached over HTTP (RFC 3161 §3.4)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        roots: Sequence[x509.Certificate] = (),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        # Credentials in the URL become basic auth, kept out of the URL that HTTP logs show.
        auth = httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or "")) if parts.username else None
        self._url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self._roots = tuple(roots)
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False, auth=auth, transport=transport)
        self.name = redacted_url(url)
        """The authority's URL without credentials, for logs and messages."""

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def stamp(self, body: bytes) -> Stamp:
        """A checked time-stamp over SHA-256 of ``body`` (certificates requested, with a fresh
        nonce); raises AuthorityUnavailable or ReplyRejected."""
        request = (
            TimestampRequestBuilder()
            .data(body)
            .hash_algorithm(HashAlgorithm.SHA256)
            .cert_request(cert_request=True)
            .nonce(nonce=True)
            .build()
        )
        reply = await self._post(request.as_bytes())
        return check_reply(reply, hashlib.sha256(body).digest(), request.nonce, self._roots)

    async def _post(self, query: bytes) -> bytes:
        try:
            async with self._http.stream(
                "POST", self._url, content=query, headers={"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE}
            ) as response:
                if response.status_code != 200:
                    raise AuthorityUnavailable(f"the time-stamping authority {self.name} answered HTTP {response.status_code}")
                reply = bytearray()
                async for chunk in response.aiter_bytes():
                    reply += chunk
                    if len(reply) > MAX_REPLY:
                        raise ReplyRejected(f"the reply of {self.name} is larger than {MAX_REPLY} bytes")
        except httpx.HTTPError as exc:
            raise AuthorityUnavailable(
                f"the time-stamping authority {self.name} cannot be reached ({type(exc).__name__})"
            ) from None
        return bytes(reply)
