"""Offline checks of what the custody ledger returns, trusting nothing but a pinned log key.

- Merkle inclusion proofs per RFC 9162 §2.1.3.2 with RFC 6962 hashing (``custody_common.merkle``).
- Checkpoints as C2SP signed notes: the body ``ORIGIN\\nSIZE\\nBASE64(ROOT)\\n[extensions]``,
  a blank line, then signature lines ``— NAME BASE64(KEYID4 ‖ SIG)``; Ed25519 key ids are
  ``SHA-256(NAME ‖ 0x0A ‖ 0x01 ‖ PUBKEY)[:4]``; verifier keys read ``NAME+KEYIDHEX+BASE64(0x01 ‖ PUBKEY)``.
- An item's custody chain: every leaf included under the signed checkpoint, every entry the
  leaf it claims to be, ``item_seq`` counting 1, 2, 3, … and each ``prev_leaf`` the leaf hash
  of the entry before it. This proves no event is missing up to the last one shown; it cannot
  prove the answer withholds no newer event (one the log may hold, even below the checkpoint).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from custody_client.errors import VerificationFailed
from custody_common.merkle import HASH_SIZE, ProofError, leaf_hash, verify_inclusion

ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,19})$")


# --- signed notes and checkpoints ---------------------------------------------------------


def ed25519_key_id(name: str, public_key: bytes) -> bytes:
    """The C2SP key id of an Ed25519 note key: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


def _is_utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8: a string from JSON (a ``\\ud800`` escape) or from the
    command line (bytes that are not UTF-8) may hold lone surrogates, which do not."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class LogKey:
    """A pinned verifier key of the custody log (C2SP note verifier key)."""

    name: str
    """The key's name: the log's origin."""
    key_id: bytes
    public_key: bytes
    """The 32 raw bytes of the Ed25519 public key."""

    @classmethod
    def parse(cls, text: str) -> LogKey:
        """Read ``NAME+KEYIDHEX+BASE64(0x01 ‖ PUBKEY)``; raises VerificationFailed if malformed."""
        if not _is_utf8(text):
            raise VerificationFailed("the log key is not text (it holds bytes that are not UTF-8)")
        parts = text.strip().split("+", 2)  # the base64 key itself may hold "+"
        if len(parts) != 3 or not parts[0]:
            raise VerificationFailed("the log key must read ORIGIN+KEYID+BASE64 (as `GET /v1/log/key` gives it)")
        name, key_id_hex, encoded = parts
        if any(c.isspace() or c == "+" for c in name):
            raise VerificationFailed("the log key's name must not contain spaces or '+'")
        try:
            key_id = bytes.fromhex(key_id_hex)
            raw = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise VerificationFailed("the log key's id or key is not hex/base64") from None
        if len(key_id) != 4:
            raise VerificationFailed("the log key's id must be 8 hex digits")
        if len(raw) != 33 or raw[0] != ED25519:
            raise VerificationFailed("the log key is not an Ed25519 note key")
        if ed25519_key_id(name, raw[1:]) != key_id:
            raise VerificationFailed("the log key's id does not match its name and key: it was altered")
        return cls(name=name, key_id=key_id, public_key=raw[1:])

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([ED25519]) + self.public_key).decode()}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint whose signature by the pinned log key verified."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    @property
    def root_b64(self) -> str:
        """The root hash in base64, as the note spells it."""
        return base64.b64encode(self.root).decode()


