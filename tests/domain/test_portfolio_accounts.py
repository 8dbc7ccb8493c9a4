"""Portfolio-margin accounts in the exchange: mode switch, pre-trade checks, health equal
to ``risk.portfolio.evaluate_portfolio_margin``, the risk-array cache, snapshots and replay."""

from __future__ import annotations

import pytest

from clearway.domain.accounts import MarginMode
from clearway.domain.errors import ErrorCode
from clearway.domain.market import to_pm_market
from clearway.domain.orders import BUY, SELL
from clearway.domain.risk.portfolio import (
    OptionPosition, PerpPosition, PMPortfolio, evaluate_portfolio_margin, evaluate_portfolio_margin_naive,
)
from clearway.domain.snapshot import decode_snapshot, encode_snapshot
from clearway.domain.state import state_hash
from option_support import CALL, PUT, list_option, market_data, option_exchange, set_mode, skewed_expiry
from support import BTC, kinds, usd

STRIKES = [(1200, PUT), (1400, PUT), (1400, CALL), (1500, CALL), (1600, CALL), (1800, CALL)]
PM = MarginMode.PORTFOLIO


def content(ex):
    return ex.state.canonical()[3:]


def _exchange(deposit_usd: float = 50_000):
    """Perp (id 0) and six options (ids 1–6) marked from a skewed surface; account a
    (deposit_usd) and a market maker m (1,000,000)."""
    ex = option_exchange(STRIKES)
    a = ex.deposit(1, usd(deposit_usd))
    m = ex.deposit(2, usd(1_000_000))
    ex.marks(usd(1500))
    market_data(ex, 1500, [skewed_expiry(1510, ex.ts)])
    return ex, a, m


