"""The offline verifier: signed-note checkpoints and custody chains, their inclusion proofs
built here by the RFC 6962 recursion (the proof verification itself is custody_common.merkle's,
tested against the published vectors in libs/common/tests/test_merkle.py)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custody_client.errors import VerificationFailed
from custody_client.verify import (
    LogKey,
    ed25519_key_id,
    leaf_hash,
    open_checkpoint,
    verify_chain,
)
from custody_common.events import canonical
from tests.support.json_damage import ANY_CHARACTER, damaged
from tests.support.rfc6962 import audit_path, tree_hash


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


# --- keys and checkpoints --------------------------------------------------------------------

ORIGIN = "custody.test/log"


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _vkey(key: Ed25519PrivateKey, origin: str = ORIGIN) -> str:
    raw = _raw(key)
    encoded = base64.b64encode(bytes([1]) + raw).decode()
    return f"{origin}+{ed25519_key_id(origin, raw).hex()}+{encoded}"


def _note(key: Ed25519PrivateKey, size: int, root: bytes, origin: str = ORIGIN, name: str | None = None) -> str:
    body = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    name = name or origin
    key_id = ed25519_key_id(name, _raw(key))
    signature = base64.b64encode(key_id + key.sign(body.encode())).decode()
    return f"{body}\n\u2014 {name} {signature}\n"


@pytest.fixture(scope="module")
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_the_key_id_is_the_c2sp_one(log_key: Ed25519PrivateKey) -> None:
    raw = _raw(log_key)
    assert ed25519_key_id(ORIGIN, raw) == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + raw).digest()[:4]
    parsed = LogKey.parse(_vkey(log_key))
    assert (parsed.name, parsed.public_key) == (ORIGIN, raw)
    assert str(parsed) == _vkey(log_key)


def test_a_verifier_key_whose_id_does_not_match_is_refused(log_key: Ed25519PrivateKey) -> None:
    name, key_id, encoded = _vkey(log_key).split("+", 2)
    with pytest.raises(VerificationFailed, match="does not match"):
        LogKey.parse(f"{name}+{'00000000' if key_id != '00000000' else '11111111'}+{encoded}")
    with pytest.raises(VerificationFailed, match="does not match"):
        LogKey.parse(f"other.origin/log+{key_id}+{encoded}")
    with pytest.raises(VerificationFailed):
        LogKey.parse("not a key")
    with pytest.raises(VerificationFailed, match="Ed25519"):
        ecdsa_like = base64.b64encode(bytes([2]) + _raw(log_key)).decode()
        LogKey.parse(f"{name}+{key_id}+{ecdsa_like}")
    with pytest.raises(VerificationFailed, match="not UTF-8"):  # a command line argument of other bytes
        LogKey.parse(f"\udcff{name}+{key_id}+{encoded}")


def test_a_signed_checkpoint_opens(log_key: Ed25519PrivateKey) -> None:
    root = hashlib.sha256(b"root").digest()
    checkpoint = open_checkpoint(_note(log_key, 42, root), LogKey.parse(_vkey(log_key)))
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (ORIGIN, 42, root)


def test_a_cosignature_by_another_key_is_ignored(log_key: Ed25519PrivateKey) -> None:
    root = hashlib.sha256(b"root").digest()
    note = _note(log_key, 7, root)
    witness = Ed25519PrivateKey.generate()
    body = note.split("\n\n")[0] + "\n"
    extra = base64.b64encode(ed25519_key_id("witness.example", _raw(witness)) + witness.sign(body.encode())).decode()
    assert open_checkpoint(note + f"\u2014 witness.example {extra}\n", LogKey.parse(_vkey(log_key))).size == 7


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda n: n.replace("\n42\n", "\n43\n", 1), id="size"),
        pytest.param(lambda n: n.replace(ORIGIN + "\n", "custody.evil/log\n", 1), id="origin-in-body"),
        pytest.param(lambda n: n.replace(n.split("\n")[2], base64.b64encode(b"\x00" * 32).decode(), 1), id="root"),
        pytest.param(lambda n: n[: n.rindex(" ") + 1] + base64.b64encode(b"\x00" * 68).decode() + "\n", id="signature"),
        pytest.param(lambda n: n.split("\n\n")[0] + "\n", id="no-signatures"),
        pytest.param(lambda n: n.replace("\u2014 ", "- "), id="malformed-signature-line"),
        pytest.param(lambda n: "\ud800" + n[1:], id="lone-surrogate"),  # what JSON's "\ud800" decodes to
    ],
)
def test_a_tampered_checkpoint_is_refused(log_key: Ed25519PrivateKey, tamper) -> None:
    note = _note(log_key, 42, hashlib.sha256(b"root").digest())
    with pytest.raises(VerificationFailed):
        open_checkpoint(tamper(note), LogKey.parse(_vkey(log_key)))


def test_a_checkpoint_signed_by_another_key_or_for_another_log_is_refused(log_key: Ed25519PrivateKey) -> None:
    root = hashlib.sha256(b"root").digest()
    impostor = Ed25519PrivateKey.generate()
    with pytest.raises(VerificationFailed, match="not signed by the pinned log key"):
        open_checkpoint(_note(impostor, 42, root), LogKey.parse(_vkey(log_key)))
    other = "custody.other/log"
    with pytest.raises(VerificationFailed, match="not signed by the pinned log key"):
        open_checkpoint(_note(log_key, 42, root, origin=other, name=other), LogKey.parse(_vkey(log_key)))
    # signed by our key under our name, but the body names another log
    with pytest.raises(VerificationFailed, match="is for log"):
        open_checkpoint(_note(log_key, 42, root, origin=other, name=ORIGIN), LogKey.parse(_vkey(log_key)))


# --- custody chains --------------------------------------------------------------------------


def _event(evidence_id: str, action: str, seq: int) -> dict[str, Any]:
    return {
        "type": "custody-event/v1",
        "id": str(uuid.uuid4()),
        "action": action,
        "evidence_id": evidence_id,
        "case": "C-1",
        "time": f"2024-05-01T10:00:0{seq}.000Z",
        "actor": {"service": "evidence"},
        "service": "evidence",
        "sig": "c2ln",
    }


def build_log(log_key: Ed25519PrivateKey, evidence_id: str) -> tuple[dict[str, Any], list[bytes]]:
    """A log where the item's four events sit among other items' events; its custody answer."""
    other = str(uuid.uuid4())
    leaves: list[bytes] = []
    ours: list[int] = []
    previous: dict[str, str | None] = {evidence_id: None, other: None}
    seq = {evidence_id: 0, other: 0}
    plan = [other, evidence_id, other, other, evidence_id, evidence_id, other, evidence_id, other]
    for item, action in zip(plan, ["submitted", "submitted", "received", "sealed", "received", "sealed",
                                   "accessed", "accessed", "accessed"], strict=True):
        seq[item] += 1
        entry = {"event": _event(item, action, seq[item]), "item_seq": seq[item], "prev_leaf": previous[item],
                 "logged_at": "2024-05-01T10:00:09.000Z"}
        leaf = canonical(entry)
        previous[item] = leaf_hash(leaf).hex()
        if item == evidence_id:
            ours.append(len(leaves))
        leaves.append(leaf)
    hashes = [leaf_hash(leaf) for leaf in leaves]
    custody = {
        "checkpoint": _note(log_key, len(leaves), tree_hash(hashes)),
        "events": [
            {
                "index": i,
                "leaf": base64.b64encode(leaves[i]).decode(),
                "entry": json.loads(leaves[i]),
                "inclusion": [base64.b64encode(p).decode() for p in audit_path(i, hashes)],
            }
            for i in ours
        ],
    }
    return custody, leaves


def test_a_true_custody_chain_verifies(log_key: Ed25519PrivateKey) -> None:
    evidence_id = str(uuid.uuid4())
    custody, leaves = build_log(log_key, evidence_id)
    report = verify_chain(custody, LogKey.parse(_vkey(log_key)), evidence_id)
    assert report.events == 4 and report.checkpoint.size == len(leaves)
    assert report.last_leaf_hash == leaf_hash(leaves[custody["events"][-1]["index"]]).hex()


def _re_leaf(event: dict[str, Any]) -> None:
    """Make ``event``'s leaf say what its entry says (a forger's consistent edit)."""
    event["leaf"] = base64.b64encode(canonical(event["entry"])).decode()


def _drop_second(c: dict[str, Any]) -> None:
    del c["events"][1]


def _swap(c: dict[str, Any]) -> None:
    c["events"][1], c["events"][2] = c["events"][2], c["events"][1]


def _edit_entry_only(c: dict[str, Any]) -> None:
    c["events"][1]["entry"]["event"]["action"] = "hold_released"


def _edit_entry_and_leaf(c: dict[str, Any]) -> None:
    c["events"][1]["entry"]["event"]["action"] = "hold_released"
    _re_leaf(c["events"][1])


def _renumber(c: dict[str, Any]) -> None:
    c["events"][2]["entry"]["item_seq"] = 4
    _re_leaf(c["events"][2])


def _relink(c: dict[str, Any]) -> None:
    c["events"][2]["entry"]["prev_leaf"] = "00" * 32
    _re_leaf(c["events"][2])


def _shift_index(c: dict[str, Any]) -> None:
    c["events"][0]["index"] += 1


def _grow_size(c: dict[str, Any]) -> None:
    c["checkpoint"] = c["checkpoint"].replace("\n9\n", "\n10\n", 1)


def _bad_proof(c: dict[str, Any]) -> None:
    c["events"][3]["inclusion"][0] = base64.b64encode(b"\x01" * 32).decode()


def _no_events(c: dict[str, Any]) -> None:
    c["events"] = []


@pytest.mark.parametrize(
    ("tamper", "complaint"),
    [
        (_drop_second, "item_seq"),
        (_swap, "item_seq 3 where 2 was due"),
        (_edit_entry_only, "differs from the leaf"),
        (_edit_entry_and_leaf, "inclusion proof"),
        (_renumber, "inclusion proof"),
        (_relink, "inclusion proof"),
        (_shift_index, "inclusion proof"),
        (_grow_size, "signature"),
        (_bad_proof, "inclusion proof"),
        (_no_events, "no events"),
    ],
)
def test_a_tampered_custody_chain_is_refused_with_the_reason(log_key: Ed25519PrivateKey, tamper, complaint: str) -> None:
    evidence_id = str(uuid.uuid4())
    custody, _ = build_log(log_key, evidence_id)
    tampered = copy.deepcopy(custody)
    tamper(tampered)
    with pytest.raises(VerificationFailed, match=complaint):
        verify_chain(tampered, LogKey.parse(_vkey(log_key)), evidence_id)


def test_a_log_that_itself_renumbers_or_relinks_is_caught(log_key: Ed25519PrivateKey) -> None:
    """A log operator who re-signs can make proofs pass; item_seq and prev_leaf still expose a gap."""
    evidence_id = str(uuid.uuid4())
    key = LogKey.parse(_vkey(log_key))
    entries = []
    previous = None
    for seq, action in [(1, "submitted"), (2, "received"), (4, "sealed")]:  # seq 3 withheld
        entry = {"event": _event(evidence_id, action, seq), "item_seq": seq, "prev_leaf": previous, "logged_at": "t"}
        previous = leaf_hash(canonical(entry)).hex()
        entries.append(canonical(entry))
    hashes = [leaf_hash(leaf) for leaf in entries]
    custody = {
        "checkpoint": _note(log_key, len(entries), tree_hash(hashes)),
        "events": [
            {"index": i, "leaf": base64.b64encode(leaf).decode(), "entry": json.loads(leaf),
             "inclusion": [base64.b64encode(p).decode() for p in audit_path(i, hashes)]}
            for i, leaf in enumerate(entries)
        ],
    }
    with pytest.raises(VerificationFailed, match="item_seq 4 where 3 was due"):
        verify_chain(custody, key, evidence_id)

    broken = json.loads(entries[1])
    broken["prev_leaf"] = "ab" * 32
    entries[1] = canonical(broken)
    entries = entries[:2]
    hashes = [leaf_hash(leaf) for leaf in entries]
    custody = {
        "checkpoint": _note(log_key, 2, tree_hash(hashes)),
        "events": [
            {"index": i, "leaf": base64.b64encode(leaf).decode(), "entry": json.loads(leaf),
             "inclusion": [base64.b64encode(p).decode() for p in audit_path(i, hashes)]}
            for i, leaf in enumerate(entries)
        ],
    }
    with pytest.raises(VerificationFailed, match="chain is broken"):
        verify_chain(custody, key, evidence_id)


def test_a_chain_about_another_item_is_refused(log_key: Ed25519PrivateKey) -> None:
    evidence_id = str(uuid.uuid4())
    custody, _ = build_log(log_key, evidence_id)
    with pytest.raises(VerificationFailed, match="is about item"):
        verify_chain(custody, LogKey.parse(_vkey(log_key)), str(uuid.uuid4()))


def test_a_chain_checked_with_another_key_is_refused(log_key: Ed25519PrivateKey) -> None:
    evidence_id = str(uuid.uuid4())
    custody, _ = build_log(log_key, evidence_id)
    with pytest.raises(VerificationFailed, match="not signed by the pinned log key"):
        verify_chain(custody, LogKey.parse(_vkey(Ed25519PrivateKey.generate())), evidence_id)


def test_an_answer_that_is_not_an_object_is_refused(log_key: Ed25519PrivateKey) -> None:
    with pytest.raises(VerificationFailed, match="not a JSON object"):
        verify_chain([1, 2], LogKey.parse(_vkey(log_key)), str(uuid.uuid4()))  # type: ignore[arg-type]


def test_a_leaf_nested_too_deep_is_refused(log_key: Ed25519PrivateKey) -> None:
    """Without a pinned key a forger logs what they like: a leaf too deep to parse is refused, not raised."""
    leaf = b"[" * 100_000 + b"]" * 100_000
    custody = {
        "checkpoint": _note(log_key, 1, leaf_hash(leaf)),
        "events": [{"index": 0, "leaf": base64.b64encode(leaf).decode(), "entry": None, "inclusion": []}],
    }
    with pytest.raises(VerificationFailed, match="the leaf is not JSON"):
        verify_chain(custody, LogKey.parse(_vkey(log_key)), str(uuid.uuid4()))



@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_answer_is_verified_or_refused_with_a_reason_never_a_crash(
    log_key: Ed25519PrivateKey, data: st.DataObject
) -> None:
    """Whatever an answer holds in place of any of its values, the verifier checks it or says
    why it does not hold (VerificationFailed), and never accepts an answer it was not given."""
    evidence_id = "0190a1b2-0000-7000-8000-000000000001"
    genuine, _ = build_log(log_key, evidence_id)
    answer = damaged(data, genuine)
    try:
        verify_chain(answer, LogKey.parse(_vkey(log_key)), evidence_id)
    except VerificationFailed:
        return
    assert answer == genuine or _same_proofs(answer, genuine), answer


def _same_proofs(answer: dict[str, Any], genuine: dict[str, Any]) -> bool:
    """Whether ``answer`` differs from ``genuine`` only in what equals it as a decoded value (an
    entry's ``1.0`` for ``1``): its checkpoint, leaves and proofs are the same."""
    return answer["checkpoint"] == genuine["checkpoint"] and [
        (e["index"], e["leaf"], e["inclusion"]) for e in answer["events"]
    ] == [(e["index"], e["leaf"], e["inclusion"]) for e in genuine["events"]]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10**4), ANY_CHARACTER | st.sampled_from("\ud800\udcff")), min_size=1, max_size=3),
    st.booleans(),
)
def test_a_key_or_note_with_any_characters_changed_parses_or_is_refused_with_a_reason(
    log_key: Ed25519PrivateKey, changes: list[tuple[int, str]], the_note: bool
) -> None:
    """Both come from outside (an answer, a package, the command line), lone surrogates included."""
    note, key = _note(log_key, 12, hashlib.sha256(b"root").digest()), _vkey(log_key)
    text = list(note if the_note else key)
    for position, character in changes:
        text[position % len(text)] = character
    changed = "".join(text)
    try:
        if the_note:
            open_checkpoint(changed, LogKey.parse(key))
        else:
            LogKey.parse(changed)
    except VerificationFailed:
        pass
