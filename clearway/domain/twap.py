"""TWAP (time-weighted average price) parent orders and their suborders.

Bounds (dYdX v4 ``TwapParameters``, https://docs.dydx.xyz/types/twap_parameters): interval
30 s … 1 h, duration 5 min … 24 h and a multiple of the interval, price tolerance
0 … 999,999 ppm. Clearway counts in ms.

A parent of ``size`` lots has n = duration / interval intervals. Interval k (k = 0 … n−1)
is due at start + k·interval; interval 0 runs inside the ``PlaceTwap`` command, the others
on the domain clock (good_til_time.run_order_timers: at the first command with ts ≥ the
due time, before that command; intervals missed by a gap between commands run one after
the other). Each interval places one IOC limit suborder through place_order (every check
of a new order applies, margin included; the parent itself reserves nothing):

- size: ceil(remaining / intervals left), rounded up to the size increment, capped at
  3 × size / n (the average suborder) rounded down to the increment (at least one
  increment), raised to the instrument's minimum size, and at most the remaining size
  (``suborder_size``);
- price: the parent's ``limit_price`` when it has one, otherwise the instrument's *mark*
  price (the oracle-derived price: index-based EMA for perpetuals, surface price for
  options) × (1 ± price tolerance), buys rounded down and sells up to the tick
  (``place_order.protection_price``, as market orders).

After each interval a ``TwapProgress`` event gives the suborder and the parent's filled and
remaining size; a rejected suborder (e.g. INSUFFICIENT_MARGIN, MARK_PRICE_UNAVAILABLE)
is skipped, its code in the event, and the parent goes on. The parent ends (``TwapEnded``)
when filled (TWAP_COMPLETED), after its last interval (TWAP_ELAPSED), when what is left is
below the minimum size (TWAP_BELOW_MINIMUM), or when cancelled (CancelOrder, CancelOrders,
CancelAll; reduce-only parents when the position closes; liquidation; instrument expiry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.commands import PlaceOrder
from clearway.domain.errors import CancelReason, ErrorCode
from clearway.domain.events import Event, Rejected, Trade, TwapEnded, TwapProgress
from clearway.domain.orders import OrderType, TimeInForce

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState

MIN_INTERVAL_MS = 30_000
MAX_INTERVAL_MS = 3_600_000
MIN_DURATION_MS = 300_000
MAX_DURATION_MS = 86_400_000
MAX_PRICE_TOLERANCE_PPM = 999_999
CAP_MULTIPLE = 3
"""A suborder is at most this many times the average suborder (size / intervals)."""
MAX_TWAPS_PER_ACCOUNT = 20


class Twap:
    """A running TWAP parent. ``done``: intervals run so far; ``filled``: lots filled by
    its suborders. Derived: ``intervals``, ``remaining``, ``next_ts``."""

    __slots__ = ("order_id", "account", "instrument", "side", "size", "filled", "duration_ms", "interval_ms",
                 "price_tolerance_ppm", "limit_price", "reduce_only", "client_order_id", "start_ts", "done")

    def __init__(self, order_id: int, account: int, instrument: int, side: int, size: int, duration_ms: int,
                 interval_ms: int, price_tolerance_ppm: int, limit_price: int, reduce_only: bool,
                 client_order_id: str, start_ts: int, filled: int = 0, done: int = 0) -> None:
        self.order_id = order_id
        self.account = account
        self.instrument = instrument
        self.side = side
        self.size = size
        self.filled = filled
        self.duration_ms = duration_ms
        self.interval_ms = interval_ms
        self.price_tolerance_ppm = price_tolerance_ppm
        self.limit_price = limit_price
        self.reduce_only = reduce_only
        self.client_order_id = client_order_id
        self.start_ts = start_ts
        self.done = done

    @property
    def intervals(self) -> int:
        return self.duration_ms // self.interval_ms

    @property
    def remaining(self) -> int:
        return self.size - self.filled

    @property
    def next_ts(self) -> int:
        return self.start_ts + self.done * self.interval_ms

    def canonical(self) -> tuple:
        """The defining fields, for ``state_hash`` and snapshots (the constructor's order)."""
        return (self.order_id, self.account, self.instrument, self.side, self.size, self.duration_ms,
                self.interval_ms, self.price_tolerance_ppm, self.limit_price, self.reduce_only,
                self.client_order_id, self.start_ts, self.filled, self.done)


def suborder_size(remaining: int, intervals_left: int, size: int, intervals: int, increment: int,
                  min_size: int) -> int:
    """Lots of the next suborder (module docstring): ceil(remaining / intervals_left) up to
    the increment, capped at ⌊CAP_MULTIPLE·size / intervals⌋ down to the increment (≥ one
    increment), raised to ``min_size``, at most ``remaining``."""
    want = -(-remaining // intervals_left)
    want = -(-want // increment) * increment
    cap = max(CAP_MULTIPLE * size // intervals // increment * increment, increment)
    lots = max(min(want, cap), min_size)
    return min(lots, remaining)


def run_interval(state: ExchangeState, twap: Twap, ts: int, events: list[Event]) -> None:
    """Run the parent's next interval at ``ts``: place its IOC suborder, record progress,
    end the parent when done (module docstring)."""
    from clearway.domain.handlers.place_order import place_order, protection_price

    spec = state.instruments[twap.instrument]
    remaining = twap.remaining
    if remaining < spec.min_size:
        end_twap(state, twap, CancelReason.TWAP_BELOW_MINIMUM, events)
        return
    intervals = twap.intervals
    lots = suborder_size(remaining, intervals - twap.done, twap.size, intervals, spec.size_increment, spec.min_size)
    price = twap.limit_price
    code = 0
    suborder_id = 0
    filled = 0
    if not price:
        mark = state.marks.get(twap.instrument)
        if mark is None:
            code = int(ErrorCode.MARK_PRICE_UNAVAILABLE)
        else:
            price = protection_price(mark, twap.side, spec.tick_size, twap.price_tolerance_ppm)
    if not code:
        order = PlaceOrder(state.last_seq + 1, ts, twap.account, twap.instrument, twap.side, lots, price,
                           int(OrderType.LIMIT), int(TimeInForce.IOC), False, twap.reduce_only, "")
        out = place_order(state, order)
        first = out[0]
        if type(first) is Rejected:
            code = int(first.code)
        else:
            suborder_id = first.order_id
            for e in out:
                if type(e) is Trade and e.taker_order_id == suborder_id:
                    filled += e.size
            events.extend(out)
    twap.filled += filled
    twap.done += 1
    events.append(TwapProgress(twap.order_id, twap.account, twap.instrument, suborder_id, lots, price, twap.filled,
                               twap.remaining, intervals - twap.done, code))
    if not twap.remaining:
        end_twap(state, twap, CancelReason.TWAP_COMPLETED, events)
    elif twap.done >= intervals:
        end_twap(state, twap, CancelReason.TWAP_ELAPSED, events)


def end_twap(state: ExchangeState, twap: Twap, reason: CancelReason, events: list[Event]) -> None:
    """Stop a parent: forget it, free its client order id, record ``TwapEnded``."""
    del state.twaps[twap.order_id]
    if twap.client_order_id:
        del state.accounts[twap.account].client_ids[twap.client_order_id]
    events.append(TwapEnded(twap.order_id, twap.account, twap.instrument, twap.filled, twap.remaining, int(reason)))


def drop_instrument(state: ExchangeState, instruments: set[int], reason: CancelReason, events: list[Event]) -> None:
    """End every parent in ``instruments`` (e.g. expired options), by order id."""
    for order_id in sorted(i for i, t in state.twaps.items() if t.instrument in instruments):
        end_twap(state, state.twaps[order_id], reason, events)
