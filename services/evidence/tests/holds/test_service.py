"""Legal holds on items and cases, over HTTP, with the store's holds checked."""

from __future__ import annotations

import os

import pytest

from custody_common.manifest import manifest_key
from custody_evidence.seal.schemas import SealOutcome


def _objects(submission, versions: int = 1) -> list[str]:  # type: ignore[no-untyped-def]
    keys = [part.key for part in submission.statement.parts]
    return keys + [manifest_key(submission.evidence_id, v) for v in range(1, versions + 1)]


@pytest.fixture
def admin(running):  # type: ignore[no-untyped-def]
    return running.client(running.token("ada", ["admin"], ["CASE-1"]))


async def test_an_item_hold_is_set_and_released_once(running, served_intake, admin, events) -> None:
    submission = served_intake.submit(os.urandom(5000), part_sizes=[2000, 3000])
    await running.sealer.seal(submission.payload)
    store = running.vault.store
    path = f"/v1/evidence/{submission.evidence_id}/legal-hold"

    async with admin:
        first = await admin.put(path)
        second = await admin.put(path)
        assert all(store.legal_hold(key) for key in _objects(submission))
        released = await admin.delete(path)
        again = await admin.delete(path)

    assert first.json() == {
        "evidence_id": str(submission.evidence_id),
        "held": True,
        "item_hold": True,
        "case_hold": False,
        "changed": True,
    }
    assert second.json()["changed"] is False
    assert released.json()["held"] is False and released.json()["changed"] is True
    assert again.json()["changed"] is False
    assert not any(store.legal_hold(key) for key in _objects(submission))
    # the seal's retention is untouched by the release
    assert all(store.retention(key) is not None for key in _objects(submission))
    assert [e["action"] for e in await events(running.vault) if e["action"].startswith("hold")] == [
        "hold_set",
        "hold_released",
    ]
    [hold_set] = await events(running.vault, "hold_set")
    assert hold_set["actor"] == {"sub": "ada", "roles": ["admin"]}
    assert hold_set["details"]["scope"] == "item"


async def test_a_rejected_item_stays_held(running, served_intake, admin) -> None:
    submission = served_intake.submit(os.urandom(100), declared_size=99)
    assert await running.sealer.seal(submission.payload) == SealOutcome.REJECTED
    async with admin:
        answer = await admin.delete(f"/v1/evidence/{submission.evidence_id}/legal-hold")
    assert answer.status_code == 409
    assert all(running.vault.store.legal_hold(key) for key in _objects(submission))


async def test_a_case_hold_covers_its_items_and_those_sealed_later(running, served_intake, admin, events) -> None:
    store = running.vault.store
    before = served_intake.submit(os.urandom(100))
    held_alone = served_intake.submit(os.urandom(100))
    elsewhere = served_intake.submit(os.urandom(100), case="CASE-2")
    for submission in (before, held_alone, elsewhere):
        await running.sealer.seal(submission.payload)

    async with admin:
        await admin.put(f"/v1/evidence/{held_alone.evidence_id}/legal-hold")
        hold = await admin.put("/v1/cases/CASE-1/legal-hold")
        assert hold.json() == {"case": "CASE-1", "held": True, "items": 1, "changed": True}
        assert (await admin.put("/v1/cases/CASE-1/legal-hold")).json()["changed"] is False
        after = served_intake.submit(os.urandom(100))
        await running.sealer.seal(after.payload)
        for submission in (before, held_alone, after):
            assert all(store.legal_hold(key) for key in _objects(submission))
        assert not any(store.legal_hold(key) for key in _objects(elsewhere))

        released = await admin.delete("/v1/cases/CASE-1/legal-hold")
        assert released.json()["changed"] is True

    assert not any(store.legal_hold(key) for key in _objects(before))
    assert all(store.legal_hold(key) for key in _objects(held_alone))  # held by itself still
    [sealed_after] = [e for e in await events(running.vault, "sealed") if e["evidence_id"] == str(after.evidence_id)]
    assert sealed_after["details"]["legal_hold"] == "case"
    case_events = [e for e in await events(running.vault, "hold_set") if "evidence_id" not in e]
    assert len(case_events) == 1 and case_events[0]["case"] == "CASE-1"


async def test_only_admins_of_the_case_hold(running, served_intake) -> None:
    submission = served_intake.submit(os.urandom(100))
    await running.sealer.seal(submission.payload)
    prosecutor = running.client(running.token("petra", ["prosecutor"], ["CASE-1"]))
    other_admin = running.client(running.token("otto", ["admin"], ["CASE-2"]))
    every_case_admin = running.client(running.token("root", ["admin"], ["*"]))
    async with prosecutor, other_admin, every_case_admin:
        assert (await prosecutor.put(f"/v1/evidence/{submission.evidence_id}/legal-hold")).status_code == 403
        assert (await prosecutor.put("/v1/cases/CASE-1/legal-hold")).status_code == 403
        assert (await other_admin.put(f"/v1/evidence/{submission.evidence_id}/legal-hold")).status_code == 404
        assert (await other_admin.put("/v1/cases/CASE-1/legal-hold")).status_code == 403
        # "*" widens admin powers
        assert (await every_case_admin.put(f"/v1/evidence/{submission.evidence_id}/legal-hold")).status_code == 200
        # admins see no contents
        assert (
            await every_case_admin.get(f"/v1/evidence/{submission.evidence_id}/content?purpose=x")
        ).status_code == 403


