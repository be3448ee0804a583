"""The custody ledger: events per second from NATS publish to a signed checkpoint, beside
single-row INSERT-and-commit on the same database server; inclusion-proof latency at the size
reached and at a million entries.

The events are real custody events of intake and evidence, signed with the stack's own service
keys (so audit admits them), published by a separate process straight to the stack's NATS
subjects as fast as JetStream acknowledges them (1000 in flight, as plain publishes whose
acknowledgements one subscription counts), after all of them were signed.
The rate is their number over the time from the first publish until ``GET /v1/log/checkpoint``
shows a signed tree that holds them all.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import random
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
import psycopg
from nats.aio.msg import Msg

from bench.deployments import POSTGRES_S3, Deployment
from bench.figures import Runs
from bench.processes import cpu_used, median_use
from custody_common.bus import Topology
from custody_common.events import actor_service, canonical, new_event, sign_event
from custody_common.ids import uuid7
from custody_common.keys import service_signing_key
from custody_common.settings import Settings
from tests.support.nats import provision_namespace, remove_namespace
from tests.support.stack import Stack

EVENTS_PER_ITEM = 20
"""Custody events per evidence item in the published mix (each item's chain grows as in life)."""
WINDOW = 1000
"""Publishes awaiting JetStream's acknowledgement at once."""
MILLION = 1_000_000
_POLL_SECONDS = 0.05
"""How often the checkpoint is asked for while events are sequenced: often enough for the
timing, rarely enough not to load the service being measured."""


@dataclass(frozen=True)
class LedgerResult:
    """Events per second end to end; the publisher's own rate; single-row commits per second."""

    events: Runs
    publish: Runs
    single_row: Runs
    count: int
    cpu_seconds: dict[str, float]
    """Median CPU seconds of each service and of the publisher (signing included) per run, and
    the run's wall seconds (``wall``)."""
    batch: Runs
    """Events per appended batch (one signed checkpoint each), on average over a run."""


# --- the baseline -------------------------------------------------------------------------


def single_row_commits(deployment: Deployment, seconds: float = 3.0) -> float:
    """Rows per second of INSERT-one-row-and-COMMIT on a fresh table in a fresh database of the
    stack's database server (PostgreSQL, or a SQLite file in WAL mode with the services'
    pragmas), each row the size of a log entry."""
    body = os.urandom(600)
    if deployment.kind == POSTGRES_S3:
        with psycopg.connect(deployment.fresh_database()) as conn:
            conn.execute("CREATE TABLE bench_single (id bigint PRIMARY KEY, event_id text UNIQUE, body bytea)")
            conn.commit()
            return _commit_loop(
                lambda i: conn.execute("INSERT INTO bench_single VALUES (%s, %s, %s)", (i, str(uuid7()), body)),
                conn.commit,
                seconds,
            )
    path = deployment.work / f"single-row-{uuid.uuid4().hex[:8]}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # The services' pragmas (custody_common.db): WAL, every commit synced.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE bench_single (id integer PRIMARY KEY, event_id text UNIQUE, body blob)")

        def insert(i: int) -> None:
            conn.execute("BEGIN")
            conn.execute("INSERT INTO bench_single VALUES (?, ?, ?)", (i, str(uuid7()), body))

        return _commit_loop(insert, lambda: conn.execute("COMMIT"), seconds)
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _commit_loop(insert, commit, seconds: float) -> float:  # type: ignore[no-untyped-def]
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        insert(done)
        commit()
        done += 1
    return done / elapsed


# --- ours ---------------------------------------------------------------------------------


def measure_ledger(deployment: Deployment, count: int, rounds: int) -> LedgerResult:
    """``rounds`` alternating runs of the baseline and of ``count`` events end to end."""
    events, publish, single, cpu, batches = [], [], [], [], []
    for _ in range(rounds):
        single.append(single_row_commits(deployment))
        checkpoints_before = checkpoint_count(deployment)
        with cpu_used(deployment.pids(), children="publisher") as used:
            rate, publisher_rate = events_to_checkpoint(deployment, count)
        events.append(rate)
        publish.append(publisher_rate)
        cpu.append(used)
        batches.append(count / max(checkpoint_count(deployment) - checkpoints_before, 1))
    return LedgerResult(
        Runs.of(events, "events/s"),
        Runs.of(publish, "events/s"),
        Runs.of(single, "rows/s"),
        count,
        median_use(cpu),
        Runs.of(batches, "events"),
    )


def checkpoint_count(deployment: Deployment) -> int:
    """How many checkpoints the stack's log has signed (one per appended batch)."""
    stack = deployment.stack
    if "audit" in stack.database_urls:
        with psycopg.connect(stack.database_urls["audit"]) as conn:
            return int(conn.execute("SELECT count(*) FROM log_checkpoints").fetchone()[0])  # type: ignore[index]
    conn = sqlite3.connect(stack.home / "audit.db")
    try:
        return int(conn.execute("SELECT count(*) FROM log_checkpoints").fetchone()[0])
    finally:
        conn.close()


