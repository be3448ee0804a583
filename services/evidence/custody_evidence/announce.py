"""Announcing evidence's signing key in the custody log before it signs anything else."""

from __future__ import annotations

from custody_common.announcement import announce_signing_key

from custody_evidence.tables import announced_keys
from custody_evidence.vault import Vault


async def announce_key(vault: Vault) -> bool:
    """Emit ``key_announced`` for the service's signing key unless done before; True if emitted now."""
    announced = await announce_signing_key(vault.sessions, vault.emitter, vault.signing_key, announced_keys)
    vault.wake_relay()
    return announced
