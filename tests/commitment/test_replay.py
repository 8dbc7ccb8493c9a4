"""Committing the exchange state and replaying batches: incremental roots equal full
rebuilds, every account (system accounts too) is committed, effects follow the rules."""

from __future__ import annotations

import random

import msgspec
import pytest
from eth_hash.auto import keccak

from clearway.commitment import Withdrawal, escape_value
from clearway.commitment.batch import ForcedInclusion, batch_of, decode_batch, encode_batch
from clearway.commitment.effects import ForcedWithdrawalServed
from clearway.commitment.exchange_state import (
    StateCommitter, account_leaf, committed_genesis_hash, full_state_root, instrument_leaf, touched_accounts,
)
from clearway.commitment.replay import ForcedRequest, Replica, ReplayError, ReplayErrorCode, serving_withdraw
from clearway.domain.commands import Deposit, PlaceOrder, SetMarkPrices, Withdraw
from clearway.domain.events import OrderAccepted
from clearway.domain.genesis import GenesisConfig
from clearway.domain.orders import TimeInForce
from clearway.domain.state import ExchangeState, apply, state_hash
from support import TICK, Exchange, perp_spec, usd

GENESIS = GenesisConfig(instruments=[perp_spec(0), perp_spec(1, maker_fee_ppm=0, taker_fee_ppm=1_000)],
                        fee_account_owner="0x" + "fe" * 20, insurance_fund_owner="0x" + "1f" * 20)


def owner(i: int) -> str:
    return "0x" + f"{i:02x}" * 20


def random_flow(seed: int, n: int = 400) -> Exchange:
    rng = random.Random(seed)
    ex = Exchange(GenesisConfig(**{f: getattr(GENESIS, f) for f in GENESIS.__struct_fields__}))
    accounts = [ex.deposit(i, usd(rng.randint(50_000, 500_000))) for i in range(1, 9)]
    ex.marks(usd(25_000), marks={1: usd(25_000)})
    for _ in range(n):
        roll = rng.random()
        account = rng.choice(accounts)
        if roll < 0.7:
            side = rng.choice((1, -1))
            ex.place(account, side, rng.randint(1, 50) * 100, usd(25_000) + rng.randint(-5, 5) * TICK,
                     instrument=rng.choice((0, 1)), tif=rng.choice((TimeInForce.GTC, TimeInForce.IOC)))
        elif roll < 0.8:
            ex.withdraw(account, usd(rng.randint(1, 1_000)))
        elif roll < 0.9:
            ex.deposit(rng.randint(1, 12), usd(rng.randint(1, 1_000)))
        else:
            ex.marks(usd(25_000) + rng.randint(-50, 50) * TICK, marks={1: usd(25_000) + rng.randint(-50, 50) * TICK})
    return ex


def test_committed_genesis_hash_is_the_keccak_of_the_genesis_bytes():
    assert committed_genesis_hash(GENESIS) == keccak(GENESIS.encode())
    assert committed_genesis_hash(GENESIS) != GENESIS.config_hash()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_roots_equal_full_rebuilds_after_every_batch(seed):
    ex = random_flow(seed)
    replica = Replica(ex.genesis)
    number = 0
    rng = random.Random(seed)
    start = 0
    while start < len(ex.commands):
        size = rng.randint(1, 60)
        number += 1
        outcome = replica.apply_batch(decode_batch(encode_batch(batch_of(number, ex.commands[start:start + size]))))
        start += size
        assert outcome.state_root == full_state_root(replica.state, number)
    assert state_hash(replica.state) == ex.hash()


def test_every_account_is_committed_system_accounts_included():
    ex = random_flow(4, 100)
    committer = StateCommitter(ex.genesis)
    committer.commit(ex.state, None, 1)
    for account_id, account in ex.state.accounts.items():
        leaf = committer.committed.account(account_id)
        assert leaf == account_leaf(ex.state, account_id)
        assert leaf.owner.lower() == account.owner
    fee = committer.committed.account(0)
    assert fee.cash == ex.state.fee_account.cash > 0  # taker fees were charged
    assert committer.committed.account(1).owner.lower() == GENESIS.insurance_fund_owner


def test_escape_values_sum_to_no_more_than_the_deposits_left():
    ex = random_flow(5, 300)
    committer = StateCommitter(ex.genesis)
    committer.commit(ex.state, None, 1)
    instruments = committer.committed.instrument_leaves()
    total = sum(escape_value(committer.committed.account(a), instruments) for a in ex.state.accounts)
    assert total <= ex.state.total_deposits - ex.state.total_withdrawals


def test_instrument_leaves_carry_the_mark_and_size_decimals():
    ex = random_flow(6, 10)
    leaf = instrument_leaf(ex.state, 1)
    assert (leaf.settlement_price, leaf.funding_index, leaf.size_decimals) == (ex.state.marks[1], 0, 4)


def test_touched_accounts_names_traders_and_gives_up_on_unknown_events():
    ex = Exchange(GENESIS)
    a, b = ex.deposit(1, usd(100_000)), ex.deposit(2, usd(100_000))
    ex.marks(usd(25_000), marks={1: usd(25_000)})
    assert touched_accounts(ex.place(a, 1, 100, usd(25_000))) == set()  # a resting order changes no leaf
    assert touched_accounts(ex.place(b, -1, 100, usd(25_000))) == {a, b}
    assert touched_accounts([object()]) is None


