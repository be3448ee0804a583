"""How fast the custody log takes events, and how fast it proves them (a measurement, not a test).

    uv run python services/audit/bench/log_throughput.py [--events 100000] [--million]

On a fresh PostgreSQL database and a fresh NATS namespace it measures:

1. single-row INSERT-and-commit rate on that PostgreSQL (the baseline);
2. end to end: a separate process publishes N signed events to JetStream while the sequencer
   runs; the rate is N over the time from the first publish to the signed checkpoint that
   covers the last event;
3. inclusion and consistency proof latency through the read side at that size, and with
   ``--million`` at 1,000,000 entries (filled directly with COPY, proofs only).

``CUSTODY_TEST_POSTGRES_URL`` / ``CUSTODY_TEST_NATS_URL`` name the servers (defaults: local).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import nats
import psycopg
from sqlalchemy import text

from custody_audit.app import LOG_KEY_FILE, MIGRATIONS
from custody_audit.log import repository
from custody_audit.log.admission import TrustedKeys
from custody_audit.log.merkle import CompactRange, leaf_hash
from custody_audit.log.sequencer import Sequencer
from custody_audit.log.service import CustodyLog
from custody_common.bus import Topology
from custody_common.bus.provision import provision, remove
from custody_common.crypto.signing import load_or_create_private_key
from custody_common.db import make_engine, run_migrations
from custody_common.events import actor_service, canonical, new_event, sign_event
from custody_common.ids import uuid7
from custody_common.keys import service_signing_key, trusted_service_keys
from custody_common.settings import Settings

ADMIN_URL = os.environ.get("CUSTODY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("CUSTODY_TEST_NATS_URL", "nats://127.0.0.1:4222")


def create_database() -> str:
    name = f"custody_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


async def single_row_rate(settings: Settings, rows: int = 3000) -> float:
    """INSERT one log-sized row and COMMIT, ``rows`` times, through the service's own stack."""
    engine = make_engine(settings, "audit")
    payload = os.urandom(600)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE bench_single (id bigint PRIMARY KEY, event_id text UNIQUE, body bytea)"))
    started = time.perf_counter()
    async with engine.connect() as conn:
        for i in range(rows):
            await conn.execute(
                text("INSERT INTO bench_single VALUES (:id, :event_id, :body)"),
                {"id": i, "event_id": str(uuid7()), "body": payload},
            )
            await conn.commit()
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return rows / elapsed


