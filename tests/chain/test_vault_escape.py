"""Escape hatch: reveal the finalised roots, post instruments, each account proves its leaf
and is paid its escape value once; deposits never included are refunded."""

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vault_harness import escape_args

from clearway.commitment import AccountLeaf, InstrumentLeaf, escape_value
from clearway.commitment.exchange_state import StateCommitter
from commitment.unsettled_funding import PRICE, escape_values, holdings, lazy_then_eager, price_rounding
from domain.lifecycle_support import HOUR, oracle

BTC = InstrumentLeaf(1, 60_000_000_000, 3_000_000_000, 4)  # price, funding index, 1e-4 BTC
ETH = InstrumentLeaf(2, 3_000_000_000, -2_000_000_000, 3)
CALL = InstrumentLeaf(7, 1_234_567, 0, 0)


@pytest.fixture
def frozen(harness, alice, bob):
    """Alice and Bob deposited 1,000 USDC each; batch 1 holds their accounts and is final;
    a third deposit is never included; the vault is frozen."""
    harness.deposit(alice, 1_000_000_000)
    harness.deposit(bob, 1_000_000_000)
    harness.submit_and_finalise(
        accounts=[
            # zero-sum positions and funding: total equity is the 2,000 USDC deposited
            AccountLeaf(0, alice, 300_000_000, [(1, 100, 2_000_000_000), (2, -200, 0)]),
            AccountLeaf(1, bob, 1_700_000_000, [(1, -100, 2_000_000_000), (2, 200, 0)]),
        ],
        instruments=[BTC, ETH, CALL],
        last_deposit_id=2,
    )
    harness.deposit(bob, 5_000_000)  # deposit 3, never included
    harness.freeze_with_overdue_request()
    return harness


def test_open_escape_checks_the_roots_against_the_finalised_state_root(frozen, vault):
    with boa.reverts("roots do not match the finalised state root"):
        vault.open_escape(frozen.state.instruments.root, frozen.state.accounts.root, 10)
    with boa.reverts("roots do not match the finalised state root"):
        vault.open_escape(frozen.state.accounts.root, frozen.state.instruments.root, 11)
    frozen.open_escape()
    assert vault.escape_open()
    assert vault.escape_pool() == 2_000_000_000  # refundable deposit 3 excluded
    with boa.reverts("escape is already open"):
        frozen.open_escape()


def test_escape_steps_are_refused_before_freeze_or_opening(harness, vault):
    with boa.reverts("vault is not frozen"):
        vault.open_escape(b"\x01" * 32, b"\x02" * 32, 0)
    with boa.reverts("vault is not frozen"):
        vault.refund_deposit(1)
    with boa.reverts("escape is not open"):
        vault.post_instrument(1, 1, 1, 0, 0, [])
    with boa.reverts("escape is not open"):
        vault.escape(0, harness.sequencer, 1, [], 0, [])


def test_accounts_escape_their_value_once(frozen, vault, token, alice, bob):
    frozen.open_escape()
    frozen.post_instruments()
    instruments = frozen.state.instrument_leaves()
    expected_alice = escape_value(frozen.state.account(0), instruments)
    expected_bob = escape_value(frozen.state.account(1), instruments)
    assert frozen.escape(0, sender=bob) == expected_alice  # anyone may trigger; owner is paid
    assert token.balanceOf(alice) == expected_alice
    assert vault.has_escaped(0) and not vault.has_escaped(1)
    with boa.reverts("account already escaped"):
        frozen.escape(0)
    assert frozen.escape(1) == expected_bob
    assert expected_alice + expected_bob == 2_000_000_000 and vault.escape_pool() == 0


def test_a_bad_account_proof_is_refused(frozen, vault, alice):
    frozen.open_escape()
    frozen.post_instruments()
    leaf = frozen.state.account(0)
    proof = frozen.state.account_proof(0)
    args = list(escape_args(leaf, proof))
    for position, value in (
        (2, leaf.cash + 1),  # inflated cash
        (1, "0x" + "ee" * 20),  # someone else's address
        (0, 1),  # another index
        (3, [p.as_tuple() for p in leaf.positions[:1]]),  # a losing position dropped
        (4, proof.bitmap ^ 1),  # bitmap tampered
        (5, [bytes(32)] + args[5][1:]),  # sibling tampered
        (5, args[5][:-1]),  # sibling missing
    ):
        tampered = list(args)
        tampered[position] = value
        with boa.reverts("bad account proof"):
            vault.escape(*tampered)


def test_escape_needs_every_held_instrument_posted(frozen, vault):
    frozen.open_escape()
    proof = frozen.state.instrument_proof(1)
    vault.post_instrument(1, BTC.settlement_price, BTC.funding_index, 4, proof.bitmap, list(proof.siblings))
    with boa.reverts("instrument not posted"):
        frozen.escape(0)


