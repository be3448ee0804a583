"""Where an interrupted upload picks up again: the upload URL of each submission in progress.

The state lives in the user's state folder (``CUSTODY_STATE_DIR``, else
``$XDG_STATE_HOME/custody``, else ``~/.local/state/custody``) as ``uploads.json``, mode 0600.
It never holds a filename, a path, a hash of the file or any metadata in clear: each entry is
keyed by a SHA-256 over all of them, so only someone who already has the file and knows the
submission can tell which entry is theirs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

STATE_FILE = "uploads.json"
MAX_AGE = timedelta(days=30)
"""Entries older than this are dropped: the server will have expired those uploads anyway."""


def state_folder(environ: Mapping[str, str] | None = None) -> Path:
    """The user's state folder for Custody."""
    env = os.environ if environ is None else environ
    if env.get("CUSTODY_STATE_DIR"):
        return Path(env["CUSTODY_STATE_DIR"])
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "custody"
    return Path(env.get("HOME") or Path.home()) / ".local" / "state" / "custody"


def submission_key(*, endpoint: str, path: Path, size: int, fingerprint: str, metadata: Mapping[str, str]) -> str:
    """The opaque key of one submission: SHA-256 over where it goes, the file (its path, size and
    ``fingerprint``) and what is said about it."""
    material = json.dumps(
        {
            "endpoint": endpoint,
            "path": str(path.resolve()),
            "size": size,
            "fingerprint": fingerprint,
            "metadata": dict(sorted(metadata.items())),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class ResumeEntry:
    """An upload the server has created for a submission."""

    url: str
    created: datetime
    complete: bool = False
    """Every byte was accepted; the item's outcome has not been seen yet."""


class ResumeState:
    """The resume state file, read and written under an exclusive lock."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / STATE_FILE

    def get(self, key: str) -> ResumeEntry | None:
        """The entry for ``key``, if one is kept."""
        with self._locked() as entries:
            raw = entries.get(key)
        return _entry(raw) if raw else None

    def remember(self, key: str, url: str) -> None:
        """Record the upload URL the server created for ``key``."""
        with self._locked(write=True) as entries:
            entries[key] = {"url": url, "created": datetime.now(UTC).isoformat(), "complete": False}

    def mark_complete(self, key: str) -> None:
        """Record that the upload for ``key`` has every byte."""
        with self._locked(write=True) as entries:
            if key in entries:
                entries[key]["complete"] = True

    def forget(self, key: str) -> None:
        """Drop the entry for ``key``."""
        with self._locked(write=True) as entries:
            entries.pop(key, None)

    def forget_evidence(self, evidence_id: str) -> None:
        """Drop every entry whose upload created ``evidence_id`` (its outcome is known now)."""
        with self._locked(write=True) as entries:
            for key in [k for k, v in entries.items() if str(v.get("url", "")).rstrip("/").endswith(evidence_id)]:
                del entries[key]

    @contextlib.contextmanager
    def _locked(self, write: bool = False) -> Iterator[dict[str, dict]]:
        if not write and not self.path.exists():
            yield {}
            return
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_fd = os.open(self.folder / f"{STATE_FILE}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            entries = self._read()
            yield entries
            if write:
                self._write(entries)
        finally:
            os.close(lock_fd)

    def _read(self) -> dict[str, dict]:
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (ValueError, OSError):
            return {}  # a damaged state file only costs a fresh upload
        uploads = document.get("uploads") if isinstance(document, dict) else None
        return {k: v for k, v in (uploads or {}).items() if isinstance(v, dict) and isinstance(v.get("url"), str)}

    def _write(self, entries: dict[str, dict]) -> None:
        oldest = datetime.now(UTC) - MAX_AGE
        kept = {k: v for k, v in entries.items() if _created(v) >= oldest}
        tmp = self.path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump({"version": 1, "uploads": kept}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def _created(raw: dict) -> datetime:
    try:
        moment = datetime.fromisoformat(str(raw.get("created")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _entry(raw: dict) -> ResumeEntry:
    return ResumeEntry(url=raw["url"], created=_created(raw), complete=bool(raw.get("complete")))
