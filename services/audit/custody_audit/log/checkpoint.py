"""Checkpoints: the log's signed statement of its size and root, as a C2SP signed note.

A checkpoint reads::

    custody.example/log
    42
    <base64 root>

    — custody.example/log <base64(key id ‖ Ed25519 signature)>

The signature covers the body (the first three lines with their newlines). The key id is
SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]; the verifier key is published as
``name+<key id hex>+<base64(0x01 ‖ public key)>`` (C2SP note verifier key).
Everything here is pure, so a client can check a checkpoint with nothing but this file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from custody_common.errors import IntegrityError
from custody_common.numbers import is_decimal

ED25519_TYPE = b"\x01"
SIGNATURE_DASH = "\u2014 "
MAX_SIGNATURES = 100


class CheckpointError(IntegrityError):
    """A checkpoint or a verifier key is malformed, or its signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint states: the log ``origin`` had ``size`` leaves with root ``root``."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()
    """Extra body lines after the root, kept as signed (C2SP allows them; we write none)."""

    def body(self) -> str:
        """The signed text of the note."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(f"{line}\n" for line in lines)


@dataclass(frozen=True)
class Verifier:
    """A parsed verifier key: who signs, under which key id, with which Ed25519 key."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte C2SP key id of an Ed25519 key named ``name``."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + _raw(public_key)).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" or not c.isprintable() for c in name):
        raise CheckpointError(f"{name!r} is not a valid key or log name (no spaces, no '+', printable)")


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The C2SP verifier key string ``name+KEYIDHEX+BASE64(0x01 ‖ key)``."""
    _check_name(name)
    encoded = base64.b64encode(ED25519_TYPE + _raw(public_key)).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


def parse_verifier_key(text: str) -> Verifier:
    """A verifier key string back into its parts; raises CheckpointError when malformed or
    when the key id does not match the key."""
    parts = text.strip().split("+", 2)  # the base64 key may hold "+" itself
    if len(parts) != 3:
        raise CheckpointError("a verifier key reads NAME+KEYID+KEY")
    name, id_hex, encoded = parts
    _check_name(name)
    try:
        claimed_id = bytes.fromhex(id_hex)
        material = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        raise CheckpointError("the verifier key's id or key is not valid hex/base64") from None
    if len(id_hex) != 8 or len(material) != 33 or material[:1] != ED25519_TYPE:
        raise CheckpointError("the verifier key is not an Ed25519 note key")
    public_key = Ed25519PublicKey.from_public_bytes(material[1:])
    if key_id(name, public_key) != claimed_id:
        raise CheckpointError("the verifier key's id does not match its key")
    return Verifier(name, claimed_id, public_key)


def sign_checkpoint(checkpoint: Checkpoint, private_key: Ed25519PrivateKey) -> str:
    """The signed note of ``checkpoint``, signed under the log's own name (its origin)."""
    _check_name(checkpoint.origin)
    body = checkpoint.body()
    signature = private_key.sign(body.encode())
    stamp = base64.b64encode(key_id(checkpoint.origin, private_key.public_key()) + signature).decode()
    return f"{body}\n{SIGNATURE_DASH}{checkpoint.origin} {stamp}\n"


def parse_checkpoint(note: str) -> tuple[Checkpoint, list[tuple[str, bytes, bytes]]]:
    """The unverified checkpoint of a note and its signature lines as (name, key id,
    signature); raises CheckpointError when the note is malformed."""
    if not note.endswith("\n") or "\n\n" not in note:
        raise CheckpointError("a signed note is a body, a blank line and signature lines, each ending in a newline")
    if any(c != "\n" and not c.isprintable() for c in note):
        raise CheckpointError("a signed note holds only printable text")
    split = note.rindex("\n\n")
    body, signature_block = note[: split + 1], note[split + 2 :]
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("a checkpoint body has an origin, a size and a root")
    origin, size_text, root_text, *extensions = lines
    if not origin or not is_decimal(size_text) or (size_text != "0" and size_text.startswith("0")):
        raise CheckpointError("the checkpoint's origin or size is malformed")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise CheckpointError("the checkpoint's root is not base64") from None
    if base64.b64encode(root).decode() != root_text:
        raise CheckpointError("the checkpoint's root is not in standard padded base64")
    if len(root) != 32 or any(not line for line in extensions):
        raise CheckpointError("the checkpoint's root is not a SHA-256 hash, or an extension line is empty")
    signatures = []
    for line in signature_block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_DASH) or line.count(" ") != 2:
            raise CheckpointError("a signature line reads '— NAME BASE64'")
        name, stamp = line[len(SIGNATURE_DASH) :].split(" ")
        try:
            decoded = base64.b64decode(stamp, validate=True)
        except binascii.Error:
            raise CheckpointError("a signature is not base64") from None
        if len(decoded) < 5:
            raise CheckpointError("a signature is too short to carry a key id")
        signatures.append((name, decoded[:4], decoded[4:]))
    if not signatures or len(signatures) > MAX_SIGNATURES:
        raise CheckpointError("a signed note carries between 1 and 100 signatures")
    return Checkpoint(origin, int(size_text), root, tuple(extensions)), signatures


def verify_checkpoint(note: str, verifier: Verifier | str, origin: str | None = None) -> Checkpoint:
    """The checkpoint of ``note`` if ``verifier`` signed it (and it is of log ``origin``, when
    given); raises CheckpointError otherwise. Signatures by other keys are ignored."""
    if isinstance(verifier, str):
        verifier = parse_verifier_key(verifier)
    checkpoint, signatures = parse_checkpoint(note)
    expected_origin = origin if origin is not None else verifier.name
    if checkpoint.origin != expected_origin:
        raise CheckpointError(f"the checkpoint is of log {checkpoint.origin!r}, not {expected_origin!r}")
    body = note[: note.rindex("\n\n") + 1].encode()
    for name, kid, signature in signatures:
        if name != verifier.name or kid != verifier.key_id:
            continue
        try:
            verifier.public_key.verify(signature, body)
        except InvalidSignature:
            raise CheckpointError(f"the signature by {name} on this checkpoint does not verify") from None
        return checkpoint
    raise CheckpointError(f"the checkpoint carries no signature by {verifier.name} (key id {verifier.key_id.hex()})")
