"""The sequencer over a real database (SQLite and PostgreSQL): admission, idempotence, item
chains, one transaction per batch with a consistent signed checkpoint, recovery."""

from __future__ import annotations

import base64
import json
import uuid

import psycopg
import pytest
import sqlalchemy.exc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from custody_audit.app import anchor_path
from custody_audit.errors import LogDamaged
from custody_audit.log.anchor import keep_note, read_note
from custody_audit.log import repository
from custody_audit.log.checkpoint import Checkpoint, sign_checkpoint, verifier_key, verify_checkpoint
from custody_audit.log.entry import parse_leaf
from custody_audit.log.merkle import (
    consistency_nodes,
    consistency_proof,
    leaf_hash,
    tree_hash,
    verify_consistency,
)
from custody_audit.log.sequencer import Incoming
from custody_audit.log.tables import checkpoints, leaves, nodes, rejected_events
from custody_common.announcement import key_id
from custody_common.crypto.signing import load_public_key, public_raw
from custody_common.events import actor_service, canonical, new_event, sign_event
from custody_common.ids import uuid7
from custody_common.keys import service_signing_key
from custody_common.settings import Settings
from services.audit.tests.conftest import cut_log

async def _all_leaves(engine: AsyncEngine) -> list[repository.StoredLeaf]:
    async with engine.connect() as conn:
        return [leaf async for leaf in repository.stream_leaves(conn)]


async def _verify_checkpoint(settings: Settings, engine: AsyncEngine) -> repository.StoredCheckpoint:
    async with engine.connect() as conn:
        latest = await repository.latest_checkpoint(conn)
    assert latest is not None
    vkey = verifier_key(settings.log_origin, load_public_key(settings.key_folder / "audit-log.pub"))
    signed = verify_checkpoint(latest.note, vkey)
    stored = await _all_leaves(engine)
    assert signed.size == latest.size == len(stored)
    assert signed.root == latest.root == tree_hash([leaf_hash(s.leaf) for s in stored])
    return latest


async def test_batch_is_logged_with_item_chains_and_a_signed_checkpoint(settings, engine, append, signed, incoming) -> None:
    item, other = str(uuid7()), str(uuid7())
    first = signed("intake", action="submitted", evidence_id=item, case="CASE-1")
    second = signed("intake", action="received", evidence_id=item, case="CASE-1", sha256="ab" * 32, size=3)
    unrelated = signed("evidence", action="key_rotated")
    third = signed("evidence", action="sealed", evidence_id=item, case="CASE-1")
    elsewhere = signed("intake", action="submitted", evidence_id=other, case="CASE-2")
    outcome = await append(*(incoming(e) for e in (first, second, unrelated, third, elsewhere)))
    assert (outcome.appended, outcome.duplicates, outcome.rejected) == (5, 0, [])
    assert outcome.checkpoint.size == 5

    stored = await _all_leaves(engine)
    entries = [parse_leaf(s.leaf) for s in stored]
    assert [e["event"] for e in entries] == [first, second, unrelated, third, elsewhere]
    assert [e["item_seq"] for e in entries] == [1, 2, None, 3, 1]
    assert entries[0]["prev_leaf"] is None and entries[2]["prev_leaf"] is None and entries[4]["prev_leaf"] is None
    assert entries[1]["prev_leaf"] == leaf_hash(stored[0].leaf).hex()
    assert entries[3]["prev_leaf"] == leaf_hash(stored[1].leaf).hex()
    assert all(set(e) == {"event", "item_seq", "prev_leaf", "logged_at"} for e in entries)
    assert stored[0].leaf == canonical(entries[0])
    assert [s.case for s in stored] == ["CASE-1", "CASE-1", None, "CASE-1", "CASE-2"]
    await _verify_checkpoint(settings, engine)

    later = signed("evidence", action="accessed", evidence_id=item, case="CASE-1")
    outcome = await append(incoming(later))
    assert outcome.checkpoint.size == 6
    assert parse_leaf((await _all_leaves(engine))[5].leaf)["item_seq"] == 4
    await _verify_checkpoint(settings, engine)


