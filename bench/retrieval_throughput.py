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
from bench.processes import BIN, BareServer, cpu_used, median_use, peak_memory_mib, profiler, reset_peak_memory

MIB = 1024 * 1024


@dataclass(frozen=True)
class RetrievalResult:
    """Rates in MiB/s; median CPU seconds per process of one download; peak memory during the fetches."""

    fetch: Runs
    bare: Runs
    fetch_cpu_seconds: dict[str, float]
    bare_cpu_seconds: dict[str, float]
    peak_memory_mib: dict[str, float]
    evidence_to_curl: Runs
    """Evidence's content route fetched by the bare endpoint's plain client (curl, sync)."""


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
    fetch_cpu: list[dict[str, float]] = []
    bare_cpu: list[dict[str, float]] = []
    for _ in range(rounds):
        command = [str(BIN / "custody"), "fetch", evidence_id, "-o", str(target), "--purpose", "benchmark", "--force"]
        with cpu_used(pids, children="custody fetch") as used:
            started = time.perf_counter()
            done = subprocess.run(
                [*profiler(profile, "retrieval-custody-fetch"), *command],
                env={**stack.env(), "CUSTODY_TOKEN": token},
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - started
        fetch_cpu.append(used)
        if done.returncode != 0:
            raise RuntimeError(f"custody fetch failed (exit {done.returncode}): {done.stderr[-2000:]}")
        if target.stat().st_size != size:
            raise RuntimeError(f"custody fetch wrote {target.stat().st_size} bytes, not {size}")
        target.unlink()
        fetch_runs.append(size / MIB / seconds)
        with cpu_used({"bare endpoint": bare.pid}, children="curl and sync") as used:
            bare_runs.append(stored / MIB / _plain_download(f"{bare.url}/bare/evidence/{evidence_id}", target, stored))
        bare_cpu.append(used)
        target.unlink()
    peaks = {service: peak_memory_mib(pid) for service, pid in pids.items()}
    # Evidence's content route to curl as well: tells the server's share from the client's.
    content = f"{stack.url('evidence')}/v1/evidence/{evidence_id}/content?purpose=benchmark"
    served = [size / MIB / _plain_download(content, target, size, token)]
    target.unlink()
    return RetrievalResult(
        fetch=Runs.of(fetch_runs, "MiB/s"),
        bare=Runs.of(bare_runs, "MiB/s"),
        fetch_cpu_seconds=median_use(fetch_cpu),
        bare_cpu_seconds=median_use(bare_cpu),
        peak_memory_mib=peaks,
        evidence_to_curl=Runs.of(served, "MiB/s"),
    )


def _plain_download(url: str, target: Path, expected: int, token: str | None = None) -> float:
    """Seconds for curl to write ``url`` to ``target`` and for ``sync`` to make it durable."""
    authorization = ["-H", f"Authorization: Bearer {token}"] if token else []
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", *authorization, "-o", str(target), url], check=True)
    subprocess.run(["sync", str(target)], check=True)
    seconds = time.perf_counter() - started
    if target.stat().st_size != expected:
        raise RuntimeError(f"{url}: {target.stat().st_size} bytes received, {expected} expected")
    return seconds
