"""RFC 9162 proof verification against every published vector under ``shared/testdata/merkle``:
the happy cases verify, every ``wantErr`` case is rejected."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from custody_common.merkle import ProofError, leaf_hash, node_hash, verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parents[4] / "shared" / "testdata" / "merkle"


def _vector_files(kind: str) -> list[Path]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert files, f"no {kind} vectors under {VECTORS}; the shared test data must sit beside the repository"
    return files


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _proof(values: list[str] | None) -> list[bytes]:
    return [_b64(v) for v in values or []]


@pytest.mark.parametrize("path", _vector_files("inclusion"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_inclusion_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), _proof(case["proof"]), _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _vector_files("consistency"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_consistency_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), _proof(case["proof"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_every_vector_file_is_exercised() -> None:
    assert len(_vector_files("inclusion")) + len(_vector_files("consistency")) == len(list(VECTORS.rglob("*.json")))


def test_the_empty_tree_proves_nothing() -> None:
    root = leaf_hash(b"only")
    with pytest.raises(ProofError, match="non-empty"):
        verify_consistency(0, 1, leaf_hash(b""), root, [])
    with pytest.raises(ProofError, match="outside"):
        verify_inclusion(0, 0, root, [], root)


def test_a_proof_element_of_the_wrong_length_is_refused_before_hashing() -> None:
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    root = node_hash(left, right)
    verify_inclusion(0, 2, left, [right], root)
    with pytest.raises(ProofError, match="31 bytes"):
        verify_inclusion(0, 2, left, [right[:31]], root)
