"""The vault hashes exactly like clearway.commitment: account leaves, compact Merkle
proofs, the genesis root, EIP-712 attestation digests."""

from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from clearway.chain.contracts import (
    Attestation,
    attestation_digest,
    attestation_typed_data,
    boa_chain_id,
    domain_separator,
    recover_attestation_signer,
    sign_attestation,
)
from clearway.commitment import (
    AccountLeaf,
    SparseMerkleTree,
    genesis_state_root,
)

from vault_harness import GENESIS_CONFIG_HASH, VERIFIER_KEYS

int256 = st.integers(-(2**255), 2**255 - 1)
addresses = st.binary(min_size=20, max_size=20)
positions = st.lists(
    st.tuples(st.integers(0, 2**32 - 1), int256, int256), max_size=12, unique_by=lambda p: p[0]
)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), addresses, int256, positions)
def test_contract_account_leaf_equals_python_leaf(vault, index, owner, cash, held):
    leaf = AccountLeaf(index, owner, cash, held)
    on_chain = vault.account_leaf(
        index, leaf.owner, cash, [p.as_tuple() for p in leaf.positions]
    )
    assert on_chain == leaf.hash()


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(
        st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)),
        st.binary(min_size=32, max_size=32).filter(any),
        min_size=1,
        max_size=20,
    ),
    st.data(),
)
def test_contract_compact_proof_root_equals_python_root(vault, leaves, data):
    tree = SparseMerkleTree(leaves)
    index = data.draw(st.sampled_from(sorted(leaves)))
    proof = tree.compact_proof(index)
    assert vault.compute_root(leaves[index], index, proof.bitmap, list(proof.siblings)) == tree.root
    if proof.siblings:  # one sibling short: malformed, empty root
        short = list(proof.siblings[:-1])
        assert vault.compute_root(leaves[index], index, proof.bitmap, short) == bytes(32)


def test_genesis_root_and_configuration(vault, token, sequencer):
    assert vault.latest_root() == vault.finalised_root() == genesis_state_root(GENESIS_CONFIG_HASH)
    assert vault.genesis_config_hash() == GENESIS_CONFIG_HASH
    assert vault.token() == token.address
    assert vault.sequencer() == sequencer
    assert vault.threshold() == 2 and vault.verifier_count() == 3
    assert [vault.verifiers(i) for i in range(3)] == [k.address for k in VERIFIER_KEYS]
    assert vault.forced_action_deadline() == 7 * 24 * 3600


def test_domain_separator_and_digest_match_eth_account_eip712(vault):
    chain_id = boa_chain_id()
    assert vault.domain_separator() == domain_separator(chain_id, vault.address)
    attestation = Attestation(3, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32)
    signable = encode_typed_data(full_message=attestation_typed_data(chain_id, vault.address, attestation))
    digest = attestation_digest(chain_id, vault.address, attestation)
    key = VERIFIER_KEYS[0]
    assert Account.sign_message(signable, key.key).signature == Account.unsafe_sign_hash(digest, key.key).signature
    signature = sign_attestation(key.key, chain_id, vault.address, attestation)
    assert recover_attestation_signer(chain_id, vault.address, attestation, signature) == key.address


def test_submitted_batch_digest_is_the_python_digest(harness):
    attestation = harness.submit()
    assert harness.vault.batch_digest(1) == attestation_digest(
        boa_chain_id(), harness.vault.address, attestation
    )
