"""Iceberg (reserve) orders: only the displayed slice is visible, each refill goes to the
back of its level (also within one sweep), hidden fills are normal trades, and margin counts
the whole remaining size."""

from __future__ import annotations

import pytest

from clearway.domain.errors import ErrorCode
from clearway.domain.events import IcebergRefilled, OrderAccepted, Rejected, Trade
from clearway.domain.orders import TimeInForce
from clearway.domain.snapshot import decode_snapshot, encode_snapshot
from clearway.domain.state import apply, state_hash
from support import BTC, kinds, usd

BUY, SELL = 1, -1
PRICE = usd(25_100)



def queue(ex, price=PRICE, side=SELL):
    level = ex.state.books[0].level_at(side, price)
    return [(o.order_id, o.shown if o.display else o.remaining) for o in level.orders()] if level else []


def test_only_the_displayed_slice_is_visible_in_depth(ex):
    events = ex.place(2, SELL, 10_000, PRICE, display_size=1_000)
    assert isinstance(events[0], OrderAccepted) and events[0].display_size == 1_000
    book = ex.state.books[0]
    assert book.levels(SELL) == [(PRICE, 1_000)]
    order = ex.state.orders[events[0].order_id]
    assert (order.remaining, order.shown) == (10_000, 1_000)


def test_margin_counts_the_whole_remaining_size(ex):
    iceberg = ex.place(2, SELL, 10_000, PRICE, display_size=1_000)[0].order_id
    plain = ex.place(3, SELL, 10_000, PRICE)[0].order_id
    a, b = ex.state.accounts[2].open[0], ex.state.accounts[3].open[0]
    assert (a.ask_size, a.ask_notional) == (b.ask_size, b.ask_notional) == (10_000, 10_000 * PRICE // BTC)
    assert ex.state.margin.initial(ex.state.accounts[2]) == ex.state.margin.initial(ex.state.accounts[3])
    assert ex.state.orders[iceberg].shown == 1_000 and ex.state.orders[plain].display == 0


def test_a_refill_goes_to_the_back_of_the_queue(ex):
    iceberg = ex.place(2, SELL, 3_000, PRICE, display_size=1_000)[0].order_id
    behind = ex.place(3, SELL, 500, PRICE)[0].order_id
    events = ex.place(4, BUY, 1_000, PRICE, tif=TimeInForce.IOC)  # takes exactly the slice
    assert kinds(events) == ["OrderAccepted", "Trade", "IcebergRefilled"]
    refill = events[2]
    assert (refill.order_id, refill.shown, refill.remaining) == (iceberg, 1_000, 2_000)
    assert queue(ex) == [(behind, 500), (iceberg, 1_000)]


def test_within_one_sweep_the_refill_trades_only_after_the_orders_queued_behind_it(ex):
    iceberg = ex.place(2, SELL, 2_500, PRICE, display_size=1_000)[0].order_id
    behind = ex.place(3, SELL, 400, PRICE)[0].order_id
    events = ex.place(4, BUY, 2_000, PRICE, tif=TimeInForce.IOC)
    fills = [(e.maker_order_id, e.size) for e in events if isinstance(e, Trade)]
    assert fills == [(iceberg, 1_000), (behind, 400), (iceberg, 600)]
    assert [type(e).__name__ for e in events].count("IcebergRefilled") == 1
    assert queue(ex) == [(iceberg, 400)]  # 1,000 refilled, 600 taken: 900 left in all, 400 shown
    order = ex.state.orders[iceberg]
    assert (order.remaining, order.shown) == (900, 400)


def test_a_large_taker_consumes_the_iceberg_slice_by_slice_as_normal_trades(ex):
    iceberg = ex.place(2, SELL, 2_500, PRICE, display_size=1_000)[0].order_id
    events = ex.place(4, BUY, 3_000, PRICE, tif=TimeInForce.IOC)
    trades = [e for e in events if isinstance(e, Trade)]
    assert [t.size for t in trades] == [1_000, 1_000, 500]
    assert all(t.maker_order_id == iceberg and t.price == PRICE for t in trades)
    assert iceberg not in ex.state.orders and ex.position(2) == -2_500 and ex.position(4) == 2_500
    assert ex.state.books[0].level_at(SELL, PRICE) is None


def test_an_incoming_iceberg_trades_its_whole_size_then_rests_with_a_slice(ex):
    ex.place(3, SELL, 1_500, PRICE)
    order_id = ex.place(2, BUY, 5_000, PRICE, display_size=1_000)[0].order_id
    assert ex.position(2) == 1_500
    assert ex.state.books[0].levels(BUY) == [(PRICE, 1_000)]
    assert ex.state.orders[order_id].remaining == 3_500


def test_amend_down_keeps_priority_and_takes_hidden_size_first(ex):
    iceberg = ex.place(2, SELL, 3_000, PRICE, display_size=1_000)[0].order_id
    ex.place(3, SELL, 500, PRICE)
    events = ex.amend(2, iceberg, 1_500, PRICE)
    assert events[0].priority_kept
    order = ex.state.orders[iceberg]
    assert (order.remaining, order.shown) == (1_500, 1_000) and queue(ex)[0] == (iceberg, 1_000)
    ex.amend(2, iceberg, 700, PRICE)
    assert (order.remaining, order.shown) == (700, 700)
    assert ex.state.books[0].levels(SELL) == [(PRICE, 1_200)]


@pytest.mark.parametrize("fields, code", [
    (dict(display_size=20_000), ErrorCode.DISPLAY_SIZE_ABOVE_TOTAL),
    (dict(display_size=-5), ErrorCode.INVALID_DISPLAY_SIZE),
    (dict(display_size=1_000, tif=TimeInForce.IOC), ErrorCode.NOT_A_RESTING_ORDER),
    (dict(display_size=1_000, order_type=2), ErrorCode.NOT_A_RESTING_ORDER),
])
def test_invalid_icebergs_are_rejected(ex, fields, code):
    events = ex.place(2, SELL, 10_000, PRICE, **fields)
    assert len(events) == 1 and isinstance(events[0], Rejected) and events[0].code == code, events


def test_a_display_size_equal_to_the_size_is_a_plain_order(ex):
    order_id = ex.place(2, SELL, 1_000, PRICE, display_size=1_000)[0].order_id
    assert ex.state.orders[order_id].display == 0


def test_snapshot_keeps_a_partly_taken_slice_and_the_queue(ex):
    iceberg = ex.place(2, SELL, 3_000, PRICE, display_size=1_000)[0].order_id
    ex.place(3, SELL, 500, PRICE)
    ex.place(4, BUY, 300, PRICE, tif=TimeInForce.IOC)
    restored = decode_snapshot(encode_snapshot(ex.state))
    assert state_hash(restored) == ex.hash() == ex.replay_hash()
    order = restored.orders[iceberg]
    assert (order.remaining, order.shown) == (2_700, 700)
    assert restored.books[0].levels(SELL) == ex.state.books[0].levels(SELL) == [(PRICE, 1_200)]
    events = ex.place(5, BUY, 900, PRICE, tif=TimeInForce.IOC)  # the slice's 700, then 200 of the refill
    assert apply(restored, ex.commands[-1]) == events  # the restored state goes on exactly as the live one
    assert kinds(events) == ["OrderAccepted", "Trade", "IcebergRefilled", "Trade"]
    assert state_hash(restored) == ex.hash()
