"""Writing key files once, safely, when several processes start at the same moment."""

from __future__ import annotations

import os
from pathlib import Path

from custody_common.durable import fsync_folder


def write_new_file(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Create ``path`` with ``content`` atomically; if another process created it first, keep
    theirs (so concurrent first starts agree on one key)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    fsync_folder(path.parent)
