"""Standard margin of options through the exchange: marks from market data, the worked
examples of exchange-rules.md, the per-expiry max-loss cap, equity and the pre-trade check."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from clearway.domain.errors import ErrorCode
from clearway.domain.events import MarketDataSet, Rejected
from clearway.domain.orders import BUY, SELL
from clearway.domain.risk.standard_options import standard_option_margin_expiry
from option_support import CALL, PUT, flat_expiry, market_data, option_exchange, skewed_expiry
from clearway.domain.market import ExpiryData
from support import BTC, kinds, usd


def content(ex):
    """The canonical state without the sequence number and time (a rejection consumes them)."""
    return ex.state.canonical()[3:]

WORKED = [  # exchange-rules.md "Standard margin": S = F = 1500, vol 0 → mark = intrinsic
    ((1400, CALL), 325, 212.5),
    ((400, CALL), 1325, 1212.5),
    ((1600, CALL), 150, 112.5),
    ((3000, PUT), 1725, 1612.5),
    ((1400, PUT), 150, 112.5),
]


def _short_one(strike, kind, deposit_usd=100_000):
    """Exchange with one option (id 1) marked at intrinsic (S = F = 1500, vol 0); account
    ``a`` sells one contract to ``b`` at the mark (or the lowest tick for a worthless one)."""
    ex = option_exchange([(strike, kind)])
    a = ex.deposit(1, usd(deposit_usd))
    b = ex.deposit(2, usd(100_000))
    ex.marks(usd(1500))
    market_data(ex, 1500, [flat_expiry(1500, 0.0, ex.ts)])
    price = max(ex.state.marks[1], usd(0.1))
    assert kinds(ex.place(a, SELL, BTC, price, instrument=1)) == ["OrderAccepted"]
    assert kinds(ex.place(b, BUY, BTC, price, instrument=1))[-1] == "Trade"
    return ex, a


def test_market_data_marks_options_at_black76_with_the_svi_vol():
    ex = option_exchange([(1400, CALL), (1600, PUT)])
    events = market_data(ex, 1500, [flat_expiry(1500, 0.0, ex.ts)])
    assert isinstance(events[0], MarketDataSet)
    assert ex.state.marks[1] == usd(100) and ex.state.marks[2] == usd(100)
    market_data(ex, 1500, [flat_expiry(1500, 0.5, ex.ts)])
    from clearway.domain.risk.black76 import black76_price
    t = (ex.state.instruments[1].expiry_ms - ex.ts) / (365 * 86_400_000)
    assert ex.state.marks[1] == round(float(black76_price(1500.0, 1400.0, t, 0.5, 0.0, True)) * 1e6)


@pytest.mark.parametrize("option, im, mm", WORKED)
def test_worked_examples_through_the_exchange(option, im, mm):
    ex, a = _short_one(*option)
    health = ex.state.margin.health(ex.state.accounts[a])
    assert health.initial_margin == usd(im)
    assert health.maintenance_margin == usd(mm)


@pytest.mark.parametrize("option, im, mm", [w for w in WORKED if w[0] in ((1400, CALL), (400, CALL), (3000, PUT))])
def test_short_option_accepted_exactly_at_initial_margin_and_rejected_one_micro_below(option, im, mm):
    for deposit, accepted in ((usd(im), True), (usd(im) - 1, False)):
        ex = option_exchange([option])
        a = ex.deposit(1, deposit)
        ex.marks(usd(1500))
        market_data(ex, 1500, [flat_expiry(1500, 0.0, ex.ts)])
        before = content(ex)
        events = ex.place(a, SELL, BTC, ex.state.marks[1], instrument=1)
        if accepted:
            assert kinds(events) == ["OrderAccepted"]
        else:
            assert events[0].code == ErrorCode.INSUFFICIENT_MARGIN and content(ex) == before


def test_spread_is_capped_by_its_maximum_loss():
    """Short call 1400 + long call 1600: the loss at settlement is at most 200, below the
    per-contract 325 (IM) and 212.5 (MM)."""
    ex = option_exchange([(1400, CALL), (1600, CALL)])
    a = ex.deposit(1, usd(100_000))
    b = ex.deposit(2, usd(100_000))
    ex.marks(usd(1500))
    market_data(ex, 1500, [flat_expiry(1500, 0.0, ex.ts)])
    ex.place(b, SELL, BTC, usd(0.1), instrument=2)
    ex.place(a, BUY, BTC, usd(0.1), instrument=2)
    ex.place(a, SELL, BTC, usd(100), instrument=1)
    ex.place(b, BUY, BTC, usd(100), instrument=1)
    health = ex.state.margin.health(ex.state.accounts[a])
    assert health.initial_margin == usd(200) and health.maintenance_margin == usd(200)
    ref = standard_option_margin_expiry([1400.0, 1600.0], [True, True], [-1.0, 1.0], [100.0, 0.0], 1500.0)
    assert ref.initial_margin == 200.0 and ref.maintenance_margin == 200.0


def test_naked_short_calls_are_charged_the_unpaired_call_term_of_the_cap():
    """Short 2 calls 1400 + long 1 call 1600 (vol 0): per contract 2 × 325 = 650; max loss
    = 200 + 1 unpaired call × 1.4 × 1500 = 2,300, so the per-contract sum applies."""
    ex = option_exchange([(1400, CALL), (1600, CALL)])
    state = ex.state
    ex.marks(usd(1500))
    market_data(ex, 1500, [flat_expiry(1500, 0.0, ex.ts)])
    specs = [state.instruments[1], state.instruments[2]]
    assert state.margin.expiry_requirement(specs, [-2 * BTC, BTC], True) == usd(650)
    assert state.margin.expiry_requirement(specs, [-2 * BTC, 2 * BTC], True) == usd(400)


def test_long_option_premium_leaves_equity_in_standard_mode():
    ex, a = _short_one(1400, CALL)
    b = 3
    health = ex.state.margin.health(ex.state.accounts[b])
    # b paid 100 + 0.03 fee and holds a long call that counts 0
    assert health.equity == usd(100_000) - usd(100) - usd(0.03)
    assert health.initial_margin == 0 and health.maintenance_margin == 0


def test_cash_counts_at_the_stable_price_below_the_peg():
    ex = option_exchange([(1400, CALL)])
    a = ex.deposit(1, usd(10_000))
    ex.marks(usd(1500))
    market_data(ex, 1500, [flat_expiry(1500, 0.0, ex.ts)], stable_price=990_000)
    assert ex.state.margin.health(ex.state.accounts[a]).equity == usd(9_900)
    market_data(ex, 1500, [flat_expiry(1500, 0.0, ex.ts)], stable_price=1_010_000)
    assert ex.state.margin.health(ex.state.accounts[a]).equity == usd(10_000)


def test_open_option_orders_count_at_their_limit_price():
    ex = option_exchange([(1400, CALL)])
    a = ex.deposit(1, usd(400))
    ex.marks(usd(1500))
    market_data(ex, 1500, [flat_expiry(1500, 0.0, ex.ts)])
    assert kinds(ex.place(a, SELL, BTC, usd(100), instrument=1)) == ["OrderAccepted"]
    assert ex.state.margin.health(ex.state.accounts[a]).initial_margin == usd(325)
    # a second ask would need another 325
    assert ex.place(a, SELL, BTC, usd(100), instrument=1)[0].code == ErrorCode.INSUFFICIENT_MARGIN
    # a bid below the mark costs its premium (the long counts 0): 1 contract at 50
    assert kinds(ex.place(a, BUY, BTC, usd(50), instrument=1)) == ["OrderAccepted"]
    assert ex.state.margin.health(ex.state.accounts[a]).initial_margin == usd(325)


def test_risk_reducing_option_order_is_accepted_below_initial_margin():
    ex, a = _short_one(1400, CALL, deposit_usd=400)
    # the market moves against the short: below initial margin
    market_data(ex, 1700, [flat_expiry(1700, 0.0, ex.ts)])
    h = ex.state.margin.health(ex.state.accounts[a])
    assert h.initial_surplus < 0
    assert ex.place(a, SELL, 1, usd(300), instrument=1)[0].code == ErrorCode.INSUFFICIENT_MARGIN
    assert kinds(ex.place(a, BUY, BTC // 2, usd(300), instrument=1)) == ["OrderAccepted"]


def test_market_data_rejections_change_nothing():
    ex = option_exchange([(1400, CALL)])
    ex.marks(usd(1500))
    market_data(ex, 1500, [flat_expiry(1500, 0.5, ex.ts)])
    before = content(ex)
    good = flat_expiry(1500, 0.5, ex.ts)
    arbitrage = ExpiryData(good.expiry_ms, usd(1500), 0, -10**12, 10**11, 0, 0, 10**9)  # negative variance
    cases = [
        (dict(spot_usd=1500, expiries=[good], underlying="ETH"), ErrorCode.UNKNOWN_INSTRUMENT),
        (dict(spot_usd=0, expiries=[good]), ErrorCode.INVALID_PRICE),
        (dict(spot_usd=1500, expiries=[]), ErrorCode.INVALID_PRICE),  # the listed expiry is missing
        (dict(spot_usd=1500, expiries=[good], stable_price=3_000_000), ErrorCode.INVALID_PRICE),
        (dict(spot_usd=1500, expiries=[flat_expiry(-1, 0.5, ex.ts)]), ErrorCode.INVALID_PRICE),
        (dict(spot_usd=1500, expiries=[good, good]), ErrorCode.INVALID_PRICE),
        (dict(spot_usd=1500, expiries=[arbitrage]), ErrorCode.INVALID_PRICE),
    ]
    for kwargs, code in cases:
        events = market_data(ex, **kwargs)
        assert isinstance(events[0], Rejected) and events[0].code == code, (kwargs, events)
        assert content(ex) == before


def test_an_option_listed_after_the_market_data_gets_its_mark():
    from option_support import list_option
    ex = option_exchange([(1400, CALL)])
    market_data(ex, 1500, [skewed_expiry(1500, ex.ts)])
    list_option(ex, 1700, PUT)
    assert ex.state.marks[2] > usd(200)


_legs = st.lists(st.tuples(st.sampled_from([400, 1000, 1400, 1500, 1600, 2200, 3000]), st.booleans(),
                           st.integers(-30_000, 30_000).filter(bool)), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(legs=_legs, vol=st.sampled_from([0.0, 0.4, 0.9]))
def test_exact_expiry_requirement_equals_the_float_reference(legs, vol):
    """margin.py's integer cap agrees with risk.standard_options (rounded up per position)."""
    strikes = sorted({k for k, _, _ in legs} | {k for k, _, _ in legs})
    ex = option_exchange([(k, kind) for k in strikes for kind in (CALL, PUT)], perp=False)
    ex.marks(usd(1500), marks={})
    market_data(ex, 1500, [flat_expiry(1500, vol, ex.ts)])
    state = ex.state
    sizes: dict[int, int] = {}
    for strike, call, lots in legs:
        instrument = strikes.index(strike) * 2 + (0 if call else 1)
        sizes[instrument] = sizes.get(instrument, 0) + lots
    ids = [i for i, n in sizes.items() if n]
    if not ids:
        return
    specs = [state.instruments[i] for i in ids]
    lots = [sizes[i] for i in ids]
    ref = standard_option_margin_expiry([s.strike / 1e6 for s in specs], [s.option_type == CALL for s in specs],
                                        [n / BTC for n in lots], [state.marks[s.instrument_id] / 1e6 for s in specs],
                                        1500.0)
    for initial, expected in ((True, ref.initial_margin), (False, ref.maintenance_margin)):
        got = state.margin.expiry_requirement(specs, lots, initial)
        # each short position is rounded up on its own: at most one micro-USDC per position;
        # the float reference itself is good to ~1e-16 relative (1e-9 allowed either side)
        slack = 1e-9 * expected * 1e6
        assert -1e-6 - slack <= got - expected * 1e6 <= len(ids) + slack, (got, expected)
        # several states of the expiry in one call (shared per-contract rates) = one call each
        states = [[0] * len(lots), lots, [-n for n in lots], [n if n > 0 else 0 for n in lots]]
        assert state.margin.expiry_requirements(specs, states, initial) == [
            state.margin.expiry_requirement(specs, sizes, initial) for sizes in states]
    assert math.isfinite(ref.initial_margin)
