"""What every fault scenario shares: a stream of submissions through the real stack, watching
readiness and resource use while something is broken, and the checks after recovery.

A scenario runs a :class:`SubmissionStream` (a few investigators submitting files of 16 KiB to
2 MiB through the real client, with retries), breaks something while it flows, repairs it, lets
the stream finish, and then calls :func:`check_recovery`: every acknowledged submission (the
client returned its evidence id) must end sealed exactly once, fetch back bit for bit, and have
exactly its custody events in the log, once each, numbered without gaps; the log must verify.

The random moments come from one seed, printed at the start (``CUSTODY_FAULT_SEED`` replays one).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import psycopg

from custody_client import CustodyClient, LogKey, open_checkpoint, verify_chain
from custody_client.resume import ResumeState
from custody_client.tus import MIN_CHUNK_SIZE, Backoff
from custody_common.merkle import leaf_hash, verify_consistency
from custody_common.bus.topology import Topology
from tests.support.stack import BIN, SERVICES, Stack

CASE = "UA-2024-FAULTS"
KIB = 1024
MIB = 1024 * KIB
SMALLEST, LARGEST = 16 * KIB, 2 * MIB
ITEM_ACTIONS = ["submitted", "received", "sealed", "accessed"]

CLIENT_BACKOFF = Backoff(initial=0.25, factor=2.0, maximum=2.0, attempts=90)
"""Rides out an outage of about three minutes; each scenario's outage is far shorter."""

IDLE_WINDOW_SECONDS = 6.0
IDLE_CPU_SHARE = 0.15
"""A service waiting out an outage with back-off uses one or two percent of a core; one retrying
in a tight loop takes a whole one (a fifth of it even when ten processes share two cores)."""
IDLE_LOG_LINES = 200
"""Lines a service may log (besides HTTP requests) in the idle window: back-off retries log a
few per second at most; a tight loop logs thousands."""

READY_TIMEOUT = 90.0
OUTAGE_NOTICED_TIMEOUT = 45.0
SEAL_TIMEOUT = 240.0
LOG_TIMEOUT = 180.0


