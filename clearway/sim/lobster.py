"""Replay of real Nasdaq order flow (LOBSTER sample) through Clearway's order book.

Data: ``../shared/data/lobster/`` (README there). Row i of the order-book file is the book
*after* message i. The replay:

1. seeds the book from row 0 (the state before the window is unknown): one placeholder
   order per visible level, standing for all orders that were already queued there;
2. applies messages 1..n−1 to ``clearway.domain.book.OrderBook``: type 1 adds an order at
   the back of its level, type 2 cancels part of an order in place (priority kept), type 3
   deletes it, type 4 executes it; types 5 (hidden execution) and 7 (halt) leave the
   visible book unchanged. Orders placed before the window are unknown by id, so a message
   naming an unknown id acts on its level's placeholder;
3. re-syncs only what the message file cannot contain: a 10-level file has no messages for
   levels outside the top 10, so a level at a price *beyond the previous row's 10th level*
   (it was outside the window) is set to the row's size when it comes into view;
4. compares the top 5 levels of both sides with row i (``rows_matched``) and, for every
   type-4 execution, checks that the executed order is at the front of its level's queue
   (``fifo_ok``): price-time priority on real data.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from clearway.domain.book import OrderBook
from clearway.domain.orders import BUY, SELL, Order, TimeInForce

EMPTY_PRICE = 9_999_999_999
COMPARE_DEPTH = 5
PLACEHOLDER_ACCOUNT = -1


@dataclass
class ReplayResult:
    rows: int = 0
    rows_matched: int = 0
    fifo_checks: int = 0
    fifo_ok: int = 0
    messages: dict[str, int] = field(default_factory=dict)
    resynced_levels: int = 0
    mismatched_rows: list[int] = field(default_factory=list)
    executions: list[tuple[float, int, int, int]] = field(default_factory=list)  # time, side, price, size
    book: OrderBook | None = None
    source: str = ""

    @property
    def ok(self) -> bool:
        return self.rows_matched == self.rows and self.fifo_ok == self.fifo_checks

    def summary(self) -> dict:
        return {
            "rows": self.rows,
            "rows_matched": self.rows_matched,
            "fifo_checks": self.fifo_checks,
            "fifo_ok": self.fifo_ok,
            "messages": self.messages,
            "resynced_levels": self.resynced_levels,
            "executed_shares": sum(e[3] for e in self.executions),
            "mismatched_rows": self.mismatched_rows[:20],
            "source": self.source,
        }


def _levels(row: list[str], side: int) -> list[tuple[int, int]]:
    """(price, size) of one side of a book row, best first, empty levels dropped."""
    offset = 2 if side == BUY else 0
    out = []
    for i in range(offset, len(row), 4):
        price, size = int(row[i]), int(row[i + 1])
        if abs(price) != EMPTY_PRICE and size > 0:
            out.append((price, size))
    return out


class _Replayer:
    def __init__(self, first_row: list[str]) -> None:
        self.book = OrderBook(0)
        self.orders: dict[int, Order] = {}
        self.next_placeholder = -1
        self.window_depth = len(first_row) // 4
        for side in (BUY, SELL):
            for price, size in _levels(first_row, side):
                self._placeholder(side, price, size)
        self.prev_row = first_row

    def _placeholder(self, side: int, price: int, size: int) -> None:
        order = Order(self.next_placeholder, PLACEHOLDER_ACCOUNT, 0, side, price, size, TimeInForce.GTC,
                      False, False, "")
        self.next_placeholder -= 1
        self.book.add(order)

    def _target(self, order_id: int, side: int, price: int) -> Order | None:
        """The order a message acts on: the known order, else its level's placeholder."""
        order = self.orders.get(order_id)
        if order is not None:
            return order
        level = self.book.level_at(side, price)
        if level is None:
            return None
        for candidate in level.orders():
            if candidate.account == PLACEHOLDER_ACCOUNT:
                return candidate
        return None

    def _take(self, order: Order, size: int) -> None:
        """Remove ``size`` shares from an order (cancel or execution), keeping priority."""
        if size >= order.remaining:
            self.book.remove(order)
            self.orders.pop(order.order_id, None)
        else:
            self.book.reduce(order, size)

    def apply(self, kind: int, order_id: int, size: int, price: int, side: int, result: ReplayResult,
              time: float) -> None:
        if kind == 1:
            order = Order(order_id, 0, 0, side, price, size, TimeInForce.GTC, False, False, "")
            self.book.add(order)
            self.orders[order_id] = order
        elif kind in (2, 3, 4):
            order = self._target(order_id, side, price)
            if kind == 4:
                result.fifo_checks += 1
                level = self.book.level_at(side, price)
                if order is not None and level is not None and level.head is order:
                    result.fifo_ok += 1
                result.executions.append((time, side, price, size))
            if order is not None:
                # a deletion removes a known order whole; on a placeholder it removes the
                # named order's shares, which the message gives
                known = order.account != PLACEHOLDER_ACCOUNT
                self._take(order, order.remaining if kind == 3 and known else size)

    def resync(self, row: list[str], result: ReplayResult) -> None:
        """Set levels that just came into view from beyond the previous row's window."""
        for side in (BUY, SELL):
            previous = _levels(self.prev_row, side)
            if len(previous) < self.window_depth:
                continue  # the whole side was visible: nothing outside the window
            boundary = previous[-1][0]
            for price, size in _levels(row, side):
                beyond = price < boundary if side == BUY else price > boundary
                if not beyond:
                    continue
                level = self.book.level_at(side, price)
                if level is not None and level.total == size:
                    continue
                if level is not None:
                    for order in list(level.orders()):
                        self.book.remove(order)
                        self.orders.pop(order.order_id, None)
                self._placeholder(side, price, size)
                result.resynced_levels += 1
        self.prev_row = row


