"""Accounts, positions and the per-instrument aggregates of open orders.

Cash-based accounting (dYdX v4 "quote balance"): buying debits the full trade notional from
``cash`` and selling credits it, so a long perp has negative-going cash and its value is
``size × mark``. Equity = cash + Σ position values (margin.py). Entry price is kept for
reporting only; margin never reads it.
"""

from __future__ import annotations

from enum import IntEnum

from clearway.domain.arith import mul
from clearway.domain.orders import Order


class MarginMode(IntEnum):
    STANDARD = 1
    PORTFOLIO = 2


class Position:
    """A signed position in one instrument.

    size : BaseAmount (lots, + long, − short); entry_price : Price (volume-weighted average
    of the opening fills, reset when the position flips; reporting only); funding_index :
    FundingIndex at the last funding settlement of this position.
    """

    __slots__ = ("size", "entry_price", "funding_index")

    def __init__(self, size: int = 0, entry_price: int = 0, funding_index: int = 0) -> None:
        self.size = size
        self.entry_price = entry_price
        self.funding_index = funding_index

    def canonical(self) -> tuple[int, int, int]:
        return (self.size, self.entry_price, self.funding_index)


class OpenOrders:
    """Running sums over an account's open orders in one instrument.

    bid_size / ask_size are lots; bid_notional / ask_notional are Σ remaining × limit price
    in micro-USDC (exact, see ``InstrumentSpec.validate``). They let the pre-trade check
    count every open order "as if filled at its limit price" in O(1) per instrument.
    """

    __slots__ = ("bid_size", "bid_notional", "ask_size", "ask_notional", "count", "reduce_only")

    def __init__(self) -> None:
        self.bid_size = 0
        self.bid_notional = 0
        self.ask_size = 0
        self.ask_notional = 0
        self.count = 0
        self.reduce_only = 0


class Account:
    """One account: an Ethereum address's cash, positions and open orders.

    Attributes
    ----------
    account_id : int
        Dense index (the key of the account's leaf in the state tree).
    owner : str
        Lower-case ``0x``-prefixed hex address.
    cash : QuoteAmount
        micro-USDC, may be negative while positions back it.
    positions : dict[int, Position]
        By instrument id; a position that returns to zero is removed.
    orders : dict[int, Order]
        Open orders by order id.
    client_ids : dict[str, int]
        Client order id → order id, for open orders that carry one.
    open : dict[int, OpenOrders]
        Aggregates by instrument id, present while the account has orders there.
    """

    __slots__ = (
        "account_id", "owner", "cash", "positions", "orders", "client_ids", "open", "margin_mode",
    )

    def __init__(self, account_id: int, owner: str) -> None:
        self.account_id = account_id
        self.owner = owner
        self.cash = 0
        self.positions: dict[int, Position] = {}
        self.orders: dict[int, Order] = {}
        self.client_ids: dict[str, int] = {}
        self.open: dict[int, OpenOrders] = {}
        self.margin_mode = MarginMode.STANDARD

    def position_size(self, instrument: int) -> int:
        position = self.positions.get(instrument)
        return position.size if position is not None else 0

    def add_order(self, order: Order, size_scale: int) -> None:
        """Register a resting order in the account's maps and aggregates."""
        self.orders[order.order_id] = order
        if order.client_order_id:
            self.client_ids[order.client_order_id] = order.order_id
        agg = self.open.get(order.instrument)
        if agg is None:
            agg = self.open[order.instrument] = OpenOrders()
        lots = order.remaining
        if order.side > 0:
            agg.bid_size += lots
            agg.bid_notional += mul(lots, order.price) // size_scale
        else:
            agg.ask_size += lots
            agg.ask_notional += mul(lots, order.price) // size_scale
        agg.count += 1
        if order.reduce_only:
            agg.reduce_only += 1

    def reduce_order(self, order: Order, lots: int, size_scale: int) -> None:
        """Account side of ``lots`` leaving an open order (fill or size decrease).

        Call *after* or *before* the order's own ``remaining`` changes; only ``lots`` and
        the price are used.
        """
        agg = self.open[order.instrument]
        if order.side > 0:
            agg.bid_size -= lots
            agg.bid_notional -= mul(lots, order.price) // size_scale
        else:
            agg.ask_size -= lots
            agg.ask_notional -= mul(lots, order.price) // size_scale

    def remove_order(self, order: Order, size_scale: int) -> None:
        """Forget an order that left the book; its ``remaining`` lots leave the aggregates."""
        del self.orders[order.order_id]
        if order.client_order_id:
            del self.client_ids[order.client_order_id]
        agg = self.open[order.instrument]
        if order.remaining:
            self.reduce_order(order, order.remaining, size_scale)
        agg.count -= 1
        if order.reduce_only:
            agg.reduce_only -= 1
        if agg.count == 0:
            del self.open[order.instrument]