def scenario_seed() -> int:
    """The seed of this run's random moments: ``CUSTODY_FAULT_SEED`` or a fresh one (printed)."""
    seed = int(os.environ.get("CUSTODY_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"fault scenario seed: {seed} (CUSTODY_FAULT_SEED={seed} replays its random choices)", file=sys.stderr)
    return seed


# --- the stream of submissions ---------------------------------------------------------------


@dataclass
class Submission:
    """One file an investigator submits, and what came of it."""

    path: Path
    size: int
    sha256: str
    evidence_id: str | None = None
    """Set once the client returned it: the submission is acknowledged."""
    error: str | None = None
    started: float = 0.0
    finished: float | None = None


class SubmissionStream:
    """Investigators submitting files one after another, each through its own real client.

    The stream runs until :meth:`finish`, bounded by ``maximum`` submissions; :meth:`pause`
    holds back new submissions (those under way go on)."""

    def __init__(
        self,
        stack: Stack,
        folder: Path,
        rng: random.Random,
        *,
        investigators: int = 2,
        pace: tuple[float, float] = (0.3, 1.2),
        maximum: int = 40,
    ) -> None:
        self.stack = stack
        self.folder = folder
        self.maximum = maximum
        self.submissions: list[Submission] = []
        self._pace = pace
        self._seeds = [rng.randrange(2**32) for _ in range(investigators)]
        self._lock = threading.Condition()
        self._target: int | None = None
        self._running = threading.Event()
        self._running.set()
        self._threads: list[threading.Thread] = []
        self.folder.mkdir(parents=True, exist_ok=True)

    @property
    def acknowledged(self) -> list[Submission]:
        with self._lock:
            return [s for s in self.submissions if s.evidence_id is not None]

    @property
    def started(self) -> int:
        with self._lock:
            return len(self.submissions)

    def start(self) -> None:
        for number, seed in enumerate(self._seeds):
            thread = threading.Thread(target=self._investigate, args=(number, seed), daemon=True)
            thread.start()
            self._threads.append(thread)

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def wait_acknowledged(self, count: int, timeout: float = 120) -> None:
        """Until ``count`` submissions are acknowledged in all."""
        def enough() -> bool:
            return len([s for s in self.submissions if s.evidence_id]) >= count

        self._wait(enough, timeout, f"{count} acknowledged")

    def finish(self, more: int, minimum: int, timeout: float = 300) -> None:
        """Submit ``more`` files yet (and at least ``minimum`` in all), then wait for every one."""
        self.resume()
        with self._lock:
            self._target = min(self.maximum, max(minimum, len(self.submissions) + more))
            self._lock.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [thread.name for thread in self._threads if thread.is_alive()]
        assert not stuck, f"submissions still running after {timeout}s: {self.describe()}"

    def abandon(self) -> None:
        """Start nothing more (after a failure; submissions under way end by themselves)."""
        with self._lock:
            self._target = len(self.submissions)
            self._lock.notify_all()
        self.resume()

    def describe(self) -> str:
        with self._lock:
            failed = [f"{s.path.name}: {s.error}" for s in self.submissions if s.error]
            return (
                f"{len(self.submissions)} submissions, {len([s for s in self.submissions if s.evidence_id])} "
                f"acknowledged, failures: {failed or 'none'}"
            )

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition():
                if all(not t.is_alive() for t in self._threads):
                    raise AssertionError(f"the stream ended before {what}: {self.describe()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not {what} within {timeout}s: {self.describe()}")
                self._lock.wait(min(left, 0.5))

    def _next(self, rng: random.Random, number: int) -> Submission | None:
        with self._lock:
            limit = self.maximum if self._target is None else self._target
            if len(self.submissions) >= limit:
                return None
            size = int(math.exp(rng.uniform(math.log(SMALLEST), math.log(LARGEST))))
            path = self.folder / f"item-{len(self.submissions):03d}-by-{number}.bin"
            body = os.urandom(size)
            path.write_bytes(body)
            submission = Submission(path, size, hashlib.sha256(body).hexdigest(), started=time.monotonic())
            self.submissions.append(submission)
            self._lock.notify_all()
            return submission

    def _investigate(self, number: int, seed: int) -> None:
        rng = random.Random(seed)
        token = self.stack.token(f"investigator-{number}", ["investigator"], [CASE])
        client = CustodyClient(
            self.stack.url("intake"),
            self.stack.url("evidence"),
            self.stack.url("audit"),
            token,
            resume=ResumeState(self.folder / f"resume-{number}"),
            chunk_size=MIN_CHUNK_SIZE,
            backoff=CLIENT_BACKOFF,
        )
        with client:
            while True:
                self._running.wait()
                submission = self._next(rng, number)
                if submission is None:
                    return
                try:
                    evidence_id = client.submit(submission.path, case=CASE, title=f"exhibit {submission.path.stem}")
                except Exception as exc:  # noqa: BLE001 — recorded; the checks decide
                    with self._lock:
                        submission.error = f"{type(exc).__name__}: {exc}"
                else:
                    with self._lock:
                        submission.evidence_id = evidence_id
                finally:
                    with self._lock:
                        submission.finished = time.monotonic()
                        self._lock.notify_all()
                time.sleep(rng.uniform(*self._pace))


# --- while something is broken ----------------------------------------------------------------


def readiness(stack: Stack, service: str) -> tuple[int | None, dict[str, Any]]:
    """(status, body) of the service's ``/readyz``; status None when it does not answer."""
    try:
        response = httpx.get(f"{stack.url(service)}/readyz", timeout=10)
    except httpx.HTTPError as exc:
        return None, {"error": type(exc).__name__}
    try:
        body = response.json()
    except ValueError:
        body = {"text": response.text[:200]}
    return response.status_code, body


def wait_readiness(stack: Stack, services: Iterable[str], ready: bool, timeout: float) -> dict[str, dict[str, Any]]:
    """Poll ``/readyz`` of ``services`` until each answers 200 (``ready``) or 503 (not); returns
    the bodies that said so."""
    wanted = 200 if ready else 503
    bodies: dict[str, dict[str, Any]] = {}
    pending = set(services)
    last: dict[str, tuple[int | None, dict[str, Any]]] = {}
    deadline = time.monotonic() + timeout
    while pending:
        for service in sorted(pending):
            status, body = readiness(stack, service)
            last[service] = (status, body)
            if status == wanted:
                bodies[service] = body
                pending.discard(service)
        if not pending:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz never answered {wanted} within {timeout}s: {last}")
        time.sleep(0.5)
    return bodies


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _log_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


@dataclass(frozen=True)
class IdleUse:
    """What a service did during a window in which it could only wait."""

    cpu_seconds: float
    window_seconds: float
    log_lines: int
    sample: list[str]

    def spins(self) -> bool:
        return self.cpu_seconds > IDLE_CPU_SHARE * self.window_seconds or self.log_lines > IDLE_LOG_LINES


def idle_use(stack: Stack, services: Iterable[str], seconds: float = IDLE_WINDOW_SECONDS) -> dict[str, IdleUse]:
    """CPU time and log lines of each service over ``seconds`` of an outage, with no new work sent."""
    services = list(services)
    pids = {s: stack.processes[s].pid for s in services}
    cpu = {s: _cpu_seconds(pid) for s, pid in pids.items()}
    lines = {s: len(_log_lines(stack.log_path(s))) for s in services}
    started = time.monotonic()
    time.sleep(seconds)
    window = time.monotonic() - started
    used: dict[str, IdleUse] = {}
    for service in services:
        logged = [line for line in _log_lines(stack.log_path(service))[lines[service]:] if "custody.http" not in line]
        used[service] = IdleUse(
            cpu_seconds=_cpu_seconds(pids[service]) - cpu[service],
            window_seconds=window,
            log_lines=len(logged),
            sample=logged[-5:],
        )
    return used


def assert_idle(used: dict[str, IdleUse], what: str) -> None:
    spinning = {service: use for service, use in used.items() if use.spins()}
    assert not spinning, f"services spin while {what} (CPU seconds / window, log lines): {spinning}"


def latest_checkpoint(stack: Stack) -> str | None:
    """The log's newest checkpoint note, or None when audit does not answer now."""
    try:
        response = httpx.get(f"{stack.url('audit')}/v1/log/checkpoint", timeout=5)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def ride_out_outage(
    stack: Stack,
    stream: SubmissionStream,
    rng: random.Random,
    *,
    cut: Callable[[], None],
    restore: Callable[[], None],
    affected: dict[str, str],
    checkpoints: list[str],
) -> dict[str, Any]:
    """Break something while the stream flows, and check what the services do meanwhile: each
    service in ``affected`` reports the outage on ``/readyz`` (503, its check named there
    ``unavailable…``) for as long as it lasts; none spins; none dies; all are ready again after.
    Returns figures for the summary."""
    stream.wait_acknowledged(4)
    if note := latest_checkpoint(stack):
        checkpoints.append(note)
    time.sleep(rng.uniform(0.0, 2.0))
    started_before = stream.started
    cut()
    broken_at = time.monotonic()
    noticed = wait_readiness(stack, affected, ready=False, timeout=OUTAGE_NOTICED_TIMEOUT)
    noticed_after = time.monotonic() - broken_at
    unreported = {
        service: body for service, body in noticed.items()
        if not str(body.get("checks", {}).get(affected[service], "")).startswith("unavailable")
    }
    assert not unreported, f"/readyz answered 503 without naming the broken part ({affected}): {unreported}"
    time.sleep(rng.uniform(3.0, 8.0))
    stream.pause()
    used = idle_use(stack, SERVICES)
    stream.resume()
    still = {service: readiness(stack, service) for service in affected}
    time.sleep(rng.uniform(0.5, 3.0))
    restore()
    outage = time.monotonic() - broken_at
    started_during = stream.started - started_before
    dead = {s: p.returncode for s, p in stack.processes.items() if p.poll() is not None}
    assert not dead, f"services exited during the outage: {dead}: " + " | ".join(
        stack.log_path(s).read_text(errors="replace")[-2000:] for s in dead
    )
    ready_after = time.monotonic()
    wait_readiness(stack, SERVICES, ready=True, timeout=READY_TIMEOUT)
    ready_after = time.monotonic() - ready_after
    lying = {service: answer for service, answer in still.items() if answer[0] != 503}
    assert not lying, f"/readyz stopped reporting the outage while it lasted: {lying}"
    assert_idle(used, "the outage lasts")
    return {
        "outage_s": round(outage, 1),
        "readyz_503_after_s": round(noticed_after, 1),
        "readyz_200_after_restore_s": round(ready_after, 1),
        "submissions_started_during_outage": started_during,
        "idle_cpu_s": {s: round(u.cpu_seconds, 2) for s, u in used.items()},
        "idle_log_lines": {s: u.log_lines for s, u in used.items()},
    }


# --- after recovery ---------------------------------------------------------------------------


@dataclass
class Recovery:
    """What the checks found, for the scenario's summary line."""

    acknowledged: int = 0
    orphaned_uploads: int = 0
    log_entries: int = 0
    out_of_order: dict[str, list[str]] = field(default_factory=dict)
    """Items whose events the log holds in another order than they happened."""
    seconds: dict[str, float] = field(default_factory=dict)


def _wait_sealed(stack: Stack, token: str, evidence_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = set(evidence_ids)
    seen: dict[str, str] = {}
    with stack.client("evidence", token) as evidence:
        while pending:
            for evidence_id in sorted(pending):
                try:
                    response = evidence.get(f"/v1/evidence/{evidence_id}/status")
                except httpx.HTTPError as exc:
                    seen[evidence_id] = type(exc).__name__
                    continue
                if response.status_code == 200:
                    status = response.json()["status"]
                    seen[evidence_id] = status
                    assert status not in ("rejected", "damaged"), (
                        f"acknowledged item {evidence_id} ended {status}: {response.text}"
                    )
                    if status == "sealed":
                        pending.discard(evidence_id)
                else:
                    seen[evidence_id] = str(response.status_code)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(pending)} acknowledged items not sealed within {timeout}s: "
                    f"{ {e: seen.get(e) for e in sorted(pending)} }; evidence log: "
                    f"{stack.log_path('evidence').read_text(errors='replace')[-3000:]}"
                )
            time.sleep(1)


def _log_entries(audit: httpx.Client, size: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    while len(entries) < size:
        response = audit.get("/v1/log/entries", params={"start": len(entries), "limit": min(1000, size - len(entries))})
        assert response.status_code == 200, response.text
        page = response.json()["entries"]
        assert page, f"the log serves no entry at {len(entries)} though its checkpoint has {size}"
        for item in page:
            assert item["index"] == len(entries), f"entry {item['index']} served where {len(entries)} was due"
            leaf = base64.b64decode(item["leaf"])
            entries.append({"index": item["index"], "leaf": leaf, "entry": json.loads(leaf)})
    return entries


def _logged(audit: httpx.Client, key: LogKey, evidence_ids: set[str], timeout: float) -> list[dict[str, Any]]:
    """Every log entry, once the log holds each of :data:`ITEM_ACTIONS` for each of ``evidence_ids``."""
    deadline = time.monotonic() + timeout
    while True:
        response = audit.get("/v1/log/checkpoint")
        assert response.status_code == 200, response.text
        checkpoint = open_checkpoint(response.text, key)
        entries = _log_entries(audit, checkpoint.size)
        logged = defaultdict(set)
        for e in entries:
            event = e["entry"]["event"]
            logged[event.get("evidence_id")].add(event["action"])
        missing = {evidence_id: sorted(set(ITEM_ACTIONS) - logged[evidence_id]) for evidence_id in evidence_ids}
        missing = {evidence_id: actions for evidence_id, actions in missing.items() if actions}
        if not missing:
            return entries
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(missing)} items lack custody events after {timeout}s: {dict(sorted(missing.items())[:8])}"
            )
        time.sleep(1)


