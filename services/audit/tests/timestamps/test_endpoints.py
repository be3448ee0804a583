"""Checkpoint time-stamps on the running audit service (real database, real NATS, a real TSA
made with openssl behind HTTP): the newest checkpoint gets a token in the background, any
stored checkpoint gets one on request, each verifies over SHA-256 of the checkpoint's body with
the TSA's root pinned, and an authority that is down or misbehaving is waited out while the
log keeps being served and sequenced."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from rfc3161_client import VerifierBuilder, decode_timestamp_response

from custody_audit.app import build_app
from custody_audit.log.checkpoint import verify_checkpoint
from custody_common.auth import mint_token
from custody_common.ids import uuid7
from custody_common.keys import token_signing_key
from custody_common.settings import Settings
from tests.support.nats import publish_events
from tests.support.tsa import OpensslTsa, TsaServer

PATIENCE = 60  # a safety net against hangs, never a timing assertion
REPLY_TYPE = "application/timestamp-reply"


@pytest.fixture
def namespace(nats_namespace: str) -> str:
    return nats_namespace


def with_tsa(settings: Settings, server: TsaServer, tsa: OpensslTsa, interval: float = 0.1) -> Settings:
    return settings.model_copy(update={"tsa_url": server.url, "tsa_ca": tsa.root, "tsa_interval_seconds": interval})


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The audit app with its lifespan (sequencer, time-stamper), called in-process."""
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://audit") as http:
            http.app = app  # type: ignore[attr-defined]
            yield http


def auditor(settings: Settings, *roles: str) -> dict[str, str]:
    jwt = mint_token(token_signing_key(settings), settings, "carol", list(roles or ["auditor"]), ["*"])
    return {"Authorization": f"Bearer {jwt}"}


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    async def poll() -> None:
        while not await check():
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), PATIENCE)
    except TimeoutError:
        raise AssertionError(f"gave up waiting: {what}") from None


async def logged(client: httpx.AsyncClient, size: int) -> None:
    """Wait until the log's latest checkpoint has ``size`` entries."""

    async def reached() -> bool:
        answer = await client.get("/v1/log/checkpoint")
        return answer.status_code == 200 and int(answer.text.split("\n")[1]) >= size

    await until(reached, f"a checkpoint of size {size}")


def body_of(note: str) -> bytes:
    return note[: note.index("\n\n") + 1].encode()


def verified(reply: bytes, note: str, root: Path) -> None:
    """``reply`` is a granted token over SHA-256 of ``note``'s body, signed under ``root``."""
    response = decode_timestamp_response(reply)
    assert response.tst_info.message_imprint.message == hashlib.sha256(body_of(note)).digest()
    roots = x509.load_pem_x509_certificates(root.read_bytes())
    assert VerifierBuilder(roots=roots).build().verify_message(response, body_of(note))


