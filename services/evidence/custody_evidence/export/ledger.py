"""The custody ledger (the audit service) as an export needs it, over HTTP.

Chains are read with the caller's own bearer token: audit lets the prosecutors of a case read
its items' chains, so evidence needs no standing credential of its own to the ledger.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

import httpx
from rfc3161_client import PKIStatus, VerificationError, decode_timestamp_response

from custody_evidence.errors import LedgerUnavailable
from custody_evidence.export.proofs import SignedCheckpoint

log = logging.getLogger(__name__)

TIMESTAMP_PATH = "/v1/log/timestamp"
"""Where audit serves the RFC 3161 time-stamp response of a checkpoint (``?tree_size=S``): DER
``TimeStampResp`` over SHA-256 of the checkpoint's body (the signed note before its blank line),
stored or requested from its time-stamping authority on the spot; 404 when it has no authority."""
SHA256_OID = "2.16.840.1.101.3.4.2.1"


class AuditLedger:
    """Reads custody chains, checkpoints, the log's key and checkpoint time-stamps."""

    def __init__(self, base_url: str, *, timeout: float = 15.0, transport: httpx.AsyncBaseTransport | None = None):
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def chain(self, evidence_id: str, bearer: str, tree_size: int | None = None) -> dict[str, Any] | None:
        """``GET /v1/custody/{id}`` as the caller; None while the ledger has no event of the item
        the caller may see (404)."""
        params = {"tree_size": tree_size} if tree_size is not None else None
        response = await self._get(
            f"/v1/custody/{evidence_id}", params=params, headers={"Authorization": f"Bearer {bearer}"}
        )
        if response.status_code == 404:
            return None
        body = self._expect(response, f"the custody chain of item {evidence_id}")
        chain = body.json()
        if not isinstance(chain, dict) or not isinstance(chain.get("checkpoint"), str):
            raise LedgerUnavailable(f"the custody ledger's answer for item {evidence_id} is not a custody chain")
        return chain

    async def checkpoint(self) -> str:
        """The newest signed checkpoint (a C2SP signed note)."""
        return self._expect(await self._get("/v1/log/checkpoint"), "the log's checkpoint").text

    async def log_key(self) -> str:
        """The verifier key the ledger announces for its checkpoints."""
        return self._expect(await self._get("/v1/log/key"), "the log's key").text.strip()

    async def timestamp(self, checkpoint: SignedCheckpoint, bearer: str) -> bytes | None:
        """The RFC 3161 time-stamp response over ``checkpoint``'s body, asked for as the caller;
        None (and a warning) when the ledger has none or gives one over anything else, so the
        package goes without rather than carrying a token that would fail verification."""
        size = checkpoint.size
        try:
            response = await self._get(
                TIMESTAMP_PATH, params={"tree_size": size}, headers={"Authorization": f"Bearer {bearer}"}
            )
        except LedgerUnavailable as exc:
            log.warning("no time-stamp for checkpoint %d: %s", size, exc)
            return None
        if response.status_code != 200:
            if response.status_code != 404:
                log.warning("no time-stamp for checkpoint %d: audit answered HTTP %d", size, response.status_code)
            return None
        if not _over(response.content, checkpoint):
            log.warning("audit's time-stamp for checkpoint %d is not over that checkpoint; the package goes without", size)
            return None
        return response.content

    async def _get(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.get(path, **kwargs)
        except httpx.HTTPError as exc:
            raise LedgerUnavailable(
                f"the custody ledger (audit service) cannot be reached ({type(exc).__name__}); retry shortly"
            ) from None

    @staticmethod
    def _expect(response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code == 200:
            return response
        detail = ""
        try:
            detail = str(response.json().get("detail", ""))
        except ValueError:
            pass
        raise LedgerUnavailable(
            f"the custody ledger refused to give {what} (HTTP {response.status_code}{': ' + detail if detail else ''})"
        )


def _over(reply: bytes, checkpoint: SignedCheckpoint) -> bool:
    """Whether ``reply`` is a granted time-stamp whose imprint is SHA-256 of ``checkpoint``'s body."""
    body = checkpoint.note.rpartition("\n\n")[0] + "\n"
    try:
        response = decode_timestamp_response(reply)
        if response.status != PKIStatus.GRANTED:
            return False
        imprint = response.tst_info.message_imprint
    except (ValueError, VerificationError):
        return False
    return imprint.hash_algorithm.dotted_string == SHA256_OID and hmac.compare_digest(
        imprint.message, hashlib.sha256(body.encode()).digest()
    )