def _trade(ex, seller, buyer, instrument, lots, price=None):
    price = price if price is not None else max(ex.state.marks[instrument] // 100_000 * 100_000, 100_000)
    assert kinds(ex.place(seller, SELL, lots, price, instrument=instrument)) == ["OrderAccepted"]
    events = ex.place(buyer, BUY, lots, price, instrument=instrument)
    assert kinds(events)[-1] == "Trade", events


def _pm_reference(ex, account_id, naive=False):
    """The same account through risk.portfolio, from the state's integers."""
    state = ex.state
    account = state.accounts[account_id]
    market = to_pm_market(state.markets["BTC"], state.stable_price, state.index["BTC"], state.marks[0])
    risk = state.margin.risk.get("BTC")
    options, perp_size, perp_value = [], 0.0, 0
    for instrument, position in account.positions.items():
        spec = state.instruments[instrument]
        if instrument == 0:
            perp_size = position.size / BTC
            perp_value = position.size * state.marks[0] // BTC
        else:
            inst = risk.risk.instruments[risk.rows[instrument]]
            options.append(OptionPosition(inst.seconds_to_expiry, inst.strike, inst.is_call, position.size / BTC,
                                          inst.mark_vol))
    cash = state.margin.cash_value(account.cash)
    portfolio = PMPortfolio(cash=cash / 1e6, perp=PerpPosition(perp_size, perp_value / 1e6, 0.0), options=tuple(options))
    evaluate = evaluate_portfolio_margin_naive if naive else evaluate_portfolio_margin
    return evaluate(market, portfolio, state.margin.risk.params)


def _pm_account(ex, a, m):
    """a: short 1400 put and 1600 call (a strangle), long 1800 call, short 0.5 perp."""
    _trade(ex, a, m, 2, BTC)
    _trade(ex, a, m, 5, BTC)
    _trade(ex, m, a, 6, BTC)
    _trade(ex, a, m, 0, BTC // 2, usd(1500))
    assert kinds(set_mode(ex, a, PM)) == ["MarginModeSet"]


@pytest.mark.parametrize("naive", [False, True])
def test_portfolio_health_equals_evaluate_portfolio_margin_after_rounding(naive):
    ex, a, m = _exchange()
    _pm_account(ex, a, m)
    health = ex.state.margin.health(ex.state.accounts[a])
    ref = _pm_reference(ex, a, naive)
    assert abs(health.equity - ref.equity * 1e6) <= 1
    assert abs(health.maintenance_margin - ref.maintenance_margin * 1e6) <= 1
    assert abs(health.initial_margin - ref.initial_margin * 1e6) <= 1
    assert health.initial_margin >= ref.initial_margin * 1e6 - 1e-3  # rounded up
    assert health.initial_surplus == health.equity - health.initial_margin


def test_portfolio_health_follows_new_market_data():
    ex, a, m = _exchange()
    _pm_account(ex, a, m)
    market_data(ex, 1650, [skewed_expiry(1660, ex.ts)], stable_price=970_000)
    health = ex.state.margin.health(ex.state.accounts[a])
    ref = _pm_reference(ex, a)
    assert abs(health.initial_margin - ref.initial_margin * 1e6) <= 1
    assert abs(health.equity - ref.equity * 1e6) <= 1


def test_switch_to_portfolio_is_rejected_below_its_initial_margin():
    """A 1 BTC long perp at 1,500 with 200 USDC passes standard IM (5 %: 75) but not PM
    (the 0.82 spot scenario loses 270, plus 2 % contingencies: 300): the switch is
    rejected and changes nothing."""
    ex = option_exchange(STRIKES)
    a = ex.deposit(1, usd(200))
    m = ex.deposit(2, usd(1_000_000))
    ex.marks(usd(1500))
    market_data(ex, 1500, [skewed_expiry(1510, ex.ts)])
    _trade(ex, m, a, 0, BTC, usd(1500))
    pm = ex.state.margin.health(ex.state.accounts[a], PM)
    assert pm.initial_margin == usd(300) and pm.maintenance_margin == usd(0.8 * 270 + 22.5)
    assert pm.initial_surplus < 0 <= ex.state.margin.health(ex.state.accounts[a]).initial_surplus
    before = content(ex)
    assert set_mode(ex, a, PM)[0].code == ErrorCode.INSUFFICIENT_MARGIN
    assert content(ex) == before
    ex.deposit(1, -pm.initial_surplus)
    assert kinds(set_mode(ex, a, PM)) == ["MarginModeSet"]
    assert ex.state.accounts[a].margin_mode is PM
    assert set_mode(ex, a, PM)[0].code == ErrorCode.INVALID_ORDER_TYPE
    assert kinds(set_mode(ex, a, MarginMode.STANDARD)) == ["MarginModeSet"]


def test_switch_to_portfolio_needs_market_data_for_every_option():
    ex = option_exchange(STRIKES)
    a = ex.deposit(1, usd(100_000))
    m = ex.deposit(2, usd(100_000))
    ex.marks(usd(1500), marks={2: usd(20)})  # a mark without a surface
    _trade(ex, a, m, 2, BTC, usd(20))
    assert set_mode(ex, a, PM)[0].code == ErrorCode.MARK_PRICE_UNAVAILABLE
    assert set_mode(ex, 1, PM)[0].code == ErrorCode.UNKNOWN_ACCOUNT
    assert set_mode(ex, a, 7)[0].code == ErrorCode.INVALID_ORDER_TYPE


def test_portfolio_order_accepted_at_zero_surplus_and_rejected_one_micro_below():
    """Two identical accounts, the second one micro-USDC poorer than the first's surplus
    after its order: the first is accepted, the second rejected (nothing changes)."""
    ex, a, m = _exchange(deposit_usd=5_000)
    b = ex.deposit(3, usd(5_000))
    for account in (a, b):
        assert kinds(set_mode(ex, account, PM)) == ["MarginModeSet"]
    assert kinds(ex.place(a, SELL, 3 * BTC, usd(60), instrument=5)) == ["OrderAccepted"]
    surplus = ex.state.margin.health(ex.state.accounts[a]).initial_surplus
    assert surplus >= 0
    assert kinds(ex.withdraw(b, surplus + 1)) == ["Withdrawn"]
    before = content(ex)
    events = ex.place(b, SELL, 3 * BTC, usd(60), instrument=5)
    assert events[0].code == ErrorCode.INSUFFICIENT_MARGIN
    assert content(ex) == before


def test_portfolio_open_orders_count_at_their_limit_price():
    ex, a, m = _exchange()
    set_mode(ex, a, PM)
    account = ex.state.accounts[a]
    assert ex.state.margin.health(account).initial_margin == 0
    ex.place(a, SELL, BTC, usd(60), instrument=5)   # ask on a call
    with_ask = ex.state.margin.health(account).initial_margin
    assert with_ask > 0
    ex.place(a, SELL, BTC, usd(1), instrument=5)    # far below the mark: the ask gives value away
    assert ex.state.margin.health(account).initial_margin > with_ask + usd(50)
    assert ex.state.margin.health(account).maintenance_margin == 0


def test_portfolio_risk_reducing_order_is_accepted_below_initial_margin():
    ex, a, m = _exchange()
    _pm_account(ex, a, m)
    account = ex.state.accounts[a]
    market_data(ex, 1900, [skewed_expiry(1910, ex.ts)])   # the short 1600 call is deep in the money
    health = ex.state.margin.health(account)
    if health.initial_surplus >= 0:                       # make it so by moving cash out
        assert kinds(ex.withdraw(a, health.initial_surplus)) == ["Withdrawn"]
        market_data(ex, 2000, [skewed_expiry(2010, ex.ts)])
    assert ex.state.margin.health(account).initial_surplus < 0
    assert ex.place(a, SELL, BTC, usd(400), instrument=5)[0].code == ErrorCode.INSUFFICIENT_MARGIN
    buy_back = ex.state.marks[5] // 100_000 * 100_000 + usd(1)
    assert kinds(ex.place(a, BUY, BTC // 2, buy_back, instrument=5)) == ["OrderAccepted"]


def test_portfolio_withdrawal_limited_to_initial_surplus():
    ex, a, m = _exchange()
    _pm_account(ex, a, m)
    surplus = ex.state.margin.health(ex.state.accounts[a]).initial_surplus
    assert ex.withdraw(a, surplus + 1)[0].code == ErrorCode.INSUFFICIENT_FREE_COLLATERAL
    assert kinds(ex.withdraw(a, surplus)) == ["Withdrawn"]
    assert ex.state.margin.health(ex.state.accounts[a]).initial_surplus == 0


def test_risk_arrays_are_built_once_per_market_data_update_and_listing():
    ex, a, m = _exchange()
    _pm_account(ex, a, m)
    cache = ex.state.margin.risk
    first = cache.get("BTC")
    ex.place(a, SELL, BTC, usd(60), instrument=5)
    ex.state.margin.health(ex.state.accounts[a])
    assert cache.get("BTC") is first
    ex.marks(usd(1520))                                  # index / perp mark: arrays unchanged
    assert cache.get("BTC") is first
    market_data(ex, 1520, [skewed_expiry(1530, ex.ts)])
    second = cache.get("BTC")
    assert second is not first and second.key[0] == ex.state.last_seq
    list_option(ex, 1700, PUT)
    third = cache.get("BTC")
    assert third is not second and len(third.rows) == len(second.rows) + 1


def test_snapshot_round_trip_and_replay_with_market_data_and_portfolio_accounts():
    ex, a, m = _exchange()
    _pm_account(ex, a, m)
    ex.place(a, SELL, BTC, usd(60), instrument=5)
    market_data(ex, 1520, [skewed_expiry(1530, ex.ts)], stable_price=995_000)
    restored = decode_snapshot(encode_snapshot(ex.state))
    assert state_hash(restored) == ex.hash()
    assert restored.markets == ex.state.markets and restored.stable_price == 995_000
    assert restored.margin.health(restored.accounts[a]) == ex.state.margin.health(ex.state.accounts[a])
    assert ex.replay_hash() == ex.hash()


def test_amending_an_option_order_is_checked_with_the_old_order_replaced():
    for mode in (MarginMode.STANDARD, PM):
        ex, a, m = _exchange(deposit_usd=1_000)
        if mode is PM:
            set_mode(ex, a, PM)
        assert kinds(ex.place(a, SELL, BTC // 10, usd(60), instrument=5)) == ["OrderAccepted"]
        order_id = max(ex.state.accounts[a].orders)
        before = content(ex)
        assert ex.amend(a, order_id, 100 * BTC, usd(60))[0].code == ErrorCode.INSUFFICIENT_MARGIN
        assert content(ex) == before
        assert kinds(ex.amend(a, order_id, BTC // 5, usd(61))) == ["OrderAmended"]
        assert ex.state.margin.health(ex.state.accounts[a]).initial_surplus >= 0
