"""Resting and incoming orders.

``Order`` is a mutable, slotted object owned by the state: the book links resting orders
of one price level into an intrusive doubly linked list (``prev``/``next``), so cancel,
fill and priority-keeping amend are O(1) without scanning a queue.
"""

from __future__ import annotations

from enum import IntEnum

BUY = 1
SELL = -1


class TimeInForce(IntEnum):
    GTC = 1  # good till cancelled: the remainder rests
    IOC = 2  # immediate or cancel: the remainder is cancelled
    FOK = 3  # fill or kill: all at once or nothing


class OrderType(IntEnum):
    LIMIT = 1
    MARKET = 2  # IOC with a protection price (mark ± market_protection_ppm)


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
    """

    __slots__ = (
        "order_id", "account", "instrument", "side", "price", "size", "remaining",
        "tif", "post_only", "reduce_only", "client_order_id", "prev", "next", "level",
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
        self.level = None

    @property
    def filled(self) -> int:
        return self.size - self.remaining

    def canonical(self) -> tuple:
        """The fields that define the order, for ``state_hash`` (links excluded)."""
        return (
            self.order_id, self.account, self.instrument, self.side, self.price, self.size,
            self.remaining, int(self.tif), self.post_only, self.reduce_only, self.client_order_id,
        )

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        side = "BUY" if self.side == BUY else "SELL"
        return f"Order({self.order_id} acct={self.account} {side} {self.remaining}/{self.size} @ {self.price})"
