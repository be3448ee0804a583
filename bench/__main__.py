"""``python -m bench`` (``make bench``): every figure of Custody beside its baseline, measured in
the same run, on the embedded default and on PostgreSQL + S3; the table is printed and written
into ``docs/benchmarks.md``.

    python -m bench [--size-mib 1024] [--rounds 3] [--events 30000]
                    [--configuration embedded|postgres-s3] [--only ingest,retrieval,intake,ledger]
                    [--no-million] [--profile DIR] [--pythonpath DIR] [--no-write]

Defaults come from ``CUSTODY_BENCH_SIZE_MIB``, ``CUSTODY_BENCH_ROUNDS`` and
``CUSTODY_BENCH_EVENTS``; a smaller file gives a quick run (results are written into the
document only by a complete run with a file of at least 1 GiB). ``--profile DIR`` records each
service with py-spy while each figure is measured (a flame graph per service and figure).
``--pythonpath DIR`` runs the services from another copy of the packages, to measure a change
before making it.
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

from bench.deployments import CONFIGURATIONS, EMBEDDED, POSTGRES_S3, Deployment, deployment, s3_server
from bench.figures import Figure, Runs, limit, rate_ratio, time_ratio
from bench.ingest import measure_ingest, write_input
from bench.intake_throughput import measure_intake
from bench.ledger import MILLION, measure_ledger, proof_latency, proofs_at_a_million
from bench.machine import describe_machine, load_average
from bench.processes import BareServer, describe_use, profiled, resident_memory_mib
from bench.report import Run, details, summary, text_table, write_results
from bench.retrieval_throughput import measure_retrieval
from custody_client.tus import DEFAULT_CHUNK_SIZE

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
    parser.add_argument("--patch-mib", type=int, default=DEFAULT_CHUNK_SIZE // MIB,
                        help="request size of the intake figure (default: what custody submit sends)")
    parser.add_argument("--configuration", choices=CONFIGURATIONS, action="append", help="default: both")
    parser.add_argument("--only", type=lambda v: [f.strip() for f in v.split(",") if f.strip()], default=list(FIGURES),
                        help=f"comma-separated subset of {','.join(FIGURES)}")
    parser.add_argument("--no-million", action="store_true", help="skip the inclusion proofs at a million entries")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy flame graphs of the services into DIR")
    parser.add_argument("--pythonpath", type=Path, metavar="DIR", help="run the services from packages in DIR")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {DOCUMENT.name}")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR", help="copy the services' logs into DIR")
    return parser


def main() -> int:
    """Run the bench; returns 0 when every target was met, 1 otherwise."""
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
                s3 = s3_server() if kind == POSTGRES_S3 else None
                with deployment(kind, work / kind, later, s3, service_env) as deployed:
                    try:
                        run.figures[kind] = _measure(deployed, source, args)
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
    return 0 if all(f.met for figures in run.figures.values() for f in figures) else 1


def _keep_logs(deployed: Deployment, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for log in [*(deployed.stack.home / "logs").glob("*.log"), *deployed.work.glob("*.log")]:
        shutil.copy(log, folder / log.name)


def _say(deployed: Deployment, what: str) -> None:
    print(f"bench [{deployed.kind}]: {what}", flush=True)


def _measure(deployed: Deployment, source: Path, args: argparse.Namespace) -> list[Figure]:
    """Every selected figure on one running deployment, in the order that keeps them apart:
    ingest (leaves the item retrieval fetches), retrieval, intake, the ledger, proofs."""
    size = args.size_mib * MIB
    label = f"{args.size_mib / 1024:g} GiB" if args.size_mib >= 1024 else f"{args.size_mib} MiB"
    figures: list[Figure] = []
    memory: dict[str, list[float]] = {}
    phases: list[str] = []
    services = deployed.pids()
    at_rest = {service: resident_memory_mib(pid) for service, pid in services.items()}
    bare = BareServer(deployed.stack.env(), deployed.work / "bare-server.log")
    try:
        evidence_id = None
        if "ingest" in args.only or "retrieval" in args.only:
            _say(deployed, f"ingest of a {label} file, custody submit → sealed, beside a plain durable copy")
            rounds = args.rounds if "ingest" in args.only else 1
            with profiled(services, args.profile and args.profile / deployed.kind, "ingest"):
                ingest = measure_ingest(deployed, source, rounds, args.profile and args.profile / deployed.kind)
            evidence_id = ingest.evidence_id
            if "ingest" in args.only:
                copy = "one PUT to S3" if deployed.s3 else "durable copy"
                figures.append(
                    time_ratio(f"ingest {label}, submit → sealed", ingest.to_sealed, ingest.copy, copy, 1.5,
                               [f"hashed and uploaded after {ingest.to_uploaded.median:.2f} s, custody submit "
                                f"returned after {ingest.to_exit.median:.2f} s (medians)",
                                describe_use(ingest.cpu_seconds)])
                )
                phases.append("ingest")
                for service, peak in ingest.peak_memory_mib.items():
                    memory.setdefault(service, []).append(peak)
        if "retrieval" in args.only and evidence_id:
            _say(deployed, "retrieval, custody fetch, beside a bare endpoint serving the stored bytes")
            with profiled({**services, "bare": bare.pid}, args.profile and args.profile / deployed.kind, "retrieval"):
                retrieval = measure_retrieval(
                    deployed, bare, evidence_id, size, args.rounds, args.profile and args.profile / deployed.kind
                )
            figures.append(
                rate_ratio(f"retrieval {label}, custody fetch", retrieval.fetch, retrieval.bare, "bare serving endpoint",
                           0.7, [f"evidence's content route to the same plain client (curl): "
                                 f"{retrieval.evidence_to_curl.median:.0f} MiB/s",
                                 f"custody fetch {describe_use(retrieval.fetch_cpu_seconds)}",
                                 f"bare {describe_use(retrieval.bare_cpu_seconds)}"])
            )
            phases.append("fetch")
            for service, peak in retrieval.peak_memory_mib.items():
                memory.setdefault(service, []).append(peak)
        if "intake" in args.only:
            _say(deployed, "intake receiving, beside a bare hash-and-write endpoint")
            with profiled({"intake": services["intake"], "bare": bare.pid}, args.profile and args.profile / deployed.kind, "intake"):
                intake = measure_intake(deployed, bare, size, args.rounds, args.patch_mib * MIB)
            figures.append(
                rate_ratio(f"intake receiving, {intake.request_bytes // MIB} MiB PATCHes", intake.intake, intake.bare,
                           "bare hash-and-write endpoint", 0.7,
                           [f"intake {describe_use(intake.intake_cpu_seconds)}",
                            f"bare {describe_use(intake.bare_cpu_seconds)}"])
            )
    finally:
        bare.stop()
    if "ledger" in args.only:
        _say(deployed, f"ledger, {args.events:,} events publish → signed checkpoint, beside single-row commits")
        with profiled({"audit": services["audit"]}, args.profile and args.profile / deployed.kind, "ledger"):
            ledger = measure_ledger(deployed, args.events, args.rounds)
        database = "PostgreSQL" if deployed.kind == POSTGRES_S3 else "SQLite"
        figures.append(
            rate_ratio("ledger, publish → signed checkpoint", ledger.events, ledger.single_row,
                       f"single-row INSERT+COMMIT ({database})", 6,
                       [f"the publisher alone: {ledger.publish.median:,.0f} events/s",
                        f"{ledger.batch.median:.0f} events per appended batch (per signed checkpoint)",
                        describe_use(ledger.cpu_seconds)])
        )
        size_reached, latency = proof_latency(deployed.stack)
        figures.append(limit(f"inclusion proof at {size_reached:,} entries", latency, PROOF_LIMIT_MS, typical=True))
        if not args.no_million:
            _say(deployed, "inclusion proofs at a million entries")
            size_reached, latency, filled = proofs_at_a_million(deployed, MILLION)
            figures.append(
                limit(f"inclusion proof at {size_reached:,} entries", latency, PROOF_LIMIT_MS, typical=True,
                      notes=[f"{MILLION:,} synthetic entries filled in {filled:.0f} s"])
            )
    for service, peaks in memory.items():
        figures.append(
            limit(f"peak memory, {service} ({' / '.join(phases)})", Runs.of(peaks, "MiB"), MEMORY_LIMIT_MIB,
                  notes=[f"resident at rest after start-up: {at_rest[service]:.0f} MiB"])
        )
    return figures


if __name__ == "__main__":
    sys.exit(main())
