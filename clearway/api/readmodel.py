"""The API's read model: orders (open and recently closed), L2 books with change ids,
trades, marks and owners, kept up to date from the node's published commands.

The node holds only what the exchange needs (open orders, positions, cash); clients also
ask for orders that are filled or cancelled, their fill averages and fees, the last
trades and incremental book updates. The read model rebuilds those from the durable event
stream (``Node.subscribe_loop``: the committer hands each durable batch straight to the
server's event loop, no reader thread in between): one writer (the loop), no locks.

Start-up: subscribe first, then take a snapshot of the state with ``Node.query`` (open
orders, owners, instruments, prices) at sequence number Q; every published command with
seq <= Q is already in the snapshot and is skipped. A subscription that overflows (the
loop fell ``max_backlog`` batches behind) is replaced and the model re-snapshotted:
open orders and books stay exact, history older than that is lost.

Reads that must see a client's own acknowledged writes (open orders, order state, user
trades) first ``await wait_for(seq)`` with the node's durable sequence number at the time
of the request: every acknowledged command is durable, hence ≤ it.

Event rules (domain/events.py): an ``OrderAccepted`` order first trades as a taker and
rests with what is left at the end of its command unless an ``OrderCancelled`` (IOC,
market, FOK) took it away; a ``Trade`` reduces the resting maker and the taker;
``OrderAmended`` with ``priority_kept`` shrinks a resting order in place, without it the
order leaves its level, may trade, and rests again at the end of the command.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Callable, Iterable

from clearway.api.names import Instrument
from clearway.domain import events as ev
from clearway.domain.commands import PlaceOrder
from clearway.domain.errors import CancelReason
from clearway.domain.orders import OrderType, TimeInForce

log = logging.getLogger("clearway.api")

MAX_CLOSED_ORDERS = 200_000
MAX_TRADES_PER_INSTRUMENT = 10_000
MAX_TRADES_PER_ACCOUNT = 10_000
DAY_MS = 86_400_000
SESSION_END_MS = 8 * 3_600_000  # Deribit's trading day ends at 08:00 UTC (good_til_day)
_MARKET = int(OrderType.MARKET)
_LIMIT = int(OrderType.LIMIT)
_TYPE_NAMES = {1: "limit", 2: "market", 3: "stop_market", 4: "stop_limit", 5: "take_market", 6: "take_limit"}
"""orders.OrderType → Deribit ``order_type`` (LIMIT, MARKET, STOP_MARKET, STOP_LIMIT,
TAKE_PROFIT_MARKET, TAKE_PROFIT_LIMIT)."""
_MARKET_TYPES = frozenset({2, 3, 5})
_TRIGGER_NAMES = {1: "mark_price", 2: "index_price", 3: "last_price"}
"""orders.TriggerSource → Deribit ``trigger``."""
_TIF_NAMES = {int(TimeInForce.GTC): "good_til_cancelled", int(TimeInForce.IOC): "immediate_or_cancel",
              int(TimeInForce.FOK): "fill_or_kill"}
_ACCOUNT_EVENTS = frozenset({
    ev.Deposited, ev.Withdrawn, ev.MarginModeSet, ev.FundingPaid, ev.LiquidationStarted, ev.LiquidationFill,
    ev.BackstopTransfer, ev.Deleveraged, ev.InsuranceCovered, ev.LiquidationEnded, ev.ExpiryPayoff,
})
"""Events that change one account's cash, positions or margin (``account``; Deleveraged
also its ``counterparty``): the account gets a ``user.portfolio`` update."""
_CANCEL_REASONS = {
    int(CancelReason.REQUESTED): "user_request",
    int(CancelReason.IOC_REMAINDER): "immediate_or_cancel",
    int(CancelReason.SELF_TRADE): "self_trade_prevention",
    int(CancelReason.REDUCE_ONLY_NO_POSITION): "reduce_only",
    int(CancelReason.CANCEL_ALL): "user_request",
    int(CancelReason.AMENDED_AWAY): "edit",
    7: "autoliquidation",  # CancelReason.LIQUIDATION
    8: "settlement",       # CancelReason.EXPIRED
    9: "good_til_time",    # CancelReason.GOOD_TIL_TIME (expire_at, or Deribit's good_til_day)
}


class OrderView:
    """One order as clients see it. Sizes in lots, prices in micro-USDC, fees in micro-USDC."""

    __slots__ = ("order_id", "account", "instrument", "side", "price", "size", "filled", "remaining", "tif",
                 "post_only", "reduce_only", "label", "market", "state", "created", "updated",
                 "filled_notional", "commission", "resting", "cancel_reason", "order_type", "trigger",
                 "trigger_price", "triggered", "display", "shown", "expire_at")

    def __init__(self, order_id: int, account: int, instrument: Instrument, side: int, price: int, size: int,
                 tif: int, post_only: bool, reduce_only: bool, label: str, market: bool, ts: int) -> None:
        self.order_id = order_id
        self.account = account
        self.instrument = instrument
        self.side = side
        self.price = price
        self.size = size
        self.filled = 0
        self.remaining = size
        self.tif = tif
        self.post_only = post_only
        self.reduce_only = reduce_only
        self.label = label
        self.market = market
        self.state = "open"
        self.created = ts
        self.updated = ts
        self.filled_notional = 0  # Σ lots × price (micro-USDC × lots), for the average price
        self.commission = 0
        self.resting = False
        self.cancel_reason = ""
        self.order_type = _MARKET if market else _LIMIT  # orders.OrderType
        self.trigger = 0           # orders.TriggerSource of a conditional order (0: none)
        self.trigger_price = 0
        self.triggered: bool | None = None  # None: not a conditional order
        self.display = 0           # iceberg display size (lots; 0: shows everything)
        self.shown = 0             # iceberg: the displayed slice now in the book
        self.expire_at = 0         # good-til-time (ms; 0: none)

    def visible(self) -> int:
        """Lots this resting order shows in the book (the slice of an iceberg)."""
        return self.shown if self.display else self.remaining

    def to_json(self) -> dict:
        """Deribit order object (``private/get_order_state``); ccxt ``parse_order``."""
        inst = self.instrument
        filled = self.filled
        average = self.filled_notional / filled / 1_000_000 if filled else 0.0
        out = {
            "order_id": str(self.order_id),
            "instrument_name": inst.name,
            "direction": "buy" if self.side > 0 else "sell",
            "order_type": _TYPE_NAMES.get(self.order_type, "limit"),
            "order_state": self.state,
            "time_in_force": ("good_til_day" if self.expire_at and self.expire_at % DAY_MS == SESSION_END_MS
                              else _TIF_NAMES.get(self.tif, "good_til_cancelled")),
            "price": "market_price" if self.market or self.order_type in _MARKET_TYPES else self.price / 1_000_000,
            "amount": self.size / inst.scale,
            "filled_amount": filled / inst.scale,
            "average_price": average,
            "commission": self.commission / 1_000_000,
            "post_only": self.post_only,
            "reject_post_only": self.post_only,
            "reduce_only": self.reduce_only,
            "label": self.label,
            "creation_timestamp": self.created,
            "last_update_timestamp": self.updated,
            "api": True,
            "web": False,
            "is_liquidation": False,
            "replaced": False,
            "max_show": (self.display if self.display else self.size) / inst.scale,
            "mmp": False,
            "risk_reducing": False,
        }
        if self.cancel_reason:
            out["cancel_reason"] = self.cancel_reason
        if self.triggered is not None:
            trigger_price = self.trigger_price / 1_000_000
            out.update(trigger=_TRIGGER_NAMES.get(self.trigger, "mark_price"), trigger_price=trigger_price,
                       stop_price=trigger_price, triggered=self.triggered)
        if self.expire_at:
            out["expire_at"] = self.expire_at
        return out


class TradeView:
    """One trade (both sides), with what the wire needs to render either side."""

    __slots__ = ("trade_id", "instrument", "price", "size", "taker_side", "maker_order_id", "taker_order_id",
                 "maker_account", "taker_account", "maker_fee", "taker_fee", "ts", "trade_seq",
                 "tick_direction", "mark", "index", "taker_market", "liquidation")

    def __init__(self, event: ev.Trade, instrument: Instrument, ts: int, trade_seq: int, tick_direction: int,
                 mark: int, index: int, taker_market: bool) -> None:
        self.trade_id = event.trade_id
        self.instrument = instrument
        self.price = event.price
        self.size = event.size
        self.taker_side = event.taker_side
        self.maker_order_id = event.maker_order_id
        self.taker_order_id = event.taker_order_id
        self.maker_account = event.maker_account
        self.taker_account = event.taker_account
        self.maker_fee = event.maker_fee
        self.taker_fee = event.taker_fee
        self.ts = ts
        self.trade_seq = trade_seq
        self.tick_direction = tick_direction
        self.mark = mark
        self.index = index
        self.taker_market = taker_market
        self.liquidation = ""  # "T": the taker was an account under liquidation

    def public_json(self) -> dict:
        """Deribit public trade (``public/get_last_trades_by_instrument``, ``trades.*``)."""
        inst = self.instrument
        return {
            "trade_id": str(self.trade_id),
            "trade_seq": self.trade_seq,
            "timestamp": self.ts,
            "tick_direction": self.tick_direction,
            "price": self.price / 1_000_000,
            "mark_price": self.mark / 1_000_000,
            "index_price": self.index / 1_000_000,
            "instrument_name": inst.name,
            "direction": "buy" if self.taker_side > 0 else "sell",
            "amount": self.size / inst.scale,
            "contracts": self.size / inst.scale,
        }

    def user_json(self, account: int) -> dict:
        """Deribit user trade as seen by ``account`` (maker side if it was the maker; both
        sides of a self-trade never happen: self-trade prevention cancels the maker)."""
        out = self.public_json()
        maker = account == self.maker_account
        side = -self.taker_side if maker else self.taker_side
        out.update({
            "direction": "buy" if side > 0 else "sell",
            "order_id": str(self.maker_order_id if maker else self.taker_order_id),
            "liquidity": "M" if maker else "T",
            "fee": (self.maker_fee if maker else self.taker_fee) / 1_000_000,
            "fee_currency": "USDC",
            "order_type": "market" if (self.taker_market and not maker) else "limit",
            "state": "filled",
            "self_trade": False,
            "post_only": False,
            "reduce_only": False,
            "matching_id": None,
            "api": True,
        })
        if self.liquidation:
            out["liquidation"] = self.liquidation
        return out


class TwapView:
    """One TWAP parent order (Clearway; twap.py): its parameters, progress and outcome."""

    __slots__ = ("order_id", "account", "instrument", "side", "size", "filled", "duration_ms", "interval_ms",
                 "price_tolerance_ppm", "limit_price", "reduce_only", "label", "intervals", "intervals_left",
                 "start_ts", "state", "end_reason", "updated", "suborders", "filled_notional")

    def __init__(self, order_id: int, account: int, instrument: Instrument, side: int, size: int, duration_ms: int,
                 interval_ms: int, price_tolerance_ppm: int, limit_price: int, reduce_only: bool, label: str,
                 start_ts: int, filled: int = 0, done: int = 0) -> None:
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
        self.label = label
        self.intervals = duration_ms // interval_ms
        self.intervals_left = self.intervals - done
        self.start_ts = start_ts
        self.state = "open"
        self.end_reason = ""
        self.updated = start_ts
        self.suborders: list[int] = []
        self.filled_notional = 0  # Σ lots × price of the suborders' fills seen by this model

    @classmethod
    def accepted(cls, event: ev.TwapAccepted, instrument: Instrument, ts: int) -> "TwapView":
        """The view of a TWAP from its ``TwapAccepted`` event (at ``ts``, ms)."""
        return cls(event.order_id, event.account, instrument, event.side, event.size, event.duration_ms,
                   event.interval_ms, event.price_tolerance_ppm, event.limit_price, event.reduce_only,
                   event.client_order_id, ts)

    def progress(self, event, filled_notional: int, ts: int) -> None:
        """Apply a ``TwapProgress``; ``filled_notional``: Σ lots × price of its suborder's fills."""
        self.filled = event.filled
        self.intervals_left = event.intervals_left
        self.updated = ts
        if event.suborder_id:
            self.suborders.append(event.suborder_id)
            self.filled_notional += filled_notional

    def end(self, event, ts: int) -> None:
        """Apply a ``TwapEnded``: filled (completed), closed (elapsed, below the minimum
        size) or cancelled, with its ``end_reason``."""
        self.filled = event.filled
        self.state = "filled" if event.reason == CancelReason.TWAP_COMPLETED else (
            "closed" if event.reason in _TWAP_END else "cancelled")
        self.end_reason = _TWAP_END.get(event.reason) or _CANCEL_REASONS.get(event.reason, "")
        self.intervals_left = 0
        self.updated = ts

    def to_json(self) -> dict:
        """``private/get_twap_state`` (Clearway): amounts in contracts, prices in USDC."""
        inst = self.instrument
        return {
            "order_id": str(self.order_id),
            "instrument_name": inst.name,
            "direction": "buy" if self.side > 0 else "sell",
            "order_state": self.state,
            "end_reason": self.end_reason or None,
            "amount": self.size / inst.scale,
            "filled_amount": self.filled / inst.scale,
            "remaining_amount": (self.size - self.filled) / inst.scale,
            "average_price": self.filled_notional / self.filled / 1_000_000 if self.filled else 0.0,
            "duration": self.duration_ms // 1000,
            "interval": self.interval_ms // 1000,
            "intervals": self.intervals,
            "intervals_left": self.intervals_left,
            "price_tolerance": self.price_tolerance_ppm / 1_000_000,
            "limit_price": self.limit_price / 1_000_000 if self.limit_price else None,
            "reduce_only": self.reduce_only,
            "label": self.label,
            "creation_timestamp": self.start_ts,
            "last_update_timestamp": self.updated,
            "next_suborder_timestamp": (self.start_ts + (self.intervals - self.intervals_left) * self.interval_ms
                                        if self.state == "open" else None),
            "suborder_ids": [str(i) for i in self.suborders],
        }


