"""``custody-evidence rebuild-index``: recreate the evidence index from the object store.

Every item keeps its signed manifests in the store beside its parts; the newest version whose
signature verifies under this service's key counts, and one that does not verify is refused
(reported, never indexed). Items the index holds already are brought up to their newest
manifest, which also replaces an index copy that was altered; their status (a damaged item stays damaged) is kept. Rebuilt items are due for a
fixity check at once.

Legal holds and damage come back from the store's signed records beside the evidence
(:mod:`custody_evidence.holds.records`, :mod:`custody_evidence.fixity.records`), judged the same
way: a case whose newest record holds it is held again, so items sealed into it later are held
too; an item is held by itself only where its own newest record says so. A case or item with
records none of which verifies (overwritten, planted) is held, to be safe, and reported. An
item without records of its own (a vault from before they were kept) is held by itself if its
objects are on legal hold and its case is not held. A rebuild only ever adds holds and damage the index lacks, never
lifts one, and places on the objects any hold they lack.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from custody_common.errors import IntegrityError
from custody_common.manifest import EvidenceManifest, parse_statement
from custody_common.objectstore import ObjectNotFound, ObjectStoreError

from custody_evidence.fixity.records import read_damage
from custody_evidence.holds import records
from custody_evidence.holds import repository as holds
from custody_evidence.items import repository as items
from custody_evidence.protection import protect
from custody_evidence.vault import Vault

log = logging.getLogger(__name__)

UNVERIFIED = "rebuild-index: no record verifies"
"""Who set a hold restored because records exist of it but none verifies."""

_MANIFEST_KEY = re.compile(r"evidence/(?P<id>[0-9a-f-]{36})/manifest/(?P<version>[0-9]{6})\.json")
_ITEM_HOLD_KEY = re.compile(r"evidence/(?P<id>[0-9a-f-]{36})/legal-hold/(?P<version>[0-9]{6})\.json")
_DAMAGE_KEY = re.compile(r"evidence/(?P<id>[0-9a-f-]{36})/damaged\.json")
_CASE_HOLD_KEY = re.compile(r"cases/(?P<case>[^/]+)/legal-hold/(?P<version>[0-9]{6})\.json")


@dataclass
class RebuildReport:
    """What a rebuild found and did."""

    items: int = 0
    indexed: int = 0
    """Items the index did not hold, now indexed."""
    updated: int = 0
    """Items the index held with an older manifest, or with its copy of the newest altered."""
    case_holds: int = 0
    """Case holds the index did not hold, restored from the store's records."""
    item_holds: int = 0
    """Items held by themselves that the index did not show held (newly indexed ones included)."""
    damaged: int = 0
    """Items the store records as damaged that the index did not show damaged."""
    refused: list[str] = field(default_factory=list)
    """Keys of manifests and of hold and damage records whose signature (or content) does not verify."""
    unreadable: list[str] = field(default_factory=list)
    """Items with no manifest that verifies: left out of the index."""
    unprotected: list[str] = field(default_factory=list)
    """Held items whose objects could not be put under legal hold (indexed held all the same)."""


@dataclass
class _Stored:
    """The keys of the store's manifests and records, by item and by case."""

    manifests: dict[uuid.UUID, list[tuple[int, str]]] = field(default_factory=dict)
    item_holds: dict[uuid.UUID, list[tuple[int, str]]] = field(default_factory=dict)
    damaged: set[uuid.UUID] = field(default_factory=set)
    case_holds: dict[str, list[tuple[int, str]]] = field(default_factory=dict)


def _stored_keys(vault: Vault) -> _Stored:
    found = _Stored()
    for key in vault.store.list("evidence/"):
        if match := _MANIFEST_KEY.fullmatch(key) or _ITEM_HOLD_KEY.fullmatch(key) or _DAMAGE_KEY.fullmatch(key):
            try:
                evidence_id = uuid.UUID(match["id"])
            except ValueError:
                log.warning("rebuild-index: ignoring %s: %s is no evidence id", key, match["id"])
                continue
            if match.re is _DAMAGE_KEY:
                found.damaged.add(evidence_id)
            else:
                versions = found.manifests if match.re is _MANIFEST_KEY else found.item_holds
                versions.setdefault(evidence_id, []).append((int(match["version"]), key))
    for key in vault.store.list("cases/"):
        if match := _CASE_HOLD_KEY.fullmatch(key):
            found.case_holds.setdefault(match["case"], []).append((int(match["version"]), key))
    return found