def test_post_instrument_refusals(frozen, vault):
    frozen.open_escape()
    proof = frozen.state.instrument_proof(1)
    siblings = list(proof.siblings)
    with boa.reverts("bad instrument proof"):
        vault.post_instrument(1, BTC.settlement_price + 1, BTC.funding_index, 4, proof.bitmap, siblings)
    with boa.reverts("settlement price out of range"):
        vault.post_instrument(1, 2**119, 0, 4, proof.bitmap, siblings)
    with boa.reverts("funding index out of range"):
        vault.post_instrument(1, 0, -(2**119) - 1, 4, proof.bitmap, siblings)
    with boa.reverts("size decimals out of range"):
        vault.post_instrument(1, 0, 0, 31, proof.bitmap, siblings)
    vault.post_instrument(1, BTC.settlement_price, BTC.funding_index, 4, proof.bitmap, siblings)
    assert vault.instrument(1) == (True, BTC.settlement_price, BTC.funding_index, 4)
    with boa.reverts("instrument already posted"):
        vault.post_instrument(1, BTC.settlement_price, BTC.funding_index, 4, proof.bitmap, siblings)


def test_an_account_under_water_escapes_nothing(harness, vault, alice):
    harness.deposit(alice, 100)
    harness.submit_and_finalise(
        accounts=[AccountLeaf(3, alice, -5, []), AccountLeaf(4, alice, 100, [(7, -1, 0)])],
        instruments=[CALL],
    )
    harness.freeze_with_overdue_request()
    harness.open_escape()
    harness.post_instruments()
    with boa.reverts("nothing to escape"):
        harness.escape(3)  # negative cash
    with boa.reverts("nothing to escape"):
        harness.escape(4)  # short a call worth more than the cash
    assert vault.escape_value(100, [(7, -1, 0)]) == 0


def test_escape_cannot_pay_more_than_the_pool(harness, vault, alice, bob):
    harness.deposit(alice, 100)
    harness.submit_and_finalise(
        accounts=[AccountLeaf(0, alice, 80), AccountLeaf(1, bob, 80)]  # inconsistent state
    )
    harness.freeze_with_overdue_request()
    harness.open_escape()
    harness.escape(0)
    with boa.reverts("escape pool exhausted"):
        harness.escape(1)


def test_deposits_never_included_are_refunded_once_to_their_depositor(frozen, vault, token, bob):
    before = token.balanceOf(bob)
    with boa.reverts("deposit was included in a finalised batch"):
        vault.refund_deposit(2)
    with boa.reverts("unknown deposit"):
        vault.refund_deposit(4)
    assert vault.refund_reserve() == 5_000_000
    assert vault.refund_deposit(3) == 5_000_000
    assert token.balanceOf(bob) == before + 5_000_000 and vault.refund_reserve() == 0
    with boa.reverts("deposit already refunded"):
        vault.refund_deposit(3)


def test_deposits_in_a_submitted_but_unfinalised_batch_are_refunded(harness, vault, token, alice):
    harness.deposit(alice, 7)
    harness.submit(accounts=[AccountLeaf(0, alice, 7)], last_deposit_id=1)
    harness.freeze_with_overdue_request()
    assert vault.refund_deposit(1) == 7 and token.balanceOf(alice) == 7


# ---------------------------------------------------------------- arithmetic agreement

# Instruments spanning the packing range, both signs, decimals 0..18.
RANDOM_INSTRUMENTS = [
    InstrumentLeaf(10, 65_432_101_234, 7_777_777_777_777, 4),
    InstrumentLeaf(11, 1, -1, 0),
    InstrumentLeaf(12, 2**119 - 1, -(2**119), 18),
    InstrumentLeaf(13, -(2**119), 2**119 - 1, 30),
    InstrumentLeaf(14, 999_999, 123_456_789, 6),
    InstrumentLeaf(15, 0, 0, 2),
    InstrumentLeaf(16, 3, 5_000_001, 1),
]


@pytest.fixture(scope="module")
def priced_vault(token, sequencer):
    """A vault of its own, frozen, with RANDOM_INSTRUMENTS posted; built once per module
    (so it must not be the session vault, which later tests expect unfrozen)."""
    from vault_harness import GENESIS_CONFIG_HASH, VERIFIER_KEYS, Harness

    from clearway.chain.contracts import deploy_vault
    from clearway.commitment import CommittedState

    own = deploy_vault(
        token, sequencer, [k.address for k in VERIFIER_KEYS], 2, GENESIS_CONFIG_HASH
    )
    h = Harness(token, own, sequencer, CommittedState(GENESIS_CONFIG_HASH))
    h.submit_and_finalise(instruments=RANDOM_INSTRUMENTS)
    h.freeze_with_overdue_request(boa.env.generate_address())
    h.open_escape()
    h.post_instruments()
    return own