def _publisher(key_folder: str, namespace: str, count: int, started: multiprocessing.Queue) -> None:
    """Sign ``count`` events (before the clock starts), then publish them as fast as JetStream
    acknowledges, in windows of 1000 in flight."""
    settings = Settings(keys_dir=Path(key_folder), nats_namespace=namespace)
    keys = {s: service_signing_key(settings, s) for s in ("intake", "evidence")}
    topology = Topology(namespace)
    items = [str(uuid7()) for _ in range(max(count // 20, 1))]
    messages = []
    for i in range(count):
        service = "intake" if i % 3 else "evidence"
        event = new_event(
            action="received" if service == "intake" else "sealed",
            service=service,
            actor=actor_service(service),
            evidence_id=items[i % len(items)],
            case=f"CASE-{i % 7}",
            sha256=os.urandom(32).hex(),
            size=i,
        )
        signed = sign_event(event, keys[service])
        messages.append((topology.events_subject(service), canonical(signed), signed["id"]))

    async def publish() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        started.put(time.time())
        window = 1000
        for start in range(0, count, window):
            await asyncio.gather(
                *(
                    js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id}, timeout=30)
                    for subject, payload, msg_id in messages[start : start + window]
                )
            )
        started.put(time.time())
        await nc.close()

    asyncio.run(publish())


async def end_to_end(settings: Settings, count: int, batch_size: int, prefill: bool = False) -> dict[str, float]:
    """Publish ``count`` events from another process while the sequencer runs here; with
    ``prefill``, publish them all first and time the sequencer alone draining the stream."""
    engine = make_engine(settings, "audit")
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    sequencer = Sequencer(
        engine,
        Topology(settings.nats_namespace),
        origin=settings.log_origin,
        log_key=load_or_create_private_key(settings.key_folder / LOG_KEY_FILE),
        event_key=service_signing_key(settings, "audit"),
        trusted_keys=TrustedKeys(lambda: trusted_service_keys(settings)),
        batch_size=batch_size,
    )
    times: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    publisher = multiprocessing.get_context("spawn").Process(
        target=_publisher, args=(str(settings.key_folder), settings.nats_namespace, count, times)
    )
    if prefill:
        publisher.start()
        first_publish = await asyncio.to_thread(times.get)
        last_publish = await asyncio.to_thread(times.get)
        publisher.join()
        cpu_started = time.process_time()
        started = time.time()
        task = asyncio.create_task(sequencer.run(js))
    else:
        task = asyncio.create_task(sequencer.run(js))
        while sequencer.size < 1:  # audit's own key announcement
            await asyncio.sleep(0.05)
        cpu_started = time.process_time()
        publisher.start()
        started = first_publish = await asyncio.to_thread(times.get)
    while sequencer.size < count + 1:
        await asyncio.sleep(0.01)
    logged = time.time()
    cpu = time.process_time() - cpu_started
    if not prefill:
        last_publish = await asyncio.to_thread(times.get)
        publisher.join()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    async with engine.connect() as conn:
        latest = await repository.latest_checkpoint(conn)
    await nc.close()
    await engine.dispose()
    assert latest is not None and latest.size == count + 1
    assert sequencer.stats.rejected == 0
    return {
        "events": count,
        "seconds": logged - started,
        "rate": count / (logged - started),
        "publish_rate": count / (last_publish - first_publish),
        "checkpoints": sequencer.stats.checkpoints,
        "cpu_us_per_event": cpu / count * 1e6,
    }


async def proof_latency(settings: Settings, samples: int = 300) -> dict[str, float]:
    """Milliseconds per inclusion and consistency proof at the log's current size."""
    engine = make_engine(settings, "audit")
    log = CustodyLog(engine, settings.log_origin, load_or_create_private_key(settings.key_folder / LOG_KEY_FILE).public_key())
    size = (await log.latest_checkpoint()).size
    rng = random.Random(1)
    inclusion, consistency = [], []
    for _ in range(samples):
        index = rng.randrange(size)
        started = time.perf_counter()
        await log.inclusion(index, size)
        inclusion.append((time.perf_counter() - started) * 1000)
        first = rng.randint(1, size - 1)
        started = time.perf_counter()
        await log.consistency(first, size)
        consistency.append((time.perf_counter() - started) * 1000)
    await engine.dispose()

    def p(values: list[float], q: float) -> float:
        return sorted(values)[int(q * (len(values) - 1))]

    return {
        "size": size,
        "inclusion_p50_ms": statistics.median(inclusion),
        "inclusion_p95_ms": p(inclusion, 0.95),
        "consistency_p50_ms": statistics.median(consistency),
        "consistency_p95_ms": p(consistency, 0.95),
    }


def fill_synthetic(settings: Settings, count: int) -> None:
    """``count`` synthetic leaves with their subtree hashes and one signed checkpoint, by COPY
    (for proof latency only: these leaves are not custody events)."""
    from custody_audit.log.checkpoint import Checkpoint, sign_checkpoint

    tree = CompactRange()
    moment = datetime.now(UTC)
    # One COPY per connection: a connection carries one COPY at a time.
    with psycopg.connect(settings.database_url) as conn, psycopg.connect(settings.database_url) as node_conn:
        with conn.cursor().copy(
            "COPY log_leaves (idx, event_id, service, action, leaf, leaf_hash, logged_at) FROM STDIN"
        ) as leaves_copy, node_conn.cursor().copy("COPY log_nodes (level, idx, hash) FROM STDIN") as nodes_copy:
            for index in range(count):
                leaf = b'{"synthetic":' + str(index).encode() + b"}"
                digest = leaf_hash(leaf)
                leaves_copy.write_row((index, f"synthetic-{index}", "bench", "synthetic", leaf, digest, moment))
                for node, node_digest in tree.append(digest):
                    nodes_copy.write_row((node.level, node.index, node_digest))
        node_conn.commit()
        key = load_or_create_private_key(settings.key_folder / LOG_KEY_FILE)
        note = sign_checkpoint(Checkpoint(settings.log_origin, count, tree.root()), key)
        conn.execute(
            "INSERT INTO log_checkpoints (size, root, note, signed_at) VALUES (%s, %s, %s, %s)",
            (count, tree.root(), note, moment),
        )
        conn.commit()


def _proof_line(latency: dict[str, float]) -> str:
    return (
        f"proofs at {latency['size']:,} entries: inclusion p50 {latency['inclusion_p50_ms']:.2f} ms "
        f"p95 {latency['inclusion_p95_ms']:.2f} ms; consistency p50 {latency['consistency_p50_ms']:.2f} ms "
        f"p95 {latency['consistency_p95_ms']:.2f} ms"
    )


async def _with_fresh_log(home: Path, action):  # type: ignore[no-untyped-def]
    """Run ``action(settings)`` on a fresh database and NATS namespace, removed after."""
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    topology = Topology(namespace)
    url = create_database()
    settings = Settings(home=home, database_url=url, nats_url=NATS_URL, nats_namespace=namespace,
                        log_origin="custody.bench/log")
    for service in ("intake", "evidence", "audit"):
        service_signing_key(settings, service)
    nc = await nats.connect(NATS_URL)
    await provision(nc.jetstream(), topology)
    try:
        await asyncio.to_thread(run_migrations, settings, "audit", MIGRATIONS)
        return await action(settings)
    finally:
        await remove(nc.jetstream(), topology)
        await nc.close()
        drop_database(url)


async def _main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="custody-bench-"))

    async def live(settings: Settings) -> float:
        baseline = await single_row_rate(settings)
        print(f"single-row INSERT+COMMIT: {baseline:,.0f} rows/s (load {os.getloadavg()[0]:.1f})", flush=True)
        result = await end_to_end(settings, args.events, args.batch)
        print(
            f"end to end, publish → signed checkpoint: {result['events']:,} events in {result['seconds']:.1f} s "
            f"= {result['rate']:,.0f} events/s ({result['rate'] / baseline:.1f}× single-row; "
            f"publisher alone {result['publish_rate']:,.0f}/s; {result['checkpoints']} checkpoints; "
            f"sequencer CPU {result['cpu_us_per_event']:.0f} µs/event; load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        print(_proof_line(await proof_latency(settings)), flush=True)
        return baseline

    async def drain(settings: Settings) -> None:
        result = await end_to_end(settings, args.events, args.batch, prefill=True)
        print(
            f"sequencer alone draining a full stream: {result['events']:,} events in {result['seconds']:.1f} s "
            f"= {result['rate']:,.0f} events/s ({result['checkpoints']} checkpoints; "
            f"sequencer CPU {result['cpu_us_per_event']:.0f} µs/event; load {os.getloadavg()[0]:.1f})",
            flush=True,
        )

    async def million(settings: Settings) -> None:
        started = time.perf_counter()
        await asyncio.to_thread(fill_synthetic, settings, 1_000_000)
        print(f"filled 1,000,000 synthetic entries in {time.perf_counter() - started:.0f} s", flush=True)
        print(_proof_line(await proof_latency(settings)), flush=True)

    await _with_fresh_log(home, live)
    await _with_fresh_log(home, drain)
    if args.million:
        await _with_fresh_log(home, million)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="sequencer batch size")
    parser.add_argument("--million", action="store_true", help="also measure proofs at 1,000,000 entries")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
