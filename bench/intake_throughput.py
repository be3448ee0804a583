"""Intake's receiving rate against a bare endpoint, and intake's memory, over loopback.

    .venv/bin/python bench/intake_throughput.py [--size-mib 1024] [--patch-mib 0] [--store DIR]

Starts a real ``custody-intake`` (SQLite, a local folder as object store, the NATS at
``CUSTODY_NATS_URL`` or 127.0.0.1:4222 under a fresh namespace) and a bare FastAPI/uvicorn
endpoint that only hashes the body (SHA-256) and writes it to the same kind of store. Sends the
same bytes to both, as one PATCH (``--patch-mib 0``) or as PATCHes of that many MiB, and
prints the rates (median of alternating rounds), their ratio (target ≥ 0.7) and intake's peak
RSS after a small and after the large upload (flat memory: the two are close).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PATTERN = os.urandom(64 * MIB)

BARE_APP = """
import asyncio, hashlib, queue, sys, uuid
from pathlib import Path
import uvicorn
from fastapi import FastAPI, Request
from custody_common.objectstore.local import LocalFolderStore

store = LocalFolderStore(Path(sys.argv[2]))
app = FastAPI()
_END = object()


@app.put("/bare")
async def bare(request: Request) -> dict:
    digest = hashlib.sha256()
    blocks: queue.Queue = queue.Queue(maxsize=8)

    def chunks():
        while (block := blocks.get()) is not _END:
            yield block

    loop = asyncio.get_running_loop()
    writer = loop.run_in_executor(None, store.put, f"bare/{uuid.uuid4()}", chunks())
    pending, size = [], 0
    async for chunk in request.stream():
        digest.update(chunk)
        pending.append(chunk)
        size += len(chunk)
        if size >= 1 << 20:
            block, pending, size = b"".join(pending), [], 0
            try:
                blocks.put_nowait(block)
            except queue.Full:
                await loop.run_in_executor(None, blocks.put, block)
    if pending:
        await loop.run_in_executor(None, blocks.put, b"".join(pending))
    await loop.run_in_executor(None, blocks.put, _END)
    info = await writer
    return {"sha256": digest.hexdigest(), "stored": info.size}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen[bytes], path: str = "/readyz") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start")


