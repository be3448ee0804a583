"""Admission: what a message on the events stream must be before the log takes it — a custody
event, signed by the service it names with that service's trusted key, published on that
service's own subject. Anything else is kept aside, never logged."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from custody_audit.errors import EventDeferred, EventRejected
from custody_audit.log.jcs import canonical, json_number
from custody_common.bus import Topology
from custody_common.crypto.signing import public_raw
from custody_common.events import ACTIONS, EVENT_TYPE

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 64 * 1024
"""Custody events are small statements; anything larger is not one."""

_REQUIRED = {"type": str, "id": str, "action": str, "time": str, "actor": dict, "service": str, "sig": str}
_OPTIONAL = {"evidence_id": str, "case": str, "sha256": str, "size": int, "commitments": dict, "details": dict}


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise EventRejected("the event repeats a JSON key, so its meaning is ambiguous")
    return result


def _no_constants(name: str) -> Any:
    raise EventRejected(f"the event holds the non-JSON number {name}")


_DECODER = json.JSONDecoder(parse_constant=_no_constants, parse_int=json_number)

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(value: str, field: str) -> None:
    if not _UUID.fullmatch(value):
        raise EventRejected(f"the event's {field} is not a UUID in canonical lowercase form")


def _decode(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON object in ``payload`` and its RFC 8785 bytes. Emitters send canonical bytes,
    which cannot hide a repeated key; anything else is parsed again, strictly."""
    if len(payload) > MAX_EVENT_BYTES:
        raise EventRejected(f"the message is {len(payload)} bytes; custody events are at most {MAX_EVENT_BYTES}")
    try:
        # What json.loads does, without making a decoder for every message.
        event = _DECODER.decode(payload.decode(json.detect_encoding(payload), "surrogatepass"))
    except (UnicodeDecodeError, ValueError):
        raise EventRejected("the message is not JSON") from None
    except RecursionError:
        raise EventRejected("the message nests deeper than Python's JSON parser goes") from None
    if not isinstance(event, dict):
        raise EventRejected("the message is not a JSON object")
    try:
        encoded = canonical(event)
    except (ValueError, RecursionError):
        raise EventRejected("the event cannot be put in RFC 8785 canonical form") from None
    if encoded != payload:
        json.loads(payload, object_pairs_hook=_no_duplicate_keys, parse_int=json_number)
    return event, encoded


def _check_shape(event: dict[str, Any]) -> None:
    for field, kind in _REQUIRED.items():
        if not isinstance(event.get(field), kind):
            raise EventRejected(f"the event has no valid {field!r}")
    for field, kind in _OPTIONAL.items():
        if field in event and (not isinstance(event[field], kind) or isinstance(event[field], bool)):
            raise EventRejected(f"the event's {field!r} has the wrong type")
    unknown = set(event) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise EventRejected(f"the event has fields no custody event has: {', '.join(sorted(unknown))}")
    if event["type"] != EVENT_TYPE:
        raise EventRejected(f"the event type is not {EVENT_TYPE}")
    if event["action"] not in ACTIONS:
        raise EventRejected("the event's action is not a custody action")
    _uuid(event["id"], "id")
    if "evidence_id" in event:
        _uuid(event["evidence_id"], "evidence_id")
    if "case" in event and not 0 < len(event["case"]) <= 200:
        raise EventRejected("the event's case name is empty or longer than 200 characters")


def parse_event(payload: bytes) -> dict[str, Any]:
    """The event a message carries, checked for shape (not yet for its signature)."""
    event, _ = _decode(payload)
    _check_shape(event)
    return event


