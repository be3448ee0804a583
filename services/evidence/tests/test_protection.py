"""Protecting an item's objects when its retention is already over: the hold is placed."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from custody_evidence.items import repository as items
from custody_evidence.protection import item_keys, protect
from custody_evidence.seal.schemas import SealOutcome


async def test_an_item_whose_retention_is_over_can_still_be_held(vault, sealer, intake) -> None:
    submission = intake.submit(os.urandom(1000))
    assert await sealer.seal(submission.payload) == SealOutcome.SEALED
    async with vault.sessions() as session:
        manifest = vault.manifest_of(await items.get(session, submission.evidence_id))
    over = manifest.model_copy(update={"retain_until": datetime.now(UTC) - timedelta(days=1)})

    protect(vault.store, over, held=True)  # a lock until yesterday is refused by any store

    assert all(vault.store.legal_hold(key) for key in item_keys(vault.store, manifest))
