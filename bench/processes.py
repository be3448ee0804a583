"""What the bench reads from and does to processes: peak memory, CPU time, starting and
stopping the bare baseline server, and profiling a service while a figure is measured."""

from __future__ import annotations

import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.nats import free_port

BIN = Path(sys.executable).parent


def peak_memory_mib(pid: int) -> float:
    """The process's peak resident memory (``VmHWM``) since it started or since
    :func:`reset_peak_memory`, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM")


def resident_memory_mib(pid: int) -> float:
    """The process's resident memory now (``VmRSS``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


def reset_peak_memory(pid: int) -> None:
    """Start the process's ``VmHWM`` afresh from its current resident memory (Linux
    ``clear_refs`` 5), so the next reading is the peak of what happens from now on."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU seconds all the machine's processors have spent busy so far (``/proc/stat``: all
    but idle and waiting for I/O), whoever used them."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def ceph_pids() -> tuple[int, ...]:
    """The Ceph daemons running on this machine (monitor, OSD, RADOS gateway): the S3 server."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() in _CEPH_DAEMONS:
                found.append(int(entry.name))
        except OSError:  # ended meanwhile
            continue
    return tuple(found)


_CEPH_DAEMONS = frozenset({"ceph-mon", "ceph-osd", "radosgw"})


@contextmanager
def cpu_used(pids: Mapping[str, int | tuple[int, ...]], children: str | None = None) -> Iterator[dict[str, float]]:
    """CPU seconds each process (or group of processes) in ``pids`` uses while the block runs
    (filled in when it ends); with ``children``, also what this process's children that ended
    meanwhile used, under that name; the whole machine's under ``whole machine`` and the
    block's wall seconds under ``wall``."""
    groups = {name: (pid,) if isinstance(pid, int) else pid for name, pid in pids.items()}
    used: dict[str, float] = {}
    before = {name: sum(map(cpu_seconds, group)) for name, group in groups.items()}
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine_before = machine_cpu_seconds()
    started = time.perf_counter()
    yield used
    used["wall"] = time.perf_counter() - started
    machine = machine_cpu_seconds() - machine_before
    for name, group in groups.items():
        used[name] = sum(map(cpu_seconds, group)) - before[name]
    if children:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used[children] = after.ru_utime + after.ru_stime - children_before.ru_utime - children_before.ru_stime
    used["whole machine"] = machine


def median_use(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per process, the median of the CPU seconds of several runs."""
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]} if runs else {}


def describe_use(used: Mapping[str, float]) -> str:
    """``CPU seconds: a 1.2, b 3.4, whole machine 7.0 in 5.0 s (1.4 of 2 cores busy)``: what
    :func:`cpu_used` found."""
    processes = ", ".join(f"{name} {seconds:.1f}" for name, seconds in used.items() if name != "wall")
    busy = used["whole machine"] / used["wall"]
    return f"CPU seconds: {processes} in {used['wall']:.1f} s ({busy:.1f} of {os.cpu_count()} cores busy)"


def wait_answering(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until ``url`` answers below 500; RuntimeError if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


class BareServer:
    """The baseline endpoints (:mod:`bench.bare_server`) as a process, on the stack's store."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        self.port = free_port()
        with open(log, "ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.bare_server", "--port", str(self.port)],
                env=dict(env),
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[1],
            )
        try:
            wait_answering(f"{self.url}/healthz", self.process)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def profiler(folder: Path | None, name: str) -> list[str]:
    """The command prefix that runs a command under py-spy (a flame graph ``folder/name-N.svg``),
    or nothing when ``folder`` is None."""
    if folder is None:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    taken = len(list(folder.glob(f"{name}-*.folded")))
    return [str(BIN / "py-spy"), "record", "--threads", "--rate", "200", "--format", "raw", "--output", str(folder / f"{name}-{taken}.folded"), "--"]


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds so far of each live thread of a process, by ``name (tid)``."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        found[f"{name} ({task.name})"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


@contextmanager
def profiled(pids: Mapping[str, int], folder: Path | None, phase: str) -> Iterator[None]:
    """Record each process in ``pids`` with py-spy (collapsed stacks, ``folder/phase-name.folded``)
    and the CPU seconds of each of its threads (``phase-name.threads``) while the block runs;
    does nothing when ``folder`` is None."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    threads_before = {name: thread_cpu_seconds(pid) for name, pid in pids.items()}
    wall = time.perf_counter()
    recorders = []
    for name, pid in pids.items():
        recorders.append(
            subprocess.Popen(
                [str(BIN / "py-spy"), "record", "--pid", str(pid), "--threads", "--rate", "200"]
                + ["--format", "raw", "--output", str(folder / f"{phase}-{name}.folded")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(1)  # py-spy attaches before the measured work starts
    try:
        yield
    finally:
        wall = time.perf_counter() - wall
        for name, pid in pids.items():
            after = thread_cpu_seconds(pid)
            used = {thread: seconds - threads_before[name].get(thread, 0.0) for thread, seconds in after.items()}
            lines = [f"{seconds:8.2f} s  {thread}" for thread, seconds in sorted(used.items(), key=lambda i: -i[1])]
            (folder / f"{phase}-{name}.threads").write_text(
                f"CPU seconds per thread over {wall:.1f} s (with the profiler attached):\n" + "\n".join(lines) + "\n"
            )
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in recorders:
            try:
                recorder.wait(120)
            except subprocess.TimeoutExpired:
                recorder.kill()