def send(port: int, method: str, path: str, size: int, headers: dict[str, str]) -> http.client.HTTPResponse:
    """Send ``size`` bytes of the pattern as one request body, 1 MiB per write."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.putrequest(method, path)
    for name, value in {**headers, "Content-Length": str(size)}.items():
        connection.putheader(name, value)
    connection.endheaders()
    view = memoryview(PATTERN)
    sent = 0
    while sent < size:
        start = sent % len(PATTERN)
        piece = view[start : start + min(MIB, size - sent, len(PATTERN) - start)]
        connection.send(piece)
        sent += len(piece)
    response = connection.getresponse()
    response.read()
    return response


def pattern_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for offset in range(0, size, len(PATTERN)):
        digest.update(PATTERN[: min(len(PATTERN), size - offset)])
    return digest.hexdigest()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def range_checksum(start: int, length: int) -> str:
    """``Upload-Checksum`` of the pattern bytes [start, start+length)."""
    digest = hashlib.sha256()
    view = memoryview(PATTERN)
    position = start
    while position < start + length:
        offset = position % len(PATTERN)
        piece = view[offset : offset + min(len(PATTERN) - offset, start + length - position)]
        digest.update(piece)
        position += len(piece)
    return "sha256 " + base64.b64encode(digest.digest()).decode()


def upload_to_intake(port: int, token: str, size: int, patch_bytes: int, checksums: bool) -> float:
    """Seconds to create an upload of ``size`` bytes and PATCH all of it (checksums computed
    beforehand, outside the timing)."""
    meta = {"case": "BENCH-1", "filename": "bench.bin", "sha256": pattern_sha256(size)}
    encoded = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items())
    auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    step = patch_bytes or size
    sums = (
        {start: range_checksum(start, min(step, size - start)) for start in range(0, size, step)} if checksums else {}
    )
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", "/v1/uploads", headers={**auth, "Upload-Length": str(size), "Upload-Metadata": encoded})
    created = connection.getresponse()
    created.read()
    assert created.status == 201, created.status
    path = "/v1/uploads/" + created.getheader("Location").rsplit("/", 1)[1]
    offset = 0
    while offset < size:
        length = min(patch_bytes or size, size - offset)
        headers = {**auth, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        if checksums:
            headers["Upload-Checksum"] = sums[offset]
        response = send(port, "PATCH", path, length, headers)
        assert response.status == 204, response.status
        offset = int(response.getheader("Upload-Offset"))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--patch-mib", type=int, default=0, help="0: the whole file in one PATCH")
    parser.add_argument("--checksum", action="store_true", help="send Upload-Checksum (sha256) with each PATCH")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side, alternating; medians compared")
    parser.add_argument("--store", type=Path, default=None, help="folder for both stores (default: a temporary one)")
    parser.add_argument("--profile", action="store_true", help="record intake with py-spy (flame graph SVG)")
    args = parser.parse_args()
    size = args.size_mib * MIB
    if args.profile and not (BIN / "py-spy").exists():
        parser.error("--profile needs py-spy in the environment: uv add --group dev py-spy")

    sys.path.insert(0, str(ROOT))
    from custody_common.auth import mint_token
    from custody_common.keys import token_signing_key
    from custody_common.settings import Settings
    from tests.support.nats import NATS_URL, provision_namespace, remove_namespace

    work = Path(tempfile.mkdtemp(prefix="intake-bench-", dir=args.store))
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    nats_url = os.environ.get("CUSTODY_NATS_URL", NATS_URL)
    provision_namespace(nats_url, namespace)
    home = work / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env.update(
        CUSTODY_HOME=str(home),
        CUSTODY_NATS_URL=nats_url,
        CUSTODY_NATS_NAMESPACE=namespace,
        CUSTODY_MAX_UPLOAD_SIZE=str(max(size, 64 * MIB)),
    )
    home.mkdir(parents=True)
    intake_port, bare_port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    figures: dict[str, object] = {
        "size_MiB": args.size_mib,
        "patch_MiB": args.patch_mib or args.size_mib,
        "checksum": args.checksum,
    }
    try:
        intake = subprocess.Popen(
            [str(BIN / "custody-intake"), "--port", str(intake_port)],
            env=env,
            stdout=open(work / "intake.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        processes.append(intake)
        bare = subprocess.Popen(
            [sys.executable, "-c", BARE_APP, str(bare_port), str(work / "bare-objects")],
            env=env,
            stdout=open(work / "bare.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        processes.append(bare)
        wait_listening(intake_port, intake)
        wait_listening(bare_port, bare, "/docs")
        settings = Settings(home=home)
        token = mint_token(token_signing_key(settings), settings, "bench", ["investigator"], ["BENCH-1"])

        upload_to_intake(intake_port, token, 64 * MIB, args.patch_mib * MIB, args.checksum)
        figures["intake_peak_rss_after_64MiB_MiB"] = round(peak_rss_mib(intake.pid), 1)

        spy = None
        if args.profile:
            spy = subprocess.Popen(
                [
                    str(BIN / "py-spy"),
                    "record",
                    "--pid",
                    str(intake.pid),
                    "--threads",
                    "--output",
                    str(ROOT / "bench" / "intake-profile.svg"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            time.sleep(1)
        intake_runs, bare_runs = [], []
        for _ in range(args.rounds):
            # Flush the previous run's writes first, so neither side pays for the other's.
            os.sync()
            intake_runs.append(upload_to_intake(intake_port, token, size, args.patch_mib * MIB, args.checksum))
            os.sync()
            started = time.perf_counter()
            answer = send(bare_port, "PUT", "/bare", size, {"Content-Type": "application/octet-stream"})
            bare_runs.append(time.perf_counter() - started)
            assert answer.status == 200
            for folder in (home / "objects" / "evidence", work / "bare-objects" / "bare"):
                shutil.rmtree(folder, ignore_errors=True)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        figures["intake_peak_rss_after_large_MiB"] = round(peak_rss_mib(intake.pid), 1)
        figures["bare_peak_rss_MiB"] = round(peak_rss_mib(bare.pid), 1)
        intake_seconds, bare_seconds = statistics.median(intake_runs), statistics.median(bare_runs)
        figures["intake_MiB_per_s_runs"] = [round(args.size_mib / t, 1) for t in intake_runs]
        figures["bare_MiB_per_s_runs"] = [round(args.size_mib / t, 1) for t in bare_runs]
        figures["intake_MiB_per_s"] = round(args.size_mib / intake_seconds, 1)
        figures["bare_MiB_per_s"] = round(args.size_mib / bare_seconds, 1)
        figures["ratio"] = round(bare_seconds / intake_seconds, 3)
        figures["target_met"] = "yes" if bare_seconds / intake_seconds >= 0.7 else "no"
        print(json.dumps(figures, indent=2))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        remove_namespace(nats_url, namespace)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