async def test_each_checkpoint_is_consistent_with_the_previous(settings, engine, append, signed, incoming) -> None:
    roots = {}
    for batch in ([1], [2, 3], [4, 5, 6, 7, 8, 9], [10]):
        outcome = await append(*(incoming(signed("intake", evidence_id=str(uuid7()))) for _ in batch))
        roots[outcome.checkpoint.size] = outcome.checkpoint.root
    assert sorted(roots) == [1, 3, 9, 10]
    async with engine.connect() as conn:
        stored_sizes = [c.size for c in await repository.all_checkpoints(conn)]
        assert stored_sizes == [1, 3, 9, 10]
        for first in roots:
            for second in roots:
                if first <= second:
                    hashes = await repository.fetch_hashes(conn, consistency_nodes(first, second))
                    proof = consistency_proof(first, second, hashes)
                    verify_consistency(first, second, roots[first], roots[second], proof)


async def test_duplicates_are_skipped_and_conflicting_ids_kept_aside(settings, engine, append, signed, incoming) -> None:
    event = signed("intake", evidence_id=str(uuid7()), case="C")
    message = incoming(event)
    outcome = await append(message, message)
    assert (outcome.appended, outcome.duplicates) == (1, 1)
    outcome = await append(message)
    assert (outcome.appended, outcome.duplicates, outcome.checkpoint) == (0, 1, None)

    impostor = signed("intake", evidence_id=event["evidence_id"], case="OTHER", event_id=event["id"])
    outcome = await append(incoming(impostor))
    assert outcome.appended == 0 and len(outcome.rejected) == 1 and "conflicting event id" in outcome.rejected[0]
    assert len(await _all_leaves(engine)) == 1


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda inc, e: inc(e("intake", signer="evidence")), id="another-service-key"),
        pytest.param(lambda inc, e: inc({**e("intake"), "case": "ALTERED"}), id="altered-content"),
        pytest.param(
            lambda inc, e: inc({k: v for k, v in e("intake").items() if k != "sig"}), id="unsigned"
        ),
        pytest.param(lambda inc, e: inc(e("intake"), service="evidence"), id="wrong-subject"),
        pytest.param(lambda inc, e: inc(e("evidence"), service="intake"), id="subject-of-another"),
        pytest.param(lambda inc, e: Incoming(inc(e("intake")).subject, b"not json"), id="not-json"),
        pytest.param(
            lambda inc, e: Incoming(inc(e("intake")).subject, json.dumps([1]).encode()), id="not-an-object"
        ),
        pytest.param(lambda inc, e: inc({**e("intake"), "extra": 1}), id="unknown-field"),
        pytest.param(
            lambda inc, e: Incoming(
                inc(e("intake")).subject, canonical(e("intake"))[:-1] + b',"id":"x"}'
            ),
            id="duplicate-key",
        ),
        pytest.param(lambda inc, e: inc({**e("intake"), "sig": "!!"}), id="garbage-signature"),
        pytest.param(lambda inc, e: inc({**e("intake"), "sig": "é" * 88}), id="signature-beyond-ascii"),
        pytest.param(
            lambda inc, e: Incoming(inc(e("intake")).subject, b"[" * 30_000 + b"]" * 30_000), id="deeply-nested"
        ),
        pytest.param(lambda inc, e: inc(e("intake", evidence_id="not-a-uuid")), id="bad-evidence-id"),
        pytest.param(lambda inc, e: inc({**e("intake"), "service": "mallory"}), id="unknown-service"),
    ],
)
async def test_forged_or_malformed_messages_never_reach_the_log(settings, engine, append, signed, sequencer, forge, incoming):  # type: ignore[no-untyped-def]
    genuine = signed("intake", evidence_id=str(uuid.uuid4()))
    message = forge(incoming, signed)
    outcome = await append(message, incoming(genuine))
    assert outcome.appended == 1 and len(outcome.rejected) == 1
    assert sequencer.stats.rejected == 1
    stored = await _all_leaves(engine)
    assert [parse_leaf(s.leaf)["event"] for s in stored] == [genuine]
    async with engine.connect() as conn:
        kept = (await conn.execute(select(rejected_events))).all()
    assert len(kept) == 1 and bytes(kept[0].payload) == message.payload and kept[0].reason == outcome.rejected[0]


