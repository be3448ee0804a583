import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody_common.events import (
    actor_person,
    canonical,
    check_commitment,
    commitment,
    new_event,
    sign_event,
    verify_event,
)
from custody_common.ids import uuid7


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(100)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert [i.int >> 80 for i in ids] == sorted(i.int >> 80 for i in ids)


def test_canonical_json_is_rfc8785() -> None:
    assert canonical({"b": 1, "a": [1.0, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()


def test_signed_event_verifies_and_any_change_breaks_it() -> None:
    key = Ed25519PrivateKey.generate()
    event = new_event(
        action="accessed", service="evidence", actor=actor_person("p1", ["prosecutor"]),
        evidence_id=uuid7(), case="C-1", commitments={"purpose": commitment("trial")[1]},
    )
    signed = sign_event(event, key)
    assert verify_event(signed, key.public_key())
    assert not verify_event(signed, Ed25519PrivateKey.generate().public_key())
    assert not verify_event({**signed, "case": "C-2"}, key.public_key())
    assert not verify_event({k: v for k, v in signed.items() if k != "sig"}, key.public_key())
    assert not verify_event({**signed, "action": "deleted"}, key.public_key())


def test_commitment_hides_and_binds_text() -> None:
    salt, digest = commitment("Mariupol, school no. 5")
    assert "Mariupol" not in digest
    assert check_commitment(salt, "Mariupol, school no. 5", digest)
    assert not check_commitment(salt, "Mariupol, school no. 6", digest)
    assert commitment("same")[1] != commitment("same")[1]
