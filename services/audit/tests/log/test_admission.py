"""Admission of custody events (pure): shape, subject, signature, and key re-reading."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody_audit.errors import EventDeferred, EventRejected
from custody_audit.log.admission import MAX_EVENT_BYTES, TrustedKeys, admit, parse_event
from custody_common.bus import Topology
from custody_common.crypto.signing import public_raw
from custody_common.events import actor_service, canonical, new_event, sign_event

TOPOLOGY = Topology("ns")


def _event(key: Ed25519PrivateKey, **fields) -> dict:  # type: ignore[no-untyped-def]
    return sign_event(new_event(action="received", service="intake", actor=actor_service("intake"), **fields), key)


def test_a_genuine_event_is_admitted_as_sent() -> None:
    key = Ed25519PrivateKey.generate()
    event = _event(key, evidence_id="01900000-0000-7000-8000-000000000000", case="C", size=3, sha256="ab" * 32)
    keys = TrustedKeys(lambda: {"intake": key.public_key()})
    assert admit("ns.events.intake", canonical(event), TOPOLOGY, keys) == (event, canonical(event))


def test_a_non_canonical_payload_is_admitted_with_its_canonical_bytes() -> None:
    key = Ed25519PrivateKey.generate()
    event = _event(key, case="C")
    keys = TrustedKeys(lambda: {"intake": key.public_key()})
    loose = json.dumps(event, indent=2).encode()
    assert admit("ns.events.intake", loose, TOPOLOGY, keys) == (event, canonical(event))


def test_events_outside_the_fast_path_are_admitted() -> None:
    key = Ed25519PrivateKey.generate()
    event = _event(key, details={"durée": 1.5})
    keys = TrustedKeys(lambda: {"intake": key.public_key()})
    assert admit("ns.events.intake", canonical(event), TOPOLOGY, keys) == (event, canonical(event))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"x" * (MAX_EVENT_BYTES + 1), "at most"),
        (b"\xff\xfe", "not JSON"),
        (b'{"a": NaN}', "non-JSON number"),
        (b'{"a": 1, "a": 2}', "repeats a JSON key"),
        (b"[]", "not a JSON object"),
        (b"{}", "no valid 'type'"),
        (b"[" * 30_000 + b"]" * 30_000, "nests deeper"),
        (b'{"details":' + b"[" * 400 + b"1.5" + b"]" * 400 + b"}", "no valid 'type'"),
    ],
)
def test_malformed_payloads_are_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(EventRejected, match=reason):
        parse_event(payload)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type": "custody-event/v2"}, "event type"),
        ({"action": "deleted"}, "custody action"),
        ({"id": "01900000-0000-7000-8000-00000000000A"}, "canonical lowercase"),
        ({"size": True}, "wrong type"),
        ({"case": ""}, "case name"),
        ({"note": "personal data"}, "fields no custody event has"),
    ],
)
def test_events_of_the_wrong_shape_are_rejected(change: dict, reason: str) -> None:
    event = {**_event(Ed25519PrivateKey.generate(), case="C"), **change}
    with pytest.raises(EventRejected, match=reason):
        parse_event(json.dumps(event).encode())


def test_a_rotated_key_is_picked_up_and_reads_are_rate_limited() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    current = {"intake": old.public_key()}
    reads = []

    def source() -> dict:
        reads.append(1)
        return dict(current)

    keys = TrustedKeys(source, min_interval=3600)
    # Read a moment ago: a flood of forgeries causes no re-reads, and what fails now is
    # delivered again later rather than kept aside, in case the service just changed its key.
    with pytest.raises(EventDeferred, match="read a moment ago"):
        admit("ns.events.intake", canonical(_event(new)), TOPOLOGY, keys)
    assert len(reads) == 1

    keys = TrustedKeys(source, min_interval=0)
    current["intake"] = new.public_key()  # the service rotated its key after audit read it
    admit("ns.events.intake", canonical(_event(new)), TOPOLOGY, keys)
    assert len(reads) == 3
    # an event the service signed before, still on its way, is logged too
    admit("ns.events.intake", canonical(_event(old)), TOPOLOGY, keys)
    with pytest.raises(EventRejected, match="does not verify"):
        admit("ns.events.intake", canonical(_event(Ed25519PrivateKey.generate())), TOPOLOGY, keys)


def test_a_key_the_log_holds_announced_verifies_what_it_signed() -> None:
    announced, current = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    keys = TrustedKeys(lambda: {"intake": current.public_key()}, min_interval=0)
    with pytest.raises(EventRejected):
        admit("ns.events.intake", canonical(_event(announced)), TOPOLOGY, keys)
    keys.remember("intake", public_raw(announced.public_key()))
    admit("ns.events.intake", canonical(_event(announced)), TOPOLOGY, keys)
    with pytest.raises(EventRejected):
        admit("ns.events.evidence", canonical(sign_event(new_event(action="sealed", service="evidence", actor=actor_service("evidence")), announced)), TOPOLOGY, keys)


def test_unknown_services_have_no_key() -> None:
    key = Ed25519PrivateKey.generate()
    event = sign_event(new_event(action="received", service="evidence", actor=actor_service("evidence")), key)
    with pytest.raises(EventRejected, match="no trusted key"):
        admit("ns.events.evidence", canonical(event), TOPOLOGY, TrustedKeys(lambda: {}, min_interval=0))


_L = 2**252 + 27742317777372353535851937790883648493
"""The order of Ed25519's base point: a signature's S must be below it."""


def _non_canonical(signature: bytes) -> bytes:
    """The same signature with S + L for S: the same equation, but not a valid encoding."""
    return signature[:32] + (int.from_bytes(signature[32:], "little") + _L).to_bytes(32, "little")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda event, other: event, id="genuine"),
        pytest.param(lambda event, other: sign_event({k: v for k, v in event.items() if k != "sig"}, other), id="another-key"),
        pytest.param(lambda event, other: {**event, "case": "OTHER"}, id="altered-statement"),
        pytest.param(lambda event, other: _with_signature(event, lambda s: bytes([s[0] ^ 1]) + s[1:]), id="bit-flipped"),
        pytest.param(lambda event, other: _with_signature(event, lambda s: s[:63]), id="truncated"),
        pytest.param(lambda event, other: _with_signature(event, lambda s: s + b"\x00"), id="extended"),
        pytest.param(lambda event, other: _with_signature(event, _non_canonical), id="non-canonical-s"),
    ],
)
def test_the_signature_check_agrees_with_openssl(tamper) -> None:  # type: ignore[no-untyped-def]
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    event = tamper(_event(key, evidence_id="01900000-0000-7000-8000-000000000000", case="C"), other)
    statement = canonical({k: v for k, v in event.items() if k != "sig"})
    try:
        key.public_key().verify(base64.b64decode(event["sig"]), statement)
        openssl_accepts = True
    except InvalidSignature:
        openssl_accepts = False
    keys = TrustedKeys(lambda: {"intake": key.public_key()}, min_interval=3600)
    try:
        admit("ns.events.intake", canonical(event), TOPOLOGY, keys)
        admitted = True
    except (EventRejected, EventDeferred):
        admitted = False
    assert admitted == openssl_accepts


def _with_signature(event: dict, change) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return {**event, "sig": base64.b64encode(change(base64.b64decode(event["sig"]))).decode()}


def test_a_signature_beyond_ascii_is_rejected() -> None:
    key = Ed25519PrivateKey.generate()
    event = {**_event(key, case="C"), "sig": "é" * 88}
    keys = TrustedKeys(lambda: {"intake": key.public_key()})
    with pytest.raises(EventRejected, match="not base64"):
        admit("ns.events.intake", canonical(event), TOPOLOGY, keys)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_TRICKY_TEXT = st.sampled_from([',"sig":"', '"sig"', "sig", "\\", '"', "é", "\u2028", ""]) | st.text(max_size=12)


@settings(max_examples=300, deadline=None)
@given(details=st.dictionaries(_TRICKY_TEXT, _JSON | _TRICKY_TEXT, max_size=5), nested_sig=st.booleans())
def test_any_genuine_event_is_admitted_whatever_its_details_hold(details: dict, nested_sig: bool) -> None:
    """The signed statement is cut out of the event's canonical bytes: a ``sig`` inside the
    details, or text that looks like one, must not be taken for the event's own."""
    key = Ed25519PrivateKey.generate()
    unsigned = new_event(action="received", service="intake", actor=actor_service("intake"), case="C")
    event = sign_event({**unsigned, "details": details}, key)
    if nested_sig:
        event = sign_event({**unsigned, "details": {**details, "sig": event["sig"]}}, key)
    keys = TrustedKeys(lambda: {"intake": key.public_key()})
    assert admit("ns.events.intake", canonical(event), TOPOLOGY, keys) == (event, canonical(event))


@settings(max_examples=300, deadline=None)
@given(
    payload=st.binary(max_size=200)
    | _JSON.map(lambda value: json.dumps(value).encode())
    | st.dictionaries(st.sampled_from(["type", "id", "sig", "service", "action", "details"]), _JSON).map(
        lambda change: json.dumps(
            {**_event(Ed25519PrivateKey.generate(), case="C"), **change}, ensure_ascii=False
        ).encode()
    )
)
def test_whatever_arrives_is_admitted_or_rejected_never_an_error(payload: bytes) -> None:
    """Any other exception would stop the sequencer on that message for good."""
    keys = TrustedKeys(lambda: {"intake": Ed25519PrivateKey.generate().public_key()}, min_interval=3600)
    try:
        admit("ns.events.intake", payload, TOPOLOGY, keys)
    except (EventRejected, EventDeferred):
        pass