def consumer_counts(nats_urls: list[str], namespace: str) -> dict[str, tuple[int, int]]:
    """(pending, ack pending) of the audit and sealer durable consumers."""

    async def counts() -> dict[str, tuple[int, int]]:
        nc = await nats.connect(servers=nats_urls, connect_timeout=5)
        try:
            js = nc.jetstream(timeout=10)
            topology = Topology(namespace)
            found = {}
            for stream, durable in (
                (topology.events_stream, topology.audit_consumer),
                (topology.submissions_stream, topology.sealer_consumer),
            ):
                info = await js.consumer_info(stream, durable)
                found[durable] = (info.num_pending or 0, info.num_ack_pending or 0)
            return found
        finally:
            await nc.close()

    return asyncio.run(counts())


def wait_bus_settled(nats_urls: list[str], namespace: str, timeout: float) -> None:
    """Until both durable consumers have delivered and seen acknowledged every message: no
    redelivery is pending that could still change the log or the vault."""
    deadline = time.monotonic() + timeout
    while True:
        found = consumer_counts(nats_urls, namespace)
        if all(counts == (0, 0) for counts in found.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"messages still pending or unacknowledged after {timeout}s (pending, ack pending): {found}"
            )
        time.sleep(1)


def _whereabouts(stack: Stack, nats_urls: list[str] | None) -> str:
    """Where events that never reached the log may be: the consumers' counts, the outboxes
    not yet published, and the end of each service's log."""
    lines = []
    try:
        lines.append(f"consumers (pending, ack pending): {consumer_counts(nats_urls or [stack.nats_url], stack.namespace)}")
    except Exception as exc:  # noqa: BLE001 — a diagnosis, not a check
        lines.append(f"consumers: unknown ({exc!r})")
    for service in SERVICES:
        tail = stack.log_path(service).read_text(errors="replace").splitlines()
        quiet = [line for line in tail if "custody.http" not in line][-40:]
        lines.append(f"--- {service}.log, last lines besides requests:\n" + "\n".join(quiet))
    process = stack.processes.get("audit")
    if process is not None and process.poll() is None:
        # Where audit's coroutines wait (it logs them on SIGUSR1) and its threads are (py-spy).
        log = stack.log_path("audit")
        before = log.stat().st_size
        process.send_signal(signal.SIGUSR1)
        dump = subprocess.run(
            [str(BIN / "py-spy"), "dump", "--pid", str(process.pid)],
            capture_output=True, text=True, timeout=60, check=False,
        )
        time.sleep(1)
        with log.open("rb") as f:
            f.seek(before)
            tasks = f.read().decode(errors="replace")
        lines.append(f"--- audit's tasks:\n{tasks[-15000:]}\n--- audit's threads:\n{dump.stdout[-8000:]}{dump.stderr[-500:]}")
    return "\n".join(lines)