async def test_the_newest_checkpoint_gets_a_token_that_verifies(
    settings: Settings, signed, tsa: OpensslTsa, tsa_server: TsaServer, tmp_path: Path
) -> None:
    settings = with_tsa(settings, tsa_server, tsa)
    async with running(settings) as client:
        await publish_events(settings.nats_namespace, [signed("intake", evidence_id=str(uuid7()), case="C") for _ in range(3)])
        await logged(client, 4)
        headers = auditor(settings)

        async def newest_stamped() -> bool:
            answer = await client.get("/v1/log/timestamp", headers=headers)
            latest = (await client.get("/v1/log/checkpoint")).text
            return answer.status_code == 200 and answer.headers["custody-tree-size"] == latest.split("\n")[1]

        await until(newest_stamped, "a token over the newest checkpoint")
        latest = await client.get("/v1/log/timestamp", headers=headers)
        size = int(latest.headers["custody-tree-size"])
        assert size == 4 and latest.headers["content-type"] == REPLY_TYPE
        note = (await client.get("/v1/log/checkpoint", params={"tree_size": size})).text
        verify_checkpoint(note, (await client.get("/v1/log/key")).text.strip())
        verified(latest.content, note, tsa.root)
        exact = await client.get("/v1/log/timestamp", params={"tree_size": size}, headers=headers)
        assert exact.status_code == 200 and exact.content == latest.content
        assert 'filename="checkpoint-4.tsr"' in exact.headers["content-disposition"]

    # ... and openssl agrees, given the body and the root.
    (tmp_path / "checkpoint.tsr").write_bytes(latest.content)
    (tmp_path / "checkpoint.txt").write_text(note)
    checked = subprocess.run(
        f"sed '/^$/,$d' checkpoint.txt > body.txt && openssl ts -verify -in checkpoint.tsr -data body.txt "
        f"-CAfile {tsa.root}",
        shell=True, cwd=tmp_path, capture_output=True, text=True,
    )
    assert checked.returncode == 0 and "Verification: OK" in checked.stdout, checked.stdout + checked.stderr
    (tmp_path / "body.txt").write_bytes(note.encode())  # the whole note is another document
    whole = subprocess.run(
        ["openssl", "ts", "-verify", "-in", "checkpoint.tsr", "-data", "body.txt", "-CAfile", str(tsa.root)],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert whole.returncode != 0


async def test_a_stored_checkpoint_without_a_token_gets_one_on_request(
    settings: Settings, signed, tsa: OpensslTsa, tsa_server: TsaServer
) -> None:
    # An hour between background rounds: the one at start-up, then only requests make tokens.
    settings = with_tsa(settings, tsa_server, tsa, interval=3600)
    async with running(settings) as client:
        await publish_events(settings.nats_namespace, [signed("intake", evidence_id=str(uuid7()), case="C")])
        await logged(client, 2)
        headers = auditor(settings, "prosecutor")
        asked_before = len(tsa_server.received)
        first, again = await asyncio.gather(
            client.get("/v1/log/timestamp", params={"tree_size": 2}, headers=headers),
            client.get("/v1/log/timestamp", params={"tree_size": 2}, headers=headers),
        )
        assert first.status_code == again.status_code == 200, first.text
        assert first.content == again.content
        assert len(tsa_server.received) == asked_before + 1  # one request for both callers
        later = await client.get("/v1/log/timestamp", params={"tree_size": 2}, headers=auditor(settings, "admin"))
        assert later.content == first.content and len(tsa_server.received) == asked_before + 1
        verified(first.content, (await client.get("/v1/log/checkpoint", params={"tree_size": 2})).text, tsa.root)


async def test_what_cannot_be_served_says_why(settings: Settings, signed, incoming, append) -> None:
    # Two events in one batch: checkpoints of sizes 2 and (the app's key announcement) 3, none of 1.
    await append(incoming(signed("intake")), incoming(signed("intake")))
    async with running(settings) as client:  # no time-stamping authority configured
        await logged(client, 3)
        headers = auditor(settings)
        none_yet = await client.get("/v1/log/timestamp", headers=headers)
        assert none_yet.status_code == 404 and "no checkpoint has a time-stamp yet" in none_yet.json()["detail"]
        unconfigured = await client.get("/v1/log/timestamp", params={"tree_size": 3}, headers=headers)
        assert unconfigured.status_code == 404
        assert "no time-stamping authority (CUSTODY_TSA_URL)" in unconfigured.json()["detail"]
        gap = await client.get("/v1/log/timestamp", params={"tree_size": 1}, headers=headers)
        assert gap.status_code == 404 and "no checkpoint of size 1" in gap.json()["detail"]
        for bad in (0, -1, 2**63, 4):
            answer = await client.get("/v1/log/timestamp", params={"tree_size": bad}, headers=headers)
            assert answer.status_code == 400, (bad, answer.text)
            assert "tree_size" in answer.json()["detail"]
        assert (await client.get("/v1/log/timestamp", params={"tree_size": "two"}, headers=headers)).status_code == 422
        assert (await client.get("/v1/log/timestamp")).status_code == 401
        investigator = auditor(settings, "investigator")
        assert (await client.get("/v1/log/timestamp", params={"tree_size": 3}, headers=investigator)).status_code == 403
        # the public checkpoint of a stored size, and none where there is none
        assert (await client.get("/v1/log/checkpoint", params={"tree_size": 2})).text.split("\n")[1] == "2"
        assert (await client.get("/v1/log/checkpoint", params={"tree_size": 1})).status_code == 404
        assert (await client.get("/v1/log/checkpoint", params={"tree_size": 4})).status_code == 400


async def test_an_authority_that_is_down_is_waited_out(
    settings: Settings, signed, tsa: OpensslTsa, tsa_server: TsaServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="custody_audit.timestamps")
    tsa_server.stop()
    settings = with_tsa(settings, tsa_server, tsa)
    async with running(settings) as client:
        stamper = client.app.state.stamper  # type: ignore[attr-defined]
        await publish_events(settings.nats_namespace, [signed("intake", evidence_id=str(uuid7()), case="C")])
        await logged(client, 2)

        def failed(times: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return stamper.stats.failures >= times

            return check

        await until(failed(2), "two failed rounds while the authority is down")
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        headers = auditor(settings)
        on_request = await client.get("/v1/log/timestamp", params={"tree_size": 2}, headers=headers)
        assert on_request.status_code == 503 and on_request.headers["retry-after"] == "30"
        assert "cannot be reached" in on_request.json()["detail"]
        # the log goes on meanwhile
        await publish_events(settings.nats_namespace, [signed("intake", evidence_id=str(uuid7()), case="C")])
        await logged(client, 3)

        # back, but answering errors; then refusing replays: still nothing kept
        tsa_server.failing_status = 500
        tsa_server.start()
        await until(failed(stamper.stats.failures + 2), "two rounds answered with HTTP 500")
        assert (await client.get("/v1/log/timestamp", headers=headers)).status_code == 404
        assert (await client.get("/readyz")).status_code == 200

        tsa_server.failing_status = None

        async def newest_stamped() -> bool:
            answer = await client.get("/v1/log/timestamp", headers=headers)
            return answer.status_code == 200 and answer.headers["custody-tree-size"] == "3"

        await until(newest_stamped, "a token once the authority is back")
        note = (await client.get("/v1/log/checkpoint", params={"tree_size": 3})).text
        verified((await client.get("/v1/log/timestamp", headers=headers)).content, note, tsa.root)
        assert stamper.damage is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("cannot be reached" in w and "trying again in" in w for w in warnings), warnings
    assert any("answered HTTP 500" in w for w in warnings), warnings
    assert any("works again" in r.getMessage() for r in caplog.records)


async def test_a_replayed_reply_is_never_kept(
    settings: Settings, signed, tsa: OpensslTsa, tsa_server: TsaServer
) -> None:
    settings = with_tsa(settings, tsa_server, tsa, interval=3600)
    async with running(settings) as client:
        await publish_events(settings.nats_namespace, [signed("intake", evidence_id=str(uuid7()), case="C")])
        await logged(client, 2)
        headers = auditor(settings)
        first = await client.get("/v1/log/timestamp", params={"tree_size": 2}, headers=headers)
        assert first.status_code == 200
        tsa_server.replaying = True  # every answer is now the first token ever sent
        await publish_events(settings.nats_namespace, [signed("intake", evidence_id=str(uuid7()), case="C")])
        await logged(client, 3)
        refused = await client.get("/v1/log/timestamp", params={"tree_size": 3}, headers=headers)
        assert refused.status_code == 502 and "refused and not kept" in refused.json()["detail"]
        tsa_server.replaying = False
        fresh = await client.get("/v1/log/timestamp", params={"tree_size": 3}, headers=headers)
        assert fresh.status_code == 200 and fresh.content != tsa_server.replies[0]
        verified(fresh.content, (await client.get("/v1/log/checkpoint", params={"tree_size": 3})).text, tsa.root)
