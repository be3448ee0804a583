"""Where each key of a one-machine stack lives, and the trust anchors audit checks against.

Every key sits in ``settings.key_folder`` and is generated on first use when missing:
``token-signing.key`` (mints local tokens), ``kek.json`` (KEK versions),
``<service>-signing.key`` (each service's custody-event key) and ``audit-log.key``
(checkpoints). Several machines share public halves by configuration (a mounted folder).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from custody_common.crypto.envelope import KeyProvider, LocalKeyFile
from custody_common.crypto.signing import load_or_create_private_key, load_public_key
from custody_common.settings import Settings

SERVICES = ("intake", "evidence", "audit")


def service_signing_key(settings: Settings, service: str) -> Ed25519PrivateKey:
    """The Ed25519 key ``service`` signs its custody events with."""
    return load_or_create_private_key(settings.key_folder / f"{service}-signing.key")


def trusted_service_keys(settings: Settings) -> dict[str, Ed25519PublicKey]:
    """The public keys audit trusts for each service's statements (those present now)."""
    keys = {}
    for service in SERVICES:
        path = settings.key_folder / f"{service}-signing.pub"
        if path.exists():
            keys[service] = load_public_key(path)
    return keys


def key_provider(settings: Settings) -> KeyProvider:
    """The KEK provider: the local key file (a Vault/OpenBao transit provider plugs in here)."""
    return LocalKeyFile(settings.key_folder / "kek.json")


def token_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The local stack's token-minting key (``custody token``)."""
    return load_or_create_private_key(settings.key_folder / "token-signing.key")