def _check_log(entries: list[dict[str, Any]], acknowledged: dict[str, Submission], recovery: Recovery) -> None:
    """The log holds, for each acknowledged item, exactly its four events once each, numbered and
    linked without gaps; besides them only each service's key announcement and the ``submitted``
    of uploads whose creation a client repeated after a crash (counted in ``recovery``, with the
    items whose events were logged in another order than they happened)."""
    ids = Counter(e["entry"]["event"]["id"] for e in entries)
    doubled = {event_id: n for event_id, n in ids.items() if n > 1}
    assert not doubled, f"events logged more than once: {doubled}"

    by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
    others: list[dict[str, Any]] = []
    for e in entries:
        evidence_id = e["entry"]["event"].get("evidence_id")
        (by_item[evidence_id] if evidence_id else others).append(e)

    announced = Counter((e["entry"]["event"]["service"], e["entry"]["event"]["action"]) for e in others)
    assert announced == Counter({(s, "key_announced"): 1 for s in SERVICES}), (
        f"events about no item should be one key announcement per service, found {dict(announced)}"
    )

    problems: list[str] = []
    orphans = 0
    for evidence_id, chain in by_item.items():
        actions = [e["entry"]["event"]["action"] for e in chain]
        if evidence_id not in acknowledged:
            if actions == ["submitted"]:
                orphans += 1  # an upload created, then created again by a client whose answer was lost
            else:
                problems.append(f"{evidence_id} (not acknowledged to any client) has events {actions}")
            continue
        if Counter(actions) != Counter(ITEM_ACTIONS):
            problems.append(f"{evidence_id} has events {actions}, expected each of {ITEM_ACTIONS} once")
        elif actions != ITEM_ACTIONS:
            # Each service's events reach the log in its own order; across services a delayed
            # redelivery can put a later event first. Counted and shown, not failed.
            recovery.out_of_order[evidence_id] = actions
        previous: bytes | None = None
        for number, e in enumerate(chain, start=1):
            if e["entry"]["item_seq"] != number:
                problems.append(f"{evidence_id}: item_seq {e['entry']['item_seq']} at position {number}")
            if e["entry"]["prev_leaf"] != (previous.hex() if previous else None):
                problems.append(f"{evidence_id}: entry {number} does not link to the previous one")
            previous = leaf_hash(e["leaf"])
        source = acknowledged[evidence_id]
        for e in chain:
            event = e["entry"]["event"]
            if event["action"] in ("received", "sealed") and (event.get("sha256"), event.get("size")) != (
                source.sha256,
                source.size,
            ):
                problems.append(f"{evidence_id}: {event['action']} states another sha256/size than the file's")
    missing = set(acknowledged) - set(by_item)
    if missing:
        problems.append(f"acknowledged items absent from the log: {sorted(missing)}")
    assert not problems, "custody log does not hold what happened:\n" + "\n".join(problems[:30])
    recovery.orphaned_uploads = orphans


