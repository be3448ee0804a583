"""Evidence's serving rate against a bare endpoint, and evidence's memory, over loopback.

    .venv/bin/python bench/retrieval_throughput.py [--size-mib 1024] [--part-mib 64] [--rounds 3] [--store DIR]

Stores one item of ``--size-mib`` the way intake does (STREAM-encrypted parts of ``--part-mib``
in a local folder, a signed completed-submission statement), starts a real ``custody-evidence``
(SQLite, the NATS at ``CUSTODY_NATS_URL`` or 127.0.0.1:4222 under a fresh namespace), lets it seal
the item from the bus, then downloads it: from evidence (stat of every part, the ``accessed``
event committed, every segment authenticated and decrypted) and from a bare endpoint built on
the same stack (``custody_common.web.create_app``, uvicorn, the same object-store adapter, the
same 1 MiB hand-offs from a worker thread) that streams the same stored bytes undecrypted.
The client is curl writing to /dev/null. Prints the rates (median of alternating rounds),
their ratio (target ≥ 0.7), and evidence's peak RSS after a small item and after the large
one (flat memory: the two are close).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

BARE_APP = """
import asyncio, sys
from fastapi.responses import StreamingResponse
from custody_common.objectstore import open_object_store
from custody_common.settings import Settings
from custody_common.web import create_app, serve

settings = Settings()
store = open_object_store(settings)
app = create_app("bare", settings, None)


@app.get("/bare/{evidence_id}")
async def bare(evidence_id: str) -> StreamingResponse:
    keys = list(store.list(f"evidence/{evidence_id}/parts/"))
    size = sum(store.stat(key).size for key in keys)

    def chunks():
        for key in keys:
            yield from store.read(key)

    async def body():
        source = chunks()
        while (chunk := await asyncio.to_thread(next, source, None)) is not None:
            yield chunk

    return StreamingResponse(body(), headers={"Content-Length": str(size)}, media_type="application/octet-stream")


serve(app, int(sys.argv[1]))
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


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def plaintext(size: int) -> Iterator[bytes]:
    """Incompressible bytes, 1 MiB at a time (never the whole item in memory)."""
    block = os.urandom(MIB)
    for offset in range(0, size, MIB):
        n = min(MIB, size - offset)
        # Vary each block so no two segments repeat.
        yield hashlib.sha256(offset.to_bytes(8, "big")).digest() + block[32:n] if n > 32 else block[:n]


def store_item(settings, size: int, part_size: int, case: str) -> tuple[bytes, str]:  # type: ignore[no-untyped-def]
    """Store an item as intake does; returns the signed statement's bytes and the plaintext SHA-256."""
    from custody_common.crypto.envelope import new_data_key
    from custody_common.crypto.stream import PartEncryptor
    from custody_common.keys import key_provider, service_signing_key
    from custody_common.manifest import (
        StoredPart,
        SubmissionCompleted,
        SubmissionMetadata,
        part_key,
        seal_metadata,
    )
    from custody_common.objectstore import open_object_store

    store = open_object_store(settings)
    evidence_id = uuid.uuid4()
    dek = new_data_key()
    digest = hashlib.sha256()
    source = plaintext(size)
    parts, offset, index = [], 0, 0
    while offset < size or index == 0:
        length = min(part_size, size - offset)
        encryptor = PartEncryptor(dek, evidence_id, offset)

        def ciphertext(remaining: int = length, encryptor: PartEncryptor = encryptor) -> Iterator[bytes]:
            yield encryptor.header()
            while remaining > 0:
                block = next(source)
                digest.update(block)
                remaining -= len(block)
                yield encryptor.update(block)
            yield encryptor.finalize()

        key = part_key(evidence_id, index)
        info = store.put(key, ciphertext())
        parts.append(StoredPart(index=index, offset=offset, size=length, stored_size=info.size, key=key))
        offset += length
        index += 1
    now = datetime.now(UTC)
    statement = SubmissionCompleted(
        evidence_id=evidence_id,
        case=case,
        submitter="bench",
        declared_sha256=digest.hexdigest(),
        size=size,
        parts=parts,
        wrapped_dek=key_provider(settings).wrap(dek, evidence_id.bytes),
        metadata=seal_metadata(dek, evidence_id, SubmissionMetadata(filename="bench.bin")),
        created_at=now,
        received_at=now,
    ).signed(service_signing_key(settings, "intake"))
    return statement.to_bytes(), digest.hexdigest()