_TWAP_END = {CancelReason.TWAP_COMPLETED: "completed", CancelReason.TWAP_ELAPSED: "elapsed",
             CancelReason.TWAP_BELOW_MINIMUM: "below_minimum_size"}
"""CancelReason of a TwapEnded that is not a cancellation → ``end_reason``."""


class Book:
    """L2 aggregates of one instrument (price → open lots) and its change id."""

    __slots__ = ("bids", "asks", "change_id")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.change_id = 0

    def side(self, side: int) -> dict[int, int]:
        return self.bids if side > 0 else self.asks

    def levels(self, side: int, depth: int | None = None) -> list[tuple[int, int]]:
        """Best-first (price, lots)."""
        book = self.bids if side > 0 else self.asks
        prices = sorted(book, reverse=side > 0)
        if depth is not None:
            prices = prices[:depth]
        return [(p, book[p]) for p in prices]

    def best(self, side: int) -> tuple[int, int] | None:
        book = self.bids if side > 0 else self.asks
        if not book:
            return None
        price = max(book) if side > 0 else min(book)
        return price, book[price]


class Changes:
    """What one applied chunk of commands changed, for the subscription hub.

    levels : {instrument id: {(side, price): lots before the chunk}}
    trades : [TradeView] in order
    orders : {account: {order id: OrderView}} orders whose state changed
    accounts : accounts whose cash or positions may have changed
    tickers : instruments whose ticker changed (book top, trade or mark)
    """

    __slots__ = ("levels", "trades", "orders", "accounts", "tickers", "seq")

    def __init__(self) -> None:
        self.levels: dict[int, dict[tuple[int, int], int]] = {}
        self.trades: list[TradeView] = []
        self.orders: dict[int, dict[int, OrderView]] = {}
        self.accounts: set[int] = set()
        self.tickers: set[int] = set()
        self.seq = 0


