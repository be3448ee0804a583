"""The ``custody`` command: mint a local token, submit evidence, fetch it verified, read and
check its custody chain, export court packages, verify them offline, get an item's report.

Exit codes, for every command: 0 done; 1 a verification failed or the item was rejected;
2 usage (bad arguments or a request the service refused as malformed); 3 authentication,
permission or network; 4 (``verify``) every check held, but against a key the package brought
itself, not one pinned from outside. The token comes from ``CUSTODY_TOKEN``; the service URLs
from ``CUSTODY_INTAKE_URL``, ``CUSTODY_EVIDENCE_URL`` and ``CUSTODY_AUDIT_URL``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

# httpx loads its own command line (click, rich, pygments: a third of this command's start-up)
# whenever those are installed; this process never runs it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[assignment]

from custody_client.api import (  # noqa: E402
    OUTCOMES,
    CustodyClient,
    ItemStatus,
    Progress,
    client_from_environment,
)
from custody_client.errors import (  # noqa: E402
    AuthError,
    ClientError,
    InvalidRequest,
    NetworkError,
    NotFound,
    Rejected,
    VerificationFailed,
)
from custody_client.progress import ProgressLine, human_bytes  # noqa: E402
from custody_common.numbers import is_decimal  # noqa: E402

if TYPE_CHECKING:
    from custody_client.verify import LogKey

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ACCESS = 3
EXIT_NOT_PINNED = 4

ROLES = ("investigator", "prosecutor", "auditor", "admin")
LOG_KEY_ENV = "CUSTODY_LOG_KEY"
TSA_CA_ENV = "CUSTODY_TSA_CA"


class _Usage(Exception):
    """A problem with how the command was called, found after parsing."""


# --- argument types ---------------------------------------------------------------------


def _evidence_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an evidence id (a UUID)") from None


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time, e.g. 2024-05-01T10:00:00Z") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} needs a time zone, e.g. 2024-05-01T10:00:00Z or +02:00")
    return moment


def _bounded(low: float, high: float, what: str) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{what} must be between {low:g} and {high:g}")
        return number

    return parse


def _positive_int(value: str) -> int:
    if not is_decimal(value) or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return int(value)


# --- the parser -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``custody`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="custody",
        description="Submit evidence, fetch it verified, and check its custody chain.",
        epilog="Exit codes: 0 done, 1 verification failed or item rejected, 2 usage, "
        "3 authentication, permission or network, 4 verified only against keys the package brought itself.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    token = commands.add_parser("token", help="mint a token signed with the local stack's key")
    token.add_argument("--sub", required=True, help="who the token is for")
    token.add_argument("--role", dest="roles", action="extend", nargs="+", required=True, choices=ROLES,
                       metavar="ROLE", help=f"one or more of: {', '.join(ROLES)} (repeatable)")
    token.add_argument("--case", dest="cases", action="extend", nargs="+", default=[], metavar="CASE",
                       help="cases the holder is assigned (repeatable; '*' widens auditor/admin only)")
    token.add_argument("--ttl", type=_positive_int, default=8 * 3600, metavar="SECONDS",
                       help="lifetime in seconds (default 8 hours)")
    token.set_defaults(run=_token)

    submit = commands.add_parser("submit", help="upload a file as evidence and wait until it is sealed")
    submit.add_argument("file", type=Path, metavar="FILE")
    submit.add_argument("--case", required=True)
    submit.add_argument("--title")
    submit.add_argument("--captured-at", type=_moment, metavar="ISO8601", help="when the content was captured")
    submit.add_argument("--lat", type=_bounded(-90, 90, "--lat"))
    submit.add_argument("--lon", type=_bounded(-180, 180, "--lon"))
    submit.add_argument("--notes")
    submit.add_argument("--no-wait", action="store_true", help="return once uploaded, without waiting for the seal")
    submit.add_argument("--wait-timeout", type=_positive_int, default=3600, metavar="SECONDS",
                        help="how long to wait for the seal (default 3600)")
    submit.set_defaults(run=_submit)

    fetch = commands.add_parser("fetch", help="download an item, verified against its recorded SHA-256")
    fetch.add_argument("evidence_id", type=_evidence_id, metavar="EVIDENCE_ID")
    fetch.add_argument("-o", "--output", type=Path, required=True, metavar="PATH")
    fetch.add_argument("--purpose", required=True, metavar="TEXT", help="why; recorded in the custody chain")
    fetch.add_argument("--force", action="store_true", help="replace PATH if it exists")
    fetch.set_defaults(run=_fetch)

    chain = commands.add_parser("chain", help="show an item's custody events; --verify checks them offline")
    chain.add_argument("evidence_id", type=_evidence_id, metavar="EVIDENCE_ID")
    chain.add_argument("--json", action="store_true", help="print the ledger's answer as JSON")
    chain.add_argument("--verify", action="store_true",
                       help="check the checkpoint signature, every inclusion proof and the item's event chain")
    chain.add_argument("--log-key", metavar="KEY",
                       help=f"the log's verifier key (ORIGIN+KEYID+KEY) or a file holding it; default ${LOG_KEY_ENV}")
    chain.set_defaults(run=_chain)

    export = commands.add_parser("export", help="make a court package of a case or of named items")
    export.add_argument("evidence_ids", nargs="*", type=_evidence_id, metavar="ID", help="evidence items to export")
    export.add_argument("--case", help="export every item of this case")
    export.add_argument("--purpose", required=True, metavar="TEXT", help="why; recorded with every item's export")
    export.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.zip")
    export.add_argument("--force", action="store_true", help="replace FILE.zip if it exists")
    export.set_defaults(run=_export)

    verify = commands.add_parser("verify", help="check a court package offline, item by item")
    verify.add_argument("package", type=Path, metavar="FILE.zip")
    verify.add_argument("--log-key", metavar="KEY",
                        help=f"the log's verifier key (ORIGIN+KEYID+KEY) or a file holding it; default ${LOG_KEY_ENV}")
    verify.add_argument("--tsa-ca", type=Path, metavar="PEM",
                        help=f"root certificate(s) of the time-stamping authority; default ${TSA_CA_ENV}")
    verify.set_defaults(run=_verify)

    report = commands.add_parser("report", help="the chain-of-custody report (PDF) of one item")
    report.add_argument("evidence_id", type=_evidence_id, metavar="EVIDENCE_ID")
    report.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.pdf")
    report.add_argument("--force", action="store_true", help="replace FILE.pdf if it exists")
    report.set_defaults(run=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``custody`` command; returns its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return args.run(args)
    except _Usage as problem:
        parser.print_usage(sys.stderr)
        return _fail(EXIT_USAGE, f"custody {args.command}: {problem}")
    except VerificationFailed as failure:
        return _fail(EXIT_FAILED, f"VERIFICATION FAILED: {failure}")
    except Rejected as rejection:
        return _fail(EXIT_FAILED, f"rejected: {rejection}")
    except InvalidRequest as problem:
        return _fail(EXIT_USAGE, str(problem))
    except (AuthError, NotFound, NetworkError, ClientError) as problem:
        return _fail(EXIT_ACCESS, str(problem))
    except PermissionError as problem:
        return _fail(EXIT_ACCESS, f"not permitted: {problem}")
    except OSError as problem:
        return _fail(EXIT_USAGE, str(problem))
    except KeyboardInterrupt:
        hint = "; run the same command again to resume the upload" if args.command == "submit" else ""
        return _fail(130, f"interrupted{hint}")


def _fail(code: int, message: str) -> int:
    _print(f"custody: {message}", sys.stderr)
    return code


def _say(message: str) -> None:
    _print(message, sys.stderr)


def _print(text: str, stream: TextIO | None = None) -> None:
    """Print ``text`` to ``stream`` (stdout by default), escaping what it cannot encode rather
    than failing: text from a package or a server may hold anything, lone surrogates included."""
    stream = stream or sys.stdout
    encoding = stream.encoding or "utf-8"
    print(text.encode(encoding, "backslashreplace").decode(encoding), file=stream, flush=True)


def _client() -> CustodyClient:
    return client_from_environment()


# --- commands ---------------------------------------------------------------------------


def _token(args: argparse.Namespace) -> int:
    # imported here: only this command needs the settings, the token machinery and the local key
    from pydantic import ValidationError

    from custody_common.auth import mint_token
    from custody_common.keys import token_signing_key
    from custody_common.settings import Settings

    try:
        settings = Settings()
    except ValidationError as problem:
        raise InvalidRequest(f"the CUSTODY_* settings are not valid: {problem}") from None
    roles = list(dict.fromkeys(args.roles))
    cases = list(dict.fromkeys(args.cases))
    if not args.sub.strip():
        raise _Usage("--sub must name someone")
    print(mint_token(token_signing_key(settings), settings, args.sub, roles, cases, args.ttl))
    return EXIT_OK


class _PhaseDisplay:
    """Draws each phase's progress on stderr, one line per phase."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._live = stream.isatty()
        self._phase: str | None = None
        self._line: ProgressLine | None = None

    def __call__(self, progress: Progress) -> None:
        if progress.phase != self._phase:
            self.finish()
            self._phase = progress.phase
            if progress.phase == "uploading" and progress.done:
                if progress.total is not None and progress.done >= progress.total:
                    _say("the upload was completed by an earlier run")
                else:
                    _say(f"resuming the upload at {human_bytes(progress.done)} of {human_bytes(progress.total or 0)}")
            self._line = ProgressLine(self._stream, progress.phase, live=self._live)
        assert self._line is not None
        self._line.update(progress.done, progress.total)

    def finish(self) -> None:
        if self._line is not None:
            self._line.finish()
            self._line = None


