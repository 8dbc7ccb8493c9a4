"""Sparse Merkle tree: incremental updates match a from-scratch build, every proof
verifies, a tampered proof does not."""

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from clearway.commitment.merkle import (
    EMPTY_LEAF,
    EMPTY_ROOT,
    EMPTY_SUBTREE_HASHES,
    MAX_INDEX,
    TREE_DEPTH,
    CompactProof,
    MerkleProof,
    SparseMerkleTree,
    merkle_root,
    root_from_proof,
    verify_proof,
)

# Indices clustered (shared paths) and spread over the whole 32-bit range.
indices = st.one_of(
    st.integers(0, 15), st.integers(2**31 - 8, 2**31 + 8), st.integers(0, MAX_INDEX)
)
leaves = st.binary(min_size=32, max_size=32).filter(lambda b: b != EMPTY_LEAF)
# A change either sets a leaf or clears it.
changes = st.dictionaries(indices, st.one_of(leaves, st.just(EMPTY_LEAF)), max_size=12)


def test_empty_tree_root_is_the_precomputed_empty_root():
    assert SparseMerkleTree().root == EMPTY_ROOT == merkle_root({})
    assert EMPTY_SUBTREE_HASHES[1] == keccak(bytes(64))
    assert len(EMPTY_SUBTREE_HASHES) == TREE_DEPTH + 1


def test_single_leaf_root_hashes_up_with_empty_siblings():
    leaf = b"\x01" * 32
    node = leaf
    for level in range(TREE_DEPTH):  # index 0: always the left child
        node = keccak(node + EMPTY_SUBTREE_HASHES[level])
    assert SparseMerkleTree({0: leaf}).root == node


@settings(max_examples=60, deadline=None)
@given(st.lists(changes, min_size=1, max_size=5))
def test_incremental_updates_equal_a_from_scratch_build(batches):
    tree = SparseMerkleTree()
    expected: dict[int, bytes] = {}
    for batch in batches:
        root = tree.update(batch)
        expected.update(batch)
        assert root == merkle_root(expected) == tree.root
    assert tree.leaves() == {i: leaf for i, leaf in expected.items() if leaf != EMPTY_LEAF}


@settings(max_examples=60, deadline=None)
@given(changes, indices)
def test_every_proof_verifies_including_absent_indices(batch, absent):
    tree = SparseMerkleTree(batch)
    for index in list(batch) + [absent]:
        leaf = tree.leaf(index)
        full = tree.proof(index)
        compact = tree.compact_proof(index)
        assert verify_proof(tree.root, leaf, full)
        assert verify_proof(tree.root, leaf, compact)
        assert full.compact() == compact
        assert compact.expand() == full
        assert len(compact.siblings) == bin(compact.bitmap).count("1")


@settings(max_examples=60, deadline=None)
@given(changes.filter(bool), st.data())
def test_a_tampered_proof_fails(batch, data):
    tree = SparseMerkleTree(batch)
    index = data.draw(st.sampled_from(sorted(batch)))
    leaf = tree.leaf(index)
    proof = tree.proof(index)
    level = data.draw(st.integers(0, TREE_DEPTH - 1))
    flipped = bytearray(proof.siblings[level])
    flipped[data.draw(st.integers(0, 31))] ^= 1 << data.draw(st.integers(0, 7))
    siblings = list(proof.siblings)
    siblings[level] = bytes(flipped)
    assert not verify_proof(tree.root, leaf, MerkleProof(index, tuple(siblings)))
    # the same proof for another index, or another leaf, fails too
    other = index ^ (1 << level)
    assert not verify_proof(tree.root, leaf, MerkleProof(other, proof.siblings)) or (
        tree.leaf(other) == leaf
    )
    assert not verify_proof(tree.root, keccak(leaf), proof)
    compact = tree.compact_proof(index)
    if compact.siblings:
        bad = CompactProof(index, compact.bitmap, compact.siblings[:-1])
        assert not verify_proof(tree.root, leaf, bad)
    wrong_bitmap = CompactProof(index, compact.bitmap ^ (1 << level), compact.siblings)
    assert not verify_proof(tree.root, leaf, wrong_bitmap)


def test_updating_k_leaves_costs_at_most_k_times_depth_hashes(monkeypatch):
    from clearway.commitment import merkle

    tree = SparseMerkleTree({i * 1000: bytes([1]) * 32 for i in range(200)})
    calls = []
    real = merkle.hash_pair
    monkeypatch.setattr(merkle, "hash_pair", lambda a, b: calls.append(1) or real(a, b))
    tree.update({5 * 1000: b"\x02" * 32, 7 * 1000: b"\x03" * 32, 123456: b"\x04" * 32})
    assert 0 < len(calls) <= 3 * TREE_DEPTH
    assert tree.root == merkle_root(tree.leaves())


def test_clearing_every_leaf_returns_to_the_empty_root_and_stores_nothing():
    tree = SparseMerkleTree({1: b"\x01" * 32, 2**32 - 1: b"\x02" * 32})
    tree.update({1: EMPTY_LEAF, 2**32 - 1: EMPTY_LEAF})
    assert tree.root == EMPTY_ROOT
    assert all(not level for level in tree._levels)


def test_invalid_inputs_are_refused_and_leave_the_tree_unchanged():
    tree = SparseMerkleTree({3: b"\x01" * 32})
    root = tree.root
    with pytest.raises(ValueError):
        tree.update({4: b"\x02" * 32, 2**32: b"\x02" * 32})
    with pytest.raises(ValueError):
        tree.update({-1: b"\x02" * 32})
    with pytest.raises(ValueError):
        tree.set(5, b"short")
    assert tree.root == root and len(tree) == 1
    with pytest.raises(ValueError):
        root_from_proof(b"\x01" * 32, MerkleProof(3, ()))
    with pytest.raises(ValueError):
        CompactProof(3, 1, ()).expand()


def test_copy_is_independent():
    tree = SparseMerkleTree({3: b"\x01" * 32})
    clone = tree.copy()
    clone.set(4, b"\x02" * 32)
    assert tree.root == merkle_root({3: b"\x01" * 32})
    assert clone.root != tree.root