def checkpoint_size(client: httpx.Client) -> int:
    """The tree size of the log's latest signed checkpoint (0 before the first)."""
    answer = client.get("/v1/log/checkpoint")
    if answer.status_code == 404:
        return 0
    answer.raise_for_status()
    return int(answer.text.split("\n")[1])


def events_to_checkpoint(deployment: Deployment, count: int, timeout: float = 900) -> tuple[float, float]:
    """Publish ``count`` signed events; returns (events per second from the first publish to the
    checkpoint that holds them all, the publisher's own rate)."""
    stack = deployment.stack
    for service in ("intake", "evidence"):
        if not (stack.settings.key_folder / f"{service}-signing.key").exists():
            raise RuntimeError(f"the stack has no {service} signing key yet; start {service} first")
    context = multiprocessing.get_context("spawn")
    times: multiprocessing.Queue[float] = context.Queue()
    with stack.client("audit") as audit:
        before = checkpoint_size(audit)
        publisher = context.Process(
            target=_publisher,
            args=(stack.nats_url, str(stack.settings.key_folder), stack.namespace, count, times),
        )
        publisher.start()
        try:
            first_publish = _next_time(times, publisher)
            deadline = time.monotonic() + timeout
            while checkpoint_size(audit) < before + count:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the log did not take {count} events within {timeout:.0f} s")
                if not publisher.is_alive() and publisher.exitcode:
                    raise RuntimeError(f"the publisher failed (exit {publisher.exitcode})")
                time.sleep(_POLL_SECONDS)
            logged = time.time()
            last_publish = _next_time(times, publisher)
        finally:
            publisher.join(60)
            if publisher.is_alive():
                publisher.kill()
    return count / (logged - first_publish), count / (last_publish - first_publish)


def _next_time(times: multiprocessing.Queue, publisher: multiprocessing.process.BaseProcess) -> float:  # type: ignore[type-arg]
    """The next time the publisher reports; RuntimeError if it dies first."""
    while True:
        try:
            return times.get(timeout=1)
        except queue.Empty:
            if not publisher.is_alive():
                raise RuntimeError(f"the publisher ended (exit {publisher.exitcode}) before reporting") from None