def _submit(args: argparse.Namespace) -> int:
    if (args.lat is None) != (args.lon is None):
        raise _Usage("give both --lat and --lon, or neither")
    if not args.file.is_file():
        raise _Usage(f"{args.file} is not a readable file")
    display = _PhaseDisplay(sys.stderr)
    with _client() as client:
        try:
            evidence_id = client.submit(
                args.file,
                case=args.case,
                title=args.title,
                captured_at=args.captured_at,
                lat=args.lat,
                lon=args.lon,
                notes=args.notes,
                on_progress=display,
            )
        finally:
            display.finish()
        _say(f"uploaded as evidence item {evidence_id}")
        print(evidence_id, flush=True)
        if args.no_wait:
            return EXIT_OK
        _say("waiting for the vault to seal it…")
        status = client.wait_sealed(evidence_id, timeout=args.wait_timeout, on_status=_show_status)
    if status.status == "rejected":
        why = f": {status.reason}" if status.reason else "; its custody chain records why"
        raise Rejected(f"item {evidence_id} was rejected by the vault{why}")
    if status.status == "damaged":
        raise VerificationFailed(f"item {evidence_id} was sealed but the vault now finds it damaged")
    _say(f"sealed: item {evidence_id} is locked in the vault")
    return EXIT_OK