def hand_over(settings, payload: bytes) -> None:  # type: ignore[no-untyped-def]
    """Publish the completed submission on the bus, as intake does."""
    import nats

    from custody_common.bus import Topology

    async def publish() -> None:
        nc = await nats.connect(settings.nats_url)
        try:
            subject = Topology(settings.nats_namespace).submission_completed_subject
            await nc.jetstream().publish(subject, payload, headers={"Nats-Msg-Id": str(uuid.uuid4())})
        finally:
            await nc.close()

    asyncio.run(publish())


def wait_sealed(port: int, token: str, evidence_id: str) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", f"/v1/evidence/{evidence_id}/status", headers={"Authorization": f"Bearer {token}"})
        answer = connection.getresponse()
        body = answer.read()
        if answer.status == 200:
            status = json.loads(body)["status"]
            if status != "sealed":
                raise RuntimeError(f"item {evidence_id} is {status}")
            return
        time.sleep(0.2)
    raise RuntimeError("the item was not sealed in time")


def download(url: str, token: str | None, expected: int) -> float:
    """Seconds curl takes to fetch ``url`` into /dev/null."""
    command = ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds, size = done.stdout.split()
    if int(size) != expected:
        raise RuntimeError(f"{url}: {size} bytes received, {expected} expected")
    return float(seconds)


