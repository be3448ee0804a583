"""Writing a package as a stream of zip bytes, never holding a file in memory.

``zipfile`` writes to a sink that cannot seek, so each entry carries a data descriptor after
its bytes; entries whose size calls for it are ZIP64. Bytes leave as soon as about
:data:`FLUSH_AT` have gathered.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from datetime import datetime

FLUSH_AT = 1024 * 1024


@dataclass(frozen=True)
class PackageEntry:
    """One file of the package: its path, its bytes (produced when the entry is written) and,
    when known ahead, their size; an entry of unknown size must stay under 4 GiB (an entry
    of known size gets ZIP64 records when it needs them)."""

    path: str
    content: Callable[[], Iterable[bytes]]
    size: int | None = None
    compress: bool = True
    """Deflate it: worth it for text; evidence files are stored as they are."""


def small(path: str, content: bytes) -> PackageEntry:
    """An entry whose bytes are already at hand (manifest, proofs, report)."""
    return PackageEntry(path=path, content=lambda: (content,), size=len(content))


class _Spool:
    """The sink the zip writer writes to: bytes gather here until they are taken."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self.held = 0

    def write(self, data: bytes) -> int:
        self._pieces.append(bytes(data))
        self.held += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        taken = b"".join(self._pieces)
        self._pieces, self.held = [], 0
        return taken


def zip_stream(entries: Iterable[PackageEntry], modified: datetime) -> Generator[bytes, None, None]:
    """The zip archive of ``entries``, in order, as a stream of byte chunks; every entry is
    dated ``modified``. An exception while an entry's bytes are produced ends the stream
    before the central directory, so the archive is visibly incomplete."""
    spool = _Spool()
    stamp = (modified.year, modified.month, modified.day, modified.hour, modified.minute, modified.second)
    with zipfile.ZipFile(spool, mode="w", allowZip64=True) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.path, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED if entry.compress else zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            if entry.size is not None:
                info.file_size = entry.size
            with archive.open(info, mode="w") as target:
                for chunk in entry.content():
                    target.write(chunk)
                    if spool.held >= FLUSH_AT:
                        yield spool.take()
            if spool.held:
                yield spool.take()
    if spool.held:
        yield spool.take()
