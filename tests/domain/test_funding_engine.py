"""Funding through apply(): premium samples, hourly ticks, eager settlement of every position at
the tick (the lazy path then a no-op), conservation."""

from __future__ import annotations

import math
from fractions import Fraction

from clearway.domain.errors import ErrorCode
from clearway.domain.events import FundingPaid, FundingTick
from clearway.domain.funding import RATE_SCALE
from clearway.domain.orders import BUY, SELL
from lifecycle_support import HOUR, MINUTE, lifecycle_genesis, oracle
from support import BTC, Exchange, usd


def _exchange(**overrides) -> Exchange:
    ex = Exchange(lifecycle_genesis(**overrides))
    for owner in (0xA1, 0xB2, 0xC3):
        ex.deposit(owner, usd(1_000_000))
    return ex


def _next_hour(ex: Exchange) -> int:
    return (ex.ts // HOUR + 1) * HOUR


def _conserved(ex: Exchange) -> bool:
    state = ex.state
    return sum(a.cash for a in state.accounts.values()) == state.total_deposits - state.total_withdrawals


SIZES = {2: BTC + 3, 3: -(3 * BTC + 7), 4: 2 * BTC + 4}


def _three_positions() -> Exchange:
    """Accounts 2 and 4 long, 3 short, odd sizes: every payment has a rounding residue
    (rate_8h ≈ 0.03 %)."""
    ex = _exchange(default_funding_rate=RATE_SCALE // 3333)
    oracle(ex, 50_000)
    ex.place(3, SELL, -SIZES[3], usd(50_000))
    ex.place(2, BUY, SIZES[2], usd(50_000))
    ex.place(4, BUY, SIZES[4], usd(50_000))
    return ex


def test_spec_example_a_2_btc_long_pays_12_50_for_an_hour_at_0_1_percent():
    ex = _exchange(default_funding_rate=RATE_SCALE // 1000)  # rate_8h 0.1 %, no premium (empty book)
    oracle(ex, 50_000)
    ex.place(3, SELL, 2 * BTC, usd(50_000))
    ex.place(2, BUY, 2 * BTC, usd(50_000))       # 2 long, 3 short, both 2 BTC
    ex.ts = _next_hour(ex)
    events = oracle(ex, 50_000)
    tick = next(e for e in events if isinstance(e, FundingTick))
    assert tick.rate_8h == RATE_SCALE // 1000 and tick.index_price == usd(50_000)
    assert tick.funding_index == 6_250_000 * 10**6   # +6.25 USD per BTC (10⁻¹² USDC units)
    # every position is paid at the tick, the fee account is the counterparty of both
    assert FundingPaid(2, 0, -usd(12.5), tick.funding_index) in events
    assert FundingPaid(3, 0, usd(12.5), tick.funding_index) in events
    margin, accounts = ex.state.margin, ex.state.accounts
    assert margin.pending_funding(accounts[2]) == 0 and margin.pending_funding(accounts[3]) == 0
    assert accounts[2].positions[0].funding_index == accounts[3].positions[0].funding_index == tick.funding_index
    cash_before = accounts[2].cash
    fee_before = accounts[0].cash
    events = ex.place(2, SELL, BTC, usd(50_000)) + ex.place(4, BUY, BTC, usd(50_000))  # 2 trades with 4
    assert not any(isinstance(e, FundingPaid) for e in events)   # the lazy path has nothing left
    assert accounts[2].cash == cash_before + usd(50_000)
    assert accounts[0].cash == fee_before
    assert accounts[4].positions[0].funding_index == tick.funding_index
    assert _conserved(ex)


def test_premium_samples_from_impact_prices_set_the_hourly_rate():
    ex = _exchange()
    oracle(ex, 50_000)
    ex.place(2, BUY, BTC, usd(50_100))           # impact bid 50,100 for 10,000 USDC
    ex.place(3, SELL, BTC, usd(50_300))          # impact ask 50,300 (above the index: no discount)
    start_minute = ex.state.next_minute
    hour = _next_hour(ex)
    ex.ts = start_minute
    while ex.ts < hour:
        oracle(ex, 50_000)
        ex.ts += MINUTE
    ex.ts = hour
    tick = next(e for e in oracle(ex, 50_000) if isinstance(e, FundingTick))
    sample = RATE_SCALE * 100 // 50_000        # P = (50,100 − 50,000) / 50,000 = 0.2 %
    minutes = (hour - start_minute) // MINUTE
    assert tick.samples == minutes
    assert tick.rate_8h == sample * minutes // 60
    assert tick.funding_index == usd(50_000) * tick.rate_8h * 3600 // (28_800 * 10**6)


def test_a_rejected_order_counts_unsettled_funding_but_changes_nothing():
    ex = _exchange(default_funding_rate=RATE_SCALE // 100)
    oracle(ex, 50_000)
    ex.place(3, SELL, 2 * BTC, usd(50_000))
    ex.place(2, BUY, 2 * BTC, usd(50_000))
    ex.ts = _next_hour(ex)
    oracle(ex, 50_000)
    before = ex.state.canonical()[3:]
    events = ex.place(2, BUY, 10_000 * BTC, usd(50_000))
    assert events[0].code == ErrorCode.INSUFFICIENT_MARGIN
    assert ex.state.canonical()[3:] == before
    health = ex.state.margin.health(ex.state.accounts[2])
    position_value = 2 * usd(50_000)
    assert health.equity == ex.state.accounts[2].cash + position_value + ex.state.margin.pending_funding(
        ex.state.accounts[2])


def test_many_hours_of_funding_conserve_cash_and_the_fee_account_keeps_the_rounding():
    ex = _three_positions()
    state = ex.state
    for hour in range(5):
        ex.ts = _next_hour(ex)
        fee_before = state.accounts[0].cash
        events = oracle(ex, 50_000 + 10 * hour)
        tick = next(e for e in events if isinstance(e, FundingTick))
        paid = {e.account: e.amount for e in events if isinstance(e, FundingPaid)}
        assert set(paid) == {2, 3, 4}                # every open position, at the tick
        assert paid[3] > 0 > paid[2] and paid[4] < 0  # longs pay a positive rate, the short receives
        residue = state.accounts[0].cash - fee_before
        assert residue == -sum(paid.values()) >= 0    # rounded against each account: the fee keeps ≥ 0
        assert all(a.positions[0].funding_index == tick.funding_index
                   for a in state.accounts.values() if 0 in a.positions)
        assert all(state.margin.pending_funding(a) == 0 for a in state.accounts.values())
        for long in (2, 4):                          # trades between ticks settle nothing more
            ex.place(long, SELL, 1, usd(50_000))
            events = ex.place(3, BUY, 1, usd(50_000))
            assert not any(isinstance(e, FundingPaid) for e in events)
        assert _conserved(ex)
    assert ex.replay_hash() == ex.hash()


def test_a_tick_rounds_each_payment_against_its_account():
    ex = _three_positions()
    ex.ts = _next_hour(ex)
    events = oracle(ex, 50_000)
    tick = next(e for e in events if isinstance(e, FundingTick))
    paid = {e.account: e.amount for e in events if isinstance(e, FundingPaid)}
    for account, size in SIZES.items():
        exact = Fraction(-size * tick.funding_index, BTC * 10**6)
        assert paid[account] == math.floor(exact) and paid[account] != exact   # residues to the fee account
    assert ex.state.accounts[0].cash == -sum(paid.values()) > 0


def test_the_lazy_path_still_settles_a_position_left_behind():
    """A position whose index lags (a state from before eager settlement) settles at its
    next change, as before; an up-to-date one is left alone."""
    ex = _exchange(default_funding_rate=RATE_SCALE // 1000)
    oracle(ex, 50_000)
    ex.place(3, SELL, 2 * BTC, usd(50_000))
    ex.place(2, BUY, 2 * BTC, usd(50_000))
    ex.ts = _next_hour(ex)
    oracle(ex, 50_000)
    state = ex.state
    index = state.funding_index[0]
    state.accounts[2].positions[0].funding_index = 0     # lagging by one hour: owes 12.5 USDC
    state.accounts[0].cash -= usd(12.5)                  # as if the tick had not settled it
    state.accounts[2].cash += usd(12.5)
    assert state.margin.pending_funding(state.accounts[2]) == -usd(12.5)
    events = ex.place(2, SELL, BTC, usd(50_000)) + ex.place(4, BUY, BTC, usd(50_000))
    assert [e for e in events if isinstance(e, FundingPaid)] == [FundingPaid(2, 0, -usd(12.5), index)]
    assert state.accounts[2].positions[0].funding_index == index
    assert _conserved(ex)
