"""The log's Merkle tree: the proofs it builds from stored subtree hashes are the published
RFC 6962 / RFC 9162 vectors' and a literal transcription of the RFC 6962 recursion's, for
every tree hypothesis can think of, and verify (custody_common.merkle) only for what they prove."""

from __future__ import annotations

import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from custody_audit.log.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeId,
    ProofError,
    consistency_nodes,
    consistency_proof,
    inclusion_nodes,
    inclusion_proof,
    leaf_hash,
    node_hash,
    perfect_subtrees,
    root_hash,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)
from tests.support import merkle_vectors as vectors
from tests.support import rfc6962

README_LEAVES = [bytes.fromhex(h) for h in ["", "00", "10", "2021", "3031", "40414243",
                                            "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]


def stored_nodes(hashes: list[bytes]) -> dict[NodeId, bytes]:
    """What the log stores while appending these leaves: every perfect subtree."""
    tree = CompactRange()
    stored = {}
    for index, h in enumerate(hashes):
        stored[NodeId(0, index)] = h
        stored.update(tree.append(h))
    return stored


def only(stored: dict[NodeId, bytes], wanted: set[NodeId]) -> dict[NodeId, bytes]:
    """Exactly the nodes the proof said it needs, so a proof reaching for more fails."""
    return {node: stored[node] for node in wanted}


# --- published vectors ---------------------------------------------------------------------

def test_happy_vectors_are_the_proofs_we_generate() -> None:
    hashes = [leaf_hash(leaf) for leaf in README_LEAVES]
    stored = stored_nodes(hashes)
    for path in vectors.vector_files("inclusion"):
        case = json.loads(path.read_text())
        size, index = case["treeSize"], case["leafIdx"]
        if case["wantErr"] or size > len(hashes) or vectors.b64(case["leafHash"]) != hashes[index]:
            continue
        assert inclusion_proof(index, size, stored) == vectors.proof(case["proof"])
        assert root_hash(size, stored) == vectors.b64(case["root"])
    for path in vectors.vector_files("consistency"):
        case = json.loads(path.read_text())
        if case["wantErr"] or vectors.b64(case["root2"]) != tree_hash(hashes[: case["size2"]]):
            continue
        assert consistency_proof(case["size1"], case["size2"], stored) == vectors.proof(case["proof"])


def test_roots_of_the_readme_table() -> None:
    expected = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    hashes = [leaf_hash(leaf) for leaf in README_LEAVES]
    tree = CompactRange()
    assert tree.root() == EMPTY_ROOT == bytes.fromhex(expected[0])
    for n in range(1, 9):
        tree.append(hashes[n - 1])
        assert tree.root().hex() == expected[n]
        assert tree_hash(hashes[:n]).hex() == expected[n]
        assert root_hash(n, stored_nodes(hashes)).hex() == expected[n]


def test_rfc6962_example_consistency_proof_shape() -> None:
    hashes = [leaf_hash(bytes([i])) for i in range(7)]
    stored = stored_nodes(hashes)
    a, b, c, d = hashes[:4]
    g = node_hash(a, b)
    ref_l = tree_hash(hashes[4:7])
    assert consistency_proof(3, 7, stored) == [c, d, g, ref_l]


# --- hashing primitives -------------------------------------------------------------------

def test_leaf_and_node_hashes_are_domain_separated() -> None:
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(left + right) != node_hash(left, right)
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


def test_perfect_subtrees_refuse_ranges_the_recursion_never_visits() -> None:
    with pytest.raises(ValueError):
        perfect_subtrees(1, 3)
    with pytest.raises(ValueError):
        perfect_subtrees(4, 4)
    assert perfect_subtrees(0, 7) == [NodeId(2, 0), NodeId(1, 2), NodeId(0, 6)]
    assert perfect_subtrees(8, 16) == [NodeId(3, 1)]


def test_missing_stored_node_is_a_proof_error() -> None:
    stored = stored_nodes([leaf_hash(bytes([i])) for i in range(5)])
    del stored[NodeId(2, 0)]
    with pytest.raises(ProofError, match="subtree"):
        inclusion_proof(4, 5, stored)


def test_compact_range_rejects_a_wrong_edge() -> None:
    with pytest.raises(ValueError):
        CompactRange(3, [EMPTY_ROOT])


# --- properties ---------------------------------------------------------------------------

leaves_strategy = st.lists(st.binary(max_size=8), min_size=1, max_size=70)


@st.composite
def tree_and_index(draw):  # type: ignore[no-untyped-def]
    leaves = draw(leaves_strategy)
    index = draw(st.integers(0, len(leaves) - 1))
    return [leaf_hash(leaf) for leaf in leaves], index


@st.composite
def tree_and_sizes(draw):  # type: ignore[no-untyped-def]
    leaves = draw(leaves_strategy)
    second = len(leaves)
    first = draw(st.integers(1, second))
    return [leaf_hash(leaf) for leaf in leaves], first


def _flip(value: bytes, position: int) -> bytes:
    position %= len(value) * 8
    return value[: position // 8] + bytes([value[position // 8] ^ (1 << position % 8)]) + value[position // 8 + 1 :]


@settings(max_examples=300, deadline=None)
@given(tree_and_index())
def test_generated_inclusion_proofs_are_rfc6962_paths_and_verify(case) -> None:  # type: ignore[no-untyped-def]
    hashes, index = case
    size = len(hashes)
    stored = stored_nodes(hashes)
    proof = inclusion_proof(index, size, only(stored, inclusion_nodes(index, size)))
    assert proof == rfc6962.audit_path(index, hashes)
    root = tree_hash(hashes)
    assert root_hash(size, stored) == root
    verify_inclusion(index, size, hashes[index], proof, root)


@settings(max_examples=300, deadline=None)
@given(tree_and_index(), st.data())
def test_inclusion_proofs_fail_when_anything_changes(case, data) -> None:  # type: ignore[no-untyped-def]
    hashes, index = case
    size = len(hashes)
    proof = inclusion_proof(index, size, stored_nodes(hashes))
    root = tree_hash(hashes)
    bit = data.draw(st.integers(0, 255), label="bit")
    with pytest.raises(ProofError):
        verify_inclusion(index, size, _flip(hashes[index], bit), proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(index, size, hashes[index], proof, _flip(root, bit))
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="element")
        altered = list(proof)
        altered[at] = _flip(altered[at], bit)
        with pytest.raises(ProofError):
            verify_inclusion(index, size, hashes[index], altered, root)
        with pytest.raises(ProofError):
            verify_inclusion(index, size, hashes[index], proof[:-1], root)
    with pytest.raises(ProofError):
        verify_inclusion(index, size, hashes[index], [*proof, root], root)
    other_index = data.draw(st.integers(0, size + 3).filter(lambda i: i != index), label="index")
    assume(other_index >= size or hashes[other_index] != hashes[index])
    with pytest.raises(ProofError):
        verify_inclusion(other_index, size, hashes[index], proof, root)


@settings(max_examples=300, deadline=None)
@given(tree_and_index(), st.data())
def test_inclusion_proofs_fail_for_another_tree_size(case, data) -> None:  # type: ignore[no-untyped-def]
    """A size names a tree (its root is signed with it): a proof for one size never proves
    inclusion in the tree of another size, unless it is that tree's own proof too."""
    hashes, index = case
    size = len(hashes)
    proof = inclusion_proof(index, size, stored_nodes(hashes))
    extra = data.draw(st.lists(st.binary(max_size=4), max_size=40), label="more leaves")
    longer = hashes + [leaf_hash(leaf) for leaf in extra]
    other_size = data.draw(st.integers(0, len(longer)).filter(lambda s: s != size), label="size")
    other_root = tree_hash(longer[:other_size])
    if index < other_size and rfc6962.audit_path(index, longer[:other_size]) == proof:
        verify_inclusion(index, other_size, hashes[index], proof, other_root)
    else:
        with pytest.raises(ProofError):
            verify_inclusion(index, other_size, hashes[index], proof, other_root)


@settings(max_examples=300, deadline=None)
@given(tree_and_sizes())
def test_generated_consistency_proofs_are_rfc6962_proofs_and_verify(case) -> None:  # type: ignore[no-untyped-def]
    hashes, first = case
    second = len(hashes)
    stored = stored_nodes(hashes)
    proof = consistency_proof(first, second, only(stored, consistency_nodes(first, second)))
    assert proof == (rfc6962.consistency_proof(first, hashes) if first < second else [])
    verify_consistency(first, second, tree_hash(hashes[:first]), tree_hash(hashes), proof)


@settings(max_examples=300, deadline=None)
@given(tree_and_sizes(), st.data())
def test_consistency_proofs_fail_when_anything_changes(case, data) -> None:  # type: ignore[no-untyped-def]
    hashes, first = case
    second = len(hashes)
    proof = consistency_proof(first, second, stored_nodes(hashes))
    root1, root2 = tree_hash(hashes[:first]), tree_hash(hashes)
    bit = data.draw(st.integers(0, 255), label="bit")
    assume(root1 != root2)  # equal sizes carry no proof: only the roots can differ
    with pytest.raises(ProofError):
        verify_consistency(first, second, _flip(root1, bit), root2, proof)
    with pytest.raises(ProofError):
        verify_consistency(first, second, root1, _flip(root2, bit), proof)
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="element")
        altered = list(proof)
        altered[at] = _flip(altered[at], bit)
        with pytest.raises(ProofError):
            verify_consistency(first, second, root1, root2, altered)
        with pytest.raises(ProofError):
            verify_consistency(first, second, root1, root2, proof[:-1])
    with pytest.raises(ProofError):
        verify_consistency(first, second, root1, root2, [*proof, root2])


@settings(max_examples=300, deadline=None)
@given(tree_and_sizes(), st.data())
def test_consistency_proofs_fail_for_other_tree_sizes(case, data) -> None:  # type: ignore[no-untyped-def]
    hashes, first = case
    second = len(hashes)
    proof = consistency_proof(first, second, stored_nodes(hashes))
    extra = data.draw(st.lists(st.binary(max_size=4), max_size=40), label="more leaves")
    longer = hashes + [leaf_hash(leaf) for leaf in extra]
    other_first = data.draw(st.integers(0, len(longer)), label="first")
    other_second = data.draw(st.integers(0, len(longer)), label="second")
    assume((other_first, other_second) != (first, second))
    root1, root2 = tree_hash(longer[:other_first]), tree_hash(longer[:other_second])
    genuine = 0 < other_first <= other_second and proof == (
        rfc6962.consistency_proof(other_first, longer[:other_second]) if other_first < other_second else []
    )
    if genuine:
        verify_consistency(other_first, other_second, root1, root2, proof)
    else:
        with pytest.raises(ProofError):
            verify_consistency(other_first, other_second, root1, root2, proof)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 1 << 40), st.data())
def test_proofs_need_few_stored_nodes_at_any_size(size, data) -> None:  # type: ignore[no-untyped-def]
    index = data.draw(st.integers(0, size - 1))
    first = data.draw(st.integers(1, size))
    depth = max(size.bit_length(), 1)
    assert len(inclusion_nodes(index, size)) <= depth * depth
    assert len(consistency_nodes(first, size)) <= depth * depth + depth