@pytest.fixture(scope="module")
def priced():
    return {i.instrument_id: i for i in RANDOM_INSTRUMENTS}


bounded = st.integers(-(10**24), 10**24)
position = st.tuples(st.sampled_from([10, 11, 14, 15, 16]), bounded, bounded)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-(10**30), 10**30),
    st.lists(position, max_size=10, unique_by=lambda p: p[0]),
)
def test_contract_escape_value_equals_python_to_the_micro_usdc(priced, priced_vault, cash, held):
    leaf = AccountLeaf(0, "0x" + "11" * 20, cash, held)
    expected = escape_value(leaf, priced)
    assert priced_vault.escape_value(cash, [p.as_tuple() for p in leaf.positions]) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.integers(-(10**40), 10**40),
    st.lists(
        st.tuples(st.sampled_from([12, 13]), st.integers(-(10**45), 10**45), st.integers(-(2**119), 2**119)),
        max_size=2,
        unique_by=lambda p: p[0],
    ),
)
def test_extreme_prices_and_sizes_agree_or_revert_on_int256_overflow(priced, priced_vault, cash, held):
    leaf = AccountLeaf(0, "0x" + "11" * 20, cash, held)
    expected = escape_value(leaf, priced)
    products = [abs(p.size) * max(abs(priced[p.instrument_id].settlement_price),
                                  abs(priced[p.instrument_id].funding_index - p.funding_index))
                for p in leaf.positions]
    args = (cash, [p.as_tuple() for p in leaf.positions])
    if all(x < 2**254 for x in products):
        assert priced_vault.escape_value(*args) == expected
    elif any(x >= 2**256 for x in products):
        with boa.reverts():
            priced_vault.escape_value(*args)


def test_an_overdrawn_finalised_state_cannot_block_the_escape_hatch(harness, vault, alice):
    from clearway.commitment import Withdrawal

    harness.deposit(alice, 10)
    harness.submit_and_finalise(withdrawals=[Withdrawal(alice, 15)])  # more than held
    harness.freeze_with_overdue_request()
    harness.open_escape()
    assert vault.escape_pool() == 0
    with boa.reverts():  # the token balance is short: the claim cannot be paid in full
        vault.withdraw(sender=alice)


# --------------------------------------------------------------- funding and conservation


def _escape_all(harness, ex, committer) -> tuple[dict[int, int], int]:
    """Deposit what the exchange holds, finalise the committed state as one batch, freeze,
    escape every account through the vault; returns what each was paid and the pool left."""
    depositor = boa.env.generate_address("exchange-users")
    deposit_id = harness.deposit(depositor, holdings(ex))
    committed = committer.committed
    harness.submit_and_finalise(accounts=list(committed.account_leaves().values()),
                                instruments=list(committed.instrument_leaves().values()),
                                last_deposit_id=deposit_id)
    harness.freeze_with_overdue_request()
    harness.open_escape()
    harness.post_instruments()
    instruments = committed.instrument_leaves()
    paid = {}
    for i, leaf in committed.account_leaves().items():
        if escape_value(leaf, instruments) == 0:     # the insurance fund here: the vault refuses
            with boa.reverts("nothing to escape"):
                harness.escape(i)
            paid[i] = 0
        else:
            paid[i] = harness.escape(i)
    return paid, harness.vault.escape_pool()


def test_funding_settled_at_each_tick_escapes_reconcile_in_the_vault(harness, monkeypatch):
    """A state whose funding was left unsettled for hours, then settled by the next tick
    (funding_engine), escapes through Vault.escape: each account is paid the Python
    value, nothing is refused, and the pool left is exactly the price terms' flooring."""
    ex, _ = lazy_then_eager(monkeypatch)
    ex.ts = (ex.ts // HOUR + 1) * HOUR
    oracle(ex, PRICE)
    committer = StateCommitter(ex.genesis)
    committer.commit(ex.state, None, 1)
    paid, left = _escape_all(harness, ex, committer)
    assert paid == escape_values(committer)
    assert left == holdings(ex) - sum(paid.values()) == price_rounding(committer) > 0


def test_unsettled_funding_in_a_committed_state_exhausts_the_vault(harness, monkeypatch):
    """The failure the tick's settlement prevents: committing the lazily settled state
    (the fee account's leaf does not hold the receipts owed to the short), the last
    escapes find the pool exhausted."""
    ex, committer = lazy_then_eager(monkeypatch)
    with pytest.raises(boa.BoaError, match="escape pool exhausted"):
        _escape_all(harness, ex, committer)
