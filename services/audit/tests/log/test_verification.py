"""verify-log: an intact log passes; any edit made behind the log's back — even by a database
superuser with the triggers switched off — is found and its entry named."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from custody_audit.log.checkpoint import verifier_key
from custody_audit.log.entry import build_leaf, parse_leaf
from custody_audit.log.merkle import leaf_hash
from custody_audit.log.tables import checkpoints, leaves
from custody_audit.log.verification import verify_log
from custody_common.crypto.signing import load_public_key
from custody_common.events import canonical
from custody_common.ids import uuid7
from custody_common.keys import trusted_service_keys
from custody_common.settings import Settings

CLI = Path(sys.executable).parent / "custody-audit"


def _run_cli(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env.update(CUSTODY_HOME=str(settings.home), CUSTODY_LOG_ORIGIN=settings.log_origin)
    if settings.database_url:
        env["CUSTODY_DATABASE_URL"] = settings.database_url
    return subprocess.run([str(CLI), "verify-log"], env=env, capture_output=True, text=True, timeout=300)


async def _report(settings: Settings, engine: AsyncEngine):  # type: ignore[no-untyped-def]
    vkey = verifier_key(settings.log_origin, load_public_key(settings.key_folder / "audit-log.pub"))
    return await verify_log(engine, settings.log_origin, vkey, trusted_service_keys(settings))


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


async def test_cli_without_the_checkpoint_key_says_what_is_missing(settings, engine, tmp_path) -> None:
    elsewhere = settings.model_copy(update={"home": tmp_path / "empty-home"})
    result = await asyncio.to_thread(_run_cli, elsewhere)
    assert result.returncode == 2 and "audit-log.pub" in result.stderr
