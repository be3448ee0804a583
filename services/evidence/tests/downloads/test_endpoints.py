"""Download URLs over real HTTP (uvicorn), on SQLite + a local folder and PostgreSQL + Ceph RGW."""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from custody_common.crypto.stream import SEGMENT
from custody_common.events import check_commitment, verify_event
from custody_common.manifest import open_json
from custody_evidence.downloads.service import LINK_LIFETIME
from custody_evidence.retrieval.repository import accesses_of
from custody_evidence.seal.schemas import SealOutcome
from custody_evidence.tables import evidence_downloads

PURPOSE = "Showing the video to the trial chamber, hearing 2024-117"


@pytest.fixture
async def sealed(running, served_intake):  # type: ignore[no-untyped-def]
    plaintext = os.urandom(3 * SEGMENT + 99)
    submission = served_intake.submit(plaintext, part_sizes=[SEGMENT + 1, 2 * SEGMENT + 98])
    assert await running.sealer.seal(submission.payload) == SealOutcome.SEALED
    return submission


@pytest.fixture
def prosecutor(running):  # type: ignore[no-untyped-def]
    return running.client(running.token("petra", ["prosecutor"], ["CASE-1"]))


async def _link(prosecutor, evidence_id, purpose: str = PURPOSE) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with prosecutor:
        return await prosecutor.post(f"/v1/evidence/{evidence_id}/downloads", json={"purpose": purpose})


async def test_a_link_serves_ranges_then_the_whole_file_once_without_a_token(
    running, sealed, prosecutor, events
) -> None:
    made = await _link(prosecutor, sealed.evidence_id)
    assert made.status_code == 201
    assert made.headers["cache-control"] == "no-store"
    url = made.json()["url"]
    assert url.startswith("/v1/downloads/") and len(url.rsplit("/", 1)[1]) == 43
    expires = datetime.fromisoformat(made.json()["expires_at"])
    assert timedelta(0) < expires - datetime.now(UTC) <= LINK_LIFETIME

    async with httpx.AsyncClient(base_url=running.url) as anyone:  # no bearer token at all
        first = await anyone.get(url, headers={"Range": "bytes=0-99"})
        seek = await anyone.get(url, headers={"Range": f"bytes={SEGMENT}-"})
        whole = await anyone.get(url)
        after = await anyone.get(url)
        after_range = await anyone.get(url, headers={"Range": "bytes=0-0"})

    assert first.status_code == 206 and first.content == sealed.plaintext[:100]
    assert first.headers["content-range"] == f"bytes 0-99/{len(sealed.plaintext)}"
    assert seek.status_code == 206 and seek.content == sealed.plaintext[SEGMENT:]
    assert whole.status_code == 200 and whole.content == sealed.plaintext
    assert whole.headers["repr-digest"].startswith("sha-256=:")
    assert after.status_code == 410 and after_range.status_code == 410
    assert "used up" in after.json()["detail"]

    # one access, recorded when the link was made, its purpose sealed and committed
    [accessed] = await events(running.vault, "accessed")
    assert verify_event(accessed, running.vault.public_key)
    assert accessed["actor"] == {"sub": "petra", "roles": ["prosecutor"]}
    assert accessed["details"]["via"] == "download_url" and accessed["details"]["range"] == "download-url"
    assert PURPOSE not in str(accessed)
    async with running.vault.sessions() as session:
        [access] = await accesses_of(session, sealed.evidence_id)
        [stored] = list(await session.execute(select(evidence_downloads)))
    opened = open_json(sealed.dek, sealed.evidence_id, "purpose", access.purpose)
    assert check_commitment(opened["salt"], PURPOSE, accessed["commitments"]["purpose"])
    token = url.rsplit("/", 1)[1]
    assert stored.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(tuple(stored))
    assert stored.uses == 3 and stored.spent_at is not None and stored.event_id == accessed["id"]


async def test_the_token_never_reaches_the_log(running, sealed, prosecutor, caplog) -> None:
    made = await _link(prosecutor, sealed.evidence_id)
    url = made.json()["url"]
    token = url.rsplit("/", 1)[1]
    with caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient(base_url=running.url) as anyone:
            assert (await anyone.get(url)).status_code == 200
            assert (await anyone.get(url)).status_code == 410
    # The service's own records; the test's HTTP client logs its URLs, and uvicorn's access log
    # is switched off by custody_common.web.serve.
    logged = "\n".join(
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore", "uvicorn.access"))
    )
    assert "/v1/downloads/sha256:" + hashlib.sha256(token.encode()).hexdigest()[:16] in logged
    assert token not in logged


async def test_an_expired_link_is_gone(running, sealed, prosecutor) -> None:
    url = (await _link(prosecutor, sealed.evidence_id)).json()["url"]
    async with running.vault.transaction() as session:
        await session.execute(update(evidence_downloads).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    async with httpx.AsyncClient(base_url=running.url) as anyone:
        answer = await anyone.get(url, headers={"Range": "bytes=0-9"})
    assert answer.status_code == 410
    assert "expired" in answer.json()["detail"]


async def test_unknown_and_malformed_tokens_are_not_found(running, sealed) -> None:
    async with httpx.AsyncClient(base_url=running.url) as anyone:
        unknown = await anyone.get("/v1/downloads/" + "A" * 43)
        malformed = await anyone.get("/v1/downloads/not-a-token")
    assert unknown.status_code == 404 and malformed.status_code == 404


async def test_who_may_make_a_link(running, sealed, served_intake, events) -> None:
    stranger = running.client(running.token("eve", ["prosecutor"], ["OTHER-CASE"]))
    investigator = running.client(running.token("ivan", ["investigator"], ["CASE-1"]))
    anonymous = running.client()
    prosecutor = running.client(running.token("petra", ["prosecutor"], ["CASE-1"]))
    assert (await _link(stranger, sealed.evidence_id)).status_code == 404
    assert (await _link(investigator, sealed.evidence_id)).status_code == 403
    assert (await _link(anonymous, sealed.evidence_id)).status_code == 401
    assert (await _link(prosecutor, sealed.evidence_id, purpose="   ")).status_code == 422
    assert (await _link(running.client(running.token("petra", ["prosecutor"], ["CASE-1"])), sealed.evidence_id,
                        purpose="x" * 501)).status_code == 422
    rejected = served_intake.submit(os.urandom(100), declared_sha256="0" * 64)
    assert await running.sealer.seal(rejected.payload) == SealOutcome.REJECTED
    refused = await _link(running.client(running.token("petra", ["prosecutor"], ["CASE-1"])), rejected.evidence_id)
    assert refused.status_code == 409 and "rejected" in refused.json()["detail"]
    assert await events(running.vault, "accessed") == []
