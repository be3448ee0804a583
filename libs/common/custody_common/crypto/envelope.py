"""Envelope encryption: a fresh data key (DEK) per evidence item, wrapped by a key-encryption
key (KEK) from a key provider. Rotation re-wraps DEKs; it never touches the data."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict

from custody_common.durable import replace_file
from custody_common.errors import ConfigurationError, IntegrityError
from custody_common.keyfiles import write_new_file


class WrappedKey(BaseModel):
    """A data key encrypted under one KEK version."""

    model_config = ConfigDict(frozen=True)

    kek_id: str
    """The KEK version that wraps it, e.g. ``local-1``."""
    ciphertext: str
    """base64 of nonce (12) ‖ AES-256-GCM(KEK, DEK)."""


def new_data_key() -> bytes:
    """A fresh 256-bit data key."""
    return AESGCM.generate_key(bit_length=256)


class KeyProvider(Protocol):
    """Where KEKs live: a local key file, or a Vault/OpenBao transit engine."""

    def current_kek_id(self) -> str: ...

    def wrap(self, dek: bytes, context: bytes) -> WrappedKey:
        """Wrap ``dek`` under the current KEK, bound to ``context`` (the evidence id)."""
        ...

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes: ...

    def rotate(self) -> str:
        """Introduce a new KEK version and make it current; returns its id."""
        ...

    def retire(self, kek_id: str) -> None:
        """Forget a KEK version that no wrapped key refers to any more."""
        ...


class LocalKeyFile:
    """KEK versions kept in one JSON file (mode 0600): ``{"current": id, "keys": {id: b64}}``."""

    def __init__(self, path: Path) -> None:
        self._path = path
        if not path.exists():
            first = {"current": "local-1", "keys": {"local-1": _b64(AESGCM.generate_key(256))}}
            write_new_file(path, json.dumps(first).encode())
        self._load()

    def _load(self) -> None:
        try:
            self._mtime = self._path.stat().st_mtime_ns
            doc = json.loads(self._path.read_text())
            self._current = doc["current"]
            self._keys = {k: base64.b64decode(v) for k, v in doc["keys"].items()}
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigurationError(f"KEK file {self._path} is unreadable: {exc}") from exc

    def _save(self) -> None:
        doc = {"current": self._current, "keys": {k: _b64(v) for k, v in self._keys.items()}}
        # Durably: a new KEK version lost to a power cut would orphan what it wrapped.
        replace_file(self._path, json.dumps(doc).encode())

    def current_kek_id(self) -> str:
        return self._current

    def kek_ids(self) -> list[str]:
        """Every KEK version still held."""
        return list(self._keys)

    def _refresh(self) -> None:
        """Pick up a rotation made by another process (``rotate-kek``) since we last read."""
        try:
            if self._path.stat().st_mtime_ns != self._mtime:
                self._load()
        except OSError as exc:
            raise ConfigurationError(f"KEK file {self._path} is unreadable: {exc}") from exc

    def wrap(self, dek: bytes, context: bytes) -> WrappedKey:
        self._refresh()
        nonce = os.urandom(12)
        ct = AESGCM(self._keys[self._current]).encrypt(nonce, dek, context)
        return WrappedKey(kek_id=self._current, ciphertext=_b64(nonce + ct))

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        if wrapped.kek_id not in self._keys:
            self._load()  # another process may have rotated
        key = self._keys.get(wrapped.kek_id)
        if key is None:
            raise ConfigurationError(f"KEK version {wrapped.kek_id} is not held by this key file")
        raw = base64.b64decode(wrapped.ciphertext)
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], context)
        except InvalidTag:
            raise IntegrityError("wrapped data key does not verify under its KEK") from None

    def rotate(self) -> str:
        self._load()
        number = 1 + max(int(k.rsplit("-", 1)[1]) for k in self._keys)
        new_id = f"local-{number}"
        self._keys[new_id] = AESGCM.generate_key(256)
        self._current = new_id
        self._save()
        return new_id

    def retire(self, kek_id: str) -> None:
        self._load()
        if kek_id == self._current:
            raise ConfigurationError("the current KEK cannot be retired")
        self._keys.pop(kek_id, None)
        self._save()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
