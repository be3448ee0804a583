"""The read side over a stored log of some size: every proof it builds from stored subtree
hashes verifies against the root of that size, and a proof costs one query for its hashes."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import event

from custody_audit.errors import NotFound, OutOfRange
from custody_audit.log import repository
from custody_audit.log.checkpoint import verify_checkpoint
from custody_audit.log.merkle import leaf_hash, tree_hash, verify_consistency, verify_inclusion
from custody_audit.log.service import CustodyLog
from custody_common.auth import Principal
from custody_common.crypto.signing import load_or_create_private_key
from custody_common.ids import uuid7


@pytest.fixture
def custody_log(settings, engine) -> CustodyLog:  # type: ignore[no-untyped-def]
    key = load_or_create_private_key(settings.key_folder / "audit-log.key")
    return CustodyLog(engine, settings.log_origin, key.public_key())


class _Statements:
    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.count = 0
        self._engine = engine.sync_engine

    def _count(self, *_args) -> None:  # type: ignore[no-untyped-def]
        self.count += 1

    def __enter__(self) -> _Statements:
        event.listen(self._engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *_exc) -> None:  # type: ignore[no-untyped-def]
        event.remove(self._engine, "before_cursor_execute", self._count)


async def test_proofs_from_stored_hashes_verify_at_every_checkpoint(
    settings, engine, append, signed, incoming, custody_log
) -> None:
    rng = random.Random(6962)
    items = [str(uuid7()) for _ in range(40)]
    sizes = []
    while not sizes or sizes[-1] < 1100:
        batch = rng.choice([1, 2, 7, 64, 255, 256, 300])
        outcome = await append(
            *(incoming(signed("intake", evidence_id=rng.choice(items), case="C")) for _ in range(batch))
        )
        sizes.append(outcome.checkpoint.size)
    async with engine.connect() as conn:
        all_leaves = [leaf async for leaf in repository.stream_leaves(conn)]
        stored = await repository.all_checkpoints(conn)
    hashes = [leaf_hash(s.leaf) for s in all_leaves]
    assert [c.size for c in stored] == sizes
    for checkpoint in stored:
        assert verify_checkpoint(checkpoint.note, custody_log.verifier_key).root == tree_hash(hashes[: checkpoint.size])

    with _Statements(engine) as statements:
        await custody_log.inclusion(0, sizes[-1])
    assert statements.count == 2  # the latest checkpoint, then every hash the proof needs
    for _ in range(60):
        size = rng.choice(sizes + [rng.randint(1, sizes[-1])])
        index = rng.randrange(size)
        with _Statements(engine) as statements:
            proof = await custody_log.inclusion(index, size)
        assert statements.count == 1  # within a size seen before: the hashes alone
        verify_inclusion(index, size, hashes[index], proof, tree_hash(hashes[:size]))
        first = rng.randint(1, size)
        with _Statements(engine) as statements:
            proof = await custody_log.consistency(first, size)
        assert statements.count == (1 if first < size else 0)
        verify_consistency(first, size, tree_hash(hashes[:first]), tree_hash(hashes[:size]), proof)

    # The log grew since: a proof at the new size reads the latest checkpoint again.
    grown = (await append(incoming(signed("intake", evidence_id=items[0], case="C")))).checkpoint.size
    with _Statements(engine) as statements:
        await custody_log.inclusion(grown - 1, grown)
    assert statements.count == 2
    with pytest.raises(OutOfRange):
        await custody_log.inclusion(0, grown + 1)
    hashes.append(leaf_hash((await custody_log.entries(grown - 1, 1))[0][1]))
    sizes.append(grown)

    auditor = Principal("aud", frozenset({"auditor"}), frozenset())
    chain = await custody_log.custody_chain(items[0], auditor)
    assert chain.checkpoint.size == sizes[-1]
    assert [e.entry["item_seq"] for e in chain.events] == list(range(1, len(chain.events) + 1))
    for link in chain.events:
        verify_inclusion(link.index, chain.checkpoint.size, leaf_hash(link.leaf), link.inclusion, chain.checkpoint.root)


async def test_an_empty_log_has_nothing_to_serve(custody_log) -> None:
    with pytest.raises(NotFound, match="no checkpoint yet"):
        await custody_log.latest_checkpoint()
    with pytest.raises(NotFound):
        await custody_log.entries(0, 10)


async def test_ranges_are_checked(custody_log, append, signed, incoming) -> None:
    item = str(uuid7())
    await append(incoming(signed("intake", evidence_id=item)), incoming(signed("intake")))
    auditor = Principal("aud", frozenset({"auditor"}), frozenset())
    for call in (
        custody_log.custody_chain(item, auditor, 0),
        custody_log.custody_chain(item, auditor, 3),
        custody_log.custody_chain(item, auditor, 2**70),
        custody_log.entries(0, 1001),
        custody_log.entries(2, 1),
        custody_log.inclusion(2, 2),
        custody_log.inclusion(0, 3),
        custody_log.consistency(0, 2),
        custody_log.consistency(2, 3),
    ):
        with pytest.raises(OutOfRange):
            await call
    assert len(await custody_log.entries(0, 1000)) == 2
    assert len((await custody_log.custody_chain(item, auditor, 2)).events) == 1
