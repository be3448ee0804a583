"""What can go wrong for a client of Custody, each with a sentence a person can act on.

The server's own explanation (the ``detail`` of its JSON error body) travels in ``detail``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from custody_common.errors import CustodyError, IntegrityError

if TYPE_CHECKING:
    import httpx


class ClientError(CustodyError):
    """Base of every error the client raises."""

    def __init__(self, message: str, *, detail: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.detail = detail
        """The server's sentence, when it gave one."""
        self.status = status
        """The HTTP status that caused this, when there was one."""


class VerificationFailed(ClientError, IntegrityError):
    """Bytes, a digest, a signature or a proof did not check out: do not rely on what raised this."""


class Rejected(ClientError):
    """The vault rejected the evidence item (e.g. the bytes it holds do not match the declared hash)."""


class AuthError(ClientError):
    """The token is missing, expired or refused (401), or it does not permit this (403)."""


class NotFound(ClientError):
    """No such item, or none the caller may see."""


class NetworkError(ClientError):
    """A service could not be reached, or kept failing, after retries."""


class InvalidRequest(ClientError):
    """The request was refused as malformed or out of bounds (bad metadata, file too large, …)."""


def server_detail(response: httpx.Response) -> str | None:
    """The ``detail`` sentence of an error response, flattened when it is a validation list."""
    import httpx  # here, not above: the offline verifiers import this module without httpx

    try:
        response.read()
        body = response.json()
    except (ValueError, httpx.HTTPError):
        text = response.text.strip() if response.content else ""
        return text[:300] or None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        sentences = []
        for problem in detail:
            if isinstance(problem, dict):
                where = ".".join(str(p) for p in problem.get("loc", [])[1:])
                sentences.append(f"{where}: {problem.get('msg')}" if where else str(problem.get("msg")))
        return "; ".join(sentences) or None
    return None


def error_for(response: httpx.Response, doing: str) -> ClientError:
    """The named error for a failed ``response`` to ``doing`` (e.g. "fetching the item")."""
    status = response.status_code
    detail = server_detail(response)
    said = f": {detail}" if detail else ""
    if status == 401:
        return AuthError(
            f"{doing} was refused, the token was not accepted{said}. Get a new one (`custody token`) "
            "and set CUSTODY_TOKEN.",
            detail=detail,
            status=status,
        )
    if status == 403:
        return AuthError(f"{doing} is not permitted for this token{said}.", detail=detail, status=status)
    if status in (404, 410):
        return NotFound(f"{doing} failed, not found{said}.", detail=detail, status=status)
    if 400 <= status < 500:
        return InvalidRequest(f"{doing} was refused (HTTP {status}){said}.", detail=detail, status=status)
    return NetworkError(f"{doing} failed, the service answered HTTP {status}{said}.", detail=detail, status=status)
