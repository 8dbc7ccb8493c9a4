"""Peer matching engines driven with the same flows as Clearway's engine.

``run_liquibook(flow)`` and ``run_pyorderbook(flow)`` each build a fresh book,
replay ``flow.prefill`` untimed, then replay ``flow.ops`` timed with
``time.perf_counter_ns()`` and return::

    {"seconds": float, "ops": int, "trades": int, "volume": int, "resting": int | None}

``trades`` (number of maker fills) and ``volume`` (lots) are counted from the
peer's own fill reports over the timed ops only; ``resting`` is the peer's own
resting order count at the end. The timed region includes turning each flow
tuple into the peer's native order object (what any caller of the peer has to
do), and nothing else: the flow lists are built before timing.

The libraries are imported lazily, inside the functions. Importing
``pyorderbook`` calls ``logging.basicConfig(level=logging.INFO)`` (a stderr
handler on the root logger); ``_import_pyorderbook`` undoes that right after
the import, which changes nothing for pyorderbook (its debug logging stays
disabled either way). Nothing here prints.
"""

from __future__ import annotations

import logging
import time

__all__ = ["run_liquibook", "run_pyorderbook", "PEERS"]


# --------------------------------------------------------------------------
# liquibook 2.0.1 (C++ liquibook, SWIG wrapper)
# --------------------------------------------------------------------------
#
# API as found in site-packages/liquibook (SWIG, no .pyi) and the shipped
# headers site-packages/include/liquibook/book/*.h:
#   * liquibook.SimpleOrder(is_buy: bool, price: int, qty: int,
#     stop_price: int = 0, conditions: int = 0) -- the order object; the book
#     holds it through a std::shared_ptr, identity = the object.
#   * book.add(order, conditions=0) -> bool (True if it traded);
#     book.cancel(order) (unknown / filled order -> on_cancel_reject callback).
#   * book.set_order_listener(listener), listener a Python subclass of
#     liquibook.OrderListener (SWIG director). Its methods are *pure virtual*:
#     on_accept, on_reject, on_fill, on_cancel, on_cancel_reject, on_replace,
#     on_replace_reject must all be defined, otherwise every callback raises
#     "SWIG director pure virtual method called" (printed to stderr by C++).
#     on_fill(inbound_order, matched_order, fill_qty, fill_price) is called
#     once per maker fill, at the maker's price.
#   * book.bids() / book.asks() -> OrderTrackerMap with .size().
# IOC: the condition must be passed to add(); SimpleOrder(..., conditions=
# oc_immediate_or_cancel) alone is NOT honoured by the book (OrderTracker's
# constructor ORs the order's own conditions into its argument, not into its
# member), so such an order would rest.


def _liquibook_listener_class():
    import liquibook

    class _FillCounter(liquibook.OrderListener):
        """Counts fills; every other callback is a no-op."""

        def __init__(self) -> None:
            liquibook.OrderListener.__init__(self)
            self.trades = 0
            self.volume = 0

        def on_fill(self, order, matched_order, fill_qty, fill_price):
            self.trades += 1
            self.volume += fill_qty

        def on_accept(self, order):
            pass

        def on_reject(self, order, reason):
            pass

        def on_cancel(self, order):
            pass

        def on_cancel_reject(self, order, reason):
            pass

        def on_replace(self, order, size_delta, new_price):
            pass

        def on_replace_reject(self, order, reason):
            pass

    class _FillRecorder(_FillCounter):
        """Also records every fill as (qty, price), for bench/check_peers.py."""

        def __init__(self, fills: list) -> None:
            _FillCounter.__init__(self)
            self.fills = fills

        def on_fill(self, order, matched_order, fill_qty, fill_price):
            self.trades += 1
            self.volume += fill_qty
            self.fills.append((fill_qty, fill_price))

    return _FillCounter, _FillRecorder


def _liquibook_replay(book, ops, orders, SimpleOrder, ioc_flag) -> None:
    add = book.add
    cancel = book.cancel
    pop = orders.pop
    for op in ops:
        if op[0] == "add":
            _, oid, side, price, size, tif = op
            order = SimpleOrder(side > 0, price, size)
            if tif == "IOC":
                add(order, ioc_flag)
            else:
                orders[oid] = order
                add(order)
        else:
            order = pop(op[1], None)
            if order is not None:  # never-seen or IOC id: nothing to cancel
                cancel(order)  # filled order: liquibook rejects, a no-op