def test_withdrawals_are_summed_per_owner_and_forced_ones_paid_to_the_requester():
    state = ExchangeState(GENESIS)
    cmds = [Deposit(1, 1, owner(1), usd(100), 1), Deposit(2, 1, owner(2), usd(100), 2),
            Withdraw(3, 1, 2, usd(10)), Withdraw(4, 1, 3, usd(5)), Withdraw(5, 1, 2, usd(1)),
            Withdraw(6, 1, 3, usd(7)), Withdraw(7, 1, 3, usd(10_000))]
    replica = Replica(GENESIS, state)
    requests = {1: ForcedRequest(1, owner(2), usd(7)), 2: ForcedRequest(2, owner(9), usd(1)),
                3: ForcedRequest(3, owner(2), usd(10_000))}
    batch = batch_of(1, cmds, forced=[ForcedInclusion(1, 6), ForcedInclusion(2), ForcedInclusion(3, 7)])
    outcome = replica.apply_batch(decode_batch(encode_batch(batch)), requests)
    assert outcome.effects.withdrawals == (Withdrawal(owner(1), usd(11)), Withdrawal(owner(2), usd(5)))
    assert outcome.effects.forced_served == (ForcedWithdrawalServed(1, usd(7)), ForcedWithdrawalServed(2, 0),
                                            ForcedWithdrawalServed(3, 0))  # the last was rejected
    assert outcome.effects.last_deposit_id == 2
    assert outcome.effects.total_paid == usd(23)


@pytest.mark.parametrize(("forced", "code"), [
    ([ForcedInclusion(5, 3)], ReplayErrorCode.FORCED_UNKNOWN_REQUEST),
    ([ForcedInclusion(1, 2)], ReplayErrorCode.FORCED_NOT_A_WITHDRAWAL),
    ([ForcedInclusion(2, 3)], ReplayErrorCode.FORCED_WRONG_ACCOUNT),
    ([ForcedInclusion(3, 3)], ReplayErrorCode.FORCED_TOO_MUCH),
    ([ForcedInclusion(1, 3), ForcedInclusion(1)], ReplayErrorCode.FORCED_DUPLICATE),
])
def test_forced_inclusions_that_do_not_serve_the_request_are_refused(forced, code):
    cmds = [Deposit(1, 1, owner(1), usd(100), 1), Deposit(2, 1, owner(2), usd(100), 2), Withdraw(3, 1, 2, usd(10))]
    requests = {1: ForcedRequest(1, owner(1), usd(10)), 2: ForcedRequest(2, owner(2), usd(10)),
                3: ForcedRequest(3, owner(1), usd(9))}
    with pytest.raises(ReplayError) as err:
        Replica(GENESIS).apply_batch(batch_of(1, cmds, forced=forced), requests)
    assert err.value.code == code


def test_a_batch_must_be_the_next_one_and_start_at_the_next_sequence_number():
    replica = Replica(GENESIS)
    with pytest.raises(ReplayError) as wrong:
        replica.apply_batch(batch_of(2, [Deposit(1, 1, owner(1), 5, 1)]))
    assert wrong.value.code == ReplayErrorCode.WRONG_BATCH_NUMBER
    with pytest.raises(ReplayError) as gap:
        replica.apply_batch(batch_of(1, [Deposit(2, 1, owner(1), 5, 1)]))
    assert gap.value.code == ReplayErrorCode.SEQUENCE_GAP
    assert replica.state.last_seq == 0


def test_serving_withdraw_takes_at_most_the_free_collateral():
    ex = Exchange(GENESIS)
    a = ex.deposit(1, usd(1_000))
    ex.marks(usd(25_000), marks={1: usd(25_000)})
    assert serving_withdraw(ex.state, ForcedRequest(1, owner(1), usd(10))) == Withdraw(0, 0, a, usd(10))
    assert serving_withdraw(ex.state, ForcedRequest(1, owner(1), usd(5_000))) == Withdraw(0, 0, a, usd(1_000))
    assert serving_withdraw(ex.state, ForcedRequest(1, owner(7), usd(5))) is None
    ex.place(a, 1, 3_000, usd(25_000))  # a resting bid ties up margin
    free = ex.state.margin.free_collateral(ex.state.accounts[a])
    assert serving_withdraw(ex.state, ForcedRequest(1, owner(1), usd(5_000))).amount == free < usd(1_000)


def test_a_replica_started_from_a_snapshot_continues_with_the_same_roots():
    from clearway.domain.snapshot import decode_snapshot, encode_snapshot

    ex = random_flow(8, 200)
    half = len(ex.commands) // 2
    replica = Replica(ex.genesis)
    replica.apply_batch(batch_of(1, ex.commands[:half]))
    restored = Replica(ex.genesis, decode_snapshot(encode_snapshot(replica.state)), batch_number=1)
    assert restored.root == replica.root
    assert restored.apply_batch(batch_of(2, ex.commands[half:])).state_root == \
        replica.apply_batch(batch_of(2, ex.commands[half:])).state_root
