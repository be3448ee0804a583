"""Retrieval: ``custody fetch`` of a sealed item (evidence checks every stored part against the
seal, commits the ``accessed`` event, authenticates and decrypts every segment; the client
hashes what it receives, writes it and fsyncs it), beside a bare endpoint on the same server
stack serving the stored bytes undecrypted to a plain client that writes them and fsyncs them
(curl, then ``sync FILE``).

Rates count what the client receives: plaintext from evidence, ciphertext from the bare endpoint.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.deployments import Deployment
from bench.figures import Runs
from bench.ingest import CASE
from bench.processes import BIN, BareServer, cpu_seconds, peak_memory_mib, profiler, reset_peak_memory

MIB = 1024 * 1024


@dataclass(frozen=True)
class RetrievalResult:
    """Rates in MiB/s; server CPU seconds per GiB served; peak memory during the fetches."""

    fetch: Runs
    bare: Runs
    evidence_cpu_per_gib: float
    bare_cpu_per_gib: float
    peak_memory_mib: dict[str, float]


def measure_retrieval(
    deployment: Deployment, bare: BareServer, evidence_id: str, size: int, rounds: int, profile: Path | None = None
) -> RetrievalResult:
    """``rounds`` alternating downloads of the item through ``custody fetch`` and from the bare
    endpoint. With ``profile`` (a folder) each ``custody fetch`` runs under py-spy."""
    stack = deployment.stack
    token = stack.token("bench-prosecutor", ["prosecutor"], [CASE])
    target = deployment.work / "fetched.bin"
    stored = sum(deployment.store().stat(key).size for key in deployment.store().list(f"evidence/{evidence_id}/parts/"))
    pids = deployment.pids()
    for pid in pids.values():
        reset_peak_memory(pid)
    fetch_runs: list[float] = []
    bare_runs: list[float] = []
    evidence_cpu = bare_cpu = 0.0
    for _ in range(rounds):
        before = cpu_seconds(pids["evidence"])
        started = time.perf_counter()
        done = subprocess.run(
            [*profiler(profile, "retrieval-custody-fetch"), str(BIN / "custody"), "fetch", evidence_id, "-o", str(target), "--purpose", "benchmark", "--force"],
            env={**stack.env(), "CUSTODY_TOKEN": token},
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        evidence_cpu += cpu_seconds(pids["evidence"]) - before
        if done.returncode != 0:
            raise RuntimeError(f"custody fetch failed (exit {done.returncode}): {done.stderr[-2000:]}")
        if target.stat().st_size != size:
            raise RuntimeError(f"custody fetch wrote {target.stat().st_size} bytes, not {size}")
        target.unlink()
        fetch_runs.append(size / MIB / seconds)
        before = cpu_seconds(bare.pid)
        bare_runs.append(stored / MIB / _plain_download(f"{bare.url}/bare/evidence/{evidence_id}", target, stored))
        bare_cpu += cpu_seconds(bare.pid) - before
        target.unlink()
    peaks = {service: peak_memory_mib(pid) for service, pid in pids.items()}
    return RetrievalResult(
        fetch=Runs.of(fetch_runs, "MiB/s"),
        bare=Runs.of(bare_runs, "MiB/s"),
        evidence_cpu_per_gib=evidence_cpu / rounds / (size / 1024 / MIB),
        bare_cpu_per_gib=bare_cpu / rounds / (stored / 1024 / MIB),
        peak_memory_mib=peaks,
    )


def _plain_download(url: str, target: Path, expected: int) -> float:
    """Seconds for curl to write ``url`` to ``target`` and for ``sync`` to make it durable."""
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-o", str(target), url], check=True)
    subprocess.run(["sync", str(target)], check=True)
    seconds = time.perf_counter() - started
    if target.stat().st_size != expected:
        raise RuntimeError(f"{url}: {target.stat().st_size} bytes received, {expected} expected")
    return seconds