def run_liquibook(flow, *, book: str = "depth", fills: list | None = None) -> dict:
    """Replay ``flow`` through liquibook.

    ``book="depth"`` (default) uses ``liquibook.DepthOrderBook``, the book
    class the package documents (it also maintains a 5-level aggregated depth,
    no depth/BBO listener is attached). ``book="plain"`` uses the undocumented
    but exposed ``liquibook.liquibook_book_OrderBook`` (the bare C++
    ``OrderBook`` template without depth tracking); same matching.

    ``fills``: if a list is given, every fill of the timed ops is appended to
    it as ``(qty, price)`` in the order the peer reports them (for checks;
    slower, do not use when timing).
    """
    import liquibook

    if book == "depth":
        lb = liquibook.DepthOrderBook()
    elif book == "plain":
        lb = liquibook.liquibook_book_OrderBook()
    else:
        raise ValueError(f"unknown liquibook book kind {book!r}")
    counter_cls, recorder_cls = _liquibook_listener_class()
    listener = counter_cls() if fills is None else recorder_cls(fills)
    lb.set_order_listener(listener)
    orders: dict[int, object] = {}  # our id -> SimpleOrder, for GTC orders
    SimpleOrder = liquibook.SimpleOrder
    ioc = liquibook.oc_immediate_or_cancel

    _liquibook_replay(lb, flow.prefill, orders, SimpleOrder, ioc)
    listener.trades = 0
    listener.volume = 0
    if fills is not None:
        del fills[:]

    ops = flow.ops
    t0 = time.perf_counter_ns()
    _liquibook_replay(lb, ops, orders, SimpleOrder, ioc)
    t1 = time.perf_counter_ns()

    return {
        "seconds": (t1 - t0) / 1e9,
        "ops": len(ops),
        "trades": listener.trades,
        "volume": listener.volume,
        "resting": lb.bids().size() + lb.asks().size(),
    }


# --------------------------------------------------------------------------
# pyorderbook 0.4.9 (pure Python)
# --------------------------------------------------------------------------
#
# API (site-packages/pyorderbook/{book,order,trade_blotter}.py):
#   * Order(side: Side, symbol: str, price, quantity: int); price is converted
#     with Decimal(str(price)), id = uuid4(). order.quantity is the open qty.
#   * Book().match(order) -> TradeBlotter(order, trades: list[Trade]) with
#     Trade.fill_quantity / fill_price (maker's price); the remainder of an
#     incoming order always rests (there is no IOC / time-in-force).
#   * Book().cancel(order): removes a resting order; an order that is not
#     resting raises KeyError *and* logs "Order ... doesnt exist" at ERROR
#     level, so we only cancel orders that are still resting (open quantity >
#     0), which makes cancels of filled orders no-ops as the flow requires.
#   * Book().order_map: dict uuid -> resting Order (its len = resting count).
# IOC is emulated: submit with match(), then cancel() the remainder right away
# if one rested (so an IOC costs a match plus, when not fully filled, a cancel).

_PYOB_SYMBOL = "X"


def _import_pyorderbook():
    """Import pyorderbook without keeping its root-logger side effect."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    import pyorderbook

    if root.handlers != handlers or root.level != level:
        for h in root.handlers[:]:
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)
    return pyorderbook


def _pyorderbook_replay(book, ops, orders, Order, BID, ASK, record=None):
    match = book.match
    cancel = book.cancel
    pop = orders.pop
    trades = 0
    volume = 0
    for op in ops:
        if op[0] == "add":
            _, oid, side, price, size, tif = op
            order = Order(BID if side > 0 else ASK, _PYOB_SYMBOL, price, size)
            fill_list = match(order).trades
            if fill_list:
                trades += len(fill_list)
                for fill in fill_list:
                    volume += fill.fill_quantity
                if record is not None:
                    record.extend((f.fill_quantity, int(f.fill_price)) for f in fill_list)
            if order.quantity:  # the remainder is resting now
                if tif == "IOC":
                    cancel(order)  # IOC emulation: drop the remainder at once
                else:
                    orders[oid] = order
        else:
            order = pop(op[1], None)
            if order is not None and order.quantity:  # still resting
                cancel(order)
    return trades, volume


def run_pyorderbook(flow, *, fills: list | None = None) -> dict:
    """Replay ``flow`` through pyorderbook (IOC emulated, see above).

    ``fills``: as for :func:`run_liquibook` (prices converted back to int).
    """
    pyorderbook = _import_pyorderbook()
    Book, Order, Side = pyorderbook.Book, pyorderbook.Order, pyorderbook.Side

    book = Book()
    orders: dict[int, object] = {}  # our id -> Order, for resting GTC orders
    _pyorderbook_replay(book, flow.prefill, orders, Order, Side.BID, Side.ASK)

    ops = flow.ops
    t0 = time.perf_counter_ns()
    trades, volume = _pyorderbook_replay(book, ops, orders, Order, Side.BID, Side.ASK, fills)
    t1 = time.perf_counter_ns()

    return {
        "seconds": (t1 - t0) / 1e9,
        "ops": len(ops),
        "trades": trades,
        "volume": volume,
        "resting": len(book.order_map),
    }


PEERS = {
    "liquibook": run_liquibook,
    "pyorderbook": run_pyorderbook,
}