async def test_a_batch_of_only_rejections_signs_no_checkpoint(settings, engine, append, signed, incoming) -> None:
    outcome = await append(incoming(signed("intake", signer="evidence")))
    assert outcome.checkpoint is None and outcome.appended == 0
    async with engine.connect() as conn:
        assert await repository.latest_checkpoint(conn) is None
        assert await repository.rejected_count(conn) == 1


async def test_keys_announced_once_and_a_new_sequencer_resumes(settings, engine, signed, incoming, make_sequencer) -> None:
    first = make_sequencer()
    async with engine.connect() as conn:
        await first.recover(conn)
        announced = await first.announce_key(conn)
        assert announced is not None and announced["action"] == "key_announced"
        assert await first.announce_key(conn) is None
        await first.append(conn, [incoming(signed("intake", evidence_id=str(uuid7())))])
    second = make_sequencer()
    async with engine.connect() as conn:
        await second.recover(conn)
        assert second.size == 2
        assert await second.announce_key(conn) is None
        outcome = await second.append(conn, [incoming(signed("evidence", evidence_id=str(uuid7())))])
    assert outcome.checkpoint.size == 3
    latest = await _verify_checkpoint(settings, engine)
    assert latest.size == 3
    events = [parse_leaf(s.leaf)["event"] for s in await _all_leaves(engine)]
    assert events[0]["service"] == "audit"
    assert set(events[0]["details"]) == {"public_key", "key_id"}


async def test_recovery_refuses_a_tree_that_does_not_match_its_checkpoint(settings, engine, append, signed, incoming, make_sequencer) -> None:
    await append(*(incoming(signed("intake")) for _ in range(6)))
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(update(nodes).where(nodes.c.level == 2, nodes.c.idx == 0).values(hash=b"\x00" * 32))
    fresh = make_sequencer()
    async with engine.connect() as conn:
        with pytest.raises(LogDamaged, match="checkpoint 6"):
            await fresh.recover(conn)


async def test_recovery_refuses_entries_beyond_the_last_checkpoint(settings, engine, append, signed, incoming, make_sequencer) -> None:
    await append(incoming(signed("intake")))
    async with engine.begin() as conn:
        row = (await conn.execute(select(leaves))).mappings().one()
        await conn.execute(leaves.insert().values({**row, "idx": 1, "event_id": "x"}))
    fresh = make_sequencer()
    async with engine.connect() as conn:
        with pytest.raises(LogDamaged, match="holds 2 entries"):
            await fresh.recover(conn)


async def test_recovery_refuses_a_log_cut_short_or_rewritten_behind_the_kept_checkpoint(
    settings, engine, append, signed, incoming, make_sequencer
) -> None:
    """Entries removed with their checkpoints leave a log consistent on its own; only the
    checkpoint kept outside the database shows it, and the sequencer must not extend it."""
    for _ in range(3):
        await append(*(incoming(signed("intake")) for _ in range(4)))
    kept = anchor_path(settings).read_text()
    assert verify_checkpoint(kept, verifier_key(settings.log_origin, load_public_key(settings.key_folder / "audit-log.pub")), settings.log_origin).size == 12

    await cut_log(engine, 8)
    async with engine.connect() as conn:
        with pytest.raises(LogDamaged, match="holds 8 entries, but checkpoint 12, signed by this log and kept at"):
            await make_sequencer().recover(conn)

    # Someone moves the file away and appends other events: a second history of 12 entries.
    blind = make_sequencer(anchor=None)
    async with engine.connect() as conn:
        await blind.recover(conn)
        await blind.append(conn, [incoming(signed("intake")) for _ in range(4)])
    async with engine.connect() as conn:
        with pytest.raises(LogDamaged, match="does not extend the checkpoint 12 kept at .*rewritten"):
            await make_sequencer().recover(conn)

    stranger = sign_checkpoint(Checkpoint(settings.log_origin, 4, b"\0" * 32), Ed25519PrivateKey.generate())
    anchor_path(settings).write_text(stranger)
    async with engine.connect() as conn:
        with pytest.raises(LogDamaged, match="is not one this log's key signed"):
            await make_sequencer().recover(conn)