@pytest.mark.parametrize(
    ("first", "released", "then"),
    [
        (("put", "/v1/cases/CASE-1/legal-hold"), ("delete", "/v1/cases/CASE-1/legal-hold"), ("put", "{item}")),
        (("put", "{item}"), ("delete", "{item}"), ("put", "/v1/cases/CASE-1/legal-hold")),
    ],
    ids=["item-held-while-the-case-is-released", "case-held-while-the-item-is-released"],
)
async def test_a_hold_placed_while_another_is_released_stays_on_the_objects(
    running, served_intake, admin, monkeypatch, first, released, then
) -> None:
    """Two admins at once: one lifts a hold, and before its store is touched the other places
    another on the same objects. The release must not clear what the other placed."""
    import asyncio
    import threading

    from custody_evidence.holds import service as holds_service

    submission = served_intake.submit(os.urandom(100))
    await running.sealer.seal(submission.payload)
    item = f"/v1/evidence/{submission.evidence_id}/legal-hold"
    recorded, go = threading.Event(), threading.Event()
    release_hold = holds_service.release_hold

    def release_later(*args, **kwargs):  # type: ignore[no-untyped-def]
        recorded.set()  # the release is committed; the store is not touched yet
        go.wait(10)
        return release_hold(*args, **kwargs)

    other = running.client(running.token("bea", ["admin"], ["CASE-1"]))
    async with admin, other:
        method, path = first
        assert (await admin.request(method, path.format(item=item))).json()["changed"] is True
        monkeypatch.setattr(holds_service, "release_hold", release_later)
        method, path = released
        releasing = asyncio.create_task(admin.request(method, path.format(item=item)))
        assert await asyncio.to_thread(recorded.wait, 10)
        method, path = then
        placing = asyncio.create_task(other.request(method, path.format(item=item)))
        await asyncio.sleep(0.3)  # the other admin goes as far as it can
        go.set()
        assert (await releasing).status_code == 200 and (await placing).json()["changed"] is True

    assert all(running.vault.store.legal_hold(key) for key in _objects(submission))


async def test_every_hold_change_is_a_signed_record_in_the_store(running, served_intake, admin) -> None:
    from custody_common.manifest import case_hold_key, item_hold_key
    from custody_evidence.holds.records import newest_record

    submission = served_intake.submit(os.urandom(100))
    await running.sealer.seal(submission.payload)
    vault = running.vault
    store, item = vault.store, f"/v1/evidence/{submission.evidence_id}/legal-hold"

    def newest(evidence_id=None):  # type: ignore[no-untyped-def]
        record = newest_record(store, vault.public_key, "CASE-1", evidence_id)
        return None if record is None else (record.version, record.held, record.by)

    async with admin:
        await admin.put(item)
        await admin.put("/v1/cases/CASE-1/legal-hold")
        assert newest(submission.evidence_id) == (1, True, "ada") and newest() == (1, True, "ada")
        # a record that places a hold is held itself, so the word that a hold stands cannot be deleted
        assert store.legal_hold(item_hold_key(submission.evidence_id, 1))
        assert store.legal_hold(case_hold_key("CASE-1", 1))
        await admin.delete(item)
        await admin.delete("/v1/cases/CASE-1/legal-hold")

    assert newest(submission.evidence_id) == (2, False, "ada") and newest() == (2, False, "ada")
    assert not any(store.legal_hold(key) for key in store.list("cases/CASE-1/"))
    assert not any(store.legal_hold(key) for key in store.list(f"evidence/{submission.evidence_id}/legal-hold/"))


async def test_a_hold_the_store_has_no_word_of_gets_its_record_when_put_again(running, served_intake, admin) -> None:
    """A hold placed before the store kept records, or a release whose record a crash cut short:
    putting the same hold again (a change of nothing) writes the record the store lacks."""
    from custody_evidence.holds import repository as holds
    from custody_evidence.holds.records import newest_record
    from custody_evidence.items import repository as items

    submission = served_intake.submit(os.urandom(100))
    await running.sealer.seal(submission.payload)
    vault = running.vault
    item = f"/v1/evidence/{submission.evidence_id}/legal-hold"

    def newest(evidence_id=None):  # type: ignore[no-untyped-def]
        record = newest_record(vault.store, vault.public_key, "CASE-1", evidence_id)
        return None if record is None else (record.version, record.held)

    async with vault.transaction() as session:  # held in the database only, as before records
        await items.set_item_hold(session, submission.evidence_id, True)
        await holds.hold_case(session, "CASE-1", "ada")
    assert newest(submission.evidence_id) is None and newest() is None
    async with admin:
        assert (await admin.put(item)).json()["changed"] is False
        assert (await admin.put("/v1/cases/CASE-1/legal-hold")).json()["changed"] is False
        assert newest(submission.evidence_id) == (1, True) and newest() == (1, True)
        assert (await admin.put(item)).json()["changed"] is False
        assert newest(submission.evidence_id) == (1, True), "a record that agrees is not written again"

        async with vault.transaction() as session:  # released in the database; the crash took the record
            await items.set_item_hold(session, submission.evidence_id, False)
            await holds.release_case(session, "CASE-1")
        assert (await admin.delete(item)).json()["changed"] is False
        assert (await admin.delete("/v1/cases/CASE-1/legal-hold")).json()["changed"] is False
    assert newest(submission.evidence_id) == (2, False) and newest() == (2, False)
