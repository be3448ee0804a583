"""Intake's receiving rate beside a bare endpoint on the same server stack that only hashes the
body (SHA-256) and writes it to the same store.

Both are sent the same bytes by the same plain HTTP sender, in requests of the same size: tus
PATCHes of the largest chunk the ``custody`` client sends (each becomes one encrypted stored
part) to intake, PUTs of that size to the bare endpoint (each becomes one stored object). The
sender works from a pattern in memory, so neither side waits for a disk read; the upload's
SHA-256, and each PATCH's ``Upload-Checksum`` (the CRC-32 that ``custody submit`` always sends,
and which intake checks while the bare endpoint computes SHA-256), are computed before the clock
starts. After each intake run the vault's seal of the upload is waited for, untimed, so its read
pass does not overlap the next measurement.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.deployments import Deployment
from bench.figures import Runs
from bench.ingest import CASE, wait_sealed
from bench.processes import BareServer, cpu_used, median_use
from custody_client.tus import MAX_CHUNK_SIZE, chunk_checksum

MIB = 1024 * 1024
_PATTERN = os.urandom(64 * MIB)


@dataclass(frozen=True)
class IntakeResult:
    """Receiving rates in MiB/s (plaintext bytes over the seconds from the first request to the
    last answer)."""

    intake: Runs
    bare: Runs
    request_bytes: int
    intake_cpu_seconds: dict[str, float]
    bare_cpu_seconds: dict[str, float]


def measure_intake(deployment: Deployment, bare: BareServer, size: int, rounds: int, request_bytes: int = MAX_CHUNK_SIZE) -> IntakeResult:
    """``rounds`` alternating uploads of ``size`` bytes to intake and to the bare endpoint."""
    stack = deployment.stack
    investigator = stack.token("bench-investigator", ["investigator"], [CASE])
    vault = stack.client("evidence", investigator)
    sha256 = _pattern_sha256(size)
    intake_runs: list[float] = []
    bare_runs: list[float] = []
    intake_cpu: list[dict[str, float]] = []
    bare_cpu: list[dict[str, float]] = []
    store = deployment.store()
    store_pids = deployment.store_pids()
    try:
        for _ in range(rounds):
            os.sync()
            with cpu_used(deployment.pids() | store_pids) as used:
                seconds, evidence_id = _upload_to_intake(stack.url("intake"), investigator, size, sha256, request_bytes)
            intake_runs.append(size / MIB / seconds)
            intake_cpu.append(used)
            wait_sealed(vault, evidence_id)
            os.sync()
            with cpu_used({"bare endpoint": bare.pid} | store_pids) as used:
                seconds, names = _put_to_bare(bare.url, size, request_bytes)
            bare_runs.append(size / MIB / seconds)
            bare_cpu.append(used)
            for name in names:
                store.delete(f"bare/{name}")
    finally:
        vault.close()
    return IntakeResult(
        Runs.of(intake_runs, "MiB/s"), Runs.of(bare_runs, "MiB/s"), request_bytes, median_use(intake_cpu), median_use(bare_cpu)
    )


def _connection(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)


def _pattern(start: int, length: int) -> Iterator[memoryview]:
    """The pattern's bytes [start, start+length), repeated as far as needed, at most 1 MiB a piece."""
    view = memoryview(_PATTERN)
    position = start
    while position < start + length:
        offset = position % len(_PATTERN)
        piece = view[offset : offset + min(MIB, start + length - position, len(_PATTERN) - offset)]
        yield piece
        position += len(piece)


def _send(connection: http.client.HTTPConnection, method: str, path: str, start: int, length: int, headers: dict[str, str]) -> http.client.HTTPResponse:
    """Send the pattern's bytes [start, start+length) as one request body, 1 MiB per write."""
    connection.putrequest(method, path)
    for name, value in {**headers, "Content-Length": str(length)}.items():
        connection.putheader(name, value)
    connection.endheaders()
    for piece in _pattern(start, length):
        connection.send(piece)
    response = connection.getresponse()
    response.read()
    return response


def _pattern_checksum(start: int, length: int) -> str:
    """``Upload-Checksum`` of the pattern's bytes [start, start+length), as ``custody submit`` makes it."""
    return chunk_checksum(b"".join(_pattern(start, length)))


def _pattern_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for piece in _pattern(0, size):
        digest.update(piece)
    return digest.hexdigest()


def _upload_to_intake(url: str, token: str, size: int, sha256: str, request_bytes: int) -> tuple[float, str]:
    """Seconds to create a tus upload of ``size`` bytes and PATCH all of it; and its evidence id."""
    metadata = {"case": CASE, "filename": "bench.bin", "sha256": sha256}
    encoded = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items())
    auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    checksums = {at: _pattern_checksum(at, min(request_bytes, size - at)) for at in range(0, size, request_bytes)}
    connection = _connection(url)
    try:
        started = time.perf_counter()
        connection.request("POST", "/v1/uploads", headers={**auth, "Upload-Length": str(size), "Upload-Metadata": encoded})
        created = connection.getresponse()
        created.read()
        if created.status != 201:
            raise RuntimeError(f"intake answered {created.status} to the upload's creation")
        evidence_id = created.getheader("Location", "").rstrip("/").rsplit("/", 1)[-1]
        path = f"/v1/uploads/{evidence_id}"
        offset = 0
        while offset < size:
            length = min(request_bytes, size - offset)
            headers = {
                **auth,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
                "Upload-Checksum": checksums[offset],
            }
            answer = _send(connection, "PATCH", path, offset, length, headers)
            if answer.status != 204:
                raise RuntimeError(f"intake answered {answer.status} to a PATCH at offset {offset}")
            offset = int(answer.getheader("Upload-Offset", "0"))
        return time.perf_counter() - started, evidence_id
    finally:
        connection.close()


def _put_to_bare(url: str, size: int, request_bytes: int) -> tuple[float, list[str]]:
    """Seconds to PUT ``size`` bytes to the bare endpoint in requests of ``request_bytes``;
    and the names of the objects it stored."""
    connection = _connection(url)
    names = []
    base = uuid.uuid4().hex
    try:
        started = time.perf_counter()
        for offset in range(0, size, request_bytes):
            name = f"{base}-{offset // request_bytes:05d}"
            answer = _send(connection, "PUT", f"/bare/objects/{name}", offset, min(request_bytes, size - offset),
                           {"Content-Type": "application/octet-stream"})
            if answer.status != 200:
                raise RuntimeError(f"the bare endpoint answered {answer.status}")
            names.append(name)
        return time.perf_counter() - started, names
    finally:
        connection.close()
