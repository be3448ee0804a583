"""``custody-evidence rebuild-index``: recreate the evidence index from the object store.

Every item keeps its signed manifests in the store beside its parts; the newest version whose
signature verifies under this service's key counts, and one that does not verify is refused
(reported, never indexed). Items the index holds already are brought up to their newest
manifest, which also replaces an index copy that was altered; their status (a damaged item stays damaged) is kept. Rebuilt items are due for a
fixity check at once.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from custody_common.errors import IntegrityError
from custody_common.manifest import EvidenceManifest, parse_statement
from custody_common.objectstore import ObjectNotFound

from custody_evidence.items import repository as items
from custody_evidence.vault import Vault

log = logging.getLogger(__name__)

_MANIFEST_KEY = re.compile(r"^evidence/(?P<id>[0-9a-f-]{36})/manifest/(?P<version>\d{6})\.json$")


@dataclass
class RebuildReport:
    """What a rebuild found and did."""

    items: int = 0
    indexed: int = 0
    """Items the index did not hold, now indexed."""
    updated: int = 0
    """Items the index held with an older manifest, or with its copy of the newest altered."""
    refused: list[str] = field(default_factory=list)
    """Manifest keys whose signature (or content) does not verify."""
    unreadable: list[str] = field(default_factory=list)
    """Items with no manifest that verifies: left out of the index."""


def _manifest_keys(vault: Vault) -> dict[uuid.UUID, list[tuple[int, str]]]:
    found: dict[uuid.UUID, list[tuple[int, str]]] = {}
    for key in vault.store.list("evidence/"):
        match = _MANIFEST_KEY.match(key)
        if match:
            found.setdefault(uuid.UUID(match["id"]), []).append((int(match["version"]), key))
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


async def rebuild_index(vault: Vault) -> RebuildReport:
    """Index every item the store holds a verifying manifest for (see the module docstring)."""
    report = RebuildReport()
    found = await vault.blocking(_manifest_keys, vault)
    report.items = len(found)
    now = datetime.now(UTC)
    for evidence_id in sorted(found):
        newest = await vault.blocking(_newest_verified, vault, evidence_id, found[evidence_id], report)
        if newest is None:
            report.unreadable.append(str(evidence_id))
            continue
        manifest, held = newest
        async with vault.transaction() as session:
            current = await items.get(session, evidence_id, for_update=True)
            if current is None:
                await items.insert_item(
                    session,
                    manifest,
                    legal_hold=held and manifest.status == "sealed",
                    next_fixity_at=now if manifest.status == "sealed" else None,
                )
                report.indexed += 1
            elif current.manifest_version < manifest.version or (
                current.manifest_version == manifest.version and current.manifest_bytes != manifest.to_bytes()
            ):
                # A newer version (a rotation), or the same one altered in the index.
                await items.replace_manifest(session, manifest)
                report.updated += 1
    return report