def _check_databases(stack: Stack, acknowledged: dict[str, Submission], timeout: float) -> None:
    """Nothing waits in any outbox, nothing was kept aside, and the evidence index holds each
    acknowledged item once, sealed."""
    deadline = time.monotonic() + timeout
    for service in SERVICES:
        url = stack.database_urls[service]
        if service == "audit":
            continue
        while True:
            with psycopg.connect(url, connect_timeout=10) as conn:
                pending = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]
            if pending == 0:
                break
            assert time.monotonic() < deadline, f"{pending} messages still unpublished in {service}'s outbox"
            time.sleep(1)
    with psycopg.connect(stack.database_urls["audit"], connect_timeout=10) as conn:
        kept_aside = conn.execute("SELECT subject, reason FROM rejected_events").fetchall()
    assert not kept_aside, f"audit kept events aside: {kept_aside[:5]}"
    with psycopg.connect(stack.database_urls["evidence"], connect_timeout=10) as conn:
        set_aside = conn.execute("SELECT reason FROM set_aside_submissions").fetchall()
        items = conn.execute("SELECT evidence_id, status FROM evidence_items").fetchall()
    assert not set_aside, f"evidence set submissions aside: {set_aside[:5]}"
    indexed = Counter(str(evidence_id) for evidence_id, _ in items)
    assert all(n == 1 for n in indexed.values())
    assert set(indexed) == set(acknowledged), (
        f"evidence index holds {len(indexed)} items, {len(acknowledged)} were acknowledged; "
        f"extra {sorted(set(indexed) - set(acknowledged))[:5]}, missing {sorted(set(acknowledged) - set(indexed))[:5]}"
    )
    assert {status for _, status in items} <= {"sealed"}, Counter(status for _, status in items)
    with psycopg.connect(stack.database_urls["intake"], connect_timeout=10) as conn:
        uploads = conn.execute("SELECT evidence_id, status FROM uploads").fetchall()
    received = {str(evidence_id) for evidence_id, status in uploads if status == "received"}
    assert received == set(acknowledged), (
        f"intake holds {len(received)} received uploads for {len(acknowledged)} acknowledged submissions"
    )
    others = Counter(status for _, status in uploads if status != "received")
    assert set(others) <= {"uploading"}, f"uploads ended otherwise: {dict(others)}"


