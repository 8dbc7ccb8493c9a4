"""Validation, reduce-only and amend rules: every rejection changes nothing."""

from __future__ import annotations

import pytest

from clearway.domain.errors import CancelReason, ErrorCode
from clearway.domain.events import OrderAmended, OrderCancelled, Rejected, Trade
from clearway.domain.orders import BUY, SELL, OrderType, TimeInForce
from support import BTC, TICK, Exchange, kinds, usd
from test_matching import _hash_without_seq


@pytest.mark.parametrize(
    "fields, code",
    [
        (dict(account=99, side=BUY, size=BTC, price=usd(25_000)), ErrorCode.UNKNOWN_ACCOUNT),
        (dict(account=0, side=BUY, size=BTC, price=usd(25_000)), ErrorCode.UNKNOWN_ACCOUNT),
        (dict(account=2, side=BUY, size=BTC, price=usd(25_000), instrument=7), ErrorCode.UNKNOWN_INSTRUMENT),
        (dict(account=2, side=0, size=BTC, price=usd(25_000)), ErrorCode.INVALID_SIDE),
        (dict(account=2, side=BUY, size=0, price=usd(25_000)), ErrorCode.SIZE_NOT_POSITIVE),
        (dict(account=2, side=BUY, size=-5, price=usd(25_000)), ErrorCode.SIZE_NOT_POSITIVE),
        (dict(account=2, side=BUY, size=BTC, price=usd(25_000) + TICK // 2), ErrorCode.PRICE_NOT_ON_TICK),
        (dict(account=2, side=BUY, size=BTC, price=0), ErrorCode.PRICE_NOT_POSITIVE),
        (dict(account=2, side=BUY, size=BTC, price=usd(25_000), tif=9), ErrorCode.INVALID_TIME_IN_FORCE),
        (dict(account=2, side=BUY, size=BTC, price=usd(25_000), order_type=9), ErrorCode.INVALID_ORDER_TYPE),
        (dict(account=2, side=BUY, size=BTC, price=0, order_type=OrderType.MARKET, post_only=True),
         ErrorCode.INVALID_ORDER_TYPE),
        (dict(account=2, side=BUY, size=BTC, price=usd(25_000), client_order_id="x" * 65),
         ErrorCode.CLIENT_ORDER_ID_TOO_LONG),
        (dict(account=2, side=BUY, size=BTC, price=usd(25_000), reduce_only=True), ErrorCode.REDUCE_ONLY_WOULD_INCREASE),
        (dict(account=2, side=BUY, size=1000 * BTC, price=usd(25_000)), ErrorCode.INSUFFICIENT_MARGIN),
    ],
)
def test_invalid_order_is_rejected_with_its_code_and_changes_nothing(exchange, fields, code):
    exchange.place(3, SELL, BTC, usd(25_100))
    before = _hash_without_seq(exchange)
    account = fields.pop("account")
    events = exchange.place(account, **fields)
    assert len(events) == 1 and isinstance(events[0], Rejected)
    assert events[0].code == code, events[0]
    assert events[0].message
    assert _hash_without_seq(exchange) == before


def test_size_not_on_increment_and_below_minimum_are_rejected():
    from clearway.domain.genesis import GenesisConfig
    from clearway.domain.instruments import InstrumentSpec, Kind
    spec = InstrumentSpec(0, "BTC", Kind.PERPETUAL, tick_size=TICK, size_decimals=4, size_increment=10,
                          min_size=100, maker_fee_ppm=0, taker_fee_ppm=0, imf_ppm=50_000, mmf_ppm=30_000)
    ex = Exchange(GenesisConfig(instruments=[spec]))
    a = ex.deposit(1, usd(100_000))
    ex.marks(usd(25_000))
    assert ex.place(a, BUY, 105, usd(25_000))[0].code == ErrorCode.SIZE_NOT_ON_INCREMENT
    assert ex.place(a, BUY, 90, usd(25_000))[0].code == ErrorCode.SIZE_BELOW_MINIMUM
    assert kinds(ex.place(a, BUY, 100, usd(25_000))) == ["OrderAccepted"]


def test_order_without_a_mark_price_is_rejected():
    ex = Exchange()
    a = ex.deposit(1, usd(100_000))
    assert ex.place(a, BUY, BTC, usd(25_000))[0].code == ErrorCode.MARK_PRICE_UNAVAILABLE


# -- reduce-only ---------------------------------------------------------------------

def _long(exchange: Exchange, account: int = 3, size: int = BTC) -> None:
    exchange.place(2, SELL, size, usd(25_000))
    exchange.place(account, BUY, size, usd(25_000))
    assert exchange.position(account) == size


def test_reduce_only_larger_than_the_position_is_resized_to_it(exchange):
    _long(exchange)
    events = exchange.place(3, SELL, 3 * BTC, usd(26_000), reduce_only=True)
    assert events[0].size == BTC
    assert exchange.state.books[0].levels(SELL) == [(usd(26_000), BTC)]


def test_reduce_only_on_the_increasing_side_is_rejected(exchange):
    _long(exchange)
    assert exchange.place(3, BUY, BTC, usd(24_000), reduce_only=True)[0].code == ErrorCode.REDUCE_ONLY_WOULD_INCREASE


def test_resting_reduce_only_is_cancelled_when_the_position_closes(exchange):
    _long(exchange)
    exchange.place(3, SELL, BTC, usd(26_000), reduce_only=True)       # order 3
    exchange.place(2, BUY, BTC, usd(25_000))                           # a bid to sell into
    events = exchange.place(3, SELL, BTC, usd(25_000))                 # closes the long
    assert exchange.position(3) == 0
    cancelled = [e for e in events if isinstance(e, OrderCancelled)]
    assert [(e.order_id, e.reason) for e in cancelled] == [(3, CancelReason.REDUCE_ONLY_NO_POSITION)]
    assert exchange.state.books[0].best_ask() is None


def test_resting_reduce_only_shrinks_when_the_position_shrinks(exchange):
    _long(exchange, size=2 * BTC)
    exchange.place(3, SELL, 2 * BTC, usd(26_000), reduce_only=True)
    exchange.place(2, BUY, BTC, usd(25_000))
    events = exchange.place(3, SELL, BTC, usd(25_000))
    amended = [e for e in events if isinstance(e, OrderAmended)]
    assert amended and amended[0].remaining == BTC and amended[0].priority_kept


def test_reduce_only_maker_cannot_flip_its_position_within_one_sweep(exchange):
    _long(exchange)                                                    # account 3 long 1 BTC
    exchange.place(3, SELL, BTC, usd(25_100))                          # plain sell
    exchange.place(3, SELL, BTC, usd(25_200), reduce_only=True)        # reduce-only behind it
    events = exchange.place(2, BUY, 2 * BTC, usd(25_200))
    assert sum(e.size for e in events if isinstance(e, Trade)) == BTC
    assert exchange.position(3) == 0


# -- amend ---------------------------------------------------------------------------

def test_amend_size_decrease_keeps_priority(exchange):
    exchange.place(2, SELL, 2 * BTC, usd(25_000))                      # order 1
    exchange.place(3, SELL, BTC, usd(25_000))                          # order 2
    events = exchange.amend(2, 1, BTC, usd(25_000))
    assert events[0].priority_kept
    c = exchange.deposit(0xC3, usd(1_000_000))
    trade = [e for e in exchange.place(c, BUY, BTC, usd(25_000)) if isinstance(e, Trade)][0]
    assert trade.maker_order_id == 1


def test_amend_size_increase_loses_priority(exchange):
    exchange.place(2, SELL, BTC, usd(25_000))
    exchange.place(3, SELL, BTC, usd(25_000))
    assert not exchange.amend(2, 1, 2 * BTC, usd(25_000))[0].priority_kept
    c = exchange.deposit(0xC3, usd(1_000_000))
    trade = [e for e in exchange.place(c, BUY, BTC, usd(25_000)) if isinstance(e, Trade)][0]
    assert trade.maker_order_id == 2


def test_amend_price_change_loses_priority_and_may_trade(exchange):
    exchange.place(2, BUY, BTC, usd(24_900))
    exchange.place(3, SELL, BTC, usd(25_000))
    events = exchange.amend(2, 1, BTC, usd(25_000))
    assert kinds(events) == ["OrderAmended", "Trade"]
    assert exchange.position(2) == BTC and exchange.state.orders == {}


def test_amend_of_a_partially_filled_order_counts_the_filled_part(exchange):
    exchange.place(2, SELL, 2 * BTC, usd(25_000))
    exchange.place(3, BUY, BTC, usd(25_000))
    assert exchange.amend(2, 1, BTC, usd(25_000))[0].code == ErrorCode.AMEND_SIZE_NOT_ABOVE_FILLED
    events = exchange.amend(2, 1, 3 * BTC, usd(25_000))
    assert events[0].remaining == 2 * BTC


def test_post_only_amend_that_would_cross_is_rejected_and_keeps_the_queue(exchange):
    exchange.place(2, BUY, BTC, usd(24_900), post_only=True)
    exchange.place(3, BUY, BTC, usd(24_900))
    exchange.place(3, SELL, BTC, usd(25_000))
    before = _hash_without_seq(exchange)
    assert exchange.amend(2, 1, BTC, usd(25_000))[0].code == ErrorCode.POST_ONLY_WOULD_CROSS
    assert _hash_without_seq(exchange) == before


def test_amend_that_changes_nothing_or_exceeds_margin_is_rejected(exchange):
    exchange.place(2, BUY, BTC, usd(24_900))
    assert exchange.amend(2, 1, BTC, usd(24_900))[0].code == ErrorCode.AMEND_NOTHING_TO_CHANGE
    assert exchange.amend(2, 1, 1000 * BTC, usd(24_900))[0].code == ErrorCode.INSUFFICIENT_MARGIN
