"""``custody-evidence``: run the evidence service, or one of its maintenance commands.

custody-evidence [--port 8002] [--host 127.0.0.1]   serve (seal, retrieve, verify, hold)
custody-evidence rebuild-index                      recreate the index from the object store
custody-evidence rotate-kek                         new KEK version; re-wrap every data key
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import timedelta
from pathlib import Path

import nats

from custody_common.db import migrate_apart
from custody_common.outbox import OutboxRelay
from custody_common.settings import Settings
from custody_common.web import configure_logging, serve

from custody_evidence.app import Schedule, create_evidence_app, open_vault
from custody_evidence.index.rebuild import rebuild_index
from custody_evidence.rotation.service import rotate_kek
from custody_evidence.tables import outbox
from custody_evidence.vault import SERVICE, Vault

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="custody-evidence",
        description="Custody evidence: seals submissions, serves verified evidence, keeps fixity and holds.",
    )
    parser.add_argument("--port", type=int, default=8002, help="TCP port to listen on (default 8002)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--fixity-days", type=float, default=30.0, help="days between fixity checks of an item (default 30)"
    )
    parser.add_argument("--no-fixity-sweep", action="store_true", help="leave the periodic sweep to other replicas")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("rebuild-index", help="recreate the index from the store's newest signed manifests")
    commands.add_parser("rotate-kek", help="introduce a new KEK version and re-wrap every data key (resumable)")
    return parser


async def _publish_now(vault: Vault, settings: Settings) -> None:
    """Publish what the command put in the outbox, if NATS answers (else the service will)."""
    try:
        nc = await nats.connect(
            settings.nats_url,
            connect_timeout=3,
            max_reconnect_attempts=0,
            user=settings.nats_user,
            password=settings.nats_password,
        )
    except Exception as exc:  # noqa: BLE001 — the events stay in the outbox for the service's relay
        print(
            f"NATS unreachable ({type(exc).__name__}): the events wait in the outbox for the service", file=sys.stderr
        )
        return
    try:
        relay = OutboxRelay(vault.sessions, outbox, nc.jetstream())
        with contextlib.suppress(Exception):
            while await relay.publish_pending():
                pass
    finally:
        await nc.close()


async def _rebuild(settings: Settings) -> int:
    async with open_vault(settings) as (vault, _engine):
        report = await rebuild_index(vault)
    print(
        f"{report.items} items in the store: {report.indexed} indexed, {report.updated} brought up to a newer "
        f"manifest; {len(report.refused)} manifests or records refused (signature or content does not verify)"
    )
    print(
        f"legal holds restored from the store's records: {report.case_holds} on cases, {report.item_holds} on "
        f"items by themselves; {report.damaged} items recorded damaged"
    )
    for key in report.refused:
        print(f"  refused: {key}")
    for evidence_id in report.unreadable:
        print(f"  not indexed (no manifest verifies): {evidence_id}")
    for evidence_id in report.unprotected:
        print(f"  indexed held, but its objects could not be put under legal hold (run again): {evidence_id}")
    return 1 if report.unreadable or report.unprotected else 0


async def _rotate(settings: Settings) -> int:
    async with open_vault(settings) as (vault, _engine):
        report = await rotate_kek(vault)
        await _publish_now(vault, settings)
    if report.failed:
        print(
            f"KEK rotation to {report.kek_id} NOT finished: {report.rewrapped} data keys re-wrapped, "
            f"{len(report.failed)} not (keep every older KEK; fix these, then run rotate-kek again):"
        )
        for evidence_id, reason in report.failed.items():
            print(f"  {evidence_id}: {reason}")
        return 1
    verb = "continued" if report.resumed else "done"
    print(f"KEK rotation {verb}: current KEK {report.kek_id}, {report.rewrapped} data keys re-wrapped")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Read the settings from the environment, bring the database schema up to date, then serve
    or run the maintenance command asked for."""
    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging(SERVICE)
    migrate_apart(settings, SERVICE, MIGRATIONS)
    if args.command == "rebuild-index":
        sys.exit(asyncio.run(_rebuild(settings)))
    if args.command == "rotate-kek":
        sys.exit(asyncio.run(_rotate(settings)))
    schedule = Schedule(fixity_interval=timedelta(days=args.fixity_days), sweep=not args.no_fixity_sweep)
    serve(create_evidence_app(settings, schedule), args.port, host=args.host)


if __name__ == "__main__":
    main()