def check_recovery(
    stack: Stack,
    stream: SubmissionStream,
    folder: Path,
    checkpoints: Iterable[str] = (),
    nats_urls: list[str] | None = None,
) -> Recovery:
    """Every check of the scenario's outcome (see the module docstring); returns what was found."""
    recovery = Recovery()
    failed = [s for s in stream.submissions if s.evidence_id is None]
    assert not failed, f"submissions never acknowledged despite retries: {stream.describe()}"
    acknowledged = {s.evidence_id: s for s in stream.acknowledged if s.evidence_id}
    assert len(acknowledged) == len(stream.acknowledged), "one evidence id was returned for two submissions"
    recovery.acknowledged = len(acknowledged)
    prosecutor = stack.token("prosecutor-1", ["prosecutor"], [CASE])
    auditor = stack.token("auditor-1", ["auditor"], ["*"])

    started = time.monotonic()
    _wait_sealed(stack, prosecutor, sorted(acknowledged), SEAL_TIMEOUT)
    recovery.seconds["until_all_sealed"] = time.monotonic() - started

    fetched_folder = folder / "fetched"
    fetched_folder.mkdir(parents=True, exist_ok=True)
    with CustodyClient(
        stack.url("intake"), stack.url("evidence"), stack.url("audit"), prosecutor,
        resume=ResumeState(folder / "resume-prosecutor"), backoff=CLIENT_BACKOFF,
    ) as client:
        key = LogKey.parse(client.log_key())
        for evidence_id, source in acknowledged.items():
            target = fetched_folder / source.path.name
            fetched = client.fetch(evidence_id, target, purpose="fault scenario: recovery check")
            assert fetched.sha256 == source.sha256 and fetched.size == source.size
            assert target.read_bytes() == source.path.read_bytes(), f"{evidence_id} fetched other bytes"

    with stack.client("audit", auditor) as audit:
        started = time.monotonic()
        try:
            _logged(audit, key, set(acknowledged), LOG_TIMEOUT)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_whereabouts(stack, nats_urls)}") from None
        recovery.seconds["until_all_logged"] = time.monotonic() - started
        wait_bus_settled(nats_urls or [stack.nats_url], stack.namespace, LOG_TIMEOUT)
        recovery.seconds["until_bus_settled"] = time.monotonic() - started
        entries = _logged(audit, key, set(acknowledged), 0)
        recovery.log_entries = len(entries)
        _check_log(entries, acknowledged, recovery)

        for evidence_id in acknowledged:
            response = audit.get(f"/v1/custody/{evidence_id}")
            assert response.status_code == 200, response.text
            report = verify_chain(response.json(), key, evidence_id)
            assert report.events == len(ITEM_ACTIONS), f"{evidence_id}: chain of {report.events} events"

        final = open_checkpoint(audit.get("/v1/log/checkpoint").text, key)
        for note in checkpoints:
            earlier = open_checkpoint(note, key)
            if earlier.size == final.size:
                assert earlier.root == final.root, f"two checkpoints of size {final.size} with different roots"
                continue
            response = audit.get("/v1/log/proof/consistency", params={"first": earlier.size, "second": final.size})
            assert response.status_code == 200, response.text
            proof = [base64.b64decode(h) for h in response.json()["hashes"]]
            verify_consistency(earlier.size, final.size, earlier.root, final.root, proof)

    verified = subprocess.run(
        [str(BIN / "custody-audit"), "verify-log"], env=stack.env("audit"), capture_output=True, text=True, timeout=300
    )
    assert verified.returncode == 0, f"verify-log failed:\n{verified.stdout[-3000:]}\n{verified.stderr[-3000:]}"

    _check_databases(stack, acknowledged, timeout=60)
    return recovery


def summary(name: str, stream: SubmissionStream, recovery: Recovery, began: float, **figures: Any) -> None:
    """One line of figures on stderr (shown with ``-s`` or on failure)."""
    line = {
        "scenario": name,
        "submissions": len(stream.submissions),
        "acknowledged": recovery.acknowledged,
        "orphaned_uploads": recovery.orphaned_uploads,
        "log_entries": recovery.log_entries,
        "items_logged_out_of_order": len(recovery.out_of_order),
        "out_of_order_sample": list(recovery.out_of_order.values())[:2],
        "seconds_total": round(time.monotonic() - began, 1),
        **{k: round(v, 1) for k, v in recovery.seconds.items()},
        **figures,
    }
    print(f"fault scenario figures: {json.dumps(line, default=str)}", file=sys.stderr)
