"""Fifty investigators submitting at once while five prosecutors keep fetching sealed items, on the
embedded default with the shared NATS: no request may fail, every submission must end sealed
with the hash of its file, and the throughput and latencies are written down.

Each investigator waits for every seal before the next file, as ``custody submit`` does, so the
upload rates are of submissions received *and sealed*. Every HTTP exchange goes through a
recording transport, so an error the client would retry quietly (a 5xx, a dropped connection)
still counts as one. The figures go to stderr and to ``load-figures.json`` in the test's
temporary folder."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from custody_client import CustodyClient
from custody_client.resume import ResumeState
from tests.support.stack import Stack

INVESTIGATORS = 50
FILES_EACH = 3
PROSECUTORS = 5
SMALLEST, LARGEST = 64 * 1024, 4 * 1024 * 1024
CASES = [f"LOAD-{n}" for n in range(5)]
SEEDED_ITEMS = 10
"""Sealed before the load starts, for the prosecutors to fetch."""
SEAL_TIMEOUT_SECONDS = 600
MIB = 1024 * 1024

_ID = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Ledger:
    """Every exchange of every client: answers by route and status, and what went wrong."""

    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, request: httpx.Request, status: int) -> None:
        route = f"{request.method} {_ID.sub('/{id}', request.url.path)}"
        with self.lock:
            self.answers[(route, status)] += 1
            # 404 on the status route only means "not sealed yet", which the client polls through
            if status >= 500 or (status >= 400 and not (status == 404 and route.endswith("/status"))):
                self.failures.append(f"{route} -> {status}")

    def dropped(self, request: httpx.Request, error: Exception) -> None:
        with self.lock:
            self.failures.append(f"{request.method} {request.url.path} -> no answer ({error!r})")


class RecordingTransport(httpx.HTTPTransport):
    """An ordinary transport that tells the ledger about every exchange."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__()
        self._ledger = ledger

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = super().handle_request(request)
        except httpx.TransportError as exc:
            self._ledger.dropped(request, exc)
            raise
        self._ledger.answered(request, response.status_code)
        return response


@dataclass(frozen=True)
class Submitted:
    evidence_id: str
    case: str
    sha256: str
    size: int
    submit_seconds: float
    until_sealed_seconds: float


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    cut = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered * 99
    return {
        "count": len(ordered),
        "p50": round(cut[49], 3),
        "p95": round(cut[94], 3),
        "p99": round(cut[98], 3),
        "max": round(ordered[-1], 3),
    }


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _write_files(folder: Path, count: int, rng: random.Random) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"file-{n:03d}.bin"
        path.write_bytes(os.urandom(rng.randint(SMALLEST, LARGEST)))
        paths.append(path)
    return paths


