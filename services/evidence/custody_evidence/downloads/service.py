"""The rules of download URLs.

A prosecutor of the item's case asks for a URL, stating why; the ``accessed`` custody event
(with the purpose as a salted commitment, the purpose itself sealed under the item's data key)
is committed when the URL is made, not when it is used, so the purpose never travels in a URL.

The URL serves exactly what ``GET /v1/evidence/{id}/content`` serves, without a bearer token:
its token is a 256-bit random value, stored only as its SHA-256. By design it stays valid for
:data:`LINK_LIFETIME` for any number of Range requests of that one item (a ``<video>`` element
seeks with Range requests), and the first GET of the whole file uses it up: a plain download
link works exactly once, and nothing works after the minute is over.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

from custody_common.auth import Principal

from custody_evidence.downloads import repository
from custody_evidence.downloads.schemas import DownloadLink
from custody_evidence.errors import DownloadLinkGone, DownloadLinkUnknown, ItemNotServable
from custody_evidence.items.schemas import ItemStatus
from custody_evidence.items.service import find, visible_item
from custody_evidence.retrieval.ranges import parse_range
from custody_evidence.retrieval.service import (
    PROSECUTOR,
    Delivery,
    RetrievalService,
    checked_purpose,
    record_access_event,
)
from custody_evidence.vault import Vault

LINK_LIFETIME = timedelta(seconds=60)
DOWNLOADS_PATH = "/v1/downloads/"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
"""32 random bytes in unpadded base64url."""


def token_digest(token: str) -> str:
    """What is stored of a URL's token, and what may be logged of it: its SHA-256 (hex)."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


class DownloadService:
    """Makes download URLs and serves them."""

    def __init__(self, vault: Vault, retrieval: RetrievalService) -> None:
        self._vault = vault
        self._retrieval = retrieval

    async def create(self, principal: Principal, evidence_id: str, purpose: str, request_id: str) -> DownloadLink:
        """A new URL to a sealed item for the prosecutor of its case; the access is recorded now."""
        purpose = checked_purpose(purpose)
        item = await visible_item(self._vault, principal, evidence_id, PROSECUTOR)
        if item.status != ItemStatus.SEALED:
            raise ItemNotServable(
                f"item {item.evidence_id} is {item.status.value}, so it is never served: {item.reason}"
            )
        manifest = self._vault.manifest_of(item)
        dek = await self._vault.unwrap(item.evidence_id, manifest.wrapped_dek)
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        expires_at = now + LINK_LIFETIME
        async with self._vault.transaction() as session:
            event_id = await record_access_event(
                self._vault,
                session,
                principal,
                item,
                dek,
                purpose,
                request_id,
                "download-url",
                details={"via": "download_url", "expires_at": expires_at.isoformat(timespec="seconds")},
            )
            await repository.insert_link(
                session,
                token_sha256=token_digest(token),
                evidence_id=item.evidence_id,
                event_id=event_id,
                sub=principal.sub,
                created_at=now,
                expires_at=expires_at,
            )
        return DownloadLink(url=f"{DOWNLOADS_PATH}{token}", expires_at=expires_at)

    async def serve(self, token: str, range_header: str | None, if_range: str | None, request_id: str) -> Delivery:
        """The item's bytes (whole, or one range) for a live URL."""
        if not _TOKEN.match(token):
            raise DownloadLinkUnknown("no download URL is known by this token")
        digest = token_digest(token)
        now = datetime.now(UTC)
        async with self._vault.sessions() as session:
            link = await repository.find_link(session, digest)
        if link is None:
            raise DownloadLinkUnknown("no download URL is known by this token")
        if link.spent_at is not None or link.expires_at <= now:
            raise _gone()
        item = await find(self._vault, link.evidence_id)
        if item is None:
            raise DownloadLinkUnknown("the item of this download URL is not in the index any more")
        etag = f'"{item.sha256}"'
        whole = parse_range(range_header if if_range in (None, etag) else None, item.size) is None
        async with self._vault.transaction() as session:
            if not await repository.use_link(session, digest, now, spend=whole):
                raise _gone()
        return await self._retrieval.open_delivery(item, range_header, if_range, request_id, record=None)


def _gone() -> DownloadLinkGone:
    return DownloadLinkGone(
        f"this download URL has expired or was used up (a URL lives {int(LINK_LIFETIME.total_seconds())} s and "
        "serves the whole file once); ask for a new one"
    )