async def test_recovery_refuses_a_history_inserted_behind_the_sequencer(
    settings, engine, append, signed, incoming, make_sequencer
) -> None:
    """INSERT alone (no UPDATE or DELETE for the triggers to refuse): a leaf, a subtree hash
    over it and a checkpoint row that no key of ours signed."""
    await append(*(incoming(signed("intake")) for _ in range(12)))
    async with engine.begin() as conn:
        row = dict((await conn.execute(select(leaves).where(leaves.c.idx == 11))).mappings().one())
        await conn.execute(leaves.insert().values({**row, "idx": 15, "event_id": "inserted"}))
        await conn.execute(nodes.insert().values(level=4, idx=0, hash=b"\x42" * 32))
        await conn.execute(checkpoints.insert().values(size=16, root=b"\x42" * 32, note="forged\n", signed_at=row["logged_at"]))
    async with engine.connect() as conn:
        with pytest.raises(LogDamaged, match=r"the latest stored checkpoint \(16\) is not this log's"):
            await make_sequencer(anchor=None).recover(conn)


def test_the_kept_checkpoint_never_goes_back(tmp_path) -> None:
    path = tmp_path / "keys" / "log-checkpoint.txt"
    keep_note(path, "custody.test/log\n12\nROOT\n\n— sig\n", 12)
    keep_note(path, "custody.test/log\n8\nOLDER\n\n— sig\n", 8)
    assert read_note(path).split("\n")[1] == "12"
    keep_note(path, "custody.test/log\n13\nNEWER\n\n— sig\n", 13)
    assert read_note(path).split("\n")[1] == "13"
    assert [p.name for p in path.parent.iterdir()] == ["log-checkpoint.txt"], "no temporary file is left"


async def test_each_signed_checkpoint_is_kept_outside_the_database(settings, engine, append, signed, incoming) -> None:
    for size in (3, 5):
        await append(*(incoming(signed("intake")) for _ in range(size - (3 if size == 5 else 0))))
        async with engine.connect() as conn:
            stored = await repository.latest_checkpoint(conn)
        assert stored is not None and stored.size == size
        assert anchor_path(settings).read_text() == stored.note


async def test_a_failed_batch_leaves_no_trace(settings, engine, sequencer, signed, incoming) -> None:
    async with engine.connect() as conn:
        await sequencer.recover(conn)
        await sequencer.append(conn, [incoming(signed("intake"))])
        # Another writer took index 1 behind the sequencer's back: the batch must fail whole.
        async with engine.begin() as other:
            row = (await other.execute(select(leaves))).mappings().one()
            await other.execute(leaves.insert().values({**row, "idx": 1, "event_id": "intruder"}))
        # SQLite reports it through SQLAlchemy; PostgreSQL's COPY straight from psycopg.
        with pytest.raises((sqlalchemy.exc.IntegrityError, psycopg.errors.UniqueViolation)):
            await sequencer.append(conn, [incoming(signed("intake")), incoming(signed("intake"))])
        assert sequencer.size == 1
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(nodes))).scalar() == 0
        assert [c.size for c in await repository.all_checkpoints(conn)] == [1]


async def test_events_signed_before_a_service_changed_its_key_are_logged(
    settings, engine, signed, incoming, make_sequencer
) -> None:
    """Intake is deployed with a new key while events signed with its old one are still on
    their way: they are logged, by a sequencer that read the old key and by one started
    afterwards, which knows the old key only from the log's ``key_announced``."""
    old = service_signing_key(settings, "intake")
    announcement = sign_event(
        new_event(
            action="key_announced",
            service="intake",
            actor=actor_service("intake"),
            details={"public_key": base64.b64encode(public_raw(old.public_key())).decode(), "key_id": key_id(old)},
        ),
        old,
    )
    on_their_way = [signed("intake", evidence_id=str(uuid7())) for _ in range(2)]
    first = make_sequencer()
    async with engine.connect() as conn:
        await first.recover(conn)
        assert (await first.append(conn, [incoming(announcement)])).appended == 1
        for suffix in (".key", ".pub"):
            (settings.key_folder / f"intake-signing{suffix}").unlink()
        assert service_signing_key(settings, "intake") != old  # the new deployment's key
        assert (await first.append(conn, [incoming(on_their_way[0])])).appended == 1
    second = make_sequencer()
    async with engine.connect() as conn:
        await second.recover(conn)
        outcome = await second.append(conn, [incoming(on_their_way[1]), incoming(signed("intake"))])
    assert outcome.appended == 2 and outcome.rejected == []
