"""``custody-audit``: run the audit service, or check the stored log.

    custody-audit [--port 8003]     serve the custody ledger and sequence custody events
    custody-audit verify-log [--checkpoint FILE …]
                                    recompute the log from its entries and compare it with the
                                    checkpoints kept outside the database; non-zero exit on damage
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from custody_audit.app import LOG_KEY_FILE, MIGRATIONS, SERVICE, anchor_path, build_app
from custody_audit.log.anchor import read_note
from custody_audit.log.checkpoint import verifier_key
from custody_audit.log.verification import LogReport, verify_log
from custody_audit.timestamps.authority import load_roots
from custody_common.crypto.signing import load_public_key
from custody_common.db import make_engine, migrate_apart
from custody_common.errors import ConfigurationError
from custody_common.keys import trusted_service_keys
from custody_common.settings import Settings
from custody_common.web import configure_logging, serve


def _kept_checkpoints(settings: Settings, given: Sequence[Path]) -> dict[str, str]:
    """The checkpoints kept outside the database: audit's own file, when there is one, and every
    file ``given`` (each must exist)."""
    kept: dict[str, str] = {}
    for path in (anchor_path(settings), *given):
        try:
            note = read_note(path)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the checkpoint in {path}: {exc}") from None
        if note is None and path in given:
            raise ConfigurationError(f"there is no checkpoint file {path}")
        if note is not None:
            kept[str(path)] = note
    return kept


async def _verify(settings: Settings, check_signatures: bool, kept: dict[str, str]) -> LogReport:
    public = settings.key_folder / LOG_KEY_FILE.replace(".key", ".pub")
    if not public.exists():
        raise ConfigurationError(f"no checkpoint key at {public}; point CUSTODY_KEYS_DIR at the audit service's keys")
    engine = make_engine(settings, SERVICE)
    try:
        return await verify_log(
            engine,
            settings.log_origin,
            verifier_key(settings.log_origin, load_public_key(public)),
            trusted_service_keys(settings) if check_signatures else None,
            load_roots(settings.tsa_ca) if settings.tsa_ca else (),
            kept,
        )
    finally:
        await engine.dispose()


def verify_log_command(settings: Settings, check_signatures: bool = True, checkpoints: Sequence[Path] = ()) -> int:
    """Run verify-log, print its findings; returns the exit status (0 when the log is intact)."""
    try:
        kept = _kept_checkpoints(settings, checkpoints)
        report = asyncio.run(_verify(settings, check_signatures, kept))
    except ConfigurationError as exc:
        print(f"verify-log: {exc}", file=sys.stderr)
        return 2
    for problem in report.problems:
        print(problem)
    if report.more_problems:
        print(f"… and {report.more_problems} more problems")
    if report.ok:
        print(f"custody log intact: {report.entries} entries, {report.checkpoints} checkpoints, "
              f"{report.nodes} stored subtree hashes recomputed and matched")
        if report.timestamps:
            how = "signatures checked under CUSTODY_TSA_CA" if settings.tsa_ca else "signatures NOT checked: set CUSTODY_TSA_CA"
            print(f"{report.timestamps} time-stamps cover their checkpoints ({how})")
        if kept:
            print(f"the log extends every checkpoint kept outside the database: {', '.join(kept)}")
        else:
            print(
                f"no checkpoint kept outside the database (none at {anchor_path(settings)}, no --checkpoint): "
                "newest entries removed together with their checkpoints would not show"
            )
        return 0
    if report.first_altered_index is not None:
        print(f"first altered entry: index {report.first_altered_index}")
    elif report.altered_range is not None:
        print(f"altered entries lie within indexes {report.altered_range[0]}–{report.altered_range[1]}")
    print("custody log FAILED verification")
    return 1


def main(argv: list[str] | None = None) -> None:
    """The ``custody-audit`` console script."""
    parser = argparse.ArgumentParser(prog="custody-audit", description="The custody ledger.")
    parser.add_argument("--port", type=int, default=8003, help="HTTP port (default 8003)")
    commands = parser.add_subparsers(dest="command")
    verify = commands.add_parser("verify-log", help="recompute the log from its entries and check everything")
    verify.add_argument("--no-signatures", action="store_true", help="skip checking each event's signature")
    verify.add_argument(
        "--checkpoint",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="a checkpoint kept earlier (GET /v1/log/checkpoint) that the log must extend; repeatable",
    )
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "verify-log":
        sys.exit(verify_log_command(settings, check_signatures=not args.no_signatures, checkpoints=args.checkpoint))
    configure_logging(SERVICE)
    migrate_apart(settings, SERVICE, MIGRATIONS)
    serve(build_app(settings, migrate=False), args.port)
