"""The machine a run measured: processor, memory, disk, and the servers' versions."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import nats
import psycopg

from tests.support.nats import NATS_URL
from tests.support.postgres import ADMIN_URL


@dataclass(frozen=True)
class Machine:
    """What the figures of one run depend on besides the code."""

    cpu: str
    cores: int
    memory_gib: float
    kernel: str
    python: str
    postgresql: str
    nats: str
    ceph: str

    def lines(self) -> list[str]:
        return [
            f"{self.cpu}, {self.cores} cores (nproc), {self.memory_gib:.1f} GiB memory, Linux {self.kernel}",
            f"Python {self.python}; PostgreSQL {self.postgresql}; NATS {self.nats}; {self.ceph}",
        ]


def describe_machine() -> Machine:
    """The machine this process runs on, and the servers it reaches."""
    return Machine(
        cpu=_cpu_model(),
        cores=os.cpu_count() or 0,
        memory_gib=_memory_kib() / 1024 / 1024,
        kernel=platform.release(),
        python=platform.python_version(),
        postgresql=_postgresql_version(),
        nats=asyncio.run(_nats_version()),
        ceph=_ceph_version(),
    )


def load_average() -> str:
    """The 1, 5 and 15-minute load averages (other work on the machine skews the figures)."""
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown processor"


def _memory_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _postgresql_version() -> str:
    with psycopg.connect(ADMIN_URL) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]  # type: ignore[index]


async def _nats_version() -> str:
    nc = await nats.connect(NATS_URL, connect_timeout=5)
    try:
        version = nc.connected_server_version
        return f"{version.major}.{version.minor}.{version.patch}"
    finally:
        await nc.close()


def _ceph_version() -> str:
    endpoint = os.environ.get("CUSTODY_TEST_S3_ENDPOINT")
    radosgw = shutil.which("radosgw")
    if endpoint or radosgw is None:
        return f"the S3 server at {endpoint}"
    found = subprocess.run([radosgw, "--version"], capture_output=True, text=True, check=False).stdout.split()
    return f"Ceph RGW {found[2]}" if len(found) > 2 else "Ceph RGW"
