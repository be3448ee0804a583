"""``custody-intake [--port 8001] [--host 127.0.0.1]``: run the intake service."""

from __future__ import annotations

import argparse
from pathlib import Path

from custody_common.db import migrate_apart
from custody_common.web import configure_logging, serve
from custody_intake.app import create_intake_app
from custody_intake.settings import IntakeSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def main(argv: list[str] | None = None) -> None:
    """Read the settings from the environment, bring the database schema up to date, serve."""
    parser = argparse.ArgumentParser(
        prog="custody-intake", description="Custody intake: tus uploads from the field, encrypted on arrival."
    )
    parser.add_argument("--port", type=int, default=8001, help="TCP port to listen on (default 8001)")
    parser.add_argument("--host", default=None, help="address to listen on (default CUSTODY_BIND_HOST, 127.0.0.1)")
    args = parser.parse_args(argv)
    settings = IntakeSettings()
    configure_logging("intake")
    migrate_apart(settings, "intake", MIGRATIONS)
    serve(create_intake_app(settings), args.port, host=args.host)


if __name__ == "__main__":
    main()
