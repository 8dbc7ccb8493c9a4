"""Option expiry through apply(): TWAP settlement, netting, zero-sum rounding, delisting;
strike-grid listing by operator command."""

from __future__ import annotations

from clearway.domain.commands import ListOptionSeries
from clearway.domain.errors import CancelReason, ErrorCode
from clearway.domain.events import ExpiryPayoff, InstrumentListed, OptionsExpired, OrderCancelled
from clearway.domain.expiry import settlement_price
from clearway.domain.genesis import FEE_ACCOUNT
from clearway.domain.instruments import OptionType
from clearway.domain.orders import BUY, SELL
from lifecycle_support import MINUTE, lifecycle_genesis, lifecycle_perp, of_kind, oracle
from option_support import EXPIRY, flat_expiry
from support import BTC, Exchange, option_spec, usd

CALL_50K, PUT_55K = 1, 2


def _exchange() -> Exchange:
    specs = [lifecycle_perp(), option_spec(CALL_50K, 50_000), option_spec(PUT_55K, 55_000, OptionType.PUT)]
    return Exchange(lifecycle_genesis(instruments=specs, halt_after_ms=10 * 86_400_000))


def _oracle(ex: Exchange, price: float):
    return oracle(ex, price, expiries=(flat_expiry(price, 0.5, ex.ts),))


def test_settlement_price_is_the_time_weighted_index_of_the_last_30_minutes():
    m = MINUTE
    samples = [(0, 100), (50 * m, 200), (70 * m, 400), (80 * m, 300)]
    # window [60, 90) minutes: 200 for 10, 400 for 10, 300 for 10
    assert settlement_price(samples, 90 * m, 30 * m) == 300
    assert settlement_price(samples, 60 * m, 30 * m) == (100 * 20 + 200 * 10) // 30
    assert settlement_price([(10 * m, 7)], 20 * m, 30 * m) == 7     # covered only since the first sample
    assert settlement_price([(30 * m, 7)], 20 * m, 30 * m) is None  # nothing before the expiry


def test_expiry_cancels_orders_settles_netted_payoffs_zero_sum_and_delists():
    ex = _exchange()
    writer = ex.deposit(0xA1, usd(1_000_000))
    holder = ex.deposit(0xB2, usd(1_000_000))
    _oracle(ex, 52_000)
    for instrument, lots in ((CALL_50K, 3), (PUT_55K, 7)):
        price = ex.state.marks[instrument] // 100_000 * 100_000
        ex.place(writer, SELL, lots, price, instrument=instrument)
        ex.place(holder, BUY, lots, price, instrument=instrument)
    ex.place(writer, SELL, BTC, usd(9_000), instrument=CALL_50K)  # rests until expiry
    resting = max(ex.state.orders)
    ex.ts = EXPIRY - 40 * MINUTE
    _oracle(ex, 52_000.000001)
    ex.ts = EXPIRY - 20 * MINUTE
    _oracle(ex, 52_500.000003)
    ex.ts = EXPIRY - 10 * MINUTE
    _oracle(ex, 52_400.000002)
    fee_before = ex.cash(FEE_ACCOUNT)
    cash = {a: ex.cash(a) for a in (writer, holder)}
    ex.ts = EXPIRY + 5_000
    events = ex.withdraw(holder, usd(1))          # the first command at or after the expiry
    settle = usd(52_300.000002)                   # TWAP of the last 30 minutes
    expired = of_kind(events, OptionsExpired)
    assert expired == [OptionsExpired("BTC", EXPIRY, settle, [CALL_50K, PUT_55K], expired[0].residue)]
    assert OrderCancelled(resting, writer, CALL_50K, BTC, int(CancelReason.EXPIRED)) in events
    # holder: +3 lots of the call (2,300.000002 each) and +7 lots of the put (2,699.999998 each)
    exact = 3 * (settle - usd(50_000)) + 7 * (usd(55_000) - settle)
    payoffs = {e.account: e.amount for e in of_kind(events, ExpiryPayoff)}
    assert payoffs == {writer: (-exact) // BTC, holder: exact // BTC}   # one cash change each, floored
    assert payoffs[holder] + payoffs[writer] + expired[0].residue == 0 and expired[0].residue >= 0
    assert ex.cash(holder) == cash[holder] + payoffs[holder] - usd(1)
    assert ex.cash(writer) == cash[writer] + payoffs[writer]
    assert ex.cash(FEE_ACCOUNT) == fee_before + expired[0].residue
    state = ex.state
    assert not any(i in (CALL_50K, PUT_55K) for a in state.accounts.values() for i in a.positions)
    assert state.delisted == {CALL_50K, PUT_55K} and CALL_50K not in state.marks
    assert ex.place(holder, BUY, 1, usd(100), instrument=CALL_50K)[0].code == ErrorCode.INSTRUMENT_NOT_ACTIVE
    assert sum(a.cash for a in state.accounts.values()) == state.total_deposits - state.total_withdrawals
    assert ex.replay_hash() == ex.hash()


def test_operator_lists_a_strike_grid_around_the_forward():
    ex = _exchange()
    ex.deposit(0xA1, usd(1_000))
    _oracle(ex, 52_345)
    expiry = EXPIRY + 7 * 86_400_000
    command = dict(underlying="BTC", expiry_ms=expiry, strike_step=usd(1_000), strikes_each_side=2,
                   tick_size=100_000, size_decimals=4, size_increment=1, min_size=1, maker_fee_ppm=0,
                   taker_fee_ppm=300)
    events = ex.run(ListOptionSeries, **command)
    names = [e.name for e in of_kind(events, InstrumentListed)]
    assert names == [f"BTC-7APR23-{k}-{t}" for k in (50000, 51000, 52000, 53000, 54000) for t in "CP"]
    assert ex.run(ListOptionSeries, **command)[0].code == ErrorCode.INSTRUMENT_EXISTS
    assert ex.run(ListOptionSeries, **{**command, "expiry_ms": expiry + 1})[0].code == ErrorCode.INVALID_INSTRUMENT
    assert ex.state.next_expiry == EXPIRY