def open_checkpoint(note: str, key: LogKey) -> Checkpoint:
    """The checkpoint in signed note ``note``, after checking it is signed by ``key`` and names
    ``key``'s origin; raises VerificationFailed naming what is wrong."""
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise VerificationFailed("checkpoint note holds control characters")
    if not _is_utf8(note):
        raise VerificationFailed("checkpoint note is not text (it holds a lone UTF-16 surrogate)")
    body, sep, signature_block = note.rpartition("\n\n")
    if not sep:
        raise VerificationFailed("checkpoint note has no signature block (no blank line)")
    body += "\n"
    signatures = signature_block.split("\n")
    if signatures and signatures[-1] == "":
        signatures.pop()
    if not signatures:
        raise VerificationFailed("checkpoint note has no signature lines")
    found = False
    for line in signatures:
        if not line.startswith(SIGNATURE_PREFIX):
            raise VerificationFailed(f"checkpoint note has a malformed signature line: {line[:60]!r}")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise VerificationFailed("checkpoint note has a signature that is not base64") from None
        if len(blob) < 5:
            raise VerificationFailed("checkpoint note has a signature too short to hold a key id")
        if name != key.name or blob[:4] != key.key_id:
            continue  # a cosigner or another key: not ours to judge
        if not key.verify(body.encode(), blob[4:]):
            raise VerificationFailed(f"checkpoint signature by {key.name} does not verify: the checkpoint was altered")
        found = True
    if not found:
        raise VerificationFailed(f"checkpoint is not signed by the pinned log key {key.name}+{key.key_id.hex()}")
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise VerificationFailed("checkpoint body needs origin, size and root lines")
    origin, size_text, root_text, *extensions = lines
    if origin != key.name:
        raise VerificationFailed(f"checkpoint is for log {origin!r}, not the pinned {key.name!r}")
    if not _DECIMAL.match(size_text):
        raise VerificationFailed(f"checkpoint size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (ValueError, binascii.Error):
        raise VerificationFailed("checkpoint root is not base64") from None
    if len(root) != HASH_SIZE:
        raise VerificationFailed(f"checkpoint root has {len(root)} bytes instead of {HASH_SIZE}")
    return Checkpoint(origin=origin, size=int(size_text), root=root, extensions=tuple(extensions))


# --- custody chains ---------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    """What a verified custody chain established."""

    evidence_id: str
    checkpoint: Checkpoint
    key: LogKey
    events: int
    """Custody events of the item, each included under the checkpoint, numbered 1…events: none
    is missing up to the last one shown, but newer ones may exist."""
    last_leaf_hash: str
    """Hex leaf hash of the newest event shown; compare with a later chain to see it only grew."""


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationFailed(f"{what} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise VerificationFailed(f"{what} is not base64") from None


def verify_chain(custody: Mapping[str, Any], key: LogKey, evidence_id: str) -> ChainReport:
    """Check a custody chain as ``GET /v1/custody/{evidence_id}`` returns it, against the pinned
    log ``key``: the checkpoint's signature, each event's inclusion under it, that each entry is
    its leaf and concerns ``evidence_id``, and the item's ``item_seq``/``prev_leaf`` chain: the
    events shown are the item's first ones, none missing up to the last shown (whether newer ones
    were withheld, it cannot tell). Raises VerificationFailed naming the first failure."""
    if not isinstance(custody, Mapping):
        raise VerificationFailed("the custody chain is not a JSON object")
    note = custody.get("checkpoint")
    if not isinstance(note, str):
        raise VerificationFailed("the custody chain has no checkpoint")
    checkpoint = open_checkpoint(note, key)
    events = custody.get("events")
    if not isinstance(events, list) or not events:
        raise VerificationFailed(f"the custody chain of {evidence_id} has no events")
    previous_leaf: bytes | None = None
    previous_index = -1
    for position, event in enumerate(events, start=1):
        where = f"custody event {position}"
        if not isinstance(event, Mapping):
            raise VerificationFailed(f"{where} is not an object")
        index = event.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise VerificationFailed(f"{where} has no log index")
        where = f"custody event {position} (log index {index})"
        leaf = _b64(event.get("leaf"), f"{where}: leaf")
        proof_values = event.get("inclusion")
        if not isinstance(proof_values, list):
            raise VerificationFailed(f"{where} has no inclusion proof")
        proof = [_b64(p, f"{where}: inclusion proof") for p in proof_values]
        hashed = leaf_hash(leaf)
        try:
            verify_inclusion(index, checkpoint.size, hashed, proof, checkpoint.root)
        except ProofError as failure:
            raise VerificationFailed(f"{where}: {failure}; the log or this answer was altered") from None
        try:
            entry = json.loads(leaf)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            raise VerificationFailed(f"{where}: the leaf is not JSON") from None
        if entry != event.get("entry"):
            raise VerificationFailed(f"{where}: the entry shown differs from the leaf in the log")
        if not isinstance(entry, dict) or not isinstance(entry.get("event"), dict):
            raise VerificationFailed(f"{where}: the leaf holds no custody event")
        if entry["event"].get("evidence_id") != evidence_id:
            raise VerificationFailed(f"{where} is about item {entry['event'].get('evidence_id')}, not {evidence_id}")
        if index <= previous_index:
            raise VerificationFailed(f"{where} is out of log order (after index {previous_index})")
        if entry.get("item_seq") != position or isinstance(entry.get("item_seq"), bool):
            raise VerificationFailed(
                f"{where} has item_seq {entry.get('item_seq')!r} where {position} was due: an event is missing"
            )
        expected_prev = previous_leaf.hex() if previous_leaf is not None else None
        if entry.get("prev_leaf") != expected_prev:
            raise VerificationFailed(
                f"{where} links to previous leaf {entry.get('prev_leaf')!r}, not {expected_prev!r}: the chain is broken"
            )
        previous_leaf, previous_index = hashed, index
    assert previous_leaf is not None
    return ChainReport(
        evidence_id=evidence_id,
        checkpoint=checkpoint,
        key=key,
        events=len(events),
        last_leaf_hash=previous_leaf.hex(),
    )
