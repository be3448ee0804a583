"""``python -m bench`` (``make bench``): every figure of Custody beside its baseline, measured in
the same run, on the embedded default and on PostgreSQL + S3; the table is printed and written
into ``docs/benchmarks.md``.

    python -m bench [--size-mib 1024] [--rounds 3] [--events 30000] [--patch-mib 8]
                    [--configuration embedded|postgres-s3] [--only ingest,retrieval,intake,ledger]
                    [--no-million] [--profile DIR] [--pythonpath DIR] [--keep-logs DIR]
                    [--no-write] [--strict]

Defaults come from ``CUSTODY_BENCH_SIZE_MIB``, ``CUSTODY_BENCH_ROUNDS`` and
``CUSTODY_BENCH_EVENTS``; a smaller file gives a quick run (results are written into the
document only by a complete run with a file of at least 1 GiB). ``--profile DIR`` records each
service (and each ``custody`` command) with py-spy while each figure is measured: collapsed
stacks and per-thread CPU seconds, summarised by ``python -m bench.profiles DIR``.
``--pythonpath DIR`` runs the services and the ``custody`` command from another copy of the
packages, to measure a change before making it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from bench.deployments import CONFIGURATIONS, EMBEDDED, POSTGRES_S3, Deployment, deployment
from bench.figures import Figure, Runs, limit, rate_ratio, time_ratio
from bench.ingest import measure_ingest, write_input
from bench.intake_throughput import measure_intake
from bench.ledger import MILLION, measure_ledger, proof_latency, proofs_at_a_million
from bench.machine import describe_machine, load_average
from bench.processes import BareServer, describe_use, profiled, resident_memory_mib
from bench.report import Run, details, summary, text_table, write_results
from bench.retrieval_throughput import measure_retrieval
from custody_client.tus import MAX_CHUNK_SIZE
from tests.support.s3 import running_s3_server

MIB = 1024 * 1024
FIGURES = ("ingest", "retrieval", "intake", "ledger")
DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
MEMORY_LIMIT_MIB = 150
PROOF_LIMIT_MS = 10


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=int(os.environ.get("CUSTODY_BENCH_SIZE_MIB", 1024)))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("CUSTODY_BENCH_ROUNDS", 3)))
    parser.add_argument("--events", type=int, default=int(os.environ.get("CUSTODY_BENCH_EVENTS", 30_000)))
    parser.add_argument("--patch-mib", type=int, default=MAX_CHUNK_SIZE // MIB,
                        help="request size of the intake figure (default: the largest PATCH custody submit sends)")
    parser.add_argument("--configuration", choices=CONFIGURATIONS, action="append", help="default: both")
    parser.add_argument("--only", type=lambda v: [f.strip() for f in v.split(",") if f.strip()], default=list(FIGURES),
                        help=f"comma-separated subset of {','.join(FIGURES)}")
    parser.add_argument("--no-million", action="store_true", help="skip the inclusion proofs at a million entries")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy profiles of the services into DIR")
    parser.add_argument("--pythonpath", type=Path, metavar="DIR", help="run the services from packages in DIR")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {DOCUMENT.name}")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR", help="copy the services' logs into DIR")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser


def main() -> int:
    """Run the bench; returns 0 once everything is measured (with ``--strict``, only when every
    target was met)."""
    args = _parser().parse_args()
    unknown = set(args.only) - set(FIGURES)
    if unknown or args.rounds < 1 or args.size_mib < 1 or args.events < 1:
        _parser().error(f"unknown figures {', '.join(sorted(unknown))}" if unknown else "sizes and counts must be positive")
    kinds = args.configuration or [POSTGRES_S3, EMBEDDED]
    # PostgreSQL + S3 first: what it sealed is out of retention, and its bucket deletable, by the end.
    kinds = sorted(set(kinds), key=[POSTGRES_S3, EMBEDDED].index)
    complete = set(args.only) == set(FIGURES) and len(kinds) == 2 and not args.no_million and args.pythonpath is None
    service_env = {"PYTHONPATH": str(args.pythonpath.resolve())} if args.pythonpath else None

    started = time.perf_counter()
    run = Run(
        started=datetime.now(UTC),
        machine=describe_machine(),
        size_mib=args.size_mib,
        rounds=args.rounds,
        events=args.events,
        load_before=load_average(),
    )
    print("\n".join(summary(run)[:1] + run.machine.lines()), flush=True)
    work = Path(tempfile.mkdtemp(prefix="custody-bench-"))
    try:
        with ExitStack() as later:
            source = work / "input.bin"
            write_input(source, args.size_mib * MIB)
            for kind in kinds:
                # Lasts until the run ends; what the bench stored on it is removed before.
                s3 = later.enter_context(running_s3_server()) if kind == POSTGRES_S3 else None
                with deployment(kind, work / kind, later, s3, service_env) as deployed:
                    try:
                        run.figures[kind] = _Session(deployed, source, args).measure()
                    finally:
                        if args.keep_logs:
                            _keep_logs(deployed, args.keep_logs / kind)
                shutil.rmtree(work / kind, ignore_errors=True)
            print("bench: removing what the bench stored (waiting out its retention where needed)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    run.seconds = time.perf_counter() - started
    run.load_after = load_average()

    print()
    print("\n".join(summary(run)))
    print()
    print(text_table(run))
    print()
    print("\n".join(details(run)))
    if complete and args.size_mib >= 1024 and not args.no_write:
        write_results(DOCUMENT, run)
        print(f"\nwritten into {DOCUMENT}")
    elif not args.no_write:
        print(f"\n{DOCUMENT.name} not written: only a complete run with a file of at least 1 GiB is recorded there")
    figures = [figure for measured in run.figures.values() for figure in measured]
    met = sum(figure.met for figure in figures)
    print(f"\ntargets met: {met} of {len(figures)}")
    return 1 if args.strict and met < len(figures) else 0


def _keep_logs(deployed: Deployment, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for log in [*(deployed.stack.home / "logs").glob("*.log"), *deployed.work.glob("*.log")]:
        shutil.copy(log, folder / log.name)


class _Session:
    """The figures of one running deployment, measured in the order that keeps them apart:
    ingest (which leaves the item retrieval fetches), retrieval, intake, the ledger and proofs."""

    def __init__(self, deployed: Deployment, source: Path, args: argparse.Namespace) -> None:
        self.deployed = deployed
        self.source = source
        self.args = args
        self.size = args.size_mib * MIB
        self.label = f"{args.size_mib / 1024:g} GiB" if args.size_mib >= 1024 else f"{args.size_mib} MiB"
        self.profile = args.profile / deployed.kind if args.profile else None
        self.services = deployed.pids()
        self.at_rest = {service: resident_memory_mib(pid) for service, pid in self.services.items()}
        self.figures: list[Figure] = []
        self.peaks: dict[str, list[float]] = {}
        self.phases: list[str] = []

    def say(self, what: str) -> None:
        print(f"bench [{self.deployed.kind}]: {what}", flush=True)

    def measure(self) -> list[Figure]:
        only = self.args.only
        bare = BareServer(self.deployed.stack.env(), self.deployed.work / "bare-server.log")
        try:
            if "ingest" in only or "retrieval" in only:
                evidence_id = self.ingest(report="ingest" in only)
                if "retrieval" in only:
                    self.retrieval(bare, evidence_id)
            if "intake" in only:
                self.intake(bare)
        finally:
            bare.stop()
        if "ledger" in only:
            self.ledger()
        for service, peaks in self.peaks.items():
            self.figures.append(
                limit(f"peak memory, {service} ({' / '.join(self.phases)})", Runs.of(peaks, "MiB"), MEMORY_LIMIT_MIB,
                      notes=[f"resident at rest after start-up: {self.at_rest[service]:.0f} MiB"])
            )
        return self.figures

    def _memory(self, phase: str, peaks: dict[str, float]) -> None:
        self.phases.append(phase)
        for service, peak in peaks.items():
            self.peaks.setdefault(service, []).append(peak)

    def ingest(self, report: bool) -> str:
        """The ingest figure (or, with ``report`` False, one untimed submit for retrieval to fetch)."""
        self.say(f"ingest of a {self.label} file, custody submit → sealed, beside a plain durable copy")
        rounds = self.args.rounds if report else 1
        with profiled(self.services, self.profile, "ingest"):
            ingest = measure_ingest(self.deployed, self.source, rounds, self.profile)
        if report:
            copy = "one PUT to S3" if self.deployed.s3 else "durable copy"
            notes = [f"hashed and uploaded after {ingest.to_uploaded.median:.2f} s, custody submit "
                     f"returned after {ingest.to_exit.median:.2f} s (medians)"]
            if ingest.copy_again is not None:
                again = ", ".join(f"{value:.2f}" for value in ingest.copy_again.values)
                notes.append(f"the same copy again at once, its memory reused: {again} s")
            notes.append(describe_use(ingest.cpu_seconds))
            notes.append(f"{copy} {describe_use(ingest.copy_cpu_seconds)}")
            floor = ingest.cpu_seconds["whole machine"] / (os.cpu_count() or 1)
            notes.append(f"what the whole machine spent until custody submit returned, spread evenly over its "
                         f"{os.cpu_count()} cores, takes {floor:.2f} s ({floor / ingest.copy.median:.2f}× the {copy})")
            self.figures.append(
                time_ratio(f"ingest {self.label}, submit → sealed", ingest.to_sealed, ingest.copy, copy, 1.5, notes)
            )
            self._memory("ingest", ingest.peak_memory_mib)
        return ingest.evidence_id

    def retrieval(self, bare: BareServer, evidence_id: str) -> None:
        self.say("retrieval, custody fetch, beside a bare endpoint serving the stored bytes")
        with profiled({**self.services, "bare": bare.pid}, self.profile, "retrieval"):
            retrieval = measure_retrieval(self.deployed, bare, evidence_id, self.size, self.args.rounds, self.profile)
        self.figures.append(
            rate_ratio(f"retrieval {self.label}, custody fetch", retrieval.fetch, retrieval.bare,
                       "bare serving endpoint", 0.7,
                       [f"evidence's content route to the same plain client (curl): "
                        f"{retrieval.evidence_to_curl.median:.0f} MiB/s",
                        f"custody fetch {describe_use(retrieval.fetch_cpu_seconds)}",
                        f"bare {describe_use(retrieval.bare_cpu_seconds)}"])
        )
        self._memory("fetch", retrieval.peak_memory_mib)

    def intake(self, bare: BareServer) -> None:
        self.say("intake receiving, beside a bare hash-and-write endpoint")
        with profiled({"intake": self.services["intake"], "bare": bare.pid}, self.profile, "intake"):
            intake = measure_intake(self.deployed, bare, self.size, self.args.rounds, self.args.patch_mib * MIB)
        self.figures.append(
            rate_ratio(f"intake receiving, {intake.request_bytes // MIB} MiB PATCHes", intake.intake, intake.bare,
                       "bare hash-and-write endpoint", 0.7,
                       [f"intake {describe_use(intake.intake_cpu_seconds)}",
                        f"bare {describe_use(intake.bare_cpu_seconds)}"])
        )

    def ledger(self) -> None:
        self.say(f"ledger, {self.args.events:,} events publish → signed checkpoint, beside single-row commits")
        with profiled({"audit": self.services["audit"]}, self.profile, "ledger"):
            ledger = measure_ledger(self.deployed, self.args.events, self.args.rounds)
        database = "PostgreSQL" if self.deployed.kind == POSTGRES_S3 else "SQLite"
        self.figures.append(
            rate_ratio("ledger, publish → signed checkpoint", ledger.events, ledger.single_row,
                       f"single-row INSERT+COMMIT ({database})", 6,
                       [f"the publisher alone: {ledger.publish.median:,.0f} events/s",
                        f"{ledger.batch.median:.0f} events per appended batch (per signed checkpoint)",
                        describe_use(ledger.cpu_seconds)])
        )
        size, latency = proof_latency(self.deployed.stack)
        self.figures.append(limit(f"inclusion proof at {size:,} entries", latency, PROOF_LIMIT_MS, typical=True))
        if not self.args.no_million:
            self.say("inclusion proofs at a million entries")
            size, latency, filled = proofs_at_a_million(self.deployed, MILLION)
            self.figures.append(
                limit(f"inclusion proof at {size:,} entries", latency, PROOF_LIMIT_MS, typical=True,
                      notes=[f"{MILLION:,} synthetic entries filled in {filled:.0f} s"])
            )


if __name__ == "__main__":
    sys.exit(main())