class Snapshot:
    """What the read model needs from the state at start-up (taken on the sequencer)."""

    def __init__(self, state) -> None:
        self.seq = state.last_seq
        self.ts = state.last_ts
        self.specs = list(state.instruments.values())
        self.delisted = set(state.delisted)
        self.owners = dict(state.owners)
        self.marks = dict(state.marks)
        self.index = dict(state.index)
        self.orders = [
            (o.order_id, o.account, o.instrument, o.side, o.price, o.size, o.remaining, int(o.tif), o.post_only,
             o.reduce_only, o.client_order_id, o.display, o.shown, o.expire_at)
            for o in state.orders.values()
        ]
        self.conditionals = [
            (c.order_id, c.account, c.instrument, c.side, c.order_type, c.size, c.price, c.trigger, c.trigger_price,
             int(c.tif), c.post_only, c.reduce_only, c.client_order_id, c.display, c.expire_at)
            for c in state.conditionals.values()
        ]
        self.twaps = [t.canonical() for t in state.twaps.values()]


class ReadModel:
    """See the module docstring. All methods run on one thread (the server's loop)."""

    def __init__(self, node, on_changes: Callable[[Changes], None] | None = None,
                 max_backlog: int = 100_000) -> None:
        self.node = node
        self.on_changes = on_changes
        self.max_backlog = max_backlog
        self.seq = 0
        self.ts = 0
        self.instruments: dict[int, Instrument] = {}  # listed and active (delisted ones move to ``delisted``)
        self.by_name: dict[str, Instrument] = {}
        self.delisted: dict[int, Instrument] = {}
        self.owners: dict[str, int] = {}
        self.account_owner: dict[int, str] = {}
        self.marks: dict[int, int] = {}
        self.index: dict[str, int] = {}
        self.books: dict[int, Book] = {}
        self.orders: dict[int, OrderView] = {}  # open (untriggered included) and recently closed
        self.twaps: dict[int, TwapView] = {}  # running and recently ended TWAP parents
        self.open_by_account: dict[int, dict[int, OrderView]] = {}
        self._closed: collections.deque[int] = collections.deque()
        self._twaps_ended: collections.deque[int] = collections.deque()
        self.trades: dict[int, collections.deque[TradeView]] = {}
        self.trades_by_account: dict[int, collections.deque[TradeView]] = {}
        self.last_price: dict[int, int] = {}
        self.day: dict[int, collections.deque[tuple[int, int, int]]] = {}  # (ts, price, lots) of 24 h
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sub = None
        self._stopping = False
        self.resyncs = 0

    # -- life cycle ----------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Subscribe, snapshot, and start feeding published commands to ``loop``."""
        self._loop = loop
        self._sync()

    def _sync(self) -> None:
        """Subscribe, then load a snapshot (on the loop: no delivery runs before it is
        loaded, and deliveries of commands already in it are skipped by ``apply``)."""
        sub = self.node.subscribe_loop(self._loop, self._on_published, self.max_backlog)
        snapshot = self.node.query(Snapshot).result()
        self._load(snapshot)
        self._sub = sub
        self._wake()  # requests waiting for a sequence number the snapshot already covers

    def stop(self) -> None:
        self._stopping = True
        if self._sub is not None:
            self._sub.close()
        for _, future in self._waiters:
            if not future.done():
                future.cancel()
        self._waiters.clear()

    def _load(self, snapshot: Snapshot) -> None:
        self.seq = snapshot.seq
        self.ts = snapshot.ts
        self.instruments.clear()
        self.by_name.clear()
        self.books.clear()
        self.delisted.clear()
        for spec in snapshot.specs:
            inst = self._list(spec, snapshot.ts)
            if spec.instrument_id in snapshot.delisted:
                self._delist(inst)
        self.owners = snapshot.owners
        self.account_owner = {account: owner for owner, account in snapshot.owners.items()}
        self.marks = snapshot.marks
        self.index = snapshot.index
        self.orders.clear()
        self.open_by_account.clear()
        self._closed.clear()
        self.twaps.clear()
        for (order_id, account, instrument, side, price, size, remaining, tif, post_only, reduce_only,
             label, display, shown, expire_at) in snapshot.orders:
            order = OrderView(order_id, account, self.instruments[instrument], side, price, size, tif, post_only,
                              reduce_only, label, False, snapshot.ts)
            order.remaining = remaining
            order.filled = size - remaining
            order.filled_notional = order.filled * price  # best knowledge: at the limit
            order.display, order.shown, order.expire_at = display, shown, expire_at
            order.resting = True
            self.orders[order_id] = order
            self.open_by_account.setdefault(account, {})[order_id] = order
            book = self.books[instrument].side(side)
            book[price] = book.get(price, 0) + order.visible()
        for (order_id, account, instrument, side, order_type, size, price, trigger, trigger_price, tif, post_only,
             reduce_only, label, display, expire_at) in snapshot.conditionals:
            order = self._conditional(order_id, account, instrument, side, order_type, size, price, trigger,
                                      trigger_price, tif, post_only, reduce_only, label, display, expire_at,
                                      snapshot.ts)
        for (order_id, account, instrument, side, size, duration_ms, interval_ms, tolerance, limit_price,
             reduce_only, label, start_ts, filled, done) in snapshot.twaps:
            self.twaps[order_id] = TwapView(order_id, account, self.instruments[instrument], side, size, duration_ms,
                                            interval_ms, tolerance, limit_price, reduce_only, label, start_ts,
                                            filled, done)

    def _list(self, spec, ts: int) -> Instrument:
        inst = Instrument(spec, ts)
        self.instruments[spec.instrument_id] = inst
        self.by_name[inst.name] = inst
        self.books.setdefault(spec.instrument_id, Book())
        self.trades.setdefault(spec.instrument_id, collections.deque(maxlen=MAX_TRADES_PER_INSTRUMENT))
        self.day.setdefault(spec.instrument_id, collections.deque())
        return inst

    def _delist(self, inst: Instrument) -> None:
        """An expired option: gone from the listing (public/get_instruments shows it with
        ``expired=true``), its mark dropped; its history (orders, trades) stays."""
        self.instruments.pop(inst.instrument_id, None)
        self.by_name.pop(inst.name, None)
        self.delisted[inst.instrument_id] = inst
        inst.info = {**inst.info, "is_active": False}
        self.marks.pop(inst.instrument_id, None)

    def _conditional(self, order_id: int, account: int, instrument: int, side: int, order_type: int, size: int,
                     price: int, trigger: int, trigger_price: int, tif: int, post_only: bool, reduce_only: bool,
                     label: str, display: int, expire_at: int, ts: int) -> OrderView:
        """A waiting conditional order: open with ``order_state`` "untriggered", not in the book."""
        order = OrderView(order_id, account, self.instruments[instrument], side, price, size, tif, post_only,
                          reduce_only, label, False, ts)
        order.state = "untriggered"
        order.order_type = order_type
        order.trigger = trigger
        order.trigger_price = trigger_price
        order.triggered = False
        order.display = display
        order.expire_at = expire_at
        self.orders[order_id] = order
        self.open_by_account.setdefault(account, {})[order_id] = order
        return order

    def _on_published(self, items: list, ended: bool) -> None:
        """LoopSubscription callback (on the loop): apply, fan out, re-synchronise after
        an overflow."""
        if self._stopping:
            return
        if items:
            changes = self.apply(items)
            if self.on_changes is not None and changes is not None:
                try:
                    self.on_changes(changes)
                except Exception:  # a subscriber bug must not stop the read model
                    log.exception("subscription fan-out failed")
        if ended and self._sub is not None and self._sub.overflowed:
            log.warning("read model fell behind the node; re-synchronising")
            self.resyncs += 1
            self._sync()

    # -- applying published commands ----------------------------------------------------
    def apply(self, items: Iterable) -> Changes | None:
        """Apply published commands (``Published``) in order; return what changed."""
        changes = Changes()
        applied = False
        for seq, command, events in items:
            if seq <= self.seq:
                continue
            self._apply_one(command, events, changes)
            self.seq = seq
            self.ts = command.ts
            applied = True
        changes.seq = self.seq
        self._wake()
        return changes if applied else None

    def _apply_one(self, command, events, changes: Changes) -> None:
        ts = command.ts
        pending: list[OrderView] = []
        market = type(command) is PlaceOrder and command.order_type == _MARKET
        for event in events:
            t = type(event)
            if t is ev.Trade:
                self._trade(event, ts, market, changes)
            elif t is ev.OrderAccepted:
                inst = self.instruments[event.instrument]
                order = self.orders.get(event.order_id)
                if order is not None and order.state == "triggered":  # a conditional enters the book
                    order.state = "open"
                    order.price, order.size, order.remaining, order.tif = event.price, event.size, event.size, event.tif
                    order.updated = ts
                else:
                    order = OrderView(event.order_id, event.account, inst, event.side, event.price, event.size,
                                      event.tif, event.post_only, event.reduce_only, event.client_order_id, market,
                                      ts)
                    self.orders[order.order_id] = order
                    self.open_by_account.setdefault(order.account, {})[order.order_id] = order
                order.display = event.display_size
                order.expire_at = event.expire_at
                pending.append(order)
                self._touch_order(order, changes)
            elif t is ev.OrderCancelled:
                order = self.orders.get(event.order_id)
                if order is not None and order.state in ("open", "untriggered"):
                    if order.resting:
                        self._level(order, -order.visible(), changes)
                        order.resting = False
                    order.state = "cancelled"
                    order.cancel_reason = _CANCEL_REASONS.get(event.reason, "")
                    order.updated = ts
                    self._close(order)
                    self._touch_order(order, changes)
            elif t is ev.OrderAmended:
                order = self.orders.get(event.order_id)
                if order is None:
                    continue
                if order.resting:
                    if event.priority_kept:
                        if order.display:  # an iceberg loses hidden size first
                            shown = min(order.shown, event.remaining)
                            self._level(order, shown - order.shown, changes)
                            order.shown = shown
                        else:
                            self._level(order, event.remaining - order.remaining, changes)
                    else:
                        self._level(order, -order.visible(), changes)
                        order.resting = False
                        pending.append(order)
                elif not event.priority_kept:
                    pending.append(order)
                order.price = event.price
                order.size = event.size
                order.remaining = event.remaining
                order.updated = ts
                self._touch_order(order, changes)
            elif t is ev.IcebergRefilled:
                order = self.orders.get(event.order_id)
                if order is not None and order.resting:
                    order.shown = event.shown
                    self._level(order, event.shown, changes)
                    order.updated = ts
            elif t is ev.ConditionalAccepted:
                order = self._conditional(event.order_id, event.account, event.instrument, event.side,
                                          event.order_type, event.size, event.price, event.trigger,
                                          event.trigger_price, event.tif, event.post_only, event.reduce_only,
                                          event.client_order_id, event.display_size, event.expire_at, ts)
                self._touch_order(order, changes)
            elif t is ev.OrderTriggered:
                order = self.orders.get(event.order_id)
                if order is not None:
                    order.state = "triggered"
                    order.triggered = True
                    order.updated = ts
                    self._touch_order(order, changes)
            elif t is ev.TriggerRejected:
                order = self.orders.get(event.order_id)
                if order is not None and order.state in ("triggered", "untriggered"):
                    order.state = "rejected"
                    order.cancel_reason = getattr(event.code, "name", str(event.code)).lower()
                    order.updated = ts
                    self._close(order)
                    self._touch_order(order, changes)
            elif t is ev.TwapAccepted:
                self.twaps[event.order_id] = TwapView.accepted(event, self.instruments[event.instrument], ts)
            elif t is ev.TwapProgress:
                twap = self.twaps.get(event.order_id)
                if twap is not None:
                    sub = self.orders.get(event.suborder_id) if event.suborder_id else None
                    twap.progress(event, sub.filled_notional if sub is not None else 0, ts)
            elif t is ev.TwapEnded:
                twap = self.twaps.get(event.order_id)
                if twap is not None:
                    twap.end(event, ts)
                    self._twaps_ended.append(event.order_id)
                    if len(self._twaps_ended) > MAX_CLOSED_ORDERS:
                        self.twaps.pop(self._twaps_ended.popleft(), None)
            elif t is ev.AccountCreated:
                self.owners[event.owner] = event.account
                self.account_owner[event.account] = event.owner
                changes.accounts.add(event.account)
            elif t is ev.PricesSet:
                self.index.update(event.index)
                self._marks(event.marks, changes)
            elif t is ev.MarketDataSet or t is ev.OracleUpdated:
                self.index[event.underlying] = event.index
                self._marks(event.marks, changes)
            elif t is ev.MarksUpdated:
                self._marks(event.marks, changes)
            elif t is ev.InstrumentListed:
                if event.instrument not in self.instruments:
                    self._list(event.spec, ts)
            elif t is ev.OptionsExpired:
                for instrument in event.instruments:
                    inst = self.instruments.get(instrument)
                    if inst is not None:
                        self._delist(inst)
                        changes.tickers.discard(instrument)
                changes.accounts.update(self.account_owner)
            elif t in _ACCOUNT_EVENTS:
                changes.accounts.add(event.account)
                if t is ev.Deleveraged:
                    changes.accounts.add(event.counterparty)
                elif t is ev.LiquidationFill:
                    self._liquidation_fill(event)
            elif t is ev.ForcedWithdrawalServed:
                if event.account >= 0:
                    changes.accounts.add(event.account)
        for order in pending:
            if order.state != "open":
                continue
            if order.remaining > 0:
                order.resting = True
                if order.display:
                    order.shown = min(order.display, order.remaining)
                self._level(order, order.visible(), changes)
            else:
                order.state = "filled"
                self._close(order)

    def _marks(self, marks: dict[int, int], changes: Changes) -> None:
        """New marks (and the index set just before): tickers change, and so may every
        account's equity (all accounts get a portfolio update: the model does not track
        positions, the state does)."""
        self.marks.update(marks)
        changes.tickers.update(m for m in marks if m in self.instruments)
        changes.accounts.update(self.account_owner)

    def _liquidation_fill(self, event: ev.LiquidationFill) -> None:
        """Flag the trade (which precedes this event) as a liquidation of its taker."""
        recent = self.trades.get(event.instrument)
        if recent:
            for trade in reversed(recent):
                if trade.trade_id == event.trade_id:
                    trade.liquidation = "T"
                    break

    def _trade(self, event: ev.Trade, ts: int, taker_market: bool, changes: Changes) -> None:
        inst = self.instruments[event.instrument]
        maker = self.orders.get(event.maker_order_id)
        size = event.size
        if maker is not None:
            if maker.resting:
                self._level(maker, -size, changes)
                if maker.display:
                    maker.shown -= size
            maker.remaining -= size
            maker.filled += size
            maker.filled_notional += size * event.price
            maker.commission += event.maker_fee
            maker.updated = ts
            if maker.remaining <= 0:
                maker.state = "filled"
                maker.resting = False
                self._close(maker)
            self._touch_order(maker, changes)
        taker = self.orders.get(event.taker_order_id)
        if taker is not None:
            taker.remaining -= size
            taker.filled += size
            taker.filled_notional += size * event.price
            taker.commission += event.taker_fee
            taker.updated = ts
            self._touch_order(taker, changes)
        instrument = event.instrument
        last = self.last_price.get(instrument)
        tick = 0 if last is None or event.price > last else (1 if event.price == last else 2)
        self.last_price[instrument] = event.price
        recent = self.trades[instrument]
        trade_seq = recent[-1].trade_seq + 1 if recent else 1
        trade = TradeView(event, inst, ts, trade_seq, tick, self.marks.get(instrument, 0),
                          self.index.get(inst.underlying, 0), taker_market)
        recent.append(trade)
        self.day[instrument].append((ts, event.price, size))
        for account in (event.maker_account, event.taker_account):
            history = self.trades_by_account.get(account)
            if history is None:
                history = self.trades_by_account[account] = collections.deque(maxlen=MAX_TRADES_PER_ACCOUNT)
            history.append(trade)
            changes.accounts.add(account)
        changes.trades.append(trade)
        changes.tickers.add(instrument)

    def _level(self, order: OrderView, delta: int, changes: Changes) -> None:
        instrument = order.instrument.instrument_id
        book = self.books[instrument]
        levels = book.side(order.side)
        price = order.price
        before = levels.get(price, 0)
        touched = changes.levels.get(instrument)
        if touched is None:
            touched = changes.levels[instrument] = {}
        touched.setdefault((order.side, price), before)
        after = before + delta
        if after > 0:
            levels[price] = after
        else:
            levels.pop(price, None)
        changes.tickers.add(instrument)

    def _touch_order(self, order: OrderView, changes: Changes) -> None:
        per = changes.orders.get(order.account)
        if per is None:
            per = changes.orders[order.account] = {}
        per[order.order_id] = order

    def _close(self, order: OrderView) -> None:
        opened = self.open_by_account.get(order.account)
        if opened is not None:
            opened.pop(order.order_id, None)
            if not opened:
                del self.open_by_account[order.account]
        closed = self._closed
        closed.append(order.order_id)
        if len(closed) > MAX_CLOSED_ORDERS:
            old = closed.popleft()
            gone = self.orders.get(old)
            if gone is not None and gone.state != "open":
                del self.orders[old]

    # -- waiting for the stream --------------------------------------------------------
    async def wait_for(self, seq: int, timeout: float = 10.0) -> None:
        """Return once every command up to ``seq`` has been applied. Raises TimeoutError."""
        if self.seq >= seq:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, future))
        await asyncio.wait_for(future, timeout)

    def _wake(self) -> None:
        if not self._waiters:
            return
        keep = []
        for seq, future in self._waiters:
            if seq <= self.seq:
                if not future.done():
                    future.set_result(None)
            elif not future.done():
                keep.append((seq, future))
        self._waiters = keep

    # -- queries -------------------------------------------------------------------------
    def instrument(self, name: str) -> Instrument | None:
        return self.by_name.get(name)

    def day_stats(self, instrument: int, now_ms: int) -> tuple[float, int, int]:
        """(volume in lots, high, low) of the last 24 h (high/low 0 without trades)."""
        window = self.day[instrument]
        while window and window[0][0] < now_ms - DAY_MS:
            window.popleft()
        if not window:
            return 0, 0, 0
        volume = sum(t[2] for t in window)
        return volume, max(t[1] for t in window), min(t[1] for t in window)
