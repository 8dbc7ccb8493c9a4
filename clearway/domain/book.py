"""Central limit order book of one instrument, price-time priority.

Layout (chosen for CPython speed, measured in ``bench/matching.py``):

- one ``Level`` per price, holding its orders in an intrusive FIFO linked list and the
  level's total open size;
- per side a dict price → Level and a sorted list of keys with the *best* level last, so
  taking or emptying the best level is ``list.pop()``: bids are keyed by price (ascending),
  asks by −price (ascending, so the lowest ask is last).

The book knows nothing of accounts or margin: ``match`` reports the fills and the resting
orders of the taker's own account that it removed (self-trade prevention), and the caller
applies them to accounts. Trades are at the maker's price.

Iceberg (reserve) orders (``Order.display`` > 0): only the displayed slice ``Order.shown``
counts in the level's ``total`` (what depth and market data show); ``remaining`` is the
whole open size. A taker fills at most the slice per visit; when the slice is used up and
hidden size is left, the order refills ``min(display, remaining)`` and moves to the back of
its level's queue — also within one sweep, so a large taker reaches the refill only after
every order that was queued behind the iceberg (CME's and Deribit's reserve-order rule).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Iterator

from clearway.domain.orders import BUY, Order


class Level:
    """All resting orders at one price, oldest first."""

    __slots__ = ("price", "head", "tail", "total", "count")

    def __init__(self, price: int) -> None:
        self.price = price
        self.head: Order | None = None
        self.tail: Order | None = None
        self.total = 0
        self.count = 0

    def orders(self) -> Iterator[Order]:
        order = self.head
        while order is not None:
            yield order
            order = order.next


class OrderBook:
    """The resting orders of one instrument.

    Invariants (checked by tests): after every operation the book is not crossed; each
    level's ``total`` equals the sum of its orders' visible size (``remaining``, or
    ``shown`` for an iceberg); a level exists iff it has at least one order.
    """

    __slots__ = ("instrument", "bids", "asks", "bid_prices", "ask_keys", "icebergs")

    def __init__(self, instrument: int) -> None:
        self.instrument = instrument
        self.icebergs = 0  # resting iceberg orders (refill events are only needed while some rest)
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self.bid_prices: list[int] = []  # ascending: best bid last
        self.ask_keys: list[int] = []  # −price ascending: best ask last

    # -- queries -------------------------------------------------------------------
    def best_bid(self) -> int | None:
        return self.bid_prices[-1] if self.bid_prices else None

    def best_ask(self) -> int | None:
        return -self.ask_keys[-1] if self.ask_keys else None

    def crosses(self, side: int, price: int) -> bool:
        """Would an order of ``side`` at ``price`` trade against the book now?"""
        if side == BUY:
            return bool(self.ask_keys) and -self.ask_keys[-1] <= price
        return bool(self.bid_prices) and self.bid_prices[-1] >= price

    def levels(self, side: int, depth: int | None = None) -> list[tuple[int, int]]:
        """Best-first ``(price, total size)`` of one side, at most ``depth`` levels."""
        if side == BUY:
            keys = self.bid_prices
            book = self.bids
            n = len(keys) if depth is None else min(depth, len(keys))
            return [(keys[-1 - i], book[keys[-1 - i]].total) for i in range(n)]
        keys = self.ask_keys
        book = self.asks
        n = len(keys) if depth is None else min(depth, len(keys))
        return [(-keys[-1 - i], book[-keys[-1 - i]].total) for i in range(n)]

    def level_at(self, side: int, price: int) -> Level | None:
        return (self.bids if side == BUY else self.asks).get(price)

    def iter_orders(self) -> Iterator[Order]:
        """Every resting order, bids best-first then asks best-first, FIFO within a level."""
        for price in reversed(self.bid_prices):
            yield from self.bids[price].orders()
        for key in reversed(self.ask_keys):
            yield from self.asks[-key].orders()

    def fillable(self, side: int, limit: int, account: int, wanted: int) -> int:
        """Size an order of ``side`` up to ``limit`` could fill now, ignoring the orders of
        ``account`` (self-trade prevention would cancel, not fill, them). Stops counting once
        ``wanted`` is reached. Used by fill-or-kill."""
        got = 0
        if side == BUY:
            keys, book, sign = self.ask_keys, self.asks, -1
        else:
            keys, book, sign = self.bid_prices, self.bids, 1
        for i in range(len(keys) - 1, -1, -1):
            price = keys[i] if sign > 0 else -keys[i]
            if (side == BUY and price > limit) or (side != BUY and price < limit):
                break
            order = book[price].head
            while order is not None:
                if order.account != account:
                    got += order.remaining
                    if got >= wanted:
                        return got
                order = order.next
        return got

    # -- mutations -------------------------------------------------------------------
    def add(self, order: Order) -> None:
        """Append ``order`` at the back of its price level (creating the level). An iceberg
        shows a fresh slice of min(display, remaining)."""
        price = order.price
        if order.side == BUY:
            level = self.bids.get(price)
            if level is None:
                level = self.bids[price] = Level(price)
                insort(self.bid_prices, price)
        else:
            level = self.asks.get(price)
            if level is None:
                level = self.asks[price] = Level(price)
                insort(self.ask_keys, -price)
        tail = level.tail
        order.prev = tail
        order.next = None
        if tail is None:
            level.head = order
        else:
            tail.next = order
        level.tail = order
        if order.display:
            shown = order.shown = order.display if order.display < order.remaining else order.remaining
            level.total += shown
            self.icebergs += 1
        else:
            level.total += order.remaining
        level.count += 1
        order.level = level

    def restore_shown(self, order: Order, shown: int) -> None:
        """Set a just re-added iceberg's displayed slice to ``shown`` (snapshot restore: a
        partly filled slice is smaller than a fresh one)."""
        level = order.level
        assert level is not None, "a resting order"
        level.total += shown - order.shown
        order.shown = shown

    def remove(self, order: Order) -> None:
        """Unlink a resting order (cancel or full fill); drops its level if emptied."""
        level = order.level
        assert level is not None, "a resting order"
        prev, nxt = order.prev, order.next
        if prev is None:
            level.head = nxt
        else:
            prev.next = nxt
        if nxt is None:
            level.tail = prev
        else:
            nxt.prev = prev
        order.prev = order.next = None
        order.level = None
        if order.display:
            level.total -= order.shown
            self.icebergs -= 1
        else:
            level.total -= order.remaining
        level.count -= 1
        if level.count == 0:
            self._drop_level(order.side, level.price)

    def reduce(self, order: Order, lots: int) -> None:
        """Decrease a resting order's remaining size in place (keeps its priority). An
        iceberg loses hidden size first, then displayed size."""
        level = order.level
        assert level is not None, "a resting order"
        if order.display:
            hidden = order.remaining - order.shown
            order.remaining -= lots
            if lots > hidden:
                order.shown -= lots - hidden
                level.total -= lots - hidden
            return
        order.remaining -= lots
        level.total -= lots

    def _to_back(self, order: Order, level: Level) -> None:
        """Move ``order`` (in ``level``) to the back of the level's queue."""
        if level.tail is order:
            return
        prev, nxt = order.prev, order.next
        if prev is None:
            level.head = nxt
        else:
            prev.next = nxt
        assert nxt is not None, "not the tail"
        nxt.prev = prev
        tail = level.tail
        assert tail is not None, "a non-empty level"
        tail.next = order
        order.prev = tail
        order.next = None
        level.tail = order

    def _drop_level(self, side: int, price: int) -> None:
        if side == BUY:
            del self.bids[price]
            keys = self.bid_prices
            if keys[-1] == price:
                keys.pop()
            else:
                del keys[bisect_left(keys, price)]
        else:
            del self.asks[price]
            keys = self.ask_keys
            if keys[-1] == -price:
                keys.pop()
            else:
                del keys[bisect_left(keys, -price)]

    def match(self, side: int, limit: int, wanted: int, account: int, on_fill, on_self_trade,
              on_refill=None) -> int:
        """Match an incoming order against the opposite side.

        Walks levels best-first while they cross ``limit`` and, within a level, orders
        oldest-first. For each fill (at the maker's price) the maker is reduced first — a
        fully filled maker is unlinked with ``remaining`` 0 — and then
        ``on_fill(maker, lots)`` is called. A maker of the same ``account`` is unlinked and
        passed to ``on_self_trade(maker)`` instead (self-trade prevention: cancel the
        resting order). Callbacks may remove other resting orders (e.g. reduce-only orders
        that no longer fit the position): the walk always resumes from the current best
        level's head.

        An iceberg maker fills at most its displayed slice per visit; a used-up slice with
        hidden size left is refilled and the order moved to the back of the level before
        ``on_fill``, and ``on_refill(maker)`` follows the fill (if the maker is still in
        the book).

        Returns the total lots filled (≤ ``wanted``).
        """
        remaining = wanted
        if side == BUY:
            keys, book, sign = self.ask_keys, self.asks, -1
        else:
            keys, book, sign = self.bid_prices, self.bids, 1
        while remaining and keys:
            price = keys[-1] if sign > 0 else -keys[-1]
            if (price > limit) if side == BUY else (price < limit):
                break
            level = book[price]
            while remaining:
                order = level.head
                if order is None:
                    break
                if order.account == account:
                    self.remove(order)
                    on_self_trade(order)
                elif order.display:
                    remaining -= self._fill_iceberg(order, level, remaining, on_fill, on_refill)
                elif order.remaining <= remaining:
                    lots = order.remaining
                    remaining -= lots
                    self.remove(order)
                    order.remaining = 0
                    on_fill(order, lots)
                else:
                    order.remaining -= remaining
                    level.total -= remaining
                    on_fill(order, remaining)
                    remaining = 0
        return wanted - remaining

    def _fill_iceberg(self, order: Order, level: Level, wanted: int, on_fill, on_refill) -> int:
        """One visit of a taker wanting ``wanted`` lots to iceberg ``order`` at the head of
        ``level`` (``match``); returns the lots filled."""
        shown = order.shown
        if shown > wanted:
            order.shown = shown - wanted
            order.remaining -= wanted
            level.total -= wanted
            on_fill(order, wanted)
            return wanted
        order.remaining -= shown
        level.total -= shown
        if not order.remaining:
            order.shown = 0
            self.remove(order)
            on_fill(order, shown)
            return shown
        refill = order.shown = order.display if order.display < order.remaining else order.remaining
        level.total += refill
        self._to_back(order, level)
        on_fill(order, shown)
        if on_refill is not None and order.level is not None:
            on_refill(order)
        return shown
