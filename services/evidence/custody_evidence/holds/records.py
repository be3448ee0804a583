"""The object store's signed records of legal holds, so a rebuilt index knows every hold and why.

The index keeps holds in the database (a case's in ``case_holds``, an item's on its row); the
store keeps, beside the evidence, a :class:`HoldRecord` for every change: version 1, 2, … of a
case's (``cases/<case>/legal-hold/``) or an item's (``evidence/<id>/legal-hold/``), signed with
this service's key. The newest version whose signature verifies and whose content matches its
key counts, so a forged, unsigned or replayed record is never believed and never lifts a hold. A
record that places a hold is itself under legal hold until a newer one releases it, so the
newest word on a standing hold cannot be deleted. Blocking (the object store is); async callers
run these in a thread.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from custody_common.errors import IntegrityError
from custody_common.manifest import HoldRecord, case_hold_key, item_hold_key, parse_statement
from custody_common.objectstore import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

_RECORD_NAME = re.compile(r"(?P<version>[0-9]{6})\.json")
MAX_VERSION = 999_999
"""Versions are six digits; a key of another shape under the prefix is no record of ours."""
MAX_RECORD = 64 * 1024
"""A record is a few hundred bytes; a larger object under its key is refused unread."""


def read_record(store: ObjectStore, key: str) -> bytes:
    """The bytes of the small signed record at ``key``; IntegrityError if the object is far
    larger than any record (planted there to exhaust memory), ObjectNotFound if there is none."""
    size = store.stat(key).size
    if size > MAX_RECORD:
        raise IntegrityError(f"{key} is {size} bytes, far more than a record")
    return store.read_all(key)


def record_prefix(case: str, evidence_id: uuid.UUID | None) -> str:
    """Where every version of the hold record of ``case`` (or of its item ``evidence_id``) is stored."""
    if evidence_id is None:
        return f"cases/{case}/legal-hold/"
    return f"evidence/{evidence_id}/legal-hold/"


def record_versions(store: ObjectStore, case: str, evidence_id: uuid.UUID | None) -> list[tuple[int, str]]:
    """The stored versions of a hold record and their keys, oldest first (whether they verify or not)."""
    found = []
    prefix = record_prefix(case, evidence_id)
    for key in store.list(prefix):
        if match := _RECORD_NAME.fullmatch(key.removeprefix(prefix)):
            found.append((int(match["version"]), key))
    return sorted(found)


def newest_record(
    store: ObjectStore,
    public_key: Ed25519PublicKey,
    case: str,
    evidence_id: uuid.UUID | None,
    versions: list[tuple[int, str]] | None = None,
    refused: list[str] | None = None,
) -> HoldRecord | None:
    """The newest hold record of ``case`` (or of its item ``evidence_id``) that verifies, or None
    if there is none. Keys of records that do not verify are logged and added to ``refused``."""
    if versions is None:
        versions = record_versions(store, case, evidence_id)
    for version, key in sorted(versions, reverse=True):
        try:
            record = parse_statement(HoldRecord, read_record(store, key))
            record.verify(public_key)
            if (record.version, record.evidence_id, record.case if evidence_id is None else case) != (
                version,
                evidence_id,
                case,
            ):
                raise IntegrityError(
                    f"{key} records version {record.version} of the hold of case {record.case!r}, "
                    f"item {record.evidence_id}"
                )
        except (IntegrityError, ObjectNotFound) as exc:
            log.error("refusing the legal-hold record %s: %s", key, exc)
            if refused is not None:
                refused.append(key)
            continue
        return record
    return None


def write_record(
    store: ObjectStore,
    signing_key: Ed25519PrivateKey,
    case: str,
    evidence_id: uuid.UUID | None,
    held: bool,
    by: str,
) -> HoldRecord:
    """Store the next version of the hold record of ``case`` (or of its item ``evidence_id``):
    placed (``held``) or released. A placing record goes under legal hold; a releasing one
    lifts the hold from the records before it. The version follows the newest record that
    verifies, past any key taken by an object that does not: something planted under the
    prefix can neither take the next version nor push it out of range."""
    versions = record_versions(store, case, evidence_id)
    newest = newest_record(store, signing_key.public_key(), case, evidence_id, versions)
    taken = {number for number, _ in versions}
    version = newest.version + 1 if newest else 1
    while version in taken:
        version += 1
    if version > MAX_VERSION:
        raise IntegrityError(f"the hold record of {record_prefix(case, evidence_id)} has no free version left")
    record = HoldRecord(
        version=version, case=case, evidence_id=evidence_id, held=held, by=by, at=datetime.now(UTC)
    ).signed(signing_key)
    key = case_hold_key(case, version) if evidence_id is None else item_hold_key(evidence_id, version)
    store.put(key, record.to_bytes())
    if held:
        store.set_legal_hold(key, True)
        return record
    for _, earlier in versions:
        if store.legal_hold(earlier):
            store.set_legal_hold(earlier, False)
    return record
