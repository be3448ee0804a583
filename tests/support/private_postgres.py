"""A private PostgreSQL server for tests that stop, crash and restart it: its own data folder
(made by ``initdb``), its own loopback port, trust authentication, removed afterwards.

The binaries are looked up in ``CUSTODY_TEST_POSTGRES_BIN``, then ``/usr/lib/postgresql/*/bin``,
then the PATH. ``initdb`` and ``postgres`` refuse to run as root: when the tests run as root,
the server runs as the ``postgres`` system user (``runuser``), with its folder in the system's
temporary folder so that user can reach it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.nats import free_port

_START_TIMEOUT_SECONDS = 60


class PostgresUnavailable(RuntimeError):
    """The private server could not be set up or started; the message says why."""


def _binaries() -> Path:
    named = os.environ.get("CUSTODY_TEST_POSTGRES_BIN")
    candidates = [Path(named)] if named else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise PostgresUnavailable(
        "no initdb/pg_ctl found: install PostgreSQL's server binaries or set CUSTODY_TEST_POSTGRES_BIN"
    )


class PrivatePostgres:
    """One PostgreSQL server that belongs to one test: start, stop, crash, restart it at will."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bin = _binaries()
        self._as_user = os.geteuid() == 0
        self.folder = Path(tempfile.mkdtemp(prefix="custody-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        if self._as_user:
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        self._initdb()

    @property
    def admin_url(self) -> str:
        """The ``postgres`` database, as superuser ``postgres``."""
        return self.url("postgres")

    def url(self, database: str) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/DATABASE``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "custody") -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        """Start the server and wait until it accepts connections (crash recovery included)."""
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.folder} "
            "-c max_connections=200 -c shared_buffers=32MB -c fsync=on"
        )
        self._run(
            "pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w",
            "-t", str(_START_TIMEOUT_SECONDS), "-o", options,
        )
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while True:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(
                        f"PostgreSQL on port {self.port} does not answer:\n{self.tail()}"
                    ) from None
                time.sleep(0.2)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (clean), or ``immediate`` (as a crash: no checkpoint, every
        connection dropped, recovery on the next start)."""
        if self.running():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")

    def crash(self) -> None:
        """Stop the server the way a power cut would leave it (``immediate``)."""
        self.stop("immediate")

    def running(self) -> bool:
        """Whether the server's postmaster is alive."""
        status = subprocess.run(
            self._command("pg_ctl", "status", "-D", str(self.data)), capture_output=True, text=True, check=False
        )
        return status.returncode == 0

    def remove(self) -> None:
        """Stop the server (if running) and delete its folder."""
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    def tail(self, characters: int = 3000) -> str:
        """The end of the server's log."""
        try:
            return self.log.read_text(errors="replace")[-characters:]
        except OSError:
            return "(no server log)"

    def _initdb(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"
        )

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin / program), *args]
        if self._as_user:
            command = ["runuser", "-u", "postgres", "--", *command]
        return command

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            self._command(program, *args), capture_output=True, text=True, check=False, cwd=self.folder, timeout=120
        )
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"{program} {' '.join(args[:2])} failed (exit {done.returncode}):\n"
                f"{done.stderr[-2000:]}{done.stdout[-1000:]}\n{self.tail()}"
            )


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private, running PostgreSQL server this test may stop, crash and restart."""
    try:
        server = PrivatePostgres()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc))
    try:
        server.start()
    except PostgresUnavailable as exc:
        server.remove()
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.remove()
