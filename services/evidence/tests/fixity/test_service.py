"""Fixity checks on request and by the sweep (real database, local folder and Ceph RGW)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from custody_common.crypto.stream import HEADER, SEGMENT, TAG
from custody_common.events import verify_event
from custody_evidence.fixity.service import FixityService
from custody_evidence.items import repository as items
from custody_evidence.seal.schemas import SealOutcome
from custody_evidence.tables import evidence_items
from services.evidence.tests.conftest import forge_index_entry


async def _make_due(vault, submissions) -> None:  # type: ignore[no-untyped-def]
    past = datetime.now(UTC) - timedelta(minutes=1)
    async with vault.transaction() as session:
        await session.execute(
            update(evidence_items)
            .where(evidence_items.c.evidence_id.in_([str(s.evidence_id) for s in submissions]))
            .values(next_fixity_at=past)
        )


def _flip(stored: bytes) -> bytes:
    at = HEADER + (SEGMENT + TAG) + 3
    return stored[:at] + bytes([stored[at] ^ 0x10]) + stored[at + 1 :]


async def test_verify_on_request(running, served_intake, events, tamper) -> None:
    intact = served_intake.submit(os.urandom(3 * SEGMENT))
    harmed = served_intake.submit(os.urandom(3 * SEGMENT))
    rejected = served_intake.submit(os.urandom(10), declared_size=11)
    for submission in (intact, harmed, rejected):
        await running.sealer.seal(submission.payload)
    tamper(running.vault.store, harmed.statement.parts[0].key, _flip)

    prosecutor = running.client(running.token("petra", ["prosecutor"], ["CASE-1"]))
    stranger = running.client(running.token("olga", ["prosecutor"], ["CASE-2"]))
    investigator = running.client(running.token("ivan", ["investigator"], ["CASE-1"]))
    async with prosecutor, stranger, investigator:
        good = await prosecutor.post(f"/v1/evidence/{intact.evidence_id}/verify")
        bad = await prosecutor.post(f"/v1/evidence/{harmed.evidence_id}/verify")
        never_sealed = await prosecutor.post(f"/v1/evidence/{rejected.evidence_id}/verify")
        hidden = await stranger.post(f"/v1/evidence/{intact.evidence_id}/verify")
        forbidden = await investigator.post(f"/v1/evidence/{intact.evidence_id}/verify")
        after = await prosecutor.get(f"/v1/evidence/{harmed.evidence_id}/status")

    assert good.status_code == 200
    report = good.json()
    assert report["ok"] is True and report["status"] == "sealed"
    assert report["sha256"] == report["sealed_sha256"] and report["size"] == 3 * SEGMENT
    assert bad.status_code == 200
    report = bad.json()
    assert report["ok"] is False and report["status"] == "damaged"
    assert report["finding"] == "authentication_failed" and "segment 1" in report["reason"]
    assert never_sealed.status_code == 409
    assert (hidden.status_code, forbidden.status_code) == (404, 403)
    assert after.json()["status"] == "damaged"

    [verified] = await events(running.vault, "verified")
    assert verify_event(verified, running.vault.public_key)
    assert verified["evidence_id"] == str(intact.evidence_id)
    assert verified["actor"] == {"sub": "petra", "roles": ["prosecutor"]}
    assert verified["details"]["ok"] is True and verified["details"]["check"] == "request"
    [damaged] = await events(running.vault, "damaged")
    assert damaged["evidence_id"] == str(harmed.evidence_id)
    assert damaged["details"]["finding"] == "authentication_failed"


async def test_the_sweep_checks_what_is_due_and_marks_damage(vault, sealer, intake, events, tamper) -> None:
    due = [intake.submit(os.urandom(1000 + n)) for n in range(3)]
    later = intake.submit(os.urandom(1000))
    for submission in (*due, later):
        assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    tamper(vault.store, due[1].statement.parts[0].key, lambda stored: stored[:-1] + bytes([stored[-1] ^ 1]))
    await _make_due(vault, due)
    fixity = FixityService(vault, timedelta(days=30))

    assert await fixity.sweep_once() == 3
    assert await fixity.sweep_once() == 0  # nothing is due any more

    async with vault.sessions() as session:
        found = {s.evidence_id: await items.get(session, s.evidence_id) for s in (*due, later)}
    assert [found[s.evidence_id].status.value for s in due] == ["sealed", "damaged", "sealed"]
    assert found[due[0].evidence_id].verified_at is not None
    assert found[due[0].evidence_id].next_fixity_at > datetime.now(UTC) + timedelta(days=29)
    assert found[later.evidence_id].verified_at is None
    verified = await events(vault, "verified")
    assert sorted(e["evidence_id"] for e in verified) == sorted(str(due[i].evidence_id) for i in (0, 2))
    assert all(e["actor"] == {"service": "evidence"} and e["details"]["check"] == "sweep" for e in verified)
    [damaged] = await events(vault, "damaged")
    assert damaged["evidence_id"] == str(due[1].evidence_id)


async def test_an_item_whose_index_entry_does_not_verify_is_damage_and_the_sweep_goes_on(
    vault, sealer, intake, events
) -> None:
    due = [intake.submit(os.urandom(1000 + n)) for n in range(3)]
    for submission in due:
        assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    await _make_due(vault, due)
    await forge_index_entry(vault, due[0].evidence_id)  # the oldest, checked first
    fixity = FixityService(vault, timedelta(days=30))

    assert await fixity.sweep_once() == 3

    async with vault.sessions() as session:
        found = [await items.get(session, s.evidence_id) for s in due]
    assert [item.status.value for item in found] == ["damaged", "sealed", "sealed"]
    [damaged] = await events(vault, "damaged")
    assert damaged["evidence_id"] == str(due[0].evidence_id)
    assert damaged["details"]["finding"] == "index_entry_invalid"
