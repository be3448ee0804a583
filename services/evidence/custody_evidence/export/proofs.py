"""Evidence's own check of what the custody ledger answers, before it goes into a package:
the checkpoint's Ed25519 signature (C2SP signed note) by the key the ledger announces, each
event's RFC 9162 inclusion proof under it, and each item's ``item_seq``/``prev_leaf`` chain.

A package is checked again, offline and against a pinned key, by its recipient; this check
keeps a package the ledger answered wrongly from being made at all.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from custody_common.errors import IntegrityError
from custody_common.merkle import ProofError, leaf_hash, verify_inclusion
from custody_common.numbers import is_decimal

_DASH = "\u2014 "


class LedgerAnswerInvalid(IntegrityError):
    """The ledger's checkpoint, proofs or chain do not verify: no package is made of them."""


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose signature verified: the log ``origin`` had ``size`` leaves under ``root``."""

    origin: str
    size: int
    root: bytes
    note: str


@dataclass(frozen=True)
class VerifiedChain:
    """An item's custody chain whose every event is included under ``checkpoint`` and linked."""

    evidence_id: str
    checkpoint: SignedCheckpoint
    entries: list[dict[str, Any]]
    """Each event's log entry (``event``, ``item_seq``, ``prev_leaf``, ``logged_at``), in order."""
    indices: list[int]


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise LedgerAnswerInvalid(f"{what} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise LedgerAnswerInvalid(f"{what} is not base64") from None


def open_checkpoint(note: str, verifier_key: str) -> SignedCheckpoint:
    """The checkpoint of signed note ``note`` if the verifier key ``NAME+KEYID+BASE64`` signed it."""
    name, key_id_hex, encoded = (verifier_key.strip().split("+", 2) + ["", ""])[:3]
    material = _b64(encoded, "the log's verifier key")
    if len(material) != 33 or material[0] != 1:
        raise LedgerAnswerInvalid("the log's verifier key is not an Ed25519 note key")
    key = Ed25519PublicKey.from_public_bytes(material[1:])
    key_id = hashlib.sha256(name.encode() + b"\n" + material).digest()[:4]
    if key_id.hex() != key_id_hex:
        raise LedgerAnswerInvalid("the log's verifier key id does not match its key")
    body, blank, signatures = note.rpartition("\n\n")
    if not blank:
        raise LedgerAnswerInvalid("the checkpoint has no signature")
    body += "\n"
    signed = False
    for line in signatures.splitlines():
        if not line.startswith(_DASH):
            raise LedgerAnswerInvalid("the checkpoint has a malformed signature line")
        signer, _, stamp = line[len(_DASH) :].partition(" ")
        blob = _b64(stamp, "a checkpoint signature")
        if signer != name or blob[:4] != key_id:
            continue
        try:
            key.verify(blob[4:], body.encode())
        except InvalidSignature:
            raise LedgerAnswerInvalid("the checkpoint's signature does not verify under the log's key") from None
        signed = True
    if not signed:
        raise LedgerAnswerInvalid("the checkpoint is not signed by the log's key")
    lines = body.split("\n")[:-1]
    if len(lines) < 3 or lines[0] != name or not is_decimal(lines[1]):
        raise LedgerAnswerInvalid("the checkpoint's origin or size is malformed")
    root = _b64(lines[2], "the checkpoint's root")
    if len(root) != 32:
        raise LedgerAnswerInvalid("the checkpoint's root is not a SHA-256 hash")
    return SignedCheckpoint(origin=name, size=int(lines[1]), root=root, note=note)


def verify_chain(chain: dict[str, Any], checkpoint: SignedCheckpoint, evidence_id: str) -> VerifiedChain:
    """Check ``chain`` (as ``GET /v1/custody/{id}`` answers it) against ``checkpoint``."""
    if chain.get("checkpoint") != checkpoint.note:
        raise LedgerAnswerInvalid(f"the chain of item {evidence_id} is not proven against the package's checkpoint")
    events = chain.get("events")
    if not isinstance(events, list) or not events:
        raise LedgerAnswerInvalid(f"the chain of item {evidence_id} has no events")
    entries, indices = [], []
    previous: bytes | None = None
    for position, event in enumerate(events, start=1):
        index = event.get("index") if isinstance(event, dict) else None
        if not isinstance(index, int):
            raise LedgerAnswerInvalid(f"event {position} of item {evidence_id} has no log index")
        leaf = _b64(event.get("leaf"), f"the leaf of event {position} of item {evidence_id}")
        proof = [_b64(p, "an inclusion proof hash") for p in event.get("inclusion") or []]
        hashed = leaf_hash(leaf)
        try:
            verify_inclusion(index, checkpoint.size, hashed, proof, checkpoint.root)
        except ProofError as exc:
            raise LedgerAnswerInvalid(
                f"event {position} of item {evidence_id} is not included under the checkpoint: {exc}"
            ) from None
        entry = json.loads(leaf)
        if entry != event.get("entry") or entry.get("event", {}).get("evidence_id") != evidence_id:
            raise LedgerAnswerInvalid(f"event {position} of item {evidence_id} is not the leaf it claims to be")
        if entry.get("item_seq") != position or entry.get("prev_leaf") != (previous.hex() if previous else None):
            raise LedgerAnswerInvalid(f"event {position} of item {evidence_id} breaks the item's chain")
        entries.append(entry)
        indices.append(index)
        previous = hashed
    return VerifiedChain(evidence_id=evidence_id, checkpoint=checkpoint, entries=entries, indices=indices)
