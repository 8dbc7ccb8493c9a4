"""Leaf encodings, canonical positions, state roots."""

import pytest
from eth_abi import decode
from eth_hash.auto import keccak

from clearway.commitment import (
    EMPTY_ROOT,
    AccountLeaf,
    CommittedState,
    InstrumentLeaf,
    PositionLeaf,
    account_leaf_hash,
    genesis_state_root,
    instrument_leaf_hash,
    state_root,
    verify_proof,
)
from clearway.commitment.effects import (
    ForcedWithdrawalServed,
    Withdrawal,
    batch_effects_hash,
)

OWNER = "0x" + "ab" * 20
GENESIS = b"\x07" * 32


def test_account_leaf_sorts_positions_and_drops_zero_sizes():
    leaf = AccountLeaf(5, OWNER, -12, [(9, 3, 1), (2, -4, 0), (4, 0, 7)])
    assert [p.instrument_id for p in leaf.positions] == [2, 9]
    same = AccountLeaf(5, OWNER.upper().replace("0X", "0x"), -12, [(2, -4, 0), (9, 3, 1)])
    assert leaf.hash() == same.hash() == account_leaf_hash(5, OWNER, -12, [(9, 3, 1), (2, -4, 0)])


def test_account_leaf_is_keccak_of_the_standard_abi_encoding():
    leaf = AccountLeaf(5, OWNER, -12, [PositionLeaf(2, -4, 10**20)])
    encoded = leaf.encode()
    assert leaf.hash() == keccak(encoded)
    index, owner, cash, positions = decode(
        ["uint32", "address", "int256", "(uint32,int256,int256)[]"], encoded
    )
    assert (index, owner.lower(), cash, positions) == (5, OWNER, -12, ((2, -4, 10**20),))
    # head: 3 static words + offset 0x80; then length and one 3-word tuple
    assert len(encoded) == 32 * (4 + 1 + 3)
    assert int.from_bytes(encoded[96:128], "big") == 0x80


def test_account_leaf_refuses_duplicate_instruments_and_out_of_range_fields():
    with pytest.raises(ValueError, match="one position per instrument"):
        AccountLeaf(1, OWNER, 0, [(2, 1, 0), (2, 0, 0)])
    with pytest.raises(ValueError):
        AccountLeaf(2**32, OWNER, 0)
    with pytest.raises(ValueError):
        AccountLeaf(1, OWNER, 2**255)
    with pytest.raises(ValueError):
        AccountLeaf(1, "0x1234", 0)
    with pytest.raises(ValueError):
        PositionLeaf(1, -(2**255) - 1, 0)


def test_instrument_leaf_encoding():
    leaf = InstrumentLeaf(3, 65_000_000_000, -5 * 10**12, 4)
    assert leaf.hash() == keccak(leaf.encode()) == instrument_leaf_hash(3, 65_000_000_000, -5 * 10**12, 4)
    assert decode(["uint32", "int256", "int256", "uint8"], leaf.encode()) == (
        3, 65_000_000_000, -5 * 10**12, 4
    )
    with pytest.raises(ValueError):
        InstrumentLeaf(3, 1, 1, 256)


def test_state_root_is_keccak_of_the_abi_encoded_tuple():
    a, i, g = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    expected = keccak(a + i + (7).to_bytes(32, "big") + (99).to_bytes(32, "big") + g)
    assert state_root(a, i, 7, 99, g) == expected
    assert genesis_state_root(g) == state_root(EMPTY_ROOT, EMPTY_ROOT, 0, 0, g)
    with pytest.raises(ValueError):
        state_root(a, i, 2**64, 0, g)
    with pytest.raises(ValueError):
        state_root(a[:31], i, 1, 0, g)


def test_committed_state_tracks_leaves_and_proves_them():
    state = CommittedState(GENESIS)
    assert state.root(0, 0) == genesis_state_root(GENESIS)
    account = AccountLeaf(42, OWNER, 1_000_000, [(1, 5, 0)])
    instrument = InstrumentLeaf(1, 100, 0, 0)
    state.update([account], [instrument])
    assert verify_proof(state.accounts.root, account.hash(), state.account_proof(42))
    assert verify_proof(state.instruments.root, instrument.hash(), state.instrument_proof(1))
    assert state.account(42) == account and state.instrument(1) == instrument
    assert state.root(1, 10) != state.root(1, 11)


def test_effects_hash_binds_order_and_values():
    w = [Withdrawal(OWNER, 5), Withdrawal("0x" + "cd" * 20, 6)]
    f = [ForcedWithdrawalServed(1, 0)]
    base = batch_effects_hash(3, w, f)
    assert base != batch_effects_hash(3, w[::-1], f)
    assert base != batch_effects_hash(4, w, f)
    assert base != batch_effects_hash(3, w, [ForcedWithdrawalServed(1, 1)])
    with pytest.raises(ValueError):
        Withdrawal(OWNER, 0)
    with pytest.raises(ValueError):
        Withdrawal(OWNER, 2**96)
    with pytest.raises(ValueError):
        ForcedWithdrawalServed(0, 1)
