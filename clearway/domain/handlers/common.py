"""Helpers shared by the command handlers: rejection, cancelling a resting order, and the
reduce-only rule after a position change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.accounts import Account
from clearway.domain.errors import CancelReason, ErrorCode
from clearway.domain.events import Event, OrderAmended, OrderCancelled, Rejected
from clearway.domain.orders import Order

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState


def reject(code: ErrorCode, message: str, account: int = -1, client_order_id: str = "") -> list[Event]:
    """The single event of a rejected command."""
    return [Rejected(code, message, account, client_order_id)]


def cancel_resting(state: ExchangeState, order: Order, reason: CancelReason, events: list[Event],
                   in_book: bool = True) -> None:
    """Take an open order out of the book (unless already unlinked), the account and the
    order index, and record ``OrderCancelled``."""
    if in_book:
        state.books[order.instrument].remove(order)
    spec = state.instruments[order.instrument]
    state.accounts[order.account].remove_order(order, 10**spec.size_decimals)
    del state.orders[order.order_id]
    events.append(OrderCancelled(order.order_id, order.account, order.instrument, order.remaining, int(reason)))


def enforce_reduce_only(state: ExchangeState, account: Account, instrument: int, events: list[Event]) -> None:
    """After a position change: cancel the account's reduce-only orders in ``instrument``
    that would now grow or flip the position, and shrink those larger than it
    (exchange-rules.md "Orders and matching": resized to the position; cancelled if the
    position flips or closes). Deterministic order: by order id."""
    agg = account.open.get(instrument)
    if agg is None or not agg.reduce_only:
        return
    position = account.position_size(instrument)
    scale = 10**state.instruments[instrument].size_decimals
    book = state.books[instrument]
    for order_id in sorted(account.orders):
        order = account.orders[order_id]
        if order.instrument != instrument or not order.reduce_only:
            continue
        if position == 0 or (position > 0) == (order.side > 0):
            cancel_resting(state, order, CancelReason.REDUCE_ONLY_NO_POSITION, events)
        elif order.remaining > abs(position):
            lots = order.remaining - abs(position)
            book.reduce(order, lots)
            account.reduce_order(order, lots, scale)
            order.size -= lots
            events.append(OrderAmended(order.order_id, order.account, instrument, order.price,
                                       order.size, order.remaining, True))
