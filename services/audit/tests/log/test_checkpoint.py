"""Checkpoints as C2SP signed notes: the Go sumdb/note reference vector, round trips, and
every alteration refused."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody_audit.log.checkpoint import (
    Checkpoint,
    CheckpointError,
    key_id,
    parse_checkpoint,
    parse_verifier_key,
    sign_checkpoint,
    verifier_key,
    verify_checkpoint,
)

# golang.org/x/mod/sumdb/note's published example (key, text, signature).
GO_SIGNER_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_STAMP = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="

ORIGIN = "custody.test/log"
ROOT = hashlib.sha256(b"root").digest()


def test_key_id_verifier_key_and_signature_match_the_go_reference() -> None:
    key = Ed25519PrivateKey.from_private_bytes(GO_SIGNER_SEED)
    assert verifier_key("PeterNeumann", key.public_key()) == GO_VERIFIER_KEY
    assert key_id("PeterNeumann", key.public_key()).hex() == "c74f20a3"
    stamp = base64.b64encode(key_id("PeterNeumann", key.public_key()) + key.sign(GO_TEXT.encode())).decode()
    assert stamp == GO_STAMP
    parsed = parse_verifier_key(GO_VERIFIER_KEY)
    assert parsed.name == "PeterNeumann" and parsed.key_id.hex() == "c74f20a3"


def test_verifier_key_whose_base64_holds_a_plus() -> None:
    # transparency-dev/formats' test key, whose base64 contains '+'.
    parsed = parse_verifier_key("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    assert parsed.name == "TEST" and parsed.key_id.hex() == "7997405c"


def test_signed_checkpoint_has_the_c2sp_shape_and_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), key)
    body, signature = note.split("\n\n")
    assert body == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}"
    assert signature.startswith(f"\u2014 {ORIGIN} ") and signature.endswith("\n")
    stamp = base64.b64decode(signature.split(" ")[2])
    assert stamp[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + key.public_key().public_bytes_raw()).digest()[:4]
    vkey = verifier_key(ORIGIN, key.public_key())
    assert vkey.startswith(f"{ORIGIN}+{stamp[:4].hex()}+")
    checkpoint = verify_checkpoint(note, vkey)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (ORIGIN, 42, ROOT)


def test_signatures_by_other_keys_are_ignored_but_a_bad_one_of_ours_is_refused() -> None:
    ours, theirs = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    checkpoint = Checkpoint(ORIGIN, 7, ROOT)
    cosigned = sign_checkpoint(checkpoint, theirs) + sign_checkpoint(checkpoint, ours).split("\n\n")[1]
    assert verify_checkpoint(cosigned, verifier_key(ORIGIN, ours.public_key())).size == 7
    with pytest.raises(CheckpointError, match="no signature"):
        verify_checkpoint(sign_checkpoint(checkpoint, theirs), verifier_key(ORIGIN, ours.public_key()))


@pytest.mark.parametrize(
    "alter",
    [
        lambda n: n.replace("\n42\n", "\n43\n"),
        lambda n: n.replace(ORIGIN + "\n", "custody.other/log\n", 1),
        lambda n: n.replace(base64.b64encode(ROOT).decode(), base64.b64encode(hashlib.sha256(b"x").digest()).decode()),
        lambda n: n.replace("\u2014 ", "- "),
        lambda n: n.rstrip("\n"),
        lambda n: n.replace("\n\n", "\n"),
        lambda n: n.replace("\n\n", "\nextra\n\n"),
        lambda n: n[:-5] + ("A" if n[-5] != "A" else "B") + n[-4:],
        lambda n: n.replace("\n42\n", "\n042\n"),
        lambda n: n.replace("\n42\n", "\n4\u00b2\n"),  # a digit to isdigit(), not to int()
        lambda n: n.replace("\n42\n", "\n" + "9" * 5000 + "\n"),
        lambda n: n.replace("\n\n", "\n\n\u2014 x y\n"),
    ],
    ids=["size", "origin", "root", "dash", "no-final-newline", "no-blank-line", "extension", "signature",
         "leading-zero", "superscript-digit", "thousands-of-digits", "garbage-signature-line"],
)
def test_altered_checkpoints_are_refused(alter) -> None:  # type: ignore[no-untyped-def]
    key = Ed25519PrivateKey.generate()
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), key)
    with pytest.raises(CheckpointError):
        verify_checkpoint(alter(note), verifier_key(ORIGIN, key.public_key()), origin=ORIGIN)


def test_parse_keeps_extension_lines_that_are_signed() -> None:
    key = Ed25519PrivateKey.generate()
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT, ("Timestamp: 1",)), key)
    checkpoint, signatures = parse_checkpoint(note)
    assert checkpoint.extensions == ("Timestamp: 1",) and len(signatures) == 1
    assert verify_checkpoint(note, verifier_key(ORIGIN, key.public_key())).extensions == ("Timestamp: 1",)


@pytest.mark.parametrize(
    "text",
    [
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+AhpcQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+zz4f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_keys_are_refused(text: str) -> None:
    with pytest.raises(CheckpointError):
        parse_verifier_key(text)


def test_names_with_spaces_or_plus_cannot_sign() -> None:
    with pytest.raises(CheckpointError):
        sign_checkpoint(Checkpoint("bad name", 1, ROOT), Ed25519PrivateKey.generate())
    with pytest.raises(CheckpointError):
        verifier_key("a+b", Ed25519PrivateKey.generate().public_key())
