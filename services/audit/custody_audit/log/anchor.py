"""The newest checkpoint audit signed, kept in a file outside the database.

The log's tables and its checkpoints live in the same database, so someone who can write to
it could remove the newest entries together with the checkpoints that cover them: the log
left behind would verify on its own, and the sequencer would go on to sign a second history
at the removed sizes (a fork). The sequencer therefore also writes every checkpoint it signs
to this file, once the batch is committed, and before it appends again it checks the stored
tree against the checkpoint in the file. ``custody-audit verify-log`` checks the file too,
beside any checkpoint an auditor kept (``--checkpoint FILE``).

A crash between the commit and the write leaves the file one checkpoint behind, which is
still a checkpoint of the same log. A database restored from a backup older than the file is
refused as a rewritten log: restore the missing entries, or (knowingly) move the file away.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from custody_common.durable import replace_file
from custody_common.numbers import is_decimal

ANCHOR_FILE = "log-checkpoint.txt"
MAX_NOTE = 64 * 1024
"""A checkpoint note is a few hundred bytes; anything far larger is no checkpoint."""


def read_note(path: Path) -> str | None:
    """The note kept at ``path``, or None when there is none yet. Raises ValueError when the
    file holds something that cannot be a note (too large, or not UTF-8)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_NOTE + 1)
    except FileNotFoundError:
        return None
    if len(data) > MAX_NOTE:
        raise ValueError(f"{path} holds over {MAX_NOTE} bytes: it is no checkpoint")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text: it is no checkpoint") from None


def keep_note(path: Path, note: str, size: int) -> None:
    """Keep ``note``, the checkpoint of ``size`` entries, at ``path``, durably (see
    custody_common.durable), unless the note there is of that size or larger: a process that
    lost the right to sequence while it wrote never puts an older checkpoint back. Processes
    sharing the file take turns (a lock on its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        try:
            current = read_note(path)
        except ValueError:
            current = None  # a damaged file is replaced by a good one
        if current is not None and _size_of(current) >= size:
            return
        replace_file(path, note.encode(), mode=0o644)
    finally:
        os.close(folder)  # releases the lock


def _size_of(note: str) -> int:
    """The size a checkpoint note states (its second line), or -1."""
    lines = note.split("\n")
    return int(lines[1]) if len(lines) > 1 and is_decimal(lines[1]) else -1