def _show_status(status: ItemStatus | None) -> None:
    if status is not None and status.status not in OUTCOMES:
        _say(f"status: {status.status}")


def _fetch(args: argparse.Namespace) -> int:
    if not args.purpose.strip():
        raise _Usage("--purpose must say why the item is fetched")
    display = _PhaseDisplay(sys.stderr)
    with _client() as client:
        try:
            fetched = client.fetch(
                args.evidence_id, args.output, purpose=args.purpose, overwrite=args.force, on_progress=display
            )
        finally:
            display.finish()
    _say(f"verified: {human_bytes(fetched.size)}, SHA-256 matches the response's Repr-Digest and the vault's record")
    print(f"{fetched.sha256}  {fetched.path}")
    return EXIT_OK


def _chain(args: argparse.Namespace) -> int:
    # imported here, like the package checks: fetching and submitting need neither
    from custody_client.verify import verify_chain

    key = _pinned_log_key(args.log_key) if args.verify else None
    with _client() as client:
        custody = client.chain(args.evidence_id)
    if key is not None:
        report = verify_chain(custody, key, args.evidence_id)
    if args.json:
        _print(json.dumps(custody, indent=2, ensure_ascii=False))
    else:
        for event in custody["events"]:
            _print(describe_event(event))
    if key is not None:
        cp = report.checkpoint
        _say(
            f"verified: {report.events} custody events shown, each included in checkpoint {cp.size} "
            f"(root {cp.root_b64}) signed by {key.name}+{key.key_id.hex()}; item_seq 1…{report.events} with every "
            f"prev_leaf linked, so no event of the item is missing up to the last one shown (log index "
            f"{custody['events'][-1]['index']}). This does not show that no later event exists: the answer could "
            f"leave out the item's events after that one, even ones within checkpoint {cp.size}."
        )
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    if (args.case is None) == (not args.evidence_ids):
        raise _Usage("name either --case CASE or one or more evidence ids, not both")
    if not args.purpose.strip():
        raise _Usage("--purpose must say why the package is made")
    display = _PhaseDisplay(sys.stderr)
    with _client() as client:
        try:
            package = client.export(
                args.output,
                purpose=args.purpose,
                case=args.case,
                evidence_ids=args.evidence_ids,
                overwrite=args.force,
                on_progress=display,
            )
        finally:
            display.finish()
    _say(
        f"package {package.package_id} written: {human_bytes(package.size)}; check it with "
        f"`custody verify {package.path} --log-key KEY`"
    )
    print(package.path)
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    value = args.log_key or os.environ.get(LOG_KEY_ENV)
    key = _pinned_log_key(value) if value else None
    roots = _tsa_roots(args.tsa_ca or (Path(os.environ[TSA_CA_ENV]) if os.environ.get(TSA_CA_ENV) else None))
    if not args.package.is_file():
        raise _Usage(f"{args.package} is not a readable file")
    # imported here: only this command needs the package checks (and X.509)
    from custody_client.package import describe, verify_package

    verdict = verify_package(args.package, key, tsa_roots=roots)
    _print(describe(verdict))
    if key is None:
        _say(
            f"the log key was NOT PINNED: the package was checked against its own log-key.txt, which a forger "
            f"controls. Pass --log-key (or set ${LOG_KEY_ENV}) with the key from a source you trust."
        )
    return verdict.exit_code


