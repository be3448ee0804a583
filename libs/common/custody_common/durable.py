"""Making a new or renamed file survive a power cut: its data is fsynced before the rename,
and the folder after it, since the rename itself lives in the folder."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_folder(folder: Path) -> None:
    """Make the entries of ``folder`` (names created, renamed or removed in it) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