def _newest_verified(
    vault: Vault, evidence_id: uuid.UUID, versions: list[tuple[int, str]], report: RebuildReport
) -> tuple[EvidenceManifest, bool] | None:
    """The newest manifest of the item that verifies, and whether its objects are on legal hold."""
    for version, key in sorted(versions, reverse=True):
        try:
            manifest = parse_statement(EvidenceManifest, vault.store.read_all(key))
            manifest.verify(vault.public_key)
            if manifest.evidence_id != evidence_id or manifest.version != version:
                raise IntegrityError(f"{key} describes item {manifest.evidence_id} version {manifest.version}")
        except (IntegrityError, ObjectNotFound) as exc:
            log.error("rebuild-index: refusing %s: %s", key, exc)
            report.refused.append(key)
            continue
        try:
            held = vault.store.legal_hold(key)
        except ObjectNotFound:
            held = False
        return manifest, held
    return None


async def _restore_case_holds(vault: Vault, stored: _Stored, report: RebuildReport) -> set[str]:
    """Hold again every case whose newest record holds it, or whose records all fail to
    verify (held to be safe: a record overwritten or planted must not lift a hold); returns
    every case held now."""
    for case, versions in sorted(stored.case_holds.items()):
        record = await vault.blocking(
            records.newest_record, vault.store, vault.public_key, case, None, versions, report.refused
        )
        if record is not None and not record.held:
            continue
        by, at = (record.by, record.at) if record else (UNVERIFIED, datetime.now(UTC))
        async with vault.case_lock(case), vault.transaction() as session:
            if await holds.hold_case(session, case, by, at):
                report.case_holds += 1
    async with vault.sessions() as session:
        return await holds.held_cases(session)


async def rebuild_index(vault: Vault) -> RebuildReport:
    """Index every item the store holds a verifying manifest for (see the module docstring)."""
    report = RebuildReport()
    stored = await vault.blocking(_stored_keys, vault)
    report.items = len(stored.manifests)
    held_cases = await _restore_case_holds(vault, stored, report)
    now = datetime.now(UTC)
    for evidence_id in sorted(stored.manifests):
        newest = await vault.blocking(_newest_verified, vault, evidence_id, stored.manifests[evidence_id], report)
        if newest is None:
            report.unreadable.append(str(evidence_id))
            continue
        manifest, objects_held = newest
        sealed = manifest.status == "sealed"
        hold = await vault.blocking(
            records.newest_record,
            vault.store,
            vault.public_key,
            manifest.case,
            evidence_id,
            stored.item_holds.get(evidence_id, []),
            report.refused,
        )
        damage = None
        if evidence_id in stored.damaged:
            damage = await vault.blocking(read_damage, vault.store, vault.public_key, evidence_id, report.refused)
        if hold is not None:
            item_hold = sealed and hold.held
        elif evidence_id in stored.item_holds:  # records, none of which verifies: held to be safe
            item_hold = sealed
        else:  # no record of its own: objects held beyond its case's hold are held by the item itself
            item_hold = sealed and objects_held and manifest.case not in held_cases
        if sealed and (item_hold or manifest.case in held_cases) and not objects_held:
            try:
                await vault.blocking(protect, vault.store, manifest, held=True)
            except ObjectStoreError as exc:
                log.error("rebuild-index: cannot put item %s under legal hold: %s", evidence_id, exc)
                report.unprotected.append(str(evidence_id))
        async with vault.transaction() as session:
            current = await items.get(session, evidence_id, for_update=True)
            if current is None:
                await items.insert_item(
                    session,
                    manifest,
                    legal_hold=item_hold,
                    next_fixity_at=now if sealed and damage is None else None,
                )
                report.indexed += 1
                report.item_holds += item_hold
            else:
                if current.manifest_version < manifest.version or (
                    current.manifest_version == manifest.version and current.manifest_bytes != manifest.to_bytes()
                ):
                    # A newer version (a rotation), or the same one altered in the index.
                    await items.replace_manifest(session, manifest)
                    report.updated += 1
                if item_hold and not current.legal_hold:
                    await items.set_item_hold(session, evidence_id, True)
                    report.item_holds += 1
            if damage is not None and sealed:
                report.damaged += await items.mark_damaged(session, evidence_id, damage.reason, damage.damaged_at)
    return report