def _tsa_roots(path: Path | None) -> list[Any]:
    if path is None:
        return []
    from cryptography import x509

    try:
        return list(x509.load_pem_x509_certificates(path.read_bytes()))
    except ValueError:
        raise _Usage(f"{path} holds no PEM certificate") from None


def _report(args: argparse.Namespace) -> int:
    with _client() as client:
        path = client.report(args.evidence_id, args.output, overwrite=args.force)
    _say(f"report of item {args.evidence_id} written")
    print(path)
    return EXIT_OK


def _pinned_log_key(given: str | None) -> LogKey:
    """The log key from --log-key or CUSTODY_LOG_KEY, each either the key itself or a file."""
    value = given or os.environ.get(LOG_KEY_ENV)
    if not value:
        raise _Usage(
            f"--verify needs the log's key: --log-key KEY, or ${LOG_KEY_ENV}. Pin it once from a source you "
            "trust (the ledger's `GET /v1/log/key` shows it)"
        )
    candidate = Path(value)
    try:
        if "\n" not in value and len(value) < 4096 and candidate.is_file():
            value = candidate.read_text(errors="surrogateescape")  # other bytes: refused as not UTF-8
    except OSError:
        pass
    from custody_client.verify import LogKey

    try:
        return LogKey.parse(value)
    except VerificationFailed as problem:
        raise _Usage(str(problem)) from None


def describe_event(event: dict[str, Any]) -> str:
    """One custody event as a line: log index, time, action, actor, service, SHA-256. Any
    member may be missing or of another type than the log writes: it is shown as it is."""
    entry = _object(event.get("entry"))
    body = _object(entry.get("event"))
    actor = _object(body.get("actor"))
    roles = actor.get("roles")
    if "sub" in actor:
        who = f"{actor['sub']}[{','.join(map(str, roles)) if isinstance(roles, list) else ''}]"
    elif "service" in actor:
        who = f"service:{actor['service']}"
    else:
        who = "-"
    columns = [
        f"{str(event.get('index', '?')):>6}",
        str(body.get("time") or entry.get("logged_at") or "-"),
        f"{str(body.get('action', '-')):<13}",
        f"{who:<28}",
        f"{str(body.get('service', '-')):<8}",
        str(body.get("sha256") or "-"),
    ]
    return "  ".join(columns)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