class TrustedKeys:
    """The services' public keys, re-read from their source when an unknown or failing
    signature suggests a rotation — at most every ``min_interval`` seconds, so a flood of
    forgeries cannot turn into a flood of key reads.

    A key trusted once stays trusted for what it signed: a service that changed its key may
    still have events signed with the old one on their way (in its outbox, on the stream).
    Earlier keys are those read before and those the log holds as announced
    (:meth:`remember`), each announced by an event signed with that very key."""

    def __init__(self, source: Callable[[], Mapping[str, Ed25519PublicKey]], min_interval: float = 5.0) -> None:
        self._source = source
        self._min_interval = min_interval
        self._earlier: dict[str, tuple[VerifyKey, ...]] = {}
        self._verifiers: dict[str, VerifyKey] = {}
        self._read()

    def _read(self) -> None:
        previous = self._verifiers
        self._keys = dict(self._source())
        self._verifiers = {service: VerifyKey(public_raw(key)) for service, key in self._keys.items()}
        for service, verifier in previous.items():
            if self._verifiers.get(service) != verifier:
                self._add_earlier(service, verifier)
        self._read_at = time.monotonic()

    def _add_earlier(self, service: str, verifier: VerifyKey) -> None:
        known = self._earlier.get(service, ())
        if verifier not in known:
            # A new dict, not a change to the one judging threads may be reading.
            self._earlier = {**self._earlier, service: (*known, verifier)}

    def remember(self, service: str, public_key: bytes) -> None:
        """Trust ``public_key`` (32 raw bytes) for what ``service`` signed, as the log holds it
        announced by an event signed with it."""
        self._add_earlier(service, VerifyKey(public_key))

    def get(self, service: str) -> Ed25519PublicKey | None:
        """The key ``service`` signs with, as last read."""
        return self._keys.get(service)

    def verifies(self, service: str, signature: bytes, statement: bytes) -> bool:
        """Whether ``signature`` is ``service``'s Ed25519 signature of ``statement`` under the
        key last read or one it trusted before. Checked with libsodium: half the CPU of OpenSSL's check here (60 against
        115 us), and the check is most of what admitting an event costs."""
        current = self._verifiers.get(service)
        if len(signature) != 64:
            return False
        for verifier in (current, *self._earlier.get(service, ())):
            if verifier is None:
                continue
            try:
                verifier.verify(statement, signature)
            except BadSignatureError:
                continue
            return True
        return False

    def refresh(self, service: str | None = None) -> bool:
        """Re-read the keys unless that was done a moment ago; returns whether it did. A service
        with no key yet is always looked up again: it started after audit and wrote its key
        before its first event, so the key is there now."""
        if time.monotonic() - self._read_at < self._min_interval and (service is None or service in self._keys):
            return False
        self._read()
        log.info("re-read the trusted service keys: %s", ", ".join(sorted(self._keys)) or "none")
        return True


def _unsigned(encoded: bytes, sig: str) -> bytes:
    """The statement ``sig`` signs: the canonical event without its ``sig`` member, cut out of
    ``encoded`` (the event's RFC 8785 bytes) rather than encoded again, a sixth of what admitting
    costs besides the signature check. Members are in key order, so ``sig`` comes after
    ``action``, behind a comma; after it come only ``size``, ``time`` and ``type``, a number and
    strings, which cannot hold an unescaped quote, so the member's last occurrence is its own."""
    member = b',"sig":' + json.dumps(sig).encode()
    at = encoded.rfind(member)
    if at < 0:  # not reached for a checked event, whose sig is a string after "action"
        raise EventRejected("the event's signature is not where RFC 8785 puts it")
    return encoded[:at] + encoded[at + len(member) :]


class Admitted(NamedTuple):
    """An event the log may hold."""

    event: dict[str, Any]
    canonical: bytes
    """RFC 8785 bytes of the whole event, signature included: what its leaf embeds."""


def admit(subject: str, payload: bytes, topology: Topology, keys: TrustedKeys) -> Admitted:
    """The custody event in ``payload`` if the log may hold it; raises EventRejected with the
    reason otherwise."""
    event, encoded = _decode(payload)
    _check_shape(event)
    service = event["service"]
    if subject != topology.events_subject(service):
        raise EventRejected(f"an event of service {service!r} arrived on another subject ({subject})")
    try:
        signature = base64.b64decode(event["sig"], validate=True)
    except ValueError:  # binascii.Error, or characters beyond ASCII
        raise EventRejected("the event's signature is not base64") from None
    statement = _unsigned(encoded, event["sig"])
    if keys.verifies(service, signature, statement):
        return Admitted(event, encoded)
    refreshed = keys.refresh(service)
    # Checked again even when not re-read here: another judging thread may have just re-read them.
    if keys.verifies(service, signature, statement):
        return Admitted(event, encoded)
    if not refreshed:
        raise EventDeferred(f"the signature does not verify under {service}'s keys read a moment ago")
    if keys.get(service) is None:
        raise EventRejected(f"no trusted key for service {service!r}")
    raise EventRejected(f"the signature does not verify under {service}'s trusted keys")
