"""Auto-deleveraging through apply(): the spec example and the exhausted insurance fund."""

from __future__ import annotations

from clearway.domain.events import Deleveraged, LiquidationFill
from clearway.domain.orders import BUY, SELL
from lifecycle_support import assert_conserved, bankrupt_short, liquidation_exchange, of_kind, oracle
from support import BTC, usd


def test_spec_example_adl_the_long_sells_at_the_bankruptcy_price_54_999():
    ex = liquidation_exchange(oracle_max_move_ppm=200_000)
    short, long = bankrupt_short(ex)
    events = oracle(ex, 56_000)                  # short equity −1,001, empty book, empty fund
    assert of_kind(events, Deleveraged) == [Deleveraged(0, short, long, BUY, BTC, usd(54_999), -usd(54_999))]
    assert ex.cash(long) == usd(104_999) and ex.position(long) == 0
    assert ex.cash(short) == 0 and ex.position(short) == 0
    assert_conserved(ex)


def test_an_exhausted_fund_deleverages_instead_of_filling_below_bankruptcy():
    ex = liquidation_exchange(oracle_max_move_ppm=200_000)
    short, long = bankrupt_short(ex)
    maker = ex.deposit(0xC3, usd(1_000_000))
    ex.place(maker, SELL, BTC, usd(56_500))       # within the fillable price, below bankruptcy
    events = oracle(ex, 56_000)
    assert of_kind(events, LiquidationFill) == []
    assert of_kind(events, Deleveraged)[0].counterparty == long
    assert ex.position(maker) == 0 and len(ex.state.orders) == 1
    assert_conserved(ex)




def test_deleveraging_ranks_counterparties_by_profit_times_leverage():
    ex = liquidation_exchange(oracle_max_move_ppm=200_000)
    short, long = bankrupt_short(ex)            # long: +1 BTC from 50,000, 100,000 deposited
    lean = ex.deposit(0xC3, usd(10_000))         # a more leveraged long, same entry
    other_short = ex.deposit(0xD4, usd(1_000_000))
    ex.place(lean, BUY, BTC, usd(50_000))
    ex.place(other_short, SELL, BTC, usd(50_000))
    events = oracle(ex, 56_000)
    adl = of_kind(events, Deleveraged)
    assert [(e.counterparty, e.size) for e in adl] == [(lean, BTC)]
    assert ex.position(long) == BTC and ex.position(lean) == 0
    assert_conserved(ex)
