"""TWAP parent orders (twap.py): bounds, suborder sizing with rounding and the 3× cap,
pricing at the mark ± tolerance or the limit price, progress events, the clock, cancel."""

from __future__ import annotations

import pytest

from clearway.domain.commands import CancelOrder, PlaceTwap, SetMarkPrices
from clearway.domain.errors import CancelReason, ErrorCode
from clearway.domain.events import OrderAccepted, Rejected, Trade, TwapEnded, TwapProgress
from clearway.domain.genesis import GenesisConfig
from clearway.domain.snapshot import decode_snapshot, encode_snapshot
from clearway.domain.state import state_hash
from clearway.domain.twap import suborder_size
from support import Exchange, kinds, perp_spec, usd

BUY, SELL = 1, -1
MINUTE = 60_000
PRICE = usd(25_100)


def lot10_exchange() -> Exchange:
    """A perp traded in lots of 10 (size increment and minimum 10), marks at 25,000, three
    funded traders (ids 2, 3, 4)."""
    spec = perp_spec(0)
    spec = type(spec)(**{**{f: getattr(spec, f) for f in spec.__struct_fields__}, "size_increment": 10,
                         "min_size": 10})
    ex = Exchange(GenesisConfig(instruments=[spec]))
    for owner in (0xA1, 0xB2, 0xC3):
        ex.deposit(owner, usd(1_000_000))
    ex.marks(usd(25_000))
    return ex


def twap(ex, account=2, side=BUY, size=1_000, duration=5 * MINUTE, interval=MINUTE, **kw):
    return ex.run(PlaceTwap, account=account, instrument=0, side=side, size=size, duration_ms=duration,
                  interval_ms=interval, **kw)


def tick(ex, ms):
    """Let ``ms`` pass, then apply a command (the clock runs before it)."""
    ex.ts += ms
    return ex.run(SetMarkPrices, index={}, marks={})


def progress(events):
    return [(e.suborder_size, e.filled, e.remaining, e.intervals_left) for e in events if isinstance(e, TwapProgress)]


@pytest.mark.parametrize("remaining, left, size, intervals, expected", [
    (1_000, 10, 1_000, 10, 100),   # the average
    (1_000, 7, 1_000, 7, 150),     # ceil(142.9) = 143, up to the increment: 150
    (1_000, 1, 1_000, 10, 300),    # 3× the average caps the catch-up
    (1_000, 1, 1_000, 7, 420),     # cap ⌊3000 / 7⌋ = 428, down to the increment: 420
    (20, 1, 1_000, 10, 20),        # never more than what is left
    (30, 10, 30, 10, 10),          # at least one increment (and the minimum size)
])
def test_suborder_size_rounds_up_to_the_increment_and_is_capped_at_three_times_the_average(
        remaining, left, size, intervals, expected):
    assert suborder_size(remaining, left, size, intervals, 10, 10) == expected


def test_suborders_catch_up_with_unfilled_size_until_the_cap_and_the_parent_reports_progress():
    ex = lot10_exchange()
    ex.place(3, SELL, 100, PRICE)
    events = twap(ex, limit_price=PRICE, client_order_id="tw")
    assert kinds(events)[:2] == ["TwapAccepted", "OrderAccepted"]
    parent = events[0].order_id
    assert events[0].intervals == 5
    assert progress(events) == [(200, 100, 900, 4)]  # 200 asked, 100 available
    assert progress(tick(ex, MINUTE)) == [(230, 100, 900, 3)]   # ceil(900 / 4) = 225 → 230
    assert progress(tick(ex, MINUTE - 1)) == []                 # not due yet
    assert progress(tick(ex, 1)) == [(300, 100, 900, 2)]
    assert progress(tick(ex, MINUTE)) == [(450, 100, 900, 1)]
    ex.place(3, SELL, 2_000, PRICE)
    events = tick(ex, MINUTE)
    assert progress(events) == [(600, 700, 300, 0)]  # ceil(900 / 1) capped at 3 × 200
    ended = next(e for e in events if isinstance(e, TwapEnded))
    assert (ended.order_id, ended.filled, ended.remaining) == (parent, 700, 300)
    assert ended.reason == CancelReason.TWAP_ELAPSED
    assert ex.position(2) == 700 and parent not in ex.state.twaps and "tw" not in ex.state.accounts[2].client_ids



