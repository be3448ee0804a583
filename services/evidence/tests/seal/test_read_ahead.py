"""Parts read back while their upload was still going up: the seal continues from them, unless
the store no longer holds them unchanged, and announcements it cannot use change nothing
(SQLite + a local folder, PostgreSQL + Ceph RGW)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import Counter
from collections.abc import Iterator

import pytest

from custody_common.crypto.stream import SEGMENT
from custody_common.keys import trusted_service_keys
from custody_common.manifest import PartStored, StoredPart
from custody_evidence.items import repository as items
from custody_evidence.seal.ahead import ReadAhead
from custody_evidence.seal.schemas import SealOutcome
from custody_evidence.seal.service import Sealer
from custody_evidence.stored_parts import NOTHING_READ, EarlyRead
from services.evidence.tests.conftest import FIXITY_INTERVAL

SIZES = [SEGMENT + 5, 2 * SEGMENT, SEGMENT // 2]


@pytest.fixture
def ahead(vault) -> Iterator[ReadAhead]:  # type: ignore[no-untyped-def]
    following = ReadAhead(vault)
    yield following
    following.close()


@pytest.fixture
def sealer(vault, settings, ahead) -> Sealer:  # type: ignore[no-untyped-def]
    return Sealer(vault, lambda: trusted_service_keys(settings), FIXITY_INTERVAL, ahead)


@pytest.fixture
def reads(vault, monkeypatch) -> Counter:  # type: ignore[no-untyped-def]
    """How many times each key is read from the store, from now on."""
    counted: Counter = Counter()
    read = vault.store.read

    def counting(key, *args, **kwargs):  # type: ignore[no-untyped-def]
        counted[key] += 1
        return read(key, *args, **kwargs)

    monkeypatch.setattr(vault.store, "read", counting)
    return counted


def announce(ahead: ReadAhead, submission, part: StoredPart) -> None:  # type: ignore[no-untyped-def]
    notice = PartStored(evidence_id=submission.evidence_id, wrapped_dek=submission.statement.wrapped_dek, part=part)
    ahead.announced(notice.model_dump_json().encode())


async def read_ahead(ahead: ReadAhead, submission, count: int) -> None:  # type: ignore[no-untyped-def]
    for _ in range(600):
        if ahead.parts_read(submission.evidence_id) == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{ahead.parts_read(submission.evidence_id)} parts read ahead, not {count}")


async def sha256_sealed(vault, submission) -> str | None:  # type: ignore[no-untyped-def]
    async with vault.sessions() as session:
        item = await items.get(session, submission.evidence_id)
    return item.sha256


async def test_the_seal_reads_only_the_parts_not_read_ahead(vault, sealer, ahead, intake, reads) -> None:
    plaintext = os.urandom(sum(SIZES))
    submission = intake.submit(plaintext, part_sizes=SIZES)
    first, second, last = submission.statement.parts
    announce(ahead, submission, first)
    announce(ahead, submission, second)
    await read_ahead(ahead, submission, 2)
    assert reads[first.key] == reads[second.key] == 1 and reads[last.key] == 0

    assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    assert await sha256_sealed(vault, submission) == hashlib.sha256(plaintext).hexdigest()
    assert [reads[part.key] for part in submission.statement.parts] == [1, 1, 1], "no part was read twice"
    assert ahead.parts_read(submission.evidence_id) == 0, "the seal stopped following the upload"


async def test_a_part_changed_after_it_was_read_ahead_is_read_again_and_rejected(
    vault, sealer, ahead, intake, reads, tamper
) -> None:
    submission = intake.submit(os.urandom(sum(SIZES)), part_sizes=SIZES)
    first, second, _ = submission.statement.parts
    announce(ahead, submission, first)
    announce(ahead, submission, second)
    await read_ahead(ahead, submission, 2)
    # the same size, one byte of a segment flipped: only reading it again can tell
    tamper(vault.store, first.key, lambda data: data[:100] + bytes([data[100] ^ 1]) + data[101:])
    reads.clear()

    assert await sealer.seal(submission.payload) == SealOutcome.REJECTED
    assert reads[first.key] == 1, "the seal read the changed part itself"


async def test_announcements_it_cannot_use_change_nothing(vault, sealer, ahead, intake, reads) -> None:
    plaintext = os.urandom(sum(SIZES))
    submission = intake.submit(plaintext, part_sizes=SIZES)
    first, second, last = submission.statement.parts
    ahead.announced(b"not a part")
    announce(ahead, submission, second)  # an upload not seen from its first part is not followed
    assert ahead.parts_read(submission.evidence_id) == 0
    announce(ahead, submission, first)
    announce(ahead, submission, last)  # out of order: following stops after the first part
    await read_ahead(ahead, submission, 1)

    assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    assert await sha256_sealed(vault, submission) == hashlib.sha256(plaintext).hexdigest()
    assert [reads[part.key] for part in submission.statement.parts] == [1, 1, 1]


async def test_what_was_read_under_another_data_key_is_not_taken(vault, ahead, intake) -> None:
    submission = intake.submit(os.urandom(sum(SIZES)), part_sizes=SIZES)
    announce(ahead, submission, submission.statement.parts[0])
    await read_ahead(ahead, submission, 1)
    other = intake.submit(b"x").statement.wrapped_dek
    assert await ahead.take(submission.evidence_id, other) == NOTHING_READ


def test_an_early_read_holds_only_for_the_same_first_parts_still_stored_alike() -> None:
    from custody_common.objectstore import ObjectInfo

    parts = [StoredPart(index=i, offset=i * 10, size=10, stored_size=50, key=f"evidence/x/parts/{i}") for i in range(3)]
    early = EarlyRead(parts=tuple(parts[:2]), generations=("a", "b"), digest=hashlib.sha256(), size=20)
    stored = [ObjectInfo(key=p.key, size=50, generation=g) for p, g in zip(parts, "abc")]
    assert early.holds_for(parts, stored)
    assert not early.holds_for(parts, [stored[0], ObjectInfo(key=parts[1].key, size=50, generation="B"), stored[2]])
    assert not early.holds_for(parts[:1], stored[:1])
    moved = [parts[0], parts[1].model_copy(update={"key": "evidence/x/parts/other"}), parts[2]]
    assert not early.holds_for(moved, stored)
    assert NOTHING_READ.holds_for(parts, stored)
    untold = EarlyRead(parts=tuple(parts[:1]), generations=(None,), digest=hashlib.sha256(), size=10)
    assert not untold.holds_for(parts, [ObjectInfo(key=p.key, size=50) for p in parts])