def replay(message_file: Path, book_file: Path) -> ReplayResult:
    """Replay one LOBSTER message/order-book file pair; see the module docstring."""
    with open(message_file, newline="") as f:
        messages = [row for row in csv.reader(f) if row]
    with open(book_file, newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    if len(messages) != len(rows) or not rows:
        raise ValueError(f"{message_file.name} has {len(messages)} messages but {book_file.name} {len(rows)} rows")
    result = ReplayResult(source=message_file.name)
    replayer = _Replayer(rows[0])
    for i in range(1, len(messages)):
        time_s, kind, order_id, size, price, direction = messages[i][:6]
        kind_i = int(kind)
        result.messages[kind] = result.messages.get(kind, 0) + 1
        replayer.apply(kind_i, int(order_id), int(size), int(price), BUY if int(direction) == 1 else SELL,
                       result, float(time_s))
        replayer.resync(rows[i], result)
        result.rows += 1
        ours = (replayer.book.levels(SELL, COMPARE_DEPTH), replayer.book.levels(BUY, COMPARE_DEPTH))
        theirs = (_levels(rows[i], SELL)[:COMPARE_DEPTH], _levels(rows[i], BUY)[:COMPARE_DEPTH])
        if ours == theirs:
            result.rows_matched += 1
        else:
            result.mismatched_rows.append(i)
    result.book = replayer.book
    return result


def replay_directory(directory: Path) -> ReplayResult:
    """Replay the (single) message/order-book pair found in ``directory``."""
    messages = sorted(directory.glob("*_message_*.csv"))
    if not messages:
        raise FileNotFoundError(f"no LOBSTER *_message_*.csv file in {directory}")
    message_file = messages[0]
    book_file = message_file.with_name(message_file.name.replace("_message_", "_orderbook_"))
    return replay(message_file, book_file)


def format_report(result: ReplayResult, trades: int = 20) -> str:
    """Human-readable summary: checks, the final top of book, the last executions."""
    def money(price: int) -> str:
        return f"{price / 10_000:,.2f}"

    lines = [f"LOBSTER replay of {result.source}",
             f"  rows matched (top {COMPARE_DEPTH} levels): {result.rows_matched}/{result.rows}",
             f"  FIFO checks (executions hit the front of their queue): {result.fifo_ok}/{result.fifo_checks}",
             f"  levels re-synced from outside the 10-level window: {result.resynced_levels}", "",
             "  final book        bid size   bid price | ask price   ask size"]
    book = result.book
    if book is not None:
        bids, asks = book.levels(BUY, 10), book.levels(SELL, 10)
        for i in range(max(len(bids), len(asks))):
            bid = f"{bids[i][1]:>10}  {money(bids[i][0]):>10}" if i < len(bids) else " " * 22
            ask = f"{money(asks[i][0]):>10}  {asks[i][1]:>9}" if i < len(asks) else ""
            lines.append(f"                  {bid} | {ask}")
    lines += ["", f"  last {min(trades, len(result.executions))} of {len(result.executions)} executions "
              "(time, resting side, price, shares):"]
    for time_s, side, price, size in result.executions[-trades:]:
        hms = f"{int(time_s // 3600):02d}:{int(time_s % 3600 // 60):02d}:{time_s % 60:06.3f}"
        lines.append(f"    {hms}  {'bid' if side == BUY else 'ask'}  {money(price):>10}  {size:>6}")
    return "\n".join(lines) + "\n"