def test_suborders_are_priced_at_the_mark_plus_tolerance_and_complete_the_parent():
    ex = lot10_exchange()
    ex.place(3, SELL, 10_000, usd(25_200))
    events = twap(ex, size=500, price_tolerance_ppm=10_000)  # buy up to mark + 1 % = 25,250
    sub = next(e for e in events if isinstance(e, OrderAccepted))
    assert sub.price == usd(25_250) and sub.tif == 2
    for _ in range(4):
        events = tick(ex, MINUTE)
    assert progress(events) == [(100, 500, 0, 0)]
    assert next(e for e in events if isinstance(e, TwapEnded)).reason == CancelReason.TWAP_COMPLETED and ex.position(2) == 500
    sells = twap(ex, account=4, side=SELL, size=500, price_tolerance_ppm=10_000)
    assert next(e for e in sells if isinstance(e, OrderAccepted)).price == usd(24_750)


def test_several_missed_intervals_run_in_order_at_the_next_command():
    ex = lot10_exchange()
    parent = twap(ex, limit_price=PRICE)[0].order_id
    events = tick(ex, 3 * MINUTE + 5)
    assert [e.intervals_left for e in events if isinstance(e, TwapProgress)] == [3, 2, 1]
    assert ex.state.twaps[parent].done == 4


def test_a_rejected_suborder_is_skipped_with_its_code_and_the_parent_goes_on():
    ex = lot10_exchange()
    poor = ex.deposit(0xD4, usd(1))
    events = twap(ex, account=poor, limit_price=PRICE)
    p = next(e for e in events if isinstance(e, TwapProgress))
    assert (p.suborder_id, p.code, p.remaining) == (0, ErrorCode.INSUFFICIENT_MARGIN, 1_000)
    assert events[0].order_id in ex.state.twaps


def test_cancelling_the_parent_stops_it():
    ex = lot10_exchange()
    parent = twap(ex, limit_price=PRICE)[0].order_id
    events = ex.run(CancelOrder, account=2, order_id=parent)
    assert kinds(events) == ["TwapEnded"] and events[0].reason == CancelReason.REQUESTED
    assert progress(tick(ex, 10 * MINUTE)) == []


@pytest.mark.parametrize("fields, code", [
    (dict(interval=29_999), ErrorCode.TWAP_INVALID_INTERVAL),
    (dict(interval=3_600_001, duration=7_200_002), ErrorCode.TWAP_INVALID_INTERVAL),
    (dict(duration=4 * MINUTE), ErrorCode.TWAP_INVALID_DURATION),
    (dict(duration=24 * 60 * MINUTE + MINUTE), ErrorCode.TWAP_INVALID_DURATION),
    (dict(duration=5 * MINUTE, interval=2 * MINUTE), ErrorCode.TWAP_INVALID_DURATION),  # not a multiple
    (dict(price_tolerance_ppm=1_000_000), ErrorCode.TWAP_INVALID_PRICE_TOLERANCE),
    (dict(price_tolerance_ppm=-1), ErrorCode.TWAP_INVALID_PRICE_TOLERANCE),
    (dict(size=40), ErrorCode.TWAP_SIZE_TOO_SMALL),  # 5 intervals × minimum 10
    (dict(size=1_005), ErrorCode.SIZE_NOT_ON_INCREMENT),
    (dict(limit_price=PRICE + 1), ErrorCode.PRICE_NOT_ON_TICK),
    (dict(reduce_only=True), ErrorCode.REDUCE_ONLY_WOULD_INCREASE),
    (dict(side=0), ErrorCode.INVALID_SIDE),
])
def test_invalid_twaps_are_rejected_and_change_nothing(fields, code):
    ex = lot10_exchange()
    next_id = ex.state.next_order_id
    events = twap(ex, **fields)
    assert len(events) == 1 and isinstance(events[0], Rejected) and events[0].code == code, events
    assert ex.state.twaps == {} and ex.state.next_order_id == next_id


def test_replay_and_snapshot_of_a_running_twap_give_the_same_hash_and_the_same_future():
    ex = lot10_exchange()
    ex.place(3, SELL, 10_000, PRICE)
    twap(ex, size=2_000, duration=10 * MINUTE, limit_price=PRICE)
    tick(ex, MINUTE)
    restored = decode_snapshot(encode_snapshot(ex.state))
    assert state_hash(restored) == ex.hash() == ex.replay_hash()
    from clearway.domain.state import apply

    command = SetMarkPrices(seq=ex.state.last_seq + 1, ts=ex.ts + 2 * MINUTE, index={}, marks={})
    assert apply(restored, command) == apply(ex.state, command)
    assert state_hash(restored) == state_hash(ex.state)
    assert any(isinstance(e, Trade) for e in apply(restored, SetMarkPrices(command.seq + 1, ex.ts + 3 * MINUTE,
                                                                           {}, {})))
