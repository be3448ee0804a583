"""Keeping an item's objects unalterable: WORM retention of sealed items, legal holds on
rejected and held ones. Blocking (the object store is); async callers run it in a thread."""

from __future__ import annotations

from datetime import UTC, datetime

from custody_common.manifest import EvidenceManifest
from custody_common.objectstore import ObjectNotFound, ObjectStore


def manifest_prefix(manifest: EvidenceManifest) -> str:
    """Where every version of an item's manifest is stored."""
    return f"evidence/{manifest.evidence_id}/manifest/"


def item_keys(store: ObjectStore, manifest: EvidenceManifest) -> list[str]:
    """Every object of the item: its parts and every version of its manifest."""
    return [part.key for part in manifest.parts] + list(store.list(manifest_prefix(manifest)))


def protect(
    store: ObjectStore, manifest: EvidenceManifest, keys: list[str] | None = None, *, held: bool = False
) -> None:
    """Lock a sealed item's objects until its ``retain_until`` (extending, never shortening);
    put a rejected item, or one ``held``, under legal hold. A retention already over is passed
    over (a hold is then the only protection left, and it is placed). Missing objects (a
    rejected item's lost parts) are passed over: there is nothing left to protect."""
    until = manifest.retain_until if manifest.status == "sealed" else None
    if until is not None and until <= datetime.now(UTC):
        until = None
    for key in keys if keys is not None else item_keys(store, manifest):
        try:
            if until is not None:
                store.lock(key, until)
            if held or manifest.status == "rejected":
                store.set_legal_hold(key, True)
        except ObjectNotFound:
            if manifest.status == "sealed":
                raise


def release_hold(store: ObjectStore, manifest: EvidenceManifest) -> None:
    """Lift the legal hold from a sealed item's objects (retention still applies)."""
    if manifest.status == "rejected":
        raise ValueError("a rejected item stays under legal hold")
    for key in item_keys(store, manifest):
        store.set_legal_hold(key, False)
