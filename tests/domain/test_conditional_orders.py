"""Conditional orders (stop / take-profit; conditional.py): placement rules, triggers on
mark, index and last trade price, the deterministic firing order, margin re-check at the
trigger, reduce-only cancellation, and replay / snapshot equality."""

from __future__ import annotations

import pytest

from clearway.domain.errors import CancelReason, ErrorCode
from clearway.domain.events import OrderCancelled, OrderTriggered, Rejected, Trade
from clearway.domain.orders import OrderType, TimeInForce, TriggerSource
from clearway.domain.snapshot import decode_snapshot, encode_snapshot
from clearway.domain.state import state_hash
from support import BTC, kinds, usd

BUY, SELL = 1, -1
MARK, INDEX, LAST = TriggerSource.MARK, TriggerSource.INDEX, TriggerSource.LAST



def stop(ex, account, side, trigger_price, size=BTC, trigger=MARK, order_type=OrderType.STOP_MARKET, price=0, **kw):
    return ex.place(account, side, size, price, order_type=order_type, trigger_price=trigger_price, trigger=trigger,
                    **kw)


def trade_at(ex, price, size=BTC // 10):
    """Accounts 3 (maker) and 4 (taker) trade ``size`` at ``price``."""
    ex.place(3, SELL, size, price)
    events = ex.place(4, BUY, size, price, tif=TimeInForce.IOC)
    assert any(isinstance(e, Trade) for e in events), events
    return events


def test_a_stop_is_held_off_the_book_and_reserves_no_margin(ex):
    events = stop(ex, 2, BUY, usd(25_500))
    assert kinds(events) == ["ConditionalAccepted"]
    order_id = events[0].order_id
    assert order_id in ex.state.conditionals and order_id not in ex.state.orders
    assert ex.state.books[0].best_bid() is None
    assert ex.state.accounts[2].open == {}  # nothing reserved


@pytest.mark.parametrize("side, order_type, trigger_price", [
    (BUY, OrderType.STOP_MARKET, usd(25_000)),         # a buy stop must be above the mark
    (BUY, OrderType.STOP_MARKET, usd(24_900)),
    (SELL, OrderType.STOP_MARKET, usd(25_100)),        # a sell stop below
    (BUY, OrderType.TAKE_PROFIT_MARKET, usd(25_100)),  # a buy take-profit below
    (SELL, OrderType.TAKE_PROFIT_MARKET, usd(24_900)),  # a sell take-profit above
])
def test_a_trigger_already_reached_is_rejected_with_a_clear_code(ex, side, order_type, trigger_price):
    next_id = ex.state.next_order_id
    events = stop(ex, 2, side, trigger_price, order_type=order_type)
    assert len(events) == 1 and isinstance(events[0], Rejected) and events[0].code == ErrorCode.TRIGGER_WRONG_SIDE
    assert ex.state.conditionals == {} and ex.state.triggers == {} and ex.state.next_order_id == next_id


@pytest.mark.parametrize("fields, code", [
    (dict(trigger=0), ErrorCode.INVALID_TRIGGER_SOURCE),
    (dict(trigger=4), ErrorCode.INVALID_TRIGGER_SOURCE),
    (dict(trigger_price=0), ErrorCode.INVALID_TRIGGER_PRICE),
    (dict(trigger_price=usd(25_500) + 1), ErrorCode.INVALID_TRIGGER_PRICE),
    (dict(trigger=LAST), ErrorCode.TRIGGER_PRICE_UNAVAILABLE),  # no trade yet
    (dict(order_type=OrderType.STOP_LIMIT, price=0), ErrorCode.PRICE_NOT_POSITIVE),
    (dict(order_type=OrderType.STOP_LIMIT, price=usd(25_600) + 1), ErrorCode.PRICE_NOT_ON_TICK),
    (dict(post_only=True), ErrorCode.INVALID_ORDER_TYPE),
    (dict(display_size=10), ErrorCode.NOT_A_RESTING_ORDER),  # an iceberg needs a limit kind
    (dict(order_type=OrderType.STOP_LIMIT, price=usd(25_600), display_size=2 * BTC),
     ErrorCode.DISPLAY_SIZE_ABOVE_TOTAL),
    (dict(expire_at=1), ErrorCode.EXPIRE_AT_NOT_IN_FUTURE),
    (dict(reduce_only=True), ErrorCode.REDUCE_ONLY_WOULD_INCREASE),  # no position
])
def test_invalid_conditional_orders_are_rejected_and_change_nothing(ex, fields, code):
    args = dict(trigger_price=usd(25_500), trigger=MARK, order_type=OrderType.STOP_MARKET, price=0)
    args.update(fields)
    conditionals, next_id = dict(ex.state.conditionals), ex.state.next_order_id
    events = stop(ex, 2, BUY, **args)
    assert len(events) == 1 and isinstance(events[0], Rejected) and events[0].code == code, events
    assert ex.state.conditionals == conditionals and ex.state.next_order_id == next_id


def test_a_buy_stop_fires_when_the_mark_rises_to_its_trigger_and_trades_as_a_market_order(ex):
    ex.place(3, SELL, 2 * BTC, usd(25_600))
    order_id = stop(ex, 2, BUY, usd(25_500))[0].order_id
    assert kinds(ex.marks(usd(25_499))) == ["PricesSet"]  # not reached
    events = ex.marks(usd(25_500))
    assert kinds(events) == ["PricesSet", "OrderTriggered", "OrderAccepted", "Trade"]
    triggered, accepted, trade = events[1], events[2], events[3]
    assert (triggered.order_id, triggered.price, triggered.trigger) == (order_id, usd(25_500), MARK)
    assert accepted.order_id == order_id and trade.taker_order_id == order_id and trade.price == usd(25_600)
    assert ex.position(2) == BTC and order_id not in ex.state.conditionals


def test_a_stop_limit_rests_in_the_book_at_its_limit_when_it_cannot_trade(ex):
    order_id = stop(ex, 2, SELL, usd(24_500), order_type=OrderType.STOP_LIMIT, price=usd(24_400))[0].order_id
    events = ex.marks(usd(24_400))
    assert kinds(events) == ["PricesSet", "OrderTriggered", "OrderAccepted"]
    assert ex.state.orders[order_id].price == usd(24_400) and ex.state.books[0].best_ask() == usd(24_400)
    assert ex.state.accounts[2].open[0].ask_size == BTC  # now it reserves margin


def test_index_and_last_trade_triggers(ex):
    trade_at(ex, usd(25_000))
    on_index = stop(ex, 2, SELL, usd(24_000), trigger=INDEX, order_type=OrderType.STOP_LIMIT,
                    price=usd(23_000))[0].order_id
    on_last = stop(ex, 2, BUY, usd(25_200), trigger=LAST, order_type=OrderType.STOP_LIMIT,
                   price=usd(25_000))[0].order_id
    assert kinds(ex.marks(usd(23_000), index=usd(24_100))) == ["PricesSet"]  # the mark alone does not fire it
    events = ex.marks(usd(23_000), index=usd(24_000))
    assert [e.order_id for e in events if isinstance(e, OrderTriggered)] == [on_index]
    assert kinds(ex.cancel(2, order_id=on_index)) == ["OrderCancelled"]  # it rested at 23,000
    events = trade_at(ex, usd(25_300))
    assert [e.order_id for e in events if isinstance(e, OrderTriggered)] == [on_last]
    assert ex.state.last_trade[0] == usd(25_300)


def test_a_trade_through_the_trigger_fires_even_if_the_step_ends_below_it(ex):
    """Last-trade triggers see the highest and lowest trade of the step, not only the last."""
    trade_at(ex, usd(25_000))
    order_id = stop(ex, 2, BUY, usd(25_100), trigger=LAST, order_type=OrderType.STOP_LIMIT,
                    price=usd(25_000))[0].order_id
    ex.place(3, SELL, BTC // 10, usd(25_100))
    ex.place(3, SELL, BTC // 10, usd(25_200))
    events = ex.place(4, BUY, BTC // 5, usd(25_200), tif=TimeInForce.IOC)
    assert order_id in [e.order_id for e in events if isinstance(e, OrderTriggered)]


def test_simultaneous_triggers_fire_rising_by_trigger_price_then_arrival_then_falling_descending(ex):
    ex.place(3, SELL, 10 * BTC, usd(26_500))
    ex.place(3, BUY, 10 * BTC, usd(23_500))
    limit = dict(order_type=OrderType.STOP_LIMIT, size=BTC // 10)
    a = stop(ex, 2, BUY, usd(25_300), price=usd(25_000), **limit)[0].order_id
    b = stop(ex, 4, BUY, usd(25_100), price=usd(25_000), **limit)[0].order_id
    c = stop(ex, 2, BUY, usd(25_300), price=usd(25_000), **limit)[0].order_id  # same trigger as a, later
    d = ex.place(4, SELL, BTC // 10, usd(26_000), order_type=OrderType.TAKE_PROFIT_LIMIT,
                 trigger_price=usd(25_200), trigger=MARK)[0].order_id
    e = stop(ex, 2, BUY, usd(25_400), price=usd(25_000), **limit)[0].order_id  # not reached
    events = ex.marks(usd(25_300))
    fired = [ev.order_id for ev in events if isinstance(ev, OrderTriggered)]
    assert fired == [b, d, a, c]  # rising triggers by price (take-profit sells rise too), ties by arrival
    assert e in ex.state.conditionals
    # falling: the highest trigger first
    f = stop(ex, 2, SELL, usd(25_000), size=BTC // 10, order_type=OrderType.STOP_LIMIT, price=usd(24_000))[0].order_id
    g = stop(ex, 4, SELL, usd(25_200), size=BTC // 10, order_type=OrderType.STOP_LIMIT, price=usd(24_000))[0].order_id
    events = ex.marks(usd(24_900))
    assert [ev.order_id for ev in events if isinstance(ev, OrderTriggered)] == [g, f]


def test_a_triggered_order_that_fails_the_margin_check_is_rejected_cleanly(ex):
    poor = ex.deposit(0xE5, usd(600))
    order_id = stop(ex, poor, BUY, usd(25_500), size=BTC // 10)[0].order_id  # accepted: nothing is reserved
    ex.place(3, SELL, BTC, usd(25_600))
    ex.withdraw(poor, usd(500))
    cash = ex.cash(poor)
    events = ex.marks(usd(25_500))
    assert kinds(events) == ["PricesSet", "OrderTriggered", "TriggerRejected"]
    assert events[2].code == ErrorCode.INSUFFICIENT_MARGIN and events[2].order_id == order_id
    assert ex.cash(poor) == cash and ex.position(poor) == 0 and order_id not in ex.state.conditionals
    assert not ex.state.accounts[poor].orders


def test_a_reduce_only_stop_is_cancelled_when_the_position_closes(ex):
    ex.place(3, SELL, BTC, usd(25_000))
    ex.place(2, BUY, BTC, usd(25_000))  # account 2 is long 1 BTC
    order_id = stop(ex, 2, SELL, usd(24_000), reduce_only=True)[0].order_id
    ex.place(4, BUY, BTC, usd(25_100))
    events = ex.place(2, SELL, BTC, usd(25_100))  # closes the position
    cancelled = [e for e in events if isinstance(e, OrderCancelled) and e.order_id == order_id]
    assert cancelled and cancelled[0].reason == CancelReason.REDUCE_ONLY_NO_POSITION
    assert order_id not in ex.state.conditionals


def test_cancel_by_id_and_client_id_and_cancel_all_reach_conditionals(ex):
    a = stop(ex, 2, BUY, usd(25_500), client_order_id="stop-a")[0].order_id
    b = stop(ex, 2, BUY, usd(25_600))[0].order_id
    c = stop(ex, 2, SELL, usd(24_000))[0].order_id
    assert kinds(ex.cancel(2, client_order_id="stop-a")) == ["OrderCancelled"]
    assert ex.cancel(3, order_id=b)[0].code == ErrorCode.NOT_ORDER_OWNER
    assert kinds(ex.cancel(2, order_id=b)) == ["OrderCancelled"]
    events = ex.cancel_all(2)
    assert [(e.order_id, e.reason) for e in events] == [(c, CancelReason.CANCEL_ALL)]
    assert not ex.state.conditionals and not ex.state.triggers and "stop-a" not in ex.state.accounts[2].client_ids
    assert a not in ex.state.conditionals


def test_a_cascade_fires_stops_triggered_by_the_trades_of_other_stops(ex):
    trade_at(ex, usd(25_000))
    ex.place(3, BUY, BTC // 10, usd(24_900))
    ex.place(3, BUY, BTC // 10, usd(24_700))
    first = stop(ex, 2, SELL, usd(24_950), size=BTC // 10)[0].order_id  # mark stop: market sell
    second = stop(ex, 4, SELL, usd(24_900), size=BTC // 10, trigger=LAST)[0].order_id  # fires on its trade
    events = ex.marks(usd(24_950))
    fired = [e.order_id for e in events if isinstance(e, OrderTriggered)]
    assert fired == [first, second]
    trades = [e for e in events if isinstance(e, Trade)]
    assert [t.price for t in trades] == [usd(24_900), usd(24_700)]


def test_replay_and_snapshot_give_the_same_state_hash_with_waiting_conditionals(ex):
    trade_at(ex, usd(25_000))
    stop(ex, 2, BUY, usd(25_500), trigger=LAST, client_order_id="x", expire_at=ex.ts + 60_000)
    stop(ex, 4, SELL, usd(24_000), trigger=INDEX, order_type=OrderType.STOP_LIMIT, price=usd(23_900),
         display_size=BTC // 4, size=BTC)
    ex.marks(usd(24_000), index=usd(23_990))  # fires the index stop into the book as an iceberg
    restored = decode_snapshot(encode_snapshot(ex.state))
    assert state_hash(restored) == ex.hash() == ex.replay_hash()
    assert restored.conditionals.keys() == ex.state.conditionals.keys()
    assert restored.accounts[2].client_ids == ex.state.accounts[2].client_ids
