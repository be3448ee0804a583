"""Ingest: a file from the start of ``custody submit`` until the vault has sealed it, beside a
plain durable copy of the same bytes into the same store (on a folder: copied, fsynced, the folder
fsynced; on S3: one PUT of the file)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx

from bench.deployments import Deployment
from bench.figures import Runs
from bench.processes import BIN, cpu_used, median_use, peak_memory_mib, profiler, reset_peak_memory

MIB = 1024 * 1024
CASE = "BENCH-1"
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class IngestResult:
    """Seconds per run, and what the last run left behind for retrieval."""

    to_uploaded: Runs
    """Until ``custody submit`` printed the evidence id: the file hashed and uploaded."""
    to_sealed: Runs
    to_exit: Runs
    """Until ``custody submit`` itself returned (its own polling for the seal included)."""
    copy: Runs
    copy_again: Runs | None
    """On a folder, the same copy once more at once, into the memory the first one has just freed:
    what the copy takes when the page cache need not grow into memory unused for a while, which
    on a virtual machine can cost more than the disk (docs/benchmarks.md, The page cache)."""
    evidence_id: str
    peak_memory_mib: dict[str, float]
    cpu_seconds: dict[str, float]
    """Per process (the command, each service, the S3 server) and the whole machine, the median
    CPU seconds of a submit."""
    copy_cpu_seconds: dict[str, float]
    """The same of the copy."""


def write_input(path: Path, size: int) -> str:
    """Write ``size`` incompressible bytes to ``path`` (each MiB different); returns their SHA-256."""
    block = bytearray(os.urandom(MIB))
    digest = hashlib.sha256()
    with open(path, "wb") as file:
        for offset in range(0, size, MIB):
            block[:8] = offset.to_bytes(8, "big")
            piece = memoryview(block)[: min(MIB, size - offset)]
            file.write(piece)
            digest.update(piece)
        file.flush()
        os.fsync(file.fileno())
    return digest.hexdigest()


def measure_ingest(deployment: Deployment, source: Path, rounds: int, profile: Path | None = None) -> IngestResult:
    """``rounds`` alternating runs of ``custody submit`` and of the plain durable copy; the
    services' peak memory over the submits. With ``profile`` (a folder) each ``custody submit``
    runs under py-spy."""
    stack = deployment.stack
    token = stack.token("bench-investigator", ["investigator"], [CASE])
    pids = deployment.pids()
    for pid in pids.values():
        reset_peak_memory(pid)
    store_pids = deployment.store_pids()
    uploaded_runs: list[float] = []
    sealed_runs: list[float] = []
    exit_runs: list[float] = []
    copy_runs: list[float] = []
    again_runs: list[float] = []
    cpu_runs: list[dict[str, float]] = []
    copy_cpu_runs: list[dict[str, float]] = []
    evidence_id = ""
    for _ in range(rounds):
        os.sync()  # neither side pays for the other's writes still in the page cache
        with cpu_used(pids | store_pids, children="custody submit") as used:
            evidence_id, to_uploaded, to_sealed, to_exit = _submit(
                deployment, source, token, profiler(profile, "ingest-custody-submit")
            )
        cpu_runs.append(used)
        uploaded_runs.append(to_uploaded)
        sealed_runs.append(to_sealed)
        exit_runs.append(to_exit)
        peaks = {service: peak_memory_mib(pid) for service, pid in pids.items()}
        os.sync()
        with cpu_used(store_pids) as used:
            copy_runs.append(_durable_copy(deployment, source))
        copy_cpu_runs.append(used)
        if deployment.s3 is None:
            again_runs.append(_durable_copy(deployment, source))
    return IngestResult(
        to_uploaded=Runs.of(uploaded_runs, "s"),
        to_sealed=Runs.of(sealed_runs, "s"),
        to_exit=Runs.of(exit_runs, "s"),
        copy=Runs.of(copy_runs, "s"),
        copy_again=Runs.of(again_runs, "s") if again_runs else None,
        evidence_id=evidence_id,
        peak_memory_mib=peaks,
        cpu_seconds=median_use(cpu_runs),
        copy_cpu_seconds=median_use(copy_cpu_runs),
    )


def _submit(deployment: Deployment, source: Path, token: str, prefix: list[str]) -> tuple[str, float, float, float]:
    """Run ``custody submit``; returns the evidence id and the seconds until the command said the
    upload was done (after hashing and uploading), until the vault reported the item sealed
    (polled every 50 ms) and until the command returned."""
    stack = deployment.stack
    env = {**stack.env(), "CUSTODY_TOKEN": token}
    log = deployment.work / "custody-submit.log"
    with open(log, "ab") as errors:
        started = time.perf_counter()
        command = subprocess.Popen(
            [*prefix, str(BIN / "custody"), "submit", str(source), "--case", CASE],
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        assert command.stdout is not None
        evidence_id = _printed_evidence_id(command, log)
        to_uploaded = time.perf_counter() - started
        with stack.client("evidence", token) as evidence:
            while (status := seal_status(evidence, evidence_id)) is None:
                if command.poll() not in (None, 0):
                    raise RuntimeError(f"custody submit failed (exit {command.returncode}); see {log}")
                time.sleep(_POLL_SECONDS)
            to_sealed = time.perf_counter() - started
        if status != "sealed":
            raise RuntimeError(f"the vault did not seal the benchmark file: it is {status}")
        command.stdout.read()
        if command.wait(600) != 0:
            raise RuntimeError(f"custody submit failed (exit {command.returncode}); see {log}")
        to_exit = time.perf_counter() - started
    return evidence_id, to_uploaded, to_sealed, to_exit


def _printed_evidence_id(command: subprocess.Popen[bytes], log: Path) -> str:
    """The evidence id ``custody submit`` prints once the upload is done (a profiler running it
    may print lines of its own first)."""
    assert command.stdout is not None
    for line in command.stdout:
        try:
            return str(uuid.UUID(line.decode().strip()))
        except ValueError:
            continue
    command.wait(60)
    raise RuntimeError(f"custody submit printed no evidence id (exit {command.returncode}); see {log}")


def _durable_copy(deployment: Deployment, source: Path) -> float:
    """Seconds to put the same bytes durably into the same store, then remove them (untimed)."""
    name = f"bench-copy-{uuid.uuid4().hex}"
    if deployment.s3 is None:
        folder = deployment.store().root / "bench-copy"  # type: ignore[attr-defined]
        folder.mkdir(exist_ok=True)
        target = folder / name
        started = time.perf_counter()
        shutil.copyfile(source, target)
        descriptor = os.open(target, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        elapsed = time.perf_counter() - started
        target.unlink()
        return elapsed
    assert deployment.bucket is not None
    key = f"bench-copy/{name}"
    url = deployment.s3.client().presigned_put_object(deployment.bucket, key, expires=timedelta(hours=1))
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-T", str(source), url], check=True)
    elapsed = time.perf_counter() - started
    stored = deployment.store().stat(key)
    if stored.size != source.stat().st_size:
        raise RuntimeError(f"the S3 server holds {stored.size} bytes of the copy, not {source.stat().st_size}")
    deployment.store().delete(key)
    return elapsed


def seal_status(client: httpx.Client, evidence_id: str) -> str | None:
    """The item's status in the vault, None while the vault has not heard of it."""
    answer = client.get(f"/v1/evidence/{evidence_id}/status")
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    return str(answer.json()["status"])


def wait_sealed(client: httpx.Client, evidence_id: str, timeout: float = 900) -> None:
    """Wait until the vault has sealed the item (RuntimeError if it ends any other way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = seal_status(client, evidence_id)
        if status == "sealed":
            return
        if status is not None:
            raise RuntimeError(f"the vault did not seal {evidence_id}: it is {status}")
        time.sleep(0.1)
    raise RuntimeError(f"{evidence_id} was not sealed within {timeout:.0f} s")
