"""Funding through apply(): premium samples, hourly ticks, lazy settlement, conservation."""

from __future__ import annotations

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
    margin, accounts = ex.state.margin, ex.state.accounts
    assert margin.pending_funding(accounts[2]) == -usd(12.5)
    assert margin.pending_funding(accounts[3]) == usd(12.5)
    cash_before = accounts[2].cash
    fee_before = accounts[0].cash
    events = ex.place(2, SELL, BTC, usd(50_000)) + ex.place(4, BUY, BTC, usd(50_000))  # 2 trades with 4
    assert FundingPaid(2, 0, -usd(12.5), tick.funding_index) in events
    assert accounts[2].cash == cash_before - usd(12.5) + usd(50_000)
    assert accounts[0].cash == fee_before + usd(12.5)            # the fee account holds it until 3 settles
    assert accounts[2].positions[0].funding_index == tick.funding_index
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
    ex = _exchange(default_funding_rate=RATE_SCALE // 3333)
    oracle(ex, 50_000)
    ex.place(3, SELL, 3 * BTC + 7, usd(50_000))
    ex.place(2, BUY, BTC + 3, usd(50_000))
    ex.place(4, BUY, 2 * BTC + 4, usd(50_000))
    for hour in range(5):
        ex.ts = _next_hour(ex)
        oracle(ex, 50_000 + 10 * hour)
        for long in (2, 4):                      # every position settles: the longs sell a lot to 3
            ex.place(long, SELL, 1, usd(50_000))
            events = ex.place(3, BUY, 1, usd(50_000))
            assert sum(isinstance(e, FundingPaid) for e in events) == (2 if long == 2 else 1)
        assert _conserved(ex)
    state = ex.state
    owed = sum(state.margin.pending_funding(a) for a in state.accounts.values())
    assert state.accounts[0].cash - owed >= 0   # the fee account can pay every unsettled receipt
    assert ex.replay_hash() == ex.hash()
