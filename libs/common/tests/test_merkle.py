"""RFC 9162 proof verification against every published vector under ``shared/testdata/merkle``:
the happy cases verify, every ``wantErr`` case is rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custody_common.merkle import ProofError, leaf_hash, node_hash, verify_consistency, verify_inclusion
from tests.support.merkle_vectors import VECTORS, b64, proof, vector_files


@pytest.mark.parametrize("path", vector_files("inclusion"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_inclusion_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["leafIdx"], case["treeSize"], b64(case["leafHash"]), proof(case["proof"]), b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", vector_files("consistency"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_consistency_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["size1"], case["size2"], b64(case["root1"]), b64(case["root2"]), proof(case["proof"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_every_vector_file_is_exercised() -> None:
    assert len(vector_files("inclusion")) + len(vector_files("consistency")) == len(list(VECTORS.rglob("*.json")))


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
