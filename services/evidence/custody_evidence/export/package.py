"""Writing a package as a stream of zip bytes, never holding a file in memory.

Every entry states its CRC-32 and sizes in its local header, before its bytes, so the archive
reads the same from its start (as a stream reader takes it) as through its central directory
(as ``custody verify`` and most tools do). A stored entry followed by a data descriptor would
not: a stream reader cannot tell where it ends, and takes the first ``PK\\x07\\x08`` in it for its
end (an evidence file that is itself a zip holds several). So a stored entry's bytes are
produced twice, once for their CRC-32 and once to send; a deflated entry (a document, small)
is compressed in memory first. Entries and offsets that call for it get ZIP64 records. Bytes
leave as soon as about :data:`FLUSH_AT` have gathered.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from datetime import datetime

from custody_common.errors import IntegrityError

FLUSH_AT = 1024 * 1024
DEFLATE_AT_MOST = 64 * 1024 * 1024
DEFLATE_RATIO = 200
"""A deflated entry inflates to at most DEFLATE_AT_MOST bytes and DEFLATE_RATIO times its
compressed size, or ``custody verify`` refuses it as a zip bomb (docs/package-format.md §1)."""
ZIP64_AT = 0xFFFFFFFF
"""Sizes and offsets from here on need ZIP64 records (tests lower it to see them cheaply)."""
_ZIP64_COUNT = 0xFFFF
_UTF8_NAMES = 0x800
_UNIX = 3
_FILE_MODE = 0o644 << 16


@dataclass(frozen=True)
class PackageEntry:
    """One file of the package: its path, its bytes (produced when the entry is written, twice
    for an entry stored as it is) and, when known ahead, their size, which they must match."""

    path: str
    content: Callable[[], Iterable[bytes]]
    size: int | None = None
    compress: bool = True
    """Deflate it (in memory): worth it for documents; evidence files are stored as they are."""


def small(path: str, content: bytes) -> PackageEntry:
    """An entry whose bytes are already at hand (manifest, proofs, report)."""
    return PackageEntry(path=path, content=lambda: (content,), size=len(content))


@dataclass(frozen=True)
class _Written:
    name: bytes
    method: int
    crc: int
    compressed: int
    size: int
    offset: int


def zip_stream(entries: Iterable[PackageEntry], modified: datetime) -> Generator[bytes, None, None]:
    """The zip archive of ``entries``, in order, as a stream of byte chunks; every entry is
    dated ``modified``. An exception while an entry's bytes are produced (or bytes that differ
    between its two passes) ends the stream before the central directory, so the archive is
    visibly incomplete."""
    stamp = _dos_time(modified)
    written: list[_Written] = []
    offset = 0
    for entry in entries:
        name = entry.path.encode("utf-8")
        if entry.compress:
            plain = b"".join(entry.content())
            _check_size(entry, len(plain))
            data = _deflated(plain)
            method = 8 if data is not None else 0
            data = plain if data is None else data
            record = _Written(name, method, zlib.crc32(plain), len(data), len(plain), offset)
            chunks: Iterable[bytes] = (data,)
        else:
            crc, size = _crc_and_size(entry.content())
            _check_size(entry, size)
            record = _Written(name, 0, crc, size, size, offset)
            chunks = entry.content()
        header = _local_header(record, stamp)
        yield header
        yield from _sent(chunks, record)
        written.append(record)
        offset += len(header) + record.compressed
    yield _central_directory(written, stamp, offset)


def _deflated(plain: bytes) -> bytes | None:
    """``plain`` deflated, or None where a verifier would take it for a zip bomb (over
    DEFLATE_AT_MOST, or shrunk more than DEFLATE_RATIO times): such an entry is stored."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = compressor.compress(plain) + compressor.flush()
    if len(plain) > DEFLATE_AT_MOST or len(plain) > DEFLATE_RATIO * max(len(data), 1):
        return None
    return data


def _crc_and_size(chunks: Iterable[bytes]) -> tuple[int, int]:
    crc = size = 0
    for chunk in chunks:
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)
    return crc, size


def _check_size(entry: PackageEntry, size: int) -> None:
    if entry.size is not None and size != entry.size:
        raise IntegrityError(f"{entry.path} holds {size} bytes, not the {entry.size} it was declared with")


def _sent(chunks: Iterable[bytes], record: _Written) -> Iterable[bytes]:
    """``chunks`` gathered into pieces of about FLUSH_AT; raises IntegrityError, after the last,
    unless they are the bytes the local header described."""
    crc = sent = 0
    pending: list[bytes] = []
    held = 0
    for chunk in chunks:
        crc = zlib.crc32(chunk, crc) if record.method == 0 else crc
        sent += len(chunk)
        pending.append(chunk)
        held += len(chunk)
        if held >= FLUSH_AT:
            yield b"".join(pending)
            pending, held = [], 0
    if sent != record.compressed or (record.method == 0 and crc != record.crc):
        raise IntegrityError(f"{record.name.decode()} changed between the pass that took its CRC-32 and the one that sent it")
    if pending:
        yield b"".join(pending)


def _dos_time(moment: datetime) -> tuple[int, int]:
    time = (moment.hour << 11) | (moment.minute << 5) | (moment.second // 2)
    date = ((moment.year - 1980) << 9) | (moment.month << 5) | moment.day
    return time, date


def _needs_zip64(record: _Written) -> bool:
    return record.size >= ZIP64_AT or record.compressed >= ZIP64_AT


def _local_header(record: _Written, stamp: tuple[int, int]) -> bytes:
    if _needs_zip64(record):
        sizes, extra, version = (0xFFFFFFFF, 0xFFFFFFFF), struct.pack("<HHQQ", 1, 16, record.size, record.compressed), 45
    else:
        sizes, extra, version = (record.compressed, record.size), b"", 20
    return (
        struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            version,
            _UTF8_NAMES,
            record.method,
            *stamp,
            record.crc,
            *sizes,
            len(record.name),
            len(extra),
        )
        + record.name
        + extra
    )


def _central_directory(written: list[_Written], stamp: tuple[int, int], start: int) -> bytes:
    directory = bytearray()
    for record in written:
        zip64: list[int] = []
        size, compressed, offset = record.size, record.compressed, record.offset
        if _needs_zip64(record):
            zip64 += [record.size, record.compressed]
            size = compressed = 0xFFFFFFFF
        if record.offset >= ZIP64_AT:
            zip64.append(record.offset)
            offset = 0xFFFFFFFF
        extra = struct.pack(f"<HH{len(zip64)}Q", 1, 8 * len(zip64), *zip64) if zip64 else b""
        version = 45 if zip64 else 20
        directory += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            (_UNIX << 8) | version,
            version,
            _UTF8_NAMES,
            record.method,
            *stamp,
            record.crc,
            compressed,
            size,
            len(record.name),
            len(extra),
            0,
            0,
            0,
            _FILE_MODE,
            offset,
        )
        directory += record.name + extra
    end = start + len(directory)
    count = len(written)
    if count >= _ZIP64_COUNT or len(directory) >= ZIP64_AT or start >= ZIP64_AT:
        directory += struct.pack(
            "<4sQHHIIQQQQ", b"PK\x06\x06", 44, (_UNIX << 8) | 45, 45, 0, 0, count, count, len(directory), start
        )
        directory += struct.pack("<4sIQI", b"PK\x06\x07", 0, end, 1)
        count, length, start = 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF
    else:
        length = len(directory)
    directory += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, length, start, 0)
    return bytes(directory)
