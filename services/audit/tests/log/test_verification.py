"""verify-log: an intact log passes; any edit made behind the log's back — even by a database
superuser with the triggers switched off — is found and its entry named; a checkpoint's
time-stamp must cover that checkpoint and come from the pinned authority."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rfc3161_client import decode_timestamp_response
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from custody_audit.app import anchor_path
from custody_audit.log.checkpoint import Checkpoint, sign_checkpoint, verifier_key, verify_checkpoint
from custody_audit.log.entry import build_leaf, parse_leaf
from custody_audit.log.merkle import leaf_hash
from custody_audit.log.tables import checkpoints, leaves, timestamps
from custody_audit.log.verification import verify_log
from custody_audit.timestamps.authority import load_roots
from custody_audit.timestamps.repository import StoredTimestamp, insert_timestamp
from custody_common.crypto.signing import load_public_key
from custody_common.events import canonical
from custody_common.ids import uuid7
from custody_common.keys import trusted_service_keys
from custody_common.settings import Settings
from services.audit.tests.conftest import cut_log
from tests.support.tsa import OpensslTsa

CLI = Path(sys.executable).parent / "custody-audit"


def _run_cli(settings: Settings, tsa_ca: Path | None = None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env.update(CUSTODY_HOME=str(settings.home), CUSTODY_LOG_ORIGIN=settings.log_origin)
    if settings.database_url:
        env["CUSTODY_DATABASE_URL"] = settings.database_url
    if tsa_ca is not None:
        env["CUSTODY_TSA_CA"] = str(tsa_ca)
    return subprocess.run([str(CLI), "verify-log", *args], env=env, capture_output=True, text=True, timeout=300)


async def _report(settings: Settings, engine: AsyncEngine, timestamp_roots=(), kept=None):  # type: ignore[no-untyped-def]
    vkey = verifier_key(settings.log_origin, load_public_key(settings.key_folder / "audit-log.pub"))
    return await verify_log(engine, settings.log_origin, vkey, trusted_service_keys(settings), timestamp_roots, kept)


async def _fill(append, signed, incoming, batches: int = 4, per_batch: int = 9) -> None:  # type: ignore[no-untyped-def]
    items = [str(uuid7()) for _ in range(5)]
    for b in range(batches):
        await append(
            *(
                incoming(signed("intake" if i % 2 else "evidence", evidence_id=items[(b + i) % 5], case="C-1"))
                for i in range(per_batch)
            )
        )


async def _superuser_edit(engine: AsyncEngine, statement) -> None:  # type: ignore[no-untyped-def]
    """Change the log as an administrator bypassing the triggers would."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(statement)


