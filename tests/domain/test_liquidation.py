"""Liquidation through apply(): the spec's worked examples, the insurance fund, the per-step
and per-second limits, halts, the option backstop. Deleveraging: test_deleveraging.py."""

from __future__ import annotations

from clearway.domain.commands import Deposit
from clearway.domain.errors import CancelReason
from clearway.domain.events import (
    Deleveraged, IcebergRefilled, InsuranceCovered, LiquidationEnded, LiquidationFill, LiquidationStarted,
    OrderCancelled, Trade,
)
from clearway.domain.genesis import INSURANCE_FUND
from clearway.domain.orders import BUY, SELL
from lifecycle_support import (
    MINUTE, advance, assert_conserved, bankrupt_short, fund, lifecycle_genesis, lifecycle_perp,
    leveraged_long, liquidation_exchange, of_kind, oracle,
)
from support import BTC, Exchange, usd

def test_spec_example_fillable_price_49_999():
    # +0.1 BTC at mark 50,000, cash −4,501, MMF 10% (TMMR 500, TNC 499), SMMR 0.1 → 49,999
    ex = liquidation_exchange(lifecycle_perp(imf_ppm=100_000, mmf_ppm=100_000), liquidation_smmr_ppm=100_000)
    a, _, c = leveraged_long(ex, 600, 51_010)
    assert ex.cash(a) == -usd(4_501)
    ex.place(c, BUY, BTC, usd(49_999))           # the book's bid (one side only: mid = index)
    advance(ex, 1_000)
    events = oracle(ex, 50_000)
    assert of_kind(events, LiquidationStarted) == [LiquidationStarted(a, usd(499), usd(500))]
    fill = of_kind(events, LiquidationFill)[0]
    assert fill.limit_price == usd(49_999) and fill.price == usd(49_999)
    assert fill.size == 200                      # one step: 1,000 USDC of the 5,000 notional
    trade = of_kind(events, Trade)[0]
    assert trade.taker_account == a and trade.taker_fee == 0 and trade.taker_order_id == 0
    assert of_kind(events, LiquidationEnded)[-1].liquidatable is False
    assert_conserved(ex)


