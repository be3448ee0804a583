"""Custody events: signed statements of what a service did to an evidence item.

The wire shape is DESIGN.md's custody-event table. A service builds an event with
:func:`new_event`, signs it with :func:`sign_event`; audit checks it with :func:`verify_event`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from custody_common.ids import uuid7

EVENT_TYPE = "custody-event/v1"

Action = Literal[
    "submitted", "received", "sealed", "rejected", "accessed", "exported", "verified", "damaged",
    "hold_set", "hold_released", "key_rotated", "key_announced", "expired", "terminated",
]
ACTIONS: frozenset[str] = frozenset(Action.__args__)  # type: ignore[attr-defined]
Service = Literal["intake", "evidence", "audit"]


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON value."""
    return rfc8785.dumps(value)


def rfc3339_now() -> str:
    """Now, as RFC 3339 UTC with milliseconds."""
    return rfc3339(datetime.now(UTC))


def rfc3339(moment: datetime) -> str:
    """``moment`` as RFC 3339 UTC with milliseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def commitment(text: str) -> tuple[str, str]:
    """A salted commitment to personal data: (salt hex, SHA-256(salt ‖ UTF-8 text) hex)."""
    salt = os.urandom(16)
    return salt.hex(), hashlib.sha256(salt + text.encode()).hexdigest()


def check_commitment(salt_hex: str, text: str, digest_hex: str) -> bool:
    """Whether ``text`` with ``salt`` is what ``digest`` commits to."""
    return hashlib.sha256(bytes.fromhex(salt_hex) + text.encode()).hexdigest() == digest_hex


def actor_person(sub: str, roles: list[str]) -> dict[str, Any]:
    """The ``actor`` of an event done by a person."""
    return {"sub": sub, "roles": sorted(roles)}


def actor_service(service: str) -> dict[str, Any]:
    """The ``actor`` of an event done by a service on its own."""
    return {"service": service}


def new_event(
    *,
    action: Action,
    service: Service,
    actor: dict[str, Any],
    evidence_id: uuid.UUID | str | None = None,
    case: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    commitments: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    """An unsigned custody event. ``details`` holds action-specific facts that are never personal
    data (a reason code, a request id, a key id); personal data goes in ``commitments`` only."""
    if action not in ACTIONS:
        raise ValueError(f"unknown custody action {action!r}")
    event: dict[str, Any] = {
        "type": EVENT_TYPE,
        "id": str(uuid7()),
        "action": action,
        "time": time or rfc3339_now(),
        "actor": actor,
        "service": service,
    }
    if evidence_id is not None:
        event["evidence_id"] = str(evidence_id)
    if case is not None:
        event["case"] = case
    if sha256 is not None:
        event["sha256"] = sha256
    if size is not None:
        event["size"] = size
    if commitments:
        event["commitments"] = commitments
    if details:
        event["details"] = details
    return event


def signing_bytes(event: dict[str, Any]) -> bytes:
    """The bytes a signature covers: RFC 8785 of the event without ``sig``."""
    return canonical({k: v for k, v in event.items() if k != "sig"})


def sign_event(event: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """``event`` with ``sig`` added."""
    signed = dict(event)
    signed["sig"] = base64.b64encode(key.sign(signing_bytes(event))).decode()
    return signed


def verify_event(event: dict[str, Any], key: Ed25519PublicKey) -> bool:
    """Whether ``event`` is well formed and its ``sig`` verifies under ``key``."""
    if event.get("type") != EVENT_TYPE or event.get("action") not in ACTIONS:
        return False
    sig = event.get("sig")
    if not isinstance(sig, str):
        return False
    try:
        key.verify(base64.b64decode(sig, validate=True), signing_bytes(event))
    except (InvalidSignature, ValueError):
        return False
    return True
