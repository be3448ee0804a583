"""One sequencer at a time: the second waits while the first holds the lock and takes over
when the first lets go or its connection dies."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from custody_audit.log.leadership import lock_key, sequencer_connection

# A safety net so a broken lock fails the test instead of hanging it; never a timing assertion.
PATIENCE = 60


async def _held_elsewhere(engine, namespace: str) -> bool:  # type: ignore[no-untyped-def]
    async with engine.connect() as probe:
        got = (await probe.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(namespace)})).scalar()
        if got:
            await probe.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(namespace)})
        return not got


def test_lock_keys_differ_by_namespace() -> None:
    assert lock_key("custody") != lock_key("custody-2")
    assert lock_key("custody") == lock_key("custody")
    assert -(2**63) <= lock_key("custody") < 2**63


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("how", ["released", "connection-killed"])
async def test_a_waiting_sequencer_takes_over(engine, how: str) -> None:
    namespace = "lead-test"
    took_over = asyncio.Event()

    async def second() -> None:
        async with sequencer_connection(engine, namespace, poll_seconds=0.05):
            took_over.set()

    async with sequencer_connection(engine, namespace, poll_seconds=0.05) as first:
        assert await _held_elsewhere(engine, namespace)
        waiting = asyncio.create_task(second())
        backend = (await first.execute(text("SELECT pg_backend_pid()"))).scalar()
        await first.commit()
        # The second is polling: the lock is still the first's.
        assert await _held_elsewhere(engine, namespace)
        assert not took_over.is_set()
        if how == "connection-killed":
            async with engine.connect() as admin:
                await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
                await admin.commit()
            await asyncio.wait_for(took_over.wait(), PATIENCE)
    if how == "released":
        await asyncio.wait_for(took_over.wait(), PATIENCE)
    await asyncio.wait_for(waiting, PATIENCE)
    assert not await _held_elsewhere(engine, namespace)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_sequencers_take_turns_by_lock_file(engine) -> None:
    took_over = asyncio.Event()

    async def second() -> None:
        async with sequencer_connection(engine, "custody", poll_seconds=0.05):
            took_over.set()

    async with sequencer_connection(engine, "custody", poll_seconds=0.05):
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.2)  # let the second try and fail at least once
        assert not took_over.is_set()
    await asyncio.wait_for(waiting, PATIENCE)
    assert took_over.is_set()
