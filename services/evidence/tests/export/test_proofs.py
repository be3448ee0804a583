"""Evidence's own check of the ledger's answer against a custody log built here (a tree by the
RFC 6962 recursion, a checkpoint signed as a C2SP note)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custody_common.events import canonical
from custody_common.merkle import leaf_hash
from custody_evidence.export.proofs import LedgerAnswerInvalid, open_checkpoint, verify_chain
from tests.support.rfc6962 import audit_path, tree_hash

ORIGIN = "custody.test/log"
ITEM = "0190a1b2-0000-7000-8000-000000000001"


def _log(key: Ed25519PrivateKey, events: int = 5) -> tuple[dict[str, Any], str]:
    """A chain of ``events`` events of ITEM among other leaves, and the log's verifier key."""
    leaves: list[bytes] = []
    mine: list[int] = []
    previous = None
    for n in range(events):
        leaves.append(canonical({"event": {"id": f"other-{n}"}, "item_seq": None, "prev_leaf": None, "logged_at": "t"}))
        entry = {
            "event": {"id": f"e{n}", "action": "accessed", "evidence_id": ITEM},
            "item_seq": n + 1,
            "prev_leaf": previous,
            "logged_at": "2025-05-01T10:00:00.000Z",
        }
        leaves.append(canonical(entry))
        mine.append(len(leaves) - 1)
        previous = leaf_hash(leaves[-1]).hex()
    hashes = [leaf_hash(leaf) for leaf in leaves]
    root = tree_hash(hashes)
    body = f"{ORIGIN}\n{len(leaves)}\n{base64.b64encode(root).decode()}\n"
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + raw).digest()[:4]
    note = f"{body}\n\u2014 {ORIGIN} {base64.b64encode(key_id + key.sign(body.encode())).decode()}\n"
    encoded = base64.b64encode(bytes([1]) + raw).decode()
    verifier = f"{ORIGIN}+{key_id.hex()}+{encoded}"
    chain = {
        "checkpoint": note,
        "events": [
            {
                "index": i,
                "leaf": base64.b64encode(leaves[i]).decode(),
                "entry": json.loads(leaves[i]),
                "inclusion": [base64.b64encode(h).decode() for h in audit_path(i, hashes)],
            }
            for i in mine
        ],
    }
    return chain, verifier


def test_a_true_chain_verifies() -> None:
    chain, verifier = _log(Ed25519PrivateKey.generate())
    checkpoint = open_checkpoint(chain["checkpoint"], verifier)
    verified = verify_chain(chain, checkpoint, ITEM)
    assert checkpoint.size == 10 and checkpoint.origin == ORIGIN
    assert [e["item_seq"] for e in verified.entries] == [1, 2, 3, 4, 5]
    assert verified.indices == [1, 3, 5, 7, 9]


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    chain, _ = _log(Ed25519PrivateKey.generate())
    _, other = _log(Ed25519PrivateKey.generate())
    with pytest.raises(LedgerAnswerInvalid, match="not signed by the log's key"):
        open_checkpoint(chain["checkpoint"], other)


def _tampered(change) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    chain, verifier = _log(Ed25519PrivateKey.generate())
    altered = copy.deepcopy(chain)
    change(altered)
    return {"chain": altered, "checkpoint": open_checkpoint(chain["checkpoint"], verifier)}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["events"].pop(2), "breaks the item's chain"),
        (lambda c: c["events"][1]["entry"]["event"].update(action="exported"), "not the leaf it claims"),
        (lambda c: c["events"][3]["inclusion"].__setitem__(0, base64.b64encode(b"\x00" * 32).decode()), "not included"),
        (lambda c: c["events"][0].update(index=2), "not included"),
        (lambda c: c.update(checkpoint=c["checkpoint"] + " "), "not proven against"),
    ],
    ids=["removed event", "edited entry", "proof hash", "moved index", "other checkpoint"],
)
def test_an_altered_chain_is_refused(change, message: str) -> None:  # type: ignore[no-untyped-def]
    case = _tampered(change)
    with pytest.raises(LedgerAnswerInvalid, match=message):
        verify_chain(case["chain"], case["checkpoint"], ITEM)