async def test_an_intact_log_passes(settings, engine, append, signed, incoming, sequencer) -> None:
    async with engine.connect() as conn:
        await sequencer.announce_key(conn)
    await _fill(append, signed, incoming)
    report = await _report(settings, engine)
    assert report.ok, report.problems
    assert (report.entries, report.checkpoints) == (37, 5)
    assert report.nodes == 37 - (37).bit_count()
    result = await asyncio.to_thread(_run_cli, settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "custody log intact: 37 entries, 5 checkpoints" in result.stdout
    assert f"the log extends every checkpoint kept outside the database: {anchor_path(settings)}" in result.stdout


async def test_an_edited_leaf_is_named(settings, engine, append, signed, incoming) -> None:
    await _fill(append, signed, incoming)
    async with engine.connect() as conn:
        leaf = bytes((await conn.execute(text("SELECT leaf FROM log_leaves WHERE idx = 13"))).scalar())
    entry = parse_leaf(leaf)
    entry["event"]["case"] = "C-2"
    forged = build_leaf(canonical(entry["event"]), entry["item_seq"], bytes.fromhex(entry["prev_leaf"]), entry["logged_at"])
    await _superuser_edit(engine, update(leaves).where(leaves.c.idx == 13).values(leaf=forged))

    report = await _report(settings, engine)
    assert not report.ok and report.first_altered_index == 13
    result = await asyncio.to_thread(_run_cli, settings)
    assert result.returncode == 1
    assert "first altered entry: index 13" in result.stdout


async def test_an_edit_with_its_hash_recomputed_is_still_named(settings, engine, append, signed, incoming) -> None:
    await _fill(append, signed, incoming)
    async with engine.connect() as conn:
        leaf = bytes((await conn.execute(text("SELECT leaf FROM log_leaves WHERE idx = 21"))).scalar())
    entry = parse_leaf(leaf)
    entry["event"]["sha256"] = "00" * 32
    forged = build_leaf(
        canonical(entry["event"]),
        entry["item_seq"],
        bytes.fromhex(entry["prev_leaf"]) if entry["prev_leaf"] else None,
        entry["logged_at"],
    )
    await _superuser_edit(
        engine, update(leaves).where(leaves.c.idx == 21).values(leaf=forged, leaf_hash=leaf_hash(forged))
    )
    report = await _report(settings, engine)
    assert report.first_altered_index == 21
    assert report.altered_range == (20, 21)
    assert any("signature" in p for p in report.problems)
    assert any("does not match its stored hash" in p for p in report.problems)

    unsigned = await verify_log(
        engine,
        settings.log_origin,
        verifier_key(settings.log_origin, load_public_key(settings.key_folder / "audit-log.pub")),
    )
    # Without signatures, the next event of the same item still points at the original leaf.
    assert not unsigned.ok and unsigned.first_altered_index is not None and unsigned.first_altered_index >= 21


@pytest.mark.parametrize("column", ["case_name", "evidence_id"])
async def test_an_edited_index_column_is_named(settings, engine, append, signed, incoming, column: str) -> None:
    await _fill(append, signed, incoming)
    value = "C-9" if column == "case_name" else str(uuid7())
    await _superuser_edit(engine, update(leaves).where(leaves.c.idx == 5).values({column: value}))
    report = await _report(settings, engine)
    assert report.first_altered_index == 5
    assert any("stored columns differ" in p for p in report.problems)


async def test_a_removed_entry_and_an_altered_checkpoint_are_found(settings, engine, append, signed, incoming) -> None:
    await _fill(append, signed, incoming)
    await _superuser_edit(engine, leaves.delete().where(leaves.c.idx == 30))
    await _superuser_edit(engine, update(checkpoints).where(checkpoints.c.size == 9).values(note="forged\n"))
    report = await _report(settings, engine)
    assert report.first_altered_index == 30
    assert any(p.startswith("checkpoint 9:") for p in report.problems)
    result = await asyncio.to_thread(_run_cli, settings)
    assert result.returncode == 1 and "first altered entry: index 30" in result.stdout


async def test_newest_entries_removed_with_their_checkpoints_show_only_against_a_kept_checkpoint(
    settings, engine, append, signed, incoming, make_sequencer, tmp_path
) -> None:
    await _fill(append, signed, incoming)  # checkpoints of 9, 18, 27 and 36 entries
    saved = tmp_path / "auditor.txt"  # what an auditor fetched from GET /v1/log/checkpoint
    saved.write_text(anchor_path(settings).read_text())
    await cut_log(engine, 27)

    assert (await _report(settings, engine)).ok, "on its own the shortened log verifies: the gap kept checkpoints close"
    report = await _report(settings, engine, kept={"the auditor's file": saved.read_text()})
    assert report.problems == [
        "the checkpoint kept in the auditor's file covers 36 entries, but the log holds 27: "
        "entries were removed, with the checkpoints that covered them"
    ]
    result = await asyncio.to_thread(_run_cli, settings)  # audit's own file
    assert result.returncode == 1 and f"{anchor_path(settings)} covers 36 entries, but the log holds 27" in result.stdout

    # The file moved away and other events appended: a second history of 36 entries.
    anchor_path(settings).unlink()
    async with engine.connect() as conn:
        blind = make_sequencer(anchor=None)
        await blind.recover(conn)
        await blind.append(conn, [incoming(signed("intake")) for _ in range(9)])
    result = await asyncio.to_thread(_run_cli, settings)
    assert result.returncode == 0 and "no checkpoint kept outside the database" in result.stdout
    result = await asyncio.to_thread(_run_cli, settings, None, "--checkpoint", str(saved))
    assert result.returncode == 1, result.stdout
    assert f"the checkpoint kept in {saved} gives another root for the first 36 entries" in result.stdout

    stranger = sign_checkpoint(Checkpoint(settings.log_origin, 36, b"\0" * 32), Ed25519PrivateKey.generate())
    report = await _report(settings, engine, kept={"a stranger's file": stranger})
    assert len(report.problems) == 1 and report.problems[0].startswith(
        "the checkpoint kept in a stranger's file is not one this log signed"
    )
    result = await asyncio.to_thread(_run_cli, settings, None, "--checkpoint", str(tmp_path / "missing.txt"))
    assert result.returncode == 2 and "there is no checkpoint file" in result.stderr


async def test_cli_without_the_checkpoint_key_says_what_is_missing(settings, engine, tmp_path) -> None:
    elsewhere = settings.model_copy(update={"home": tmp_path / "empty-home"})
    result = await asyncio.to_thread(_run_cli, elsewhere)
    assert result.returncode == 2 and "audit-log.pub" in result.stderr



async def _checkpoint_body(settings: Settings, engine: AsyncEngine, size: int) -> bytes:
    async with engine.connect() as conn:
        note = (await conn.execute(text("SELECT note FROM log_checkpoints WHERE size = :s"), {"s": size})).scalar()
    vkey = verifier_key(settings.log_origin, load_public_key(settings.key_folder / "audit-log.pub"))
    return verify_checkpoint(note, vkey, settings.log_origin).body().encode()


async def _store_timestamp(engine: AsyncEngine, size: int, token: bytes) -> None:
    gen_time = decode_timestamp_response(token).tst_info.gen_time
    async with engine.begin() as conn:
        await insert_timestamp(conn, StoredTimestamp(size, token, gen_time, datetime.now(UTC)))


async def test_time_stamps_are_checked_against_their_checkpoints_and_the_pinned_authority(
    settings, engine, append, signed, incoming, tsa: OpensslTsa, tmp_path
) -> None:
    await _fill(append, signed, incoming)  # checkpoints of 9, 18, 27 and 36 entries
    await _store_timestamp(engine, 18, await asyncio.to_thread(tsa.stamp, await _checkpoint_body(settings, engine, 18)))
    report = await _report(settings, engine, load_roots(tsa.root))
    assert report.ok and report.timestamps == 1, report.problems
    result = await asyncio.to_thread(_run_cli, settings, tsa.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 time-stamps cover their checkpoints (signatures checked under CUSTODY_TSA_CA)" in result.stdout

    # A token over another checkpoint's body, kept under this one's size.
    await _store_timestamp(engine, 27, await asyncio.to_thread(tsa.stamp, await _checkpoint_body(settings, engine, 36)))
    # A token of another authority over the right body: only the pinned roots tell it apart.
    stranger = await asyncio.to_thread(OpensslTsa.create, tmp_path / "stranger-tsa", "Stranger TSA")
    await _store_timestamp(engine, 36, await asyncio.to_thread(stranger.stamp, await _checkpoint_body(settings, engine, 36)))

    unpinned = await _report(settings, engine)
    assert unpinned.problems == ["time-stamp of checkpoint 27: the token time-stamps another document than the checkpoint asked for"]
    pinned = await _report(settings, engine, load_roots(tsa.root))
    assert pinned.timestamps == 3 and len(pinned.problems) == 2
    assert pinned.problems[1].startswith("time-stamp of checkpoint 36: the token does not verify under the configured roots")


async def test_a_time_stamp_whose_stored_time_was_edited_is_found(
    settings, engine, append, signed, incoming, tsa: OpensslTsa
) -> None:
    await _fill(append, signed, incoming, batches=1)
    await _store_timestamp(engine, 9, await asyncio.to_thread(tsa.stamp, await _checkpoint_body(settings, engine, 9)))
    await _superuser_edit(engine, update(timestamps).values(gen_time=datetime(2020, 1, 1, tzinfo=UTC)))
    report = await _report(settings, engine, load_roots(tsa.root))
    assert len(report.problems) == 1 and "its stored time" in report.problems[0], report.problems


async def test_a_time_stamp_of_a_checkpoint_the_log_lacks_is_found(
    settings, engine, append, signed, incoming, tsa: OpensslTsa
) -> None:
    await _fill(append, signed, incoming, batches=1)
    await _store_timestamp(engine, 10, await asyncio.to_thread(tsa.stamp, await _checkpoint_body(settings, engine, 9)))
    report = await _report(settings, engine, load_roots(tsa.root))
    assert report.problems == ["time-stamp of checkpoint 10: the log holds no valid checkpoint of that size"]
