"""Finding an item for a caller: an item of a case the caller is not assigned (in the role
that matters) does not exist for them, so its existence is never revealed."""

from __future__ import annotations

import uuid

from custody_common.auth import Principal

from custody_evidence.errors import ItemNotFound
from custody_evidence.items import repository
from custody_evidence.items.schemas import ItemRecord
from custody_evidence.vault import Vault


def not_found(evidence_id: object) -> ItemNotFound:
    """The one answer for an item that is missing or not the caller's to see."""
    return ItemNotFound(f"no evidence item {evidence_id} among the cases you are assigned")


async def find(vault: Vault, evidence_id: str | uuid.UUID) -> ItemRecord | None:
    """The item ``evidence_id`` (any text; a malformed id finds nothing), or None."""
    try:
        wanted = evidence_id if isinstance(evidence_id, uuid.UUID) else uuid.UUID(evidence_id)
    except ValueError:
        return None
    async with vault.sessions() as session:
        return await repository.get(session, wanted)


async def visible_item(vault: Vault, principal: Principal, evidence_id: str, role: str) -> ItemRecord:
    """The item, if the caller is assigned its case as ``role``; ItemNotFound otherwise."""
    item = await find(vault, evidence_id)
    if item is None or not principal.sees_case(item.case, role):
        raise not_found(evidence_id)
    return item