@pytest.mark.slow
def test_fifty_investigators_and_five_prosecutors(local_stack: Stack, tmp_path: Path) -> None:
    stack = local_stack
    stack.start()
    rng = random.Random(20240501)
    ledger = Ledger()

    def client(token: str, name: str) -> CustodyClient:
        return CustodyClient(
            stack.url("intake"),
            stack.url("evidence"),
            stack.url("audit"),
            token,
            resume=ResumeState(tmp_path / "state" / name),
            transport=RecordingTransport(ledger),
        )

    # items already sealed, for the prosecutors
    seeder = stack.token("seeder", ["investigator"], CASES)
    seeded = []
    with client(seeder, "seeder") as seeding:
        for n, path in enumerate(_write_files(tmp_path / "seeded", SEEDED_ITEMS, rng)):
            evidence_id = seeding.submit(path, case=CASES[n % len(CASES)])
            assert seeding.wait_sealed(evidence_id, timeout=SEAL_TIMEOUT_SECONDS).status == "sealed"
            seeded.append(evidence_id)
    ledger.answers.clear()

    files = _write_files(tmp_path / "field", INVESTIGATORS * FILES_EACH, rng)
    uploading = threading.Event()
    uploading.set()

    def investigator(n: int) -> list[Submitted]:
        case = CASES[n % len(CASES)]
        done = []
        token = stack.token(f"investigator-{n:02d}", ["investigator"], [case])
        with client(token, f"investigator-{n}") as field_client:
            for path in files[n * FILES_EACH : (n + 1) * FILES_EACH]:
                started = time.perf_counter()
                evidence_id = field_client.submit(path, case=case, title=f"load {path.name}")
                submitted = time.perf_counter()
                outcome = field_client.wait_sealed(evidence_id, timeout=SEAL_TIMEOUT_SECONDS)
                assert outcome.status == "sealed", outcome
                done.append(
                    Submitted(
                        evidence_id=evidence_id,
                        case=case,
                        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                        size=path.stat().st_size,
                        submit_seconds=submitted - started,
                        until_sealed_seconds=time.perf_counter() - submitted,
                    )
                )
        return done

    fetches: list[tuple[float, int]] = []
    fetches_lock = threading.Lock()

    def prosecutor(n: int) -> None:
        chooser = random.Random(n)
        target = tmp_path / "fetched" / f"prosecutor-{n}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with client(stack.token(f"prosecutor-{n}", ["prosecutor"], CASES), f"prosecutor-{n}") as office:
            while uploading.is_set():
                started = time.perf_counter()
                fetched = office.fetch(chooser.choice(seeded), target, purpose="load test", overwrite=True)
                with fetches_lock:
                    fetches.append((time.perf_counter() - started, fetched.size))

    with ThreadPoolExecutor(max_workers=INVESTIGATORS + PROSECUTORS) as pool:
        readers = [pool.submit(prosecutor, n) for n in range(PROSECUTORS)]
        started = time.perf_counter()
        writers = [pool.submit(investigator, n) for n in range(INVESTIGATORS)]
        try:
            submitted = [item for writer in writers for item in writer.result()]
        finally:
            elapsed = time.perf_counter() - started
            uploading.clear()
            for reader in readers:
                reader.result()

    assert not ledger.failures, f"{len(ledger.failures)} failed exchanges, e.g. {ledger.failures[:10]}"
    assert len(submitted) == INVESTIGATORS * FILES_EACH
    assert len({item.evidence_id for item in submitted}) == len(submitted)

    seal_lag = []
    with client(stack.token("checker", ["prosecutor"], CASES), "checker") as checker:
        for item in submitted:
            record = checker.item(item.evidence_id)
            assert record["status"] == "sealed" and record["case"] == item.case, record
            assert record["sha256"] == item.sha256 and record["size"] == item.size, record
            received, sealed = (datetime.fromisoformat(record[k]) for k in ("received_at", "sealed_at"))
            seal_lag.append((sealed - received).total_seconds())

    uploaded = sum(item.size for item in submitted)
    fetched_bytes = sum(size for _, size in fetches)
    figures = {
        "investigators": INVESTIGATORS,
        "files": len(submitted),
        "prosecutors": PROSECUTORS,
        "wall_seconds": round(elapsed, 2),
        "uploaded_MiB": round(uploaded / MIB, 1),
        "upload_MiB_per_s": round(uploaded / MIB / elapsed, 2),
        "uploads_per_s": round(len(submitted) / elapsed, 2),
        "fetches": len(fetches),
        "fetched_MiB": round(fetched_bytes / MIB, 1),
        "fetch_MiB_per_s": round(fetched_bytes / MIB / elapsed, 2),
        "submit_seconds": _percentiles([item.submit_seconds for item in submitted]),
        "until_sealed_seconds_client": _percentiles([item.until_sealed_seconds for item in submitted]),
        "seal_lag_seconds_server": _percentiles(seal_lag),
        "fetch_seconds": _percentiles([seconds for seconds, _ in fetches]),
        "peak_rss_MiB": {service: _peak_rss_mib(process.pid) for service, process in stack.processes.items()},
        "answers": {f"{route} {status}": count for (route, status), count in sorted(ledger.answers.items())},
    }
    report = tmp_path / "load-figures.json"
    report.write_text(json.dumps(figures, indent=2))
    assert fetches, "the prosecutors fetched nothing while the investigators uploaded"
    shown = {key: value for key, value in figures.items() if key != "answers"}
    print(f"\nload figures ({report}):\n{json.dumps(shown, indent=2)}", file=sys.stderr)
