"""Conditional orders: stop-market, stop-limit, take-profit-market, take-profit-limit.

A conditional order (``PlaceOrder`` with ``order_type`` STOP_* / TAKE_PROFIT_*) waits off
the book for its trigger source (``TriggerSource``: the instrument's mark, the index of its
underlying, or its last trade price) to reach ``trigger_price``. It reserves no margin while
it waits. When it fires it enters the book as a new order at that point of the command —
a MARKET order (the *_MARKET types, protection price mark ± 5 %) or a LIMIT order at its
``price`` (the *_LIMIT types) — under its own order id, with every check of a new order
(margin, reduce-only, post-only, halt); a failed check gives ``TriggerRejected`` with the
code and removes the conditional, nothing else changes.

Direction (Deribit's and dYdX's convention): a stop buys on a rise and sells on a fall; a
take-profit buys on a fall and sells on a rise. So stop-buy and take-profit-sell fire when
the source price ≥ trigger price ("rising" triggers) and must be placed with the trigger
strictly above the current source price; stop-sell and take-profit-buy fire when the price
≤ trigger ("falling" triggers) and must be placed below it (else TRIGGER_WRONG_SIDE).

When triggers are evaluated (``run_triggers``, called by ``state.apply``): after the
clock's work (which may move marks and run TWAP suborders) and after the command's handler,
whenever a trade happened or a mark or index price changed. Mark and index triggers compare
with the current price; last-trade triggers with the highest (rising) and lowest (falling)
trade price of the step, so a trade through the trigger fires it even if a later trade of
the same step came back. Fired orders run in this order, which is part of the state
transition:

1. instruments by id;
2. within an instrument, the rising triggers first, by trigger price ascending (the order in
   which a rising price passes them), then the falling ones by trigger price descending —
   across the three sources together;
3. ties by order id (arrival).

The trades of fired orders can fire more (a cascade): the evaluation repeats until nothing
fires; each conditional fires at most once, so it ends.

Also here, because the same pass sees every position change: a reduce-only conditional is
cancelled (REDUCE_ONLY_NO_POSITION) when its account's position in the instrument closes or
flips to the order's side; a liquidated account loses its conditionals (LIQUIDATION); the
same two rules apply to reduce-only TWAP parents and to TWAPs of liquidated accounts
(twap.py).

Cost: each instrument with conditionals keeps six sorted lists (source × direction) whose
first element is the nearest trigger, so a step with no trigger reached costs O(1) per
instrument looked at, and instruments without conditionals are never looked at.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from typing import TYPE_CHECKING

from clearway.domain.commands import PlaceOrder
from clearway.domain.errors import CancelReason, ErrorCode
from clearway.domain.events import (
    BackstopTransfer, ConditionalAccepted, Deleveraged, Event, LiquidationStarted, OrderCancelled, OrderTriggered,
    Rejected, Trade, TriggerRejected,
)
from clearway.domain.handlers.common import increases, reject
from clearway.domain.orders import OrderType, TimeInForce, TriggerSource

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState

_MARK = int(TriggerSource.MARK)
_INDEX = int(TriggerSource.INDEX)
_LAST = int(TriggerSource.LAST)
_GTC = int(TimeInForce.GTC)
_MARKET_KINDS = (int(OrderType.STOP_MARKET), int(OrderType.TAKE_PROFIT_MARKET))
_STOPS = (int(OrderType.STOP_MARKET), int(OrderType.STOP_LIMIT))
_BIG = 1 << 62


class Conditional:
    """A conditional order waiting for its trigger (fields as ``PlaceOrder``; ``rising``:
    True when it fires on source price ≥ trigger price)."""

    __slots__ = ("order_id", "account", "instrument", "side", "order_type", "size", "price", "trigger",
                 "trigger_price", "tif", "post_only", "reduce_only", "client_order_id", "display", "expire_at",
                 "rising")

    def __init__(self, order_id: int, account: int, instrument: int, side: int, order_type: int, size: int,
                 price: int, trigger: int, trigger_price: int, tif: int, post_only: bool, reduce_only: bool,
                 client_order_id: str, display: int, expire_at: int) -> None:
        self.order_id = order_id
        self.account = account
        self.instrument = instrument
        self.side = side
        self.order_type = order_type
        self.size = size
        self.price = price
        self.trigger = trigger
        self.trigger_price = trigger_price
        self.tif = tif
        self.post_only = post_only
        self.reduce_only = reduce_only
        self.client_order_id = client_order_id
        self.display = display
        self.expire_at = expire_at
        self.rising = rises(order_type, side)

    def canonical(self) -> tuple:
        """The defining fields, for ``state_hash`` and snapshots (``rising`` is derived)."""
        return (self.order_id, self.account, self.instrument, self.side, self.order_type, self.size, self.price,
                self.trigger, self.trigger_price, self.tif, self.post_only, self.reduce_only,
                self.client_order_id, self.display, self.expire_at)

    def key(self) -> tuple[int, int]:
        """Sort key in its trigger list: nearest trigger first, then arrival."""
        return (self.trigger_price if self.rising else -self.trigger_price, self.order_id)

    def slot(self) -> int:
        """Index of its list in ``TriggerBook.lists``: 2·(source − 1) + (0 rising, 1 falling)."""
        return 2 * (self.trigger - 1) + (0 if self.rising else 1)


def rises(order_type: int, side: int) -> bool:
    """True for the triggers that fire on a rising price: stop-buy and take-profit-sell."""
    return (order_type in _STOPS) == (side > 0)


class TriggerBook:
    """The waiting conditionals of one instrument: six lists of ``Conditional.key()``
    (source × direction, ``Conditional.slot``), each sorted nearest first."""

    __slots__ = ("lists",)

    def __init__(self) -> None:
        self.lists: list[list[tuple[int, int]]] = [[] for _ in range(6)]

    def empty(self) -> bool:
        return not any(self.lists)


def source_price(state: ExchangeState, instrument: int, trigger: int) -> int | None:
    """The current price of a trigger source for ``instrument`` (None if it has none)."""
    if trigger == _MARK:
        return state.marks.get(instrument)
    if trigger == _INDEX:
        return state.index.get(state.instruments[instrument].underlying)
    return state.last_trade.get(instrument)


# -- placement -------------------------------------------------------------------------
def place_conditional(state: ExchangeState, cmd: PlaceOrder, account, spec) -> list[Event]:
    """Accept a conditional ``PlaceOrder`` (account, instrument, side, size and time in force
    already checked by place_order). Rejections (nothing changes): PRICE_NOT_POSITIVE /
    PRICE_NOT_ON_TICK (limit kinds), INVALID_ORDER_TYPE (a post-only market kind),
    INVALID_TRIGGER_SOURCE, INVALID_TRIGGER_PRICE, DUPLICATE_CLIENT_ORDER_ID,
    CLIENT_ORDER_ID_TOO_LONG, NOT_A_RESTING_ORDER / INVALID_DISPLAY_SIZE /
    DISPLAY_SIZE_ABOVE_TOTAL / EXPIRE_AT_NOT_IN_FUTURE (an iceberg needs a GTC limit kind; the
    values are checked by place_order.display_and_expiry_problem; an expire_at also bounds
    the wait, so any kind may carry one),
    REDUCE_ONLY_WOULD_INCREASE (reduce-only without a position it reduces),
    TOO_MANY_OPEN_ORDERS (the account already has ``max_open_orders`` conditionals),
    TRIGGER_PRICE_UNAVAILABLE, TRIGGER_WRONG_SIDE. No margin check: nothing is reserved."""
    from clearway.domain.good_til_time import schedule_expiry
    from clearway.domain.handlers.place_order import client_id_problem, display_and_expiry_problem

    coid = cmd.client_order_id
    acct = cmd.account
    market_kind = cmd.order_type in _MARKET_KINDS
    price = 0
    if not market_kind:
        price = cmd.price
        if price <= 0:
            return reject(ErrorCode.PRICE_NOT_POSITIVE, "price must be positive", acct, coid)
        if price % spec.tick_size:
            return reject(ErrorCode.PRICE_NOT_ON_TICK, "price is not a multiple of the tick size", acct, coid)
    elif cmd.post_only:
        return reject(ErrorCode.INVALID_ORDER_TYPE, "a market order cannot be post-only", acct, coid)
    trigger = cmd.trigger
    if trigger != _MARK and trigger != _INDEX and trigger != _LAST:
        return reject(ErrorCode.INVALID_TRIGGER_SOURCE, "trigger must be 1 (mark), 2 (index) or 3 (last trade)",
                      acct, coid)
    trigger_price = cmd.trigger_price
    if trigger_price <= 0 or trigger_price % spec.tick_size:
        return reject(ErrorCode.INVALID_TRIGGER_PRICE, "trigger price must be positive and on the tick", acct, coid)
    if coid:
        problem = client_id_problem(state, account, coid)
        if problem is not None:
            return reject(problem[0], problem[1], acct, coid)
    display = cmd.display_size
    if display and (market_kind or cmd.tif != _GTC):  # its expire_at needs no resting kind: it bounds the wait
        return reject(ErrorCode.NOT_A_RESTING_ORDER, "an iceberg needs a GTC limit order", acct, coid)
    problem = display_and_expiry_problem(cmd, spec)
    if problem is not None:
        return reject(problem[0], problem[1], acct, coid)
    if display == cmd.size:
        display = 0
    side = cmd.side
    if cmd.reduce_only:
        position = account.position_size(spec.instrument_id)
        if increases(position, side):
            return reject(ErrorCode.REDUCE_ONLY_WOULD_INCREASE, "reduce-only order would increase the position",
                          acct, coid)
    mine = state.account_conditionals.get(account.account_id)
    if mine is not None and len(mine) >= state.genesis.max_open_orders:
        return reject(ErrorCode.TOO_MANY_OPEN_ORDERS, "too many conditional orders", acct, coid)
    current = source_price(state, spec.instrument_id, trigger)
    if current is None:
        return reject(ErrorCode.TRIGGER_PRICE_UNAVAILABLE, "the trigger source has no price yet", acct, coid)
    rising = rises(cmd.order_type, side)
    if (trigger_price <= current) if rising else (trigger_price >= current):
        return reject(ErrorCode.TRIGGER_WRONG_SIDE,
                      "trigger price must be above the current price" if rising
                      else "trigger price must be below the current price", acct, coid)

    # -- validated --
    order_id = state.next_order_id
    state.next_order_id = order_id + 1
    cond = Conditional(order_id, account.account_id, spec.instrument_id, side, cmd.order_type, cmd.size, price,
                       trigger, trigger_price, cmd.tif, cmd.post_only, cmd.reduce_only, coid, display, cmd.expire_at)
    register(state, cond)
    if cond.expire_at:
        schedule_expiry(state, cond.expire_at, order_id)
    return [ConditionalAccepted(order_id, cond.account, cond.instrument, side, cond.order_type, cond.size, price,
                                trigger, trigger_price, cond.tif, cond.post_only, cond.reduce_only, coid, display,
                                cond.expire_at)]


def register(state: ExchangeState, cond: Conditional) -> None:
    """Index a waiting conditional (order map, account map, client id, trigger list)."""
    state.conditionals[cond.order_id] = cond
    mine = state.account_conditionals.get(cond.account)
    if mine is None:
        mine = state.account_conditionals[cond.account] = {}
    mine[cond.order_id] = cond
    if cond.client_order_id:
        state.accounts[cond.account].client_ids[cond.client_order_id] = cond.order_id
    book = state.triggers.get(cond.instrument)
    if book is None:
        book = state.triggers[cond.instrument] = TriggerBook()
    insort(book.lists[cond.slot()], cond.key())


def _forget(state: ExchangeState, cond: Conditional) -> None:
    """Remove a conditional from the order and account maps and free its client id (its
    trigger-list entry is removed by the caller)."""
    del state.conditionals[cond.order_id]
    mine = state.account_conditionals[cond.account]
    del mine[cond.order_id]
    if not mine:
        del state.account_conditionals[cond.account]
    if cond.client_order_id:
        del state.accounts[cond.account].client_ids[cond.client_order_id]


def cancel_conditional(state: ExchangeState, cond: Conditional, reason: CancelReason, events: list[Event]) -> None:
    """Remove a waiting conditional and record ``OrderCancelled`` (remaining = its size)."""
    book = state.triggers[cond.instrument]
    keys = book.lists[cond.slot()]
    del keys[bisect_left(keys, cond.key())]
    if book.empty():
        del state.triggers[cond.instrument]
    _forget(state, cond)
    events.append(OrderCancelled(cond.order_id, cond.account, cond.instrument, cond.size, int(reason)))


def drop_instrument(state: ExchangeState, instruments: set[int], reason: CancelReason, events: list[Event]) -> None:
    """Cancel every conditional in ``instruments`` (e.g. expired options), by order id."""
    for order_id in sorted(i for i, c in state.conditionals.items() if c.instrument in instruments):
        cancel_conditional(state, state.conditionals[order_id], reason, events)


# -- evaluation --------------------------------------------------------------------------
def run_triggers(state: ExchangeState, ts: int, events: list[Event], start: int) -> None:
    """The post-step pass (module docstring): record the last trade prices of
    ``events[start:]``, apply the position-change rules, then fire every conditional whose
    trigger was reached, repeating while fired orders trade.

    ``apply`` calls it after a step that traded or moved a price. With no conditional and no
    TWAP it returns at once (the last trade prices are recorded where every trade is made,
    fills.settle_fill)."""
    prices_moved = state.prices_moved
    state.prices_moved = False
    if not (state.conditionals or state.twaps):
        return  # nothing watches trades or prices
    while True:
        ranges, touched, liquidated = _scan(state, events, start)
        if not state.conditionals and not state.twaps:
            return
        if touched or liquidated:
            _position_rules(state, touched, liquidated, events)
        if not state.triggers or not (ranges or prices_moved):
            return
        fired = _collect(state, ranges, prices_moved)
        if not fired:
            return
        prices_moved = False
        start = len(events)
        for cond, price in fired:
            fire(state, cond, price, ts, events)


def _scan(state: ExchangeState, events: list[Event], start: int):
    """Per-instrument [low, high] of the trades in ``events[start:]``; (account,
    instrument) pairs whose position changed; accounts whose liquidation started."""
    ranges: dict[int, list[int]] = {}
    touched: set[tuple[int, int]] = set()
    liquidated: set[int] = set()
    watch = state.account_conditionals or state.twaps
    for i in range(start, len(events)):
        e = events[i]
        t = type(e)
        if t is Trade:
            instrument, price = e.instrument, e.price
            r = ranges.get(instrument)
            if r is None:
                ranges[instrument] = [price, price]
            elif price < r[0]:
                r[0] = price
            elif price > r[1]:
                r[1] = price
            if watch:
                touched.add((e.maker_account, instrument))
                touched.add((e.taker_account, instrument))
        elif watch:
            if t is Deleveraged:
                touched.add((e.account, e.instrument))
                touched.add((e.counterparty, e.instrument))
            elif t is BackstopTransfer:
                touched.add((e.account, e.instrument))
            elif t is LiquidationStarted:
                liquidated.add(e.account)
    return ranges, touched, liquidated


def _position_rules(state: ExchangeState, touched: set[tuple[int, int]], liquidated: set[int],
                    events: list[Event]) -> None:
    """Cancel the conditionals and TWAPs of liquidated accounts, then the reduce-only ones
    whose position closed or flipped to their side (both by order id)."""
    from clearway.domain.twap import end_twap

    for account_id in sorted(liquidated):
        mine = state.account_conditionals.get(account_id)
        if mine:
            for order_id in sorted(mine):
                cancel_conditional(state, mine[order_id], CancelReason.LIQUIDATION, events)
        for order_id in sorted(i for i, t in state.twaps.items() if t.account == account_id):
            end_twap(state, state.twaps[order_id], CancelReason.LIQUIDATION, events)
    for account_id, instrument in sorted(touched):
        position = state.accounts[account_id].position_size(instrument)
        mine = state.account_conditionals.get(account_id)
        if mine:
            for order_id in sorted(mine):
                cond = mine[order_id]
                if cond.reduce_only and cond.instrument == instrument and increases(position, cond.side):
                    cancel_conditional(state, cond, CancelReason.REDUCE_ONLY_NO_POSITION, events)
                    if not mine:
                        break
        if state.twaps:
            for order_id in sorted(state.twaps):
                twap = state.twaps[order_id]
                if (twap.account == account_id and twap.instrument == instrument and twap.reduce_only
                        and increases(position, twap.side)):
                    end_twap(state, twap, CancelReason.REDUCE_ONLY_NO_POSITION, events)


def _collect(state: ExchangeState, ranges: dict[int, list[int]], prices_moved: bool) -> list[tuple]:
    """Take every conditional whose trigger is reached out of the state, in firing order
    (module docstring); returns [(conditional, source price that fired it)]."""
    triggers = state.triggers
    if prices_moved:
        instruments = sorted(triggers)
    else:
        instruments = sorted(i for i in ranges if i in triggers)
    fired: list[tuple] = []
    for instrument in instruments:
        book = triggers[instrument]
        lists = book.lists
        up: list[tuple] = []
        down: list[tuple] = []
        for source in (_MARK, _INDEX, _LAST):
            if source == _LAST:
                r = ranges.get(instrument)
                if r is None:
                    continue
                low, high = r
            elif prices_moved:
                low = high = source_price(state, instrument, source)
                if low is None:
                    continue
            else:
                continue
            rising = lists[2 * (source - 1)]
            if rising and rising[0][0] <= high:
                n = bisect_right(rising, (high, _BIG))
                up.extend((key, high) for key in rising[:n])
                del rising[:n]
            falling = lists[2 * (source - 1) + 1]
            if falling and -falling[0][0] >= low:
                n = bisect_right(falling, (-low, _BIG))
                down.extend((key, low) for key in falling[:n])
                del falling[:n]
        if not up and not down:
            continue
        if book.empty():
            del triggers[instrument]
        up.sort()
        down.sort()
        for key, price in up + down:
            cond = state.conditionals[key[1]]
            _forget(state, cond)
            fired.append((cond, price))
    return fired


def fire(state: ExchangeState, cond: Conditional, price: int, ts: int, events: list[Event]) -> None:
    """Enter a fired conditional (already out of the state) as a new order under its own
    order id: ``OrderTriggered``, then place_order's events or ``TriggerRejected``."""
    from clearway.domain.handlers.place_order import place_order

    events.append(OrderTriggered(cond.order_id, cond.account, cond.instrument, cond.trigger, cond.trigger_price,
                                 price))
    market_kind = cond.order_type in _MARKET_KINDS
    rests = not market_kind and cond.tif == _GTC  # only a resting order keeps the good-til-time
    order = PlaceOrder(state.last_seq + 1, ts, cond.account, cond.instrument, cond.side, cond.size, cond.price,
                       int(OrderType.MARKET) if market_kind else int(OrderType.LIMIT), cond.tif, cond.post_only,
                       cond.reduce_only, cond.client_order_id, 0, 0, cond.display, cond.expire_at if rests else 0)
    out = place_order(state, order, cond.order_id)
    first = out[0]
    if type(first) is Rejected:
        events.append(TriggerRejected(cond.order_id, cond.account, cond.instrument, first.code, first.message))
    else:
        events.extend(out)