def _publisher(nats_url: str, key_folder: str, namespace: str, count: int, times: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Sign ``count`` events (before the clock starts), then publish them; puts the time of the
    first publish and of the last acknowledgement on ``times``."""
    settings = Settings(keys_dir=Path(key_folder), nats_namespace=namespace)
    keys = {service: service_signing_key(settings, service) for service in ("intake", "evidence")}
    topology = Topology(namespace)
    items = [str(uuid7()) for _ in range(max(count // EVENTS_PER_ITEM, 1))]
    messages = []
    for i in range(count):
        service = "intake" if i % 3 else "evidence"
        event = new_event(
            action="received" if service == "intake" else "sealed",
            service=service,
            actor=actor_service(service),
            evidence_id=items[i % len(items)],
            case=f"BENCH-{i % 7}",
            sha256=os.urandom(32).hex(),
            size=i,
        )
        signed = sign_event(event, keys[service])
        messages.append((topology.events_subject(service), canonical(signed), signed["id"]))

    async def publish() -> None:
        # Plain publishes with a reply subject, acknowledgements counted by one subscription:
        # 36 µs of CPU per event against 124-137 for ``js.publish`` (a request, a future and a
        # parsed reply each), CPU the services being measured would lose on the same cores.
        nc = await nats.connect(nats_url)
        inbox = nc.new_inbox()
        window = asyncio.Semaphore(WINDOW)
        all_acknowledged = asyncio.Event()
        refused: list[bytes] = []
        acknowledged = 0

        async def acknowledgement(msg: Msg) -> None:
            nonlocal acknowledged
            if not msg.data.startswith(b'{"stream"'):
                refused.append(msg.data)
            acknowledged += 1
            window.release()
            if acknowledged == count:
                all_acknowledged.set()

        await nc.subscribe(f"{inbox}.*", cb=acknowledgement)
        times.put(time.time())
        for n, (subject, payload, msg_id) in enumerate(messages):
            await window.acquire()
            await nc.publish(subject, payload, reply=f"{inbox}.{n}", headers={"Nats-Msg-Id": msg_id})
        await asyncio.wait_for(all_acknowledged.wait(), timeout=600)
        times.put(time.time())
        await nc.close()
        if refused:
            raise RuntimeError(f"JetStream refused {len(refused)} events, e.g. {refused[0][:200]!r}")

    asyncio.run(publish())


# --- proofs -------------------------------------------------------------------------------


def proof_latency(stack: Stack, samples: int = 200) -> tuple[int, Runs]:
    """The log's size and milliseconds per ``GET /v1/log/proof/inclusion`` at that size (an
    auditor's request over HTTP, random entries)."""
    token = stack.token("bench-auditor", ["auditor"], ["*"])
    rng = random.Random(8)
    timings = []
    with stack.client("audit", token) as audit:
        size = checkpoint_size(audit)
        for _ in range(samples):
            index = rng.randrange(size)
            started = time.perf_counter()
            answer = audit.get("/v1/log/proof/inclusion", params={"index": index, "tree_size": size})
            timings.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
            if not 0 < len(answer.json()["hashes"]) <= size.bit_length():
                raise RuntimeError(f"the inclusion proof of {index} in {size} has a wrong number of hashes")
    return size, Runs.of(timings, "ms")


def percentile(runs: Runs, q: float) -> float:
    """The ``q`` quantile of the runs (nearest rank)."""
    ordered = sorted(runs.values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def proofs_at_a_million(deployment: Deployment, entries: int = MILLION) -> tuple[int, Runs, float]:
    """Inclusion-proof latency from a second audit process whose log holds ``entries`` synthetic
    entries (filled straight into its database through the log's own repository, with their
    subtree hashes and a signed checkpoint; not custody events, so only for proofs). Returns the
    size, the latencies and the seconds the fill took."""
    from custody_audit.app import LOG_KEY_FILE, MIGRATIONS
    from custody_common.db import run_migrations

    namespace = f"bench{uuid.uuid4().hex[:10]}"
    home = deployment.work / "million"
    home.mkdir(parents=True, exist_ok=True)
    database_urls = {"audit": deployment.fresh_database()} if deployment.kind == POSTGRES_S3 else {}
    stack = Stack(
        home=home,
        namespace=namespace,
        nats_url=deployment.stack.nats_url,
        database_urls=database_urls,
        extra_env=deployment.stack.extra_env,
    )
    settings = Settings(
        home=home, database_url=database_urls.get("audit"), log_origin=stack.settings.log_origin, nats_namespace=namespace
    )
    provision_namespace(stack.nats_url, namespace)
    try:
        run_migrations(settings, "audit", MIGRATIONS)
        started = time.perf_counter()
        asyncio.run(_fill(settings, settings.key_folder / LOG_KEY_FILE, entries))
        filled = time.perf_counter() - started
        stack.start("audit")
        with stack.client("audit") as audit:
            deadline = time.monotonic() + 120
            while checkpoint_size(audit) <= entries:  # audit announces its key on top of the fill
                if time.monotonic() > deadline:
                    raise RuntimeError("the audit service did not take up the filled log within 120 s")
                time.sleep(0.2)
        size, latency = proof_latency(stack)
        return size, latency, filled
    finally:
        stack.stop()
        remove_namespace(stack.nats_url, namespace)


async def _fill(settings: Settings, log_key_path: Path, entries: int, batch: int = 50_000) -> None:
    from custody_audit.log import repository
    from custody_audit.log.checkpoint import Checkpoint, sign_checkpoint
    from custody_audit.log.merkle import CompactRange, leaf_hash
    from custody_common.crypto.signing import load_or_create_private_key
    from custody_common.db import make_engine

    engine = make_engine(settings, "audit")
    tree = CompactRange()
    moment = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            sqlite = conn.dialect.name == "sqlite"
            for start in range(0, entries, batch):
                leaves, nodes = [], []
                for index in range(start, min(entries, start + batch)):
                    leaf = b'{"synthetic":%d}' % index
                    digest = leaf_hash(leaf)
                    leaves.append((index, f"synthetic-{index}", "bench", "synthetic", None, None, None, None, leaf, digest, moment))
                    nodes.extend(tree.append(digest))
                if sqlite:
                    # The repository's SQLite path binds row dictionaries one by one, too slow for a
                    # million rows; the same rows go in through the driver's executemany.
                    raw = (await conn.get_raw_connection()).driver_connection
                    await raw.executemany(f"INSERT INTO log_leaves VALUES ({', '.join('?' * 11)})",
                                          [(*row[:10], moment.strftime("%Y-%m-%d %H:%M:%S.%f")) for row in leaves])
                    await raw.executemany("INSERT INTO log_nodes VALUES (?, ?, ?)",
                                          [(node.level, node.index, digest) for node, digest in nodes])
                else:
                    columns = ("idx", "event_id", "service", "action", "evidence_id", "case_name", "item_seq",
                               "prev_leaf", "leaf", "leaf_hash", "logged_at")
                    await repository.insert_leaves(conn, [dict(zip(columns, row, strict=True)) for row in leaves])
                    await repository.insert_nodes(conn, nodes)
            root = tree.root()
            note = sign_checkpoint(Checkpoint(settings.log_origin, entries, root), load_or_create_private_key(log_key_path))
            await repository.insert_checkpoint(conn, repository.StoredCheckpoint(entries, root, note, moment))
    finally:
        await engine.dispose()
