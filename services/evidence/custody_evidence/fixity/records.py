"""The object store's signed record that a sealed item was found damaged
(``evidence/<id>/damaged.json``), so a rebuilt index keeps it damaged: damage is never undone.
Blocking (the object store is); async callers run these in a thread."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from custody_common.errors import IntegrityError
from custody_common.manifest import DamageRecord, damage_key, parse_statement
from custody_common.objectstore import ObjectNotFound, ObjectStore

from custody_evidence.holds.records import read_record

log = logging.getLogger(__name__)


def write_damage(
    store: ObjectStore, signing_key: Ed25519PrivateKey, evidence_id: uuid.UUID, reason: str, at: datetime
) -> None:
    """Store the signed record that ``evidence_id`` was found damaged at ``at`` for ``reason``,
    under legal hold: damage is never undone, so its record is never removed. Raises
    ObjectLocked when a record is there already."""
    record = DamageRecord(evidence_id=evidence_id, reason=reason, damaged_at=at).signed(signing_key)
    store.put(damage_key(evidence_id), record.to_bytes())
    store.set_legal_hold(damage_key(evidence_id), True)


def read_damage(
    store: ObjectStore, public_key: Ed25519PublicKey, evidence_id: uuid.UUID, refused: list[str] | None = None
) -> DamageRecord | None:
    """The record that ``evidence_id`` was found damaged, or None if there is none that verifies
    (its key is then logged and added to ``refused``)."""
    key = damage_key(evidence_id)
    try:
        record = parse_statement(DamageRecord, read_record(store, key))
        record.verify(public_key)
        if record.evidence_id != evidence_id:
            raise IntegrityError(f"{key} records damage to item {record.evidence_id}")
    except ObjectNotFound:
        return None
    except IntegrityError as exc:
        log.error("refusing the damage record %s: %s", key, exc)
        if refused is not None:
            refused.append(key)
        return None
    return record
