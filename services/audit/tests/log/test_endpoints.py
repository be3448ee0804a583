"""The log's HTTP routes on the running service (real database, real NATS): shapes, proofs that
verify against the signed checkpoint, and who may read what."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from custody_audit.app import build_app
from custody_audit.log.checkpoint import verify_checkpoint
from custody_audit.log.merkle import leaf_hash, tree_hash, verify_consistency, verify_inclusion
from custody_common.auth import mint_token
from custody_common.ids import uuid7
from custody_common.keys import token_signing_key
from custody_common.settings import Settings
from tests.support.nats import publish_events

PATIENCE = 60  # a safety net against hangs, never a timing assertion


@pytest.fixture
def namespace(nats_namespace: str) -> str:
    return nats_namespace


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://audit") as http:
            http.app = app  # type: ignore[attr-defined]
            yield http


@pytest.fixture
def token(settings: Settings) -> Callable[..., dict[str, str]]:
    """Authorization headers for a caller with ``roles`` and ``cases``."""

    def make(*roles: str, cases: tuple[str, ...] = ()) -> dict[str, str]:
        jwt = mint_token(token_signing_key(settings), settings, "tester", list(roles), list(cases))
        return {"Authorization": f"Bearer {jwt}"}

    return make


async def _publish_and_wait(client: httpx.AsyncClient, settings: Settings, events: list[dict]) -> int:
    await publish_events(settings.nats_namespace, events)
    sequencer = client.app.state.sequencer  # type: ignore[attr-defined]

    async def logged() -> None:
        while sequencer.stats.appended < len(events) + 1:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(logged(), PATIENCE)
    return sequencer.size


def _b64(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v) for v in values]


async def test_public_checkpoint_and_key(client, settings, signed) -> None:
    size = await _publish_and_wait(client, settings, [signed("intake", evidence_id=str(uuid7()), case="C")])
    note = await client.get("/v1/log/checkpoint")
    key = await client.get("/v1/log/key")
    assert note.status_code == key.status_code == 200
    assert note.headers["content-type"].startswith("text/plain")
    assert key.text.startswith(f"{settings.log_origin}+") and key.text.endswith("\n")
    checkpoint = verify_checkpoint(note.text, key.text.strip())
    assert checkpoint.size == size == 2


async def test_entries_and_proofs_verify_against_signed_checkpoints(client, settings, signed, token) -> None:
    auditor = token("auditor")
    events = [signed("intake", evidence_id=str(uuid7()), case="C") for _ in range(20)]
    size = await _publish_and_wait(client, settings, events)
    vkey = (await client.get("/v1/log/key")).text.strip()
    checkpoint = verify_checkpoint((await client.get("/v1/log/checkpoint")).text, vkey)
    assert checkpoint.size == size == 21

    page = (await client.get("/v1/log/entries", params={"start": 0, "limit": 1000}, headers=auditor)).json()
    assert [e["index"] for e in page["entries"]] == list(range(size))
    leaves = [base64.b64decode(e["leaf"]) for e in page["entries"]]
    assert (await client.get("/v1/log/entries", params={"start": 19, "limit": 5}, headers=auditor)).json() == {
        "entries": page["entries"][19:]
    }

    for index in (0, 7, size - 1):
        proof = (
            await client.get("/v1/log/proof/inclusion", params={"index": index, "tree_size": size}, headers=auditor)
        ).json()
        assert set(proof) == {"index", "tree_size", "hashes"} and proof["index"] == index
        verify_inclusion(index, size, leaf_hash(leaves[index]), _b64(proof["hashes"]), checkpoint.root)

    for first in (1, 5, size):
        response = await client.get("/v1/log/proof/consistency", params={"first": first, "second": size}, headers=auditor)
        proof = response.json()
        assert set(proof) == {"first", "second", "hashes"} and (proof["first"], proof["second"]) == (first, size)
        # The root of the earlier size, recomputed from the entries, is consistent with the signed one.
        earlier_root = tree_hash([leaf_hash(leaf) for leaf in leaves[:first]])
        verify_consistency(first, size, earlier_root, checkpoint.root, _b64(proof["hashes"]))
    assert (await client.get("/v1/log/proof/consistency", params={"first": size, "second": size}, headers=auditor)).json()[
        "hashes"
    ] == []


async def test_custody_chain_for_auditors_and_the_cases_prosecutors(client, settings, signed, token) -> None:
    item, other = str(uuid7()), str(uuid7())
    events = [
        signed("intake", action="submitted", evidence_id=item, case="CASE-1"),
        signed("intake", action="received", evidence_id=item, case="CASE-1"),
        signed("intake", action="submitted", evidence_id=other, case="CASE-2"),
        signed("evidence", action="sealed", evidence_id=item, case="CASE-1"),
    ]
    size = await _publish_and_wait(client, settings, events)
    vkey = (await client.get("/v1/log/key")).text.strip()

    for headers in (token("auditor"), token("admin"), token("prosecutor", cases=("CASE-1",))):
        response = await client.get(f"/v1/custody/{item}", headers=headers)
        assert response.status_code == 200, response.text
        chain = response.json()
        assert set(chain) == {"checkpoint", "events"}
        checkpoint = verify_checkpoint(chain["checkpoint"], vkey)
        assert checkpoint.size == size
        assert [e["entry"]["event"] for e in chain["events"]] == [events[0], events[1], events[3]]
        assert [e["entry"]["item_seq"] for e in chain["events"]] == [1, 2, 3]
        previous = None
        for event in chain["events"]:
            assert set(event) == {"index", "leaf", "entry", "inclusion"}
            leaf = base64.b64decode(event["leaf"])
            verify_inclusion(event["index"], checkpoint.size, leaf_hash(leaf), _b64(event["inclusion"]), checkpoint.root)
            assert event["entry"]["prev_leaf"] == (previous.hex() if previous else None)
            previous = leaf_hash(leaf)

    # The checkpoint of size 1 holds only audit's key announcement: the item is not in it yet.
    early = await client.get(f"/v1/custody/{item}", params={"tree_size": 1}, headers=token("auditor"))
    assert early.status_code == 404


async def test_custody_chain_at_a_stored_checkpoint(client, settings, signed, token) -> None:
    item = str(uuid7())
    first_batch = [signed("intake", action="submitted", evidence_id=item, case="C-1")]
    size1 = await _publish_and_wait(client, settings, first_batch)
    second_batch = [signed("evidence", action="sealed", evidence_id=item, case="C-1")]
    size2 = await _publish_and_wait(client, settings, first_batch + second_batch)
    assert (size1, size2) == (2, 3)
    auditor = token("auditor")
    old = (await client.get(f"/v1/custody/{item}", params={"tree_size": size1}, headers=auditor)).json()
    vkey = (await client.get("/v1/log/key")).text.strip()
    checkpoint = verify_checkpoint(old["checkpoint"], vkey)
    assert checkpoint.size == size1 and len(old["events"]) == 1
    event = old["events"][0]
    leaf = base64.b64decode(event["leaf"])
    verify_inclusion(event["index"], size1, leaf_hash(leaf), _b64(event["inclusion"]), checkpoint.root)
    latest = (await client.get(f"/v1/custody/{item}", headers=auditor)).json()
    assert len(latest["events"]) == 2


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/log/entries", {"start": 0, "limit": 1001}),
        ("/v1/log/entries", {"start": 0, "limit": 0}),
        ("/v1/log/entries", {"start": 2, "limit": 10}),
        ("/v1/log/entries", {"start": -1, "limit": 10}),
        ("/v1/log/proof/inclusion", {"index": 2, "tree_size": 2}),
        ("/v1/log/proof/inclusion", {"index": 0, "tree_size": 3}),
        ("/v1/log/proof/inclusion", {"index": -1, "tree_size": 2}),
        ("/v1/log/proof/inclusion", {"index": 0, "tree_size": 0}),
        ("/v1/log/proof/consistency", {"first": 0, "second": 2}),
        ("/v1/log/proof/consistency", {"first": 2, "second": 1}),
        ("/v1/log/proof/consistency", {"first": 1, "second": 3}),
    ],
)
async def test_out_of_range_is_400(client, settings, signed, token, path: str, params: dict) -> None:
    await _publish_and_wait(client, settings, [signed("intake", evidence_id=str(uuid7()), case="C")])
    response = await client.get(path, params=params, headers=token("admin"))
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["detail"], str)


async def test_who_may_read_what(client, settings, signed, token) -> None:
    item = str(uuid7())
    await _publish_and_wait(client, settings, [signed("intake", evidence_id=item, case="CASE-1")])
    log_routes = ["/v1/log/entries?start=0", "/v1/log/proof/inclusion?index=0&tree_size=1",
                  "/v1/log/proof/consistency?first=1&second=2"]
    for route in [*log_routes, f"/v1/custody/{item}"]:
        assert (await client.get(route)).status_code == 401
        assert (await client.get(route, headers={"Authorization": "Bearer nonsense"})).status_code == 401
        assert (await client.get(route, headers=token("investigator", cases=("CASE-1",)))).status_code == 403
    for route in log_routes:
        assert (await client.get(route, headers=token("prosecutor", cases=("CASE-1",)))).status_code == 403
        assert (await client.get(route, headers=token("auditor"))).status_code == 200
    chain = f"/v1/custody/{item}"
    assert (await client.get(chain, headers=token("prosecutor", cases=("CASE-2",)))).status_code == 404
    assert (await client.get(chain, headers=token("prosecutor", cases=("*",)))).status_code == 404
    assert (await client.get(chain, headers=token("prosecutor", cases=("CASE-1",)))).status_code == 200
    unknown = await client.get(f"/v1/custody/{uuid7()}", headers=token("auditor"))
    assert unknown.status_code == 404
    assert (await client.get("/v1/custody/not-a-uuid", headers=token("auditor"))).status_code == 404
    assert (await client.get(chain, params={"tree_size": 99}, headers=token("auditor"))).status_code == 400
    assert (await client.get("/v1/log/checkpoint")).status_code == 200
    assert (await client.get("/readyz")).json()["checks"] == {"database": "ok", "nats": "ok", "log": "ok"}
