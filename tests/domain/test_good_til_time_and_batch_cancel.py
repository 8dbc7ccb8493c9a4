"""Good-til-time expiry (good_til_time.py) and batch cancel by id (CancelOrders)."""

from __future__ import annotations

import pytest

from clearway.domain.commands import CancelOrders, PlaceTwap
from clearway.domain.errors import CancelReason, ErrorCode
from clearway.domain.events import CancelFailed, OrderCancelled, Rejected, Trade, TwapEnded
from clearway.domain.orders import OrderType, TimeInForce, TriggerSource
from clearway.domain.snapshot import decode_snapshot, encode_snapshot
from clearway.domain.state import apply, state_hash
from support import BTC, kinds, usd

BUY, SELL = 1, -1
PRICE = usd(25_100)



def test_a_gtt_order_expires_at_the_first_command_at_or_after_its_time_before_that_command(ex):
    expire_at = ex.ts + 10_000
    order_id = ex.place(3, SELL, BTC, PRICE, expire_at=expire_at)[0].order_id
    ex.ts = expire_at - 1
    assert kinds(ex.place(2, BUY, BTC // 10, usd(24_000))) == ["OrderAccepted"]  # still there
    assert order_id in ex.state.orders
    ex.ts = expire_at + 500
    events = ex.place(4, BUY, BTC, PRICE, tif=TimeInForce.IOC)  # would have traded with it
    assert isinstance(events[0], OrderCancelled)
    assert (events[0].order_id, events[0].reason, events[0].remaining) == (order_id, CancelReason.GOOD_TIL_TIME, BTC)
    assert not any(isinstance(e, Trade) for e in events)
    assert order_id not in ex.state.orders and ex.state.accounts[3].open == {}


def test_several_orders_expire_in_time_order_then_by_id_and_filled_ones_are_skipped(ex):
    t = ex.ts
    a = ex.place(3, SELL, BTC, PRICE, expire_at=t + 3_000)[0].order_id
    b = ex.place(3, SELL, BTC, PRICE + usd(1), expire_at=t + 2_000)[0].order_id
    c = ex.place(2, BUY, BTC, usd(24_000), expire_at=t + 2_000)[0].order_id
    filled = ex.place(3, SELL, BTC // 10, usd(25_050), expire_at=t + 1_000)[0].order_id
    ex.place(4, BUY, BTC // 10, usd(25_050), tif=TimeInForce.IOC)
    assert filled not in ex.state.orders
    ex.ts = t + 5_000
    events = ex.withdraw(2, usd(1))
    assert [(e.order_id, e.reason) for e in events if isinstance(e, OrderCancelled)] == [
        (b, CancelReason.GOOD_TIL_TIME), (c, CancelReason.GOOD_TIL_TIME), (a, CancelReason.GOOD_TIL_TIME)]


def test_a_waiting_conditional_order_expires_too(ex):
    order_id = ex.place(2, BUY, BTC, 0, order_type=OrderType.STOP_MARKET, trigger_price=usd(26_000),
                        trigger=TriggerSource.MARK, expire_at=ex.ts + 1_000)[0].order_id
    ex.ts += 1_000
    events = ex.marks(usd(26_500))
    assert kinds(events)[0] == "OrderCancelled" and events[0].order_id == order_id
    assert "OrderTriggered" not in kinds(events) and not ex.state.conditionals


@pytest.mark.parametrize("fields, code", [
    (dict(expire_at=1), ErrorCode.EXPIRE_AT_NOT_IN_FUTURE),
    (dict(expire_at=-5), ErrorCode.EXPIRE_AT_NOT_IN_FUTURE),
    (dict(expire_at=2_000_000_000_000, tif=TimeInForce.IOC), ErrorCode.NOT_A_RESTING_ORDER),
    (dict(expire_at=2_000_000_000_000, tif=TimeInForce.FOK), ErrorCode.NOT_A_RESTING_ORDER),
])
def test_invalid_expiry_is_rejected(ex, fields, code):
    events = ex.place(2, BUY, BTC, usd(24_000), **fields)
    assert len(events) == 1 and isinstance(events[0], Rejected) and events[0].code == code


def test_snapshot_keeps_the_expiry_schedule(ex):
    expire_at = ex.ts + 60_000
    order_id = ex.place(3, SELL, BTC, PRICE, expire_at=expire_at)[0].order_id
    restored = decode_snapshot(encode_snapshot(ex.state))
    assert state_hash(restored) == ex.hash() == ex.replay_hash()
    ex.ts = expire_at
    command = ex.place(2, BUY, BTC // 10, usd(24_000))
    replica = restored
    assert apply(replica, ex.commands[-1]) == command
    assert command[0].order_id == order_id and state_hash(replica) == ex.hash()


# -- batch cancel -------------------------------------------------------------------------
def cancel_many(ex, account, ids):
    return ex.run(CancelOrders, account=account, order_ids=tuple(ids))


def test_batch_cancel_cancels_every_kind_in_the_given_order_and_reports_bad_ids_one_by_one(ex):
    a = ex.place(2, BUY, BTC, usd(24_000))[0].order_id
    b = ex.place(2, BUY, BTC, 0, order_type=OrderType.STOP_MARKET, trigger_price=usd(26_000),
                 trigger=TriggerSource.MARK)[0].order_id
    c = ex.run(PlaceTwap, account=2, instrument=0, side=BUY, size=BTC, duration_ms=300_000, interval_ms=60_000,
               limit_price=usd(24_000))[0].order_id
    foreign = ex.place(3, SELL, BTC, PRICE)[0].order_id
    events = cancel_many(ex, 2, [c, 999, a, foreign, b])
    assert kinds(events) == ["TwapEnded", "CancelFailed", "OrderCancelled", "CancelFailed", "OrderCancelled"]
    assert isinstance(events[0], TwapEnded) and events[0].reason == CancelReason.REQUESTED
    assert events[1] == CancelFailed(999, 2, ErrorCode.UNKNOWN_ORDER)
    assert events[3] == CancelFailed(foreign, 2, ErrorCode.NOT_ORDER_OWNER)
    assert [e.order_id for e in events if isinstance(e, OrderCancelled)] == [a, b]
    assert not ex.state.accounts[2].orders and not ex.state.conditionals and not ex.state.twaps
    assert foreign in ex.state.orders


def test_batch_cancel_of_a_hundred_orders(ex):
    ids = [ex.place(2, BUY, 10, usd(24_000) - i * 100_000)[0].order_id for i in range(100)]
    events = cancel_many(ex, 2, ids)
    assert [e.order_id for e in events] == ids and not ex.state.accounts[2].orders


@pytest.mark.parametrize("ids, code", [
    ([], ErrorCode.BATCH_CANCEL_EMPTY),
    (list(range(1, 102)), ErrorCode.BATCH_CANCEL_TOO_MANY),
    ([5, 6, 5], ErrorCode.BATCH_CANCEL_DUPLICATE_ID),
    ([5, 0], ErrorCode.INVALID_ORDER_ID),
])
def test_an_invalid_batch_cancel_is_rejected_as_a_whole(ex, ids, code):
    order_id = ex.place(2, BUY, BTC, usd(24_000))[0].order_id
    events = cancel_many(ex, 2, [order_id, *ids] if code != ErrorCode.BATCH_CANCEL_EMPTY else [])
    assert len(events) == 1 and isinstance(events[0], Rejected) and events[0].code == code
    assert order_id in ex.state.orders


def test_batch_cancel_for_an_unknown_account_is_rejected(ex):
    assert cancel_many(ex, 77, [1])[0].code == ErrorCode.UNKNOWN_ACCOUNT


def test_a_stop_market_with_a_good_til_time_fires_as_a_market_order(ex):
    ex.place(3, SELL, BTC, usd(26_100))
    order_id = ex.place(2, BUY, BTC, 0, order_type=OrderType.STOP_MARKET, trigger_price=usd(26_000),
                        trigger=TriggerSource.MARK, expire_at=ex.ts + 60_000)[0].order_id
    events = ex.marks(usd(26_000))
    assert kinds(events) == ["PricesSet", "OrderTriggered", "OrderAccepted", "Trade"]
    assert events[2].order_id == order_id and events[2].expire_at == 0 and ex.position(2) == BTC