def test_spec_example_liquidation_fee_28_05_to_the_insurancefund():
    # +0.1 BTC, cash −5,100, sold 0.1 at 56,100: received 5,610, bankruptcy 5,100, fee 28.05
    ex = liquidation_exchange(liquidation_step_ppm=1_000_000)
    a, _, c = leveraged_long(ex, 500, 56_000)
    assert ex.cash(a) == -usd(5_100)
    ex.place(c, BUY, BTC // 10, usd(56_100))
    advance(ex, 1_000)
    events = oracle(ex, 52_000)                  # equity 100 < MM 156
    fill = of_kind(events, LiquidationFill)[0]
    assert (fill.size, fill.price, fill.quote, fill.bankruptcy_quote) == (BTC // 10, usd(56_100), usd(5_610),
                                                                          usd(5_100))
    assert fill.fee == usd(28.05) and fill.insurance_payout == 0
    assert ex.cash(INSURANCE_FUND) == usd(28.05)
    assert ex.cash(a) == usd(-5_100 + 5_610 - 28.05) and ex.position(a) == 0
    assert_conserved(ex)


def test_the_fund_covers_fills_below_bankruptcy_while_it_can():
    ex = liquidation_exchange(oracle_max_move_ppm=200_000)
    short, long = bankrupt_short(ex)
    fund(ex, usd(10_000))
    maker = ex.deposit(0xC3, usd(1_000_000))
    ex.place(maker, SELL, BTC, usd(56_500))
    events = oracle(ex, 56_000)
    fills = of_kind(events, LiquidationFill)
    assert sum(f.size for f in fills) == BTC and of_kind(events, Deleveraged) == []
    payout = sum(f.insurance_payout for f in fills)
    assert abs(payout - usd(1_501)) <= len(fills)          # 56,500 paid vs 54,999 bankruptcy
    assert ex.position(short) == 0 and 0 <= ex.cash(short) + sum(e.amount for e in of_kind(events, InsuranceCovered))
    assert ex.cash(INSURANCE_FUND) == usd(10_000) - payout - sum(e.amount for e in of_kind(events, InsuranceCovered))
    assert ex.position(long) == BTC              # nobody was deleveraged
    assert_conserved(ex)


def test_liquidation_cancels_the_accounts_orders_first():
    ex = liquidation_exchange()
    short, long = bankrupt_short(ex)
    ex.place(short, SELL, 1, usd(60_000))
    order_id = max(ex.state.orders)
    events = oracle(ex, 54_000)                  # equity 999 < MM 1,620
    cancelled = of_kind(events, OrderCancelled)
    assert cancelled == [OrderCancelled(order_id, short, 0, 1, int(CancelReason.LIQUIDATION))]
    assert of_kind(events, LiquidationEnded)[-1].liquidatable  # no liquidity: it stays liquidatable


def test_per_step_and_per_second_limits():
    ex = liquidation_exchange(liquidation_cap_per_second=usd(12_000))
    short, long = bankrupt_short(ex)
    maker = ex.deposit(0xC3, usd(1_000_000))
    for i in range(10):
        ex.place(maker, SELL, BTC // 10, usd(54_100 + 10 * i))
    events = oracle(ex, 54_000)
    fills = of_kind(events, LiquidationFill)
    # step = max(min(1,000, |N|), 10 % of |N|) at the mark: 5,400 USDC (0.1 BTC), then 4,860
    # (0.09 BTC), then what is left of the 12,000 per second (0.0322 BTC); fills are per maker
    assert [f.size for f in fills] == [1_000, 900, 100, 222]
    assert sum(f.size for f in fills) * 54_000 // BTC <= 12_000
    assert of_kind(events, LiquidationEnded)[-1].liquidatable
    advance(ex, 1_000)
    events = oracle(ex, 54_000)                  # next second: it continues
    assert of_kind(events, LiquidationFill)
    assert_conserved(ex)


def test_no_liquidation_on_a_halted_market():
    ex = liquidation_exchange(halt_after_ms=MINUTE)
    short, long = bankrupt_short(ex)
    advance(ex, 2 * MINUTE)
    ex.withdraw(long, 1)                         # a command after the deadline: the market halts
    assert "BTC" in ex.state.halted
    events = ex.run(Deposit, owner="0x" + "cc" * 20, amount=1, deposit_id=ex._deposit_id + 1)
    assert of_kind(events, LiquidationStarted) == []
    from clearway.domain.liquidation import screen
    screened: list = []
    ex.state.marks[0] = usd(60_000)
    screen(ex.state, ex.ts, screened)
    assert screened == []


def test_a_fill_that_breaches_maintenance_margin_triggers_liquidation_of_the_maker():
    ex = liquidation_exchange()
    maker = ex.deposit(0xA1, usd(3_000))
    seller = ex.deposit(0xB2, usd(1_000_000))
    bidder = ex.deposit(0xC3, usd(1_000_000))
    fund(ex, usd(1_000))                        # fills below the bankruptcy price need the fund
    oracle(ex, 50_000)
    ex.place(maker, BUY, BTC, usd(50_000))       # IM 2,500 ≤ 3,000
    advance(ex, 1_000)
    oracle(ex, 47_000)                           # no position yet: nothing to liquidate
    ex.place(bidder, BUY, BTC, usd(46_900))
    events = ex.place(seller, SELL, BTC, usd(50_000), tif=2)  # hits the stale bid: maker's equity 0
    assert of_kind(events, LiquidationStarted) == [LiquidationStarted(maker, 0, usd(1_410))]
    fills = of_kind(events, LiquidationFill)
    assert fills and all(f.price == usd(46_900) and f.insurance_payout > 0 for f in fills)
    assert_conserved(ex)


def test_an_option_the_book_cannot_absorb_goes_to_the_insurance_fund_at_mark_plus_penalty():
    from clearway.domain.events import BackstopTransfer
    from option_support import flat_expiry
    from support import option_spec

    ex = Exchange(lifecycle_genesis(instruments=[lifecycle_perp(), option_spec(1, 50_000)]))
    writer = ex.deposit(0xA1, usd(12_000))
    buyer = ex.deposit(0xB2, usd(100_000))
    surface = (flat_expiry(50_000, 0.6, ex.ts),)
    oracle(ex, 50_000, expiries=surface)
    mark = ex.state.marks[1]
    price = mark // 100_000 * 100_000
    ex.place(writer, SELL, BTC, price, instrument=1)
    ex.place(buyer, BUY, BTC, price, instrument=1)
    advance(ex, 1_000)
    events = oracle(ex, 55_000, expiries=(flat_expiry(55_000, 0.6, ex.ts),))
    assert of_kind(events, LiquidationStarted)[0].account == writer
    transfer = of_kind(events, BackstopTransfer)[0]
    mark = ex.state.marks[1]
    contract_mm = mark + usd(55_000) * 75_000 // 1_000_000
    assert transfer.size == BTC and transfer.price == (mark + -(-contract_mm // 10)) // 100_000 * 100_000
    assert ex.position(writer, 1) == 0 and ex.position(INSURANCE_FUND, 1) == -BTC
    state = ex.state
    assert sum(a.cash for a in state.accounts.values()) == state.total_deposits
    assert sum(a.position_size(1) for a in state.accounts.values()) == 0


def test_an_empty_fund_does_not_take_a_short_option_worth_more_than_it_is_paid():
    """The writer of 0.4545 calls (2,000 USDC) is bankrupt after +25 % (the calls are worth
    2,499.75 USDC, it holds 2,032.13). The backstop price (mark + penalty) is more than it
    can pay; the fund would have paid the difference, and the fund is empty: what it may
    do counts the liability it takes, not only the cash it pays (it used to take the calls
    for the writer's 2,032.13 USDC and be left with equity −467.6). The writer is
    deleveraged against the buyer instead."""
    from clearway.domain.events import BackstopTransfer
    from lifecycle_support import option_oracle, options_exchange
    from support import TICK, option_spec

    ex = options_exchange(option_spec(1, 22_000))
    writer = ex.deposit(0xA1, usd(2_000))
    buyer = ex.deposit(0xB2, usd(2_000))
    price = ex.state.marks[1] // TICK * TICK
    ex.place(writer, SELL, 4_545, price, instrument=1)
    ex.place(buyer, BUY, 4_545, price, instrument=1, tif=2)
    advance(ex, 61_000)                          # past the max-move window: a 25 % jump
    events = option_oracle(ex, 27_500)
    assert of_kind(events, BackstopTransfer) == []
    adl = of_kind(events, Deleveraged)
    assert [(e.account, e.counterparty, e.quote) for e in adl] == [(writer, buyer, -2_032_133_150)]
    assert ex.cash(writer) == 0 and ex.position(writer, 1) == 0
    fund_account = ex.state.accounts[INSURANCE_FUND]
    assert fund_account.cash == 0 and not fund_account.positions
    assert sum(a.cash for a in ex.state.accounts.values()) == ex.state.total_deposits


def test_a_deficit_the_fund_can_pay_is_covered_instead_of_deleveraged():
    ex = liquidation_exchange(oracle_max_move_ppm=200_000, liquidation_cap_per_second=usd(10_000))
    short, long = bankrupt_short(ex)
    fund(ex, usd(50_000))
    maker = ex.deposit(0xC3, usd(1_000_000))
    ex.place(maker, SELL, BTC, usd(56_500))
    events = oracle(ex, 56_000)                  # the cap stops the book path with equity < 0
    from clearway.domain.events import Deleveraged, InsuranceCovered
    assert of_kind(events, Deleveraged) == []
    assert of_kind(events, InsuranceCovered) and of_kind(events, LiquidationEnded)[-1].liquidatable
    health = ex.state.margin.health(ex.state.accounts[short])
    assert health.equity >= 0 and ex.position(short) < 0
    assert_conserved(ex)


def test_a_liquidation_takes_an_iceberg_slice_by_slice_behind_the_orders_queued_after_it():
    # the fee example's account sells 0.1 BTC into an iceberg (0.1 BTC showing 0.02) with a
    # plain 0.05 BTC bid queued behind it at the same price: as for any taker, the iceberg
    # gives its slice, refills at the back, and the plain bid trades before its refill (the
    # iceberg used to give 0.1 BTC at once, the plain bid nothing)
    ex = liquidation_exchange(liquidation_step_ppm=1_000_000)
    a, _, c = leveraged_long(ex, 500, 56_000)
    d = ex.deposit(0xD4, usd(1_000_000))
    iceberg = ex.place(c, BUY, BTC // 10, usd(56_100), display_size=BTC // 50)[0].order_id
    plain = ex.place(d, BUY, BTC // 20, usd(56_100))[0].order_id
    advance(ex, 1_000)
    events = oracle(ex, 52_000)
    fills = [(e.maker_order_id, e.size) for e in of_kind(events, Trade)]
    slice_ = BTC // 50
    assert fills == [(iceberg, slice_), (plain, BTC // 20), (iceberg, slice_), (iceberg, BTC // 100)]
    assert [e.size for e in of_kind(events, LiquidationFill)] == [size for _, size in fills]
    refills = of_kind(events, IcebergRefilled)
    assert [(e.order_id, e.shown, e.remaining) for e in refills] == [(iceberg, slice_, 8 * BTC // 100),
                                                                      (iceberg, slice_, 6 * BTC // 100)]
    assert ex.position(a) == 0 and ex.position(d) == BTC // 20 and ex.position(c) == BTC // 20
    order = ex.state.orders[iceberg]
    assert (order.remaining, order.shown) == (BTC // 20, BTC // 100)
    assert ex.state.books[0].levels(BUY) == [(usd(56_100), BTC // 100)]
    assert_conserved(ex)