def checked_download(url: str, token: str, sha256: str) -> None:
    """Fetch once more through sha256sum: what evidence serves is the original."""
    fetch = subprocess.Popen(
        ["curl", "-sS", "--fail", "-H", f"Authorization: Bearer {token}", url], stdout=subprocess.PIPE
    )
    summed = subprocess.run(["sha256sum"], stdin=fetch.stdout, capture_output=True, text=True, check=True)
    fetch.wait()
    if summed.stdout.split()[0] != sha256:
        raise RuntimeError("evidence served bytes that do not hash to the original")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--part-mib", type=int, default=64, help="plaintext per stored part (one tus PATCH)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side, alternating; medians compared")
    parser.add_argument("--store", type=Path, default=None, help="folder for the work (default: a temporary one)")
    parser.add_argument(
        "--profile", type=Path, default=None, metavar="FILE", help="record evidence with py-spy into FILE (raw stacks)"
    )
    args = parser.parse_args()
    size = args.size_mib * MIB

    sys.path.insert(0, str(ROOT))
    from custody_common.auth import mint_token
    from custody_common.keys import token_signing_key
    from custody_common.settings import Settings
    from tests.support.nats import NATS_URL, provision_namespace, remove_namespace

    work = Path(tempfile.mkdtemp(prefix="evidence-bench-", dir=args.store))
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    nats_url = os.environ.get("CUSTODY_NATS_URL", NATS_URL)
    provision_namespace(nats_url, namespace)
    home = work / "home"
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env.update(CUSTODY_HOME=str(home), CUSTODY_NATS_URL=nats_url, CUSTODY_NATS_NAMESPACE=namespace)
    settings = Settings(home=home, nats_url=nats_url, nats_namespace=namespace)
    evidence_port, bare_port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    figures: dict[str, object] = {"size_MiB": args.size_mib, "part_MiB": args.part_mib}
    try:
        evidence = subprocess.Popen(
            [str(BIN / "custody-evidence"), "--port", str(evidence_port), "--no-fixity-sweep"],
            env=env,
            stdout=open(work / "evidence.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        processes.append(evidence)
        bare = subprocess.Popen(
            [sys.executable, "-c", BARE_APP, str(bare_port)],
            env=env,
            stdout=open(work / "bare.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        processes.append(bare)
        wait_listening(evidence_port, evidence)
        wait_listening(bare_port, bare, "/healthz")
        token = mint_token(token_signing_key(settings), settings, "bench", ["prosecutor"], ["BENCH-1"])

        def content(evidence_id: str) -> str:
            return f"http://127.0.0.1:{evidence_port}/v1/evidence/{evidence_id}/content?purpose=benchmark"

        small, _ = store_item(settings, 4 * MIB, args.part_mib * MIB, "BENCH-1")
        small_id = json.loads(small)["evidence_id"]
        hand_over(settings, small)
        wait_sealed(evidence_port, token, small_id)
        download(content(small_id), token, 4 * MIB)
        figures["evidence_peak_rss_after_4MiB_MiB"] = round(peak_rss_mib(evidence.pid), 1)

        started = time.perf_counter()
        large, large_sha = store_item(settings, size, args.part_mib * MIB, "BENCH-1")
        large_id = json.loads(large)["evidence_id"]
        figures["store_item_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        hand_over(settings, large)
        wait_sealed(evidence_port, token, large_id)
        figures["seal_MiB_per_s"] = round(args.size_mib / (time.perf_counter() - started), 1)
        figures["evidence_peak_rss_after_seal_MiB"] = round(peak_rss_mib(evidence.pid), 1)
        stored = sum(p.stat().st_size for p in (home / "objects" / "evidence" / large_id / "parts").iterdir())

        spy = None
        if args.profile:
            spy = subprocess.Popen(
                [str(BIN / "py-spy"), "record", "--pid", str(evidence.pid), "--threads", "--native"]
                + ["--format", "raw", "--output", str(args.profile)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            time.sleep(1)
        evidence_runs, bare_runs = [], []
        evidence_cpu = bare_cpu = 0.0
        for _ in range(args.rounds):
            before = cpu_seconds(evidence.pid)
            evidence_runs.append(download(content(large_id), token, size))
            evidence_cpu += cpu_seconds(evidence.pid) - before
            before = cpu_seconds(bare.pid)
            bare_runs.append(download(f"http://127.0.0.1:{bare_port}/bare/{large_id}", None, stored))
            bare_cpu += cpu_seconds(bare.pid) - before
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        figures["evidence_peak_rss_after_large_MiB"] = round(peak_rss_mib(evidence.pid), 1)
        figures["bare_peak_rss_MiB"] = round(peak_rss_mib(bare.pid), 1)
        checked_download(content(large_id), token, large_sha)
        figures["served_sha256_matches"] = True
        # Rates count what the client receives: plaintext from evidence, ciphertext from bare.
        evidence_seconds, bare_seconds = statistics.median(evidence_runs), statistics.median(bare_runs)
        figures["evidence_MiB_per_s_runs"] = [round(args.size_mib / t, 1) for t in evidence_runs]
        figures["bare_MiB_per_s_runs"] = [round(stored / MIB / t, 1) for t in bare_runs]
        figures["evidence_MiB_per_s"] = round(args.size_mib / evidence_seconds, 1)
        figures["bare_MiB_per_s"] = round(stored / MIB / bare_seconds, 1)
        ratio = (size / evidence_seconds) / (stored / bare_seconds)
        figures["ratio"] = round(ratio, 3)
        # Server CPU per GiB served: what the decryption costs beyond serving stored bytes.
        figures["evidence_cpu_s_per_GiB"] = round(evidence_cpu / args.rounds / (size / 1024 / MIB), 3)
        figures["bare_cpu_s_per_GiB"] = round(bare_cpu / args.rounds / (stored / 1024 / MIB), 3)
        figures["target_met"] = "yes" if ratio >= 0.7 else "no"
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
