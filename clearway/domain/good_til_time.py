"""Order timers: good-til-time expiry and TWAP intervals, run by the domain clock.

Good-til-time: any resting order (``PlaceOrder.expire_at`` on a GTC order, iceberg
included) and any waiting conditional order may carry ``expire_at`` (ms since the epoch).
It is cancelled — ``OrderCancelled`` with ``CancelReason.GOOD_TIL_TIME`` — at the first
command whose ts ≥ expire_at, before that command (clock.py: timers run first). A
conditional that fired before its expire_at became a resting order that keeps it.

Schedule: ``state.gtt`` is a heap of (expire_at, order_id) entries. Entries of orders that
left earlier (filled, cancelled) stay until their time and are skipped then (an order id
is never reused, and the entry must match the order's ``expire_at``). The heap is derived
data (snapshot.py rebuilds it; it is never hashed).

``run_order_timers`` merges the due expiries with the due TWAP intervals (twap.py) and runs
them in (time, kind, order id) order — expiries before intervals at the same millisecond —
so that what happens does not depend on how many commands arrived in between.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING

from clearway.domain.errors import CancelReason
from clearway.domain.events import Event

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState

_EXPIRY = 0
_TWAP = 1


def schedule_expiry(state: ExchangeState, expire_at: int, order_id: int) -> None:
    """Register ``order_id``'s good-til-time and wake the clock at ``expire_at``."""
    heappush(state.gtt, (expire_at, order_id))
    if expire_at < state.next_timer:
        state.next_timer = expire_at


def next_order_timer(state: ExchangeState) -> int | None:
    """The earliest pending expiry or TWAP interval (ms), or None."""
    nxt = state.gtt[0][0] if state.gtt else None
    for twap in state.twaps.values():
        due = twap.next_ts
        if nxt is None or due < nxt:
            nxt = due
    return nxt


def run_order_timers(state: ExchangeState, ts: int, events: list[Event]) -> None:
    """Expire the orders and run the TWAP intervals due at ``ts`` (module docstring)."""
    from clearway.domain.conditional import cancel_conditional
    from clearway.domain.handlers.common import cancel_resting
    from clearway.domain.twap import run_interval

    gtt = state.gtt
    due: list[tuple[int, int, int]] = []
    while gtt and gtt[0][0] <= ts:
        expire_at, order_id = heappop(gtt)
        due.append((expire_at, _EXPIRY, order_id))
    for order_id, twap in state.twaps.items():
        if twap.next_ts <= ts:
            due.append((twap.next_ts, _TWAP, order_id))
    heapify(due)
    while due:
        when, kind, order_id = heappop(due)
        if kind == _EXPIRY:
            order = state.orders.get(order_id)
            if order is not None:
                if order.expire_at == when:
                    cancel_resting(state, order, CancelReason.GOOD_TIL_TIME, events)
                continue
            cond = state.conditionals.get(order_id)
            if cond is not None and cond.expire_at == when:
                cancel_conditional(state, cond, CancelReason.GOOD_TIL_TIME, events)
            continue
        twap = state.twaps.get(order_id)
        if twap is None or twap.next_ts != when:
            continue
        run_interval(state, twap, ts, events)
        if order_id in state.twaps and twap.next_ts <= ts:
            heappush(due, (twap.next_ts, _TWAP, order_id))
