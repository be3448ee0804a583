"""Making a new or replaced file survive a power cut: its data is fsynced before the rename,
and the folder after it, since the rename itself lives in the folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_folder(folder: Path) -> None:
    """Make the entries of ``folder`` (names created, renamed or removed in it) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Put ``content`` at ``path`` in place of what was there, all or nothing and durably: a
    new file of its own is written and fsynced, renamed over ``path``, and the folder fsynced.
    A crash leaves the old content or the new, never a mixture."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
