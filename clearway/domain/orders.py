"""Resting and incoming orders.

``Order`` is a mutable, slotted object owned by the state: the book links resting orders
of one price level into an intrusive doubly linked list (``prev``/``next``), so cancel,
fill and priority-keeping amend are O(1) without scanning a queue.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, TYPE_CHECKING

if TYPE_CHECKING:
    from clearway.domain.book import Level

BUY: Final = 1
SELL: Final = -1


class TimeInForce(IntEnum):
    GTC = 1  # good till cancelled: the remainder rests
    IOC = 2  # immediate or cancel: the remainder is cancelled
    FOK = 3  # fill or kill: all at once or nothing


class OrderType(IntEnum):
    LIMIT = 1
    MARKET = 2  # IOC with a protection price (mark ± market_protection_ppm)
    # conditional orders (conditional.py): held off the book until their trigger fires, then
    # entered as a MARKET (the *_MARKET types) or LIMIT (the *_LIMIT types) order
    STOP_MARKET = 3
    STOP_LIMIT = 4
    TAKE_PROFIT_MARKET = 5
    TAKE_PROFIT_LIMIT = 6


class TriggerSource(IntEnum):
    """The price a conditional order watches (``PlaceOrder.trigger``)."""

    MARK = 1  # the instrument's mark price (state.marks)
    INDEX = 2  # the index price of the instrument's underlying (state.index)
    LAST = 3  # the instrument's last trade price (state.last_trade)


class Order:
    """One order while it is open.

    Attributes
    ----------
    order_id : int
        Assigned by the exchange, increasing with arrival (also the FIFO tiebreak).
    account : int
    instrument : int
    side : int
        ``BUY`` (+1) or ``SELL`` (−1).
    price : Price
        Limit price, micro-USDC per contract.
    size : BaseAmount
        Total size asked for (lots); ``remaining`` = size − filled.
    remaining : BaseAmount
        Lots still open.
    tif, reduce_only, post_only, client_order_id
        As placed.
    display : BaseAmount
        Iceberg display size (lots; 0 = a plain order showing all of ``remaining``).
    shown : BaseAmount
        Iceberg only: the displayed slice now in the book (≤ display, ≤ remaining); the
        hidden reserve is ``remaining − shown``. Set by ``OrderBook.add``.
    expire_at : int
        Good-til-time expiry (ms since the epoch; 0 = none): the order is cancelled at the
        first command with ts ≥ expire_at (clock.py).
    """

    __slots__ = (
        "order_id", "account", "instrument", "side", "price", "size", "remaining",
        "tif", "post_only", "reduce_only", "client_order_id", "prev", "next", "level",
        "display", "shown", "expire_at",
    )

    def __init__(
        self,
        order_id: int,
        account: int,
        instrument: int,
        side: int,
        price: int,
        size: int,
        tif: int,
        post_only: bool,
        reduce_only: bool,
        client_order_id: str,
    ) -> None:
        self.order_id = order_id
        self.account = account
        self.instrument = instrument
        self.side = side
        self.price = price
        self.size = size
        self.remaining = size
        self.tif = tif
        self.post_only = post_only
        self.reduce_only = reduce_only
        self.client_order_id = client_order_id
        self.prev: Order | None = None
        self.next: Order | None = None
        self.level: Level | None = None
        self.display = 0
        self.shown = 0
        self.expire_at = 0

    @property
    def filled(self) -> int:
        return self.size - self.remaining

    def canonical(self) -> tuple:
        """The fields that define the order, for ``state_hash`` and snapshots (links
        excluded): 11 fields, plus (display, shown, expire_at) for an iceberg or a
        good-til-time order."""
        if self.display or self.expire_at:
            return (
                self.order_id, self.account, self.instrument, self.side, self.price, self.size,
                self.remaining, int(self.tif), self.post_only, self.reduce_only, self.client_order_id,
                self.display, self.shown, self.expire_at,
            )
        return (
            self.order_id, self.account, self.instrument, self.side, self.price, self.size,
            self.remaining, int(self.tif), self.post_only, self.reduce_only, self.client_order_id,
        )

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        side = "BUY" if self.side == BUY else "SELL"
        return f"Order({self.order_id} acct={self.account} {side} {self.remaining}/{self.size} @ {self.price})"


class AdvancedOrder(Order):
    """An iceberg and/or good-til-time order, built with its ``display`` and ``expire_at``
    (every ``Order`` has the three fields, 0 for a plain one: a compiled native class
    (setup.py) cannot add them in a subclass)."""

    __slots__ = ()

    def __init__(
        self, order_id: int, account: int, instrument: int, side: int, price: int, size: int,
        tif: int, post_only: bool, reduce_only: bool, client_order_id: str,
        *, display: int = 0, expire_at: int = 0,
    ) -> None:
        super().__init__(order_id, account, instrument, side, price, size, tif, post_only,
                         reduce_only, client_order_id)
        self.display = display
        self.expire_at = expire_at
