"""Helpers shared by the command handlers: rejection, the checks every order starts with,
the direction test of reduce-only orders, cancelling a resting order, and the reduce-only
rule after a position change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.accounts import Account
from clearway.domain.errors import CancelReason, ErrorCode
from clearway.domain.instruments import InstrumentSpec
from clearway.domain.events import Event, OrderAmended, OrderCancelled, Rejected
from clearway.domain.orders import Order

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState


def reject(code: ErrorCode, message: str, account: int = -1, client_order_id: str = "") -> list[Event]:
    """The single event of a rejected command."""
    return [Rejected(code, message, account, client_order_id)]  # type: ignore[arg-type]


def order_basics(state: ExchangeState, acct: int, instrument: int, ts: int, side: int, size: int,
                 coid: str) -> tuple[Account, InstrumentSpec] | list[Event]:
    """(account, instrument) of an order-like command (PlaceOrder, PlaceTwap), given its
    account, instrument, time, side, size (lots) and client order id, if it passes the
    checks every order starts with, else the rejection: UNKNOWN_ACCOUNT (or a system
    account), UNKNOWN_INSTRUMENT, INSTRUMENT_NOT_ACTIVE (an expired option), INVALID_SIDE,
    SIZE_NOT_POSITIVE, SIZE_NOT_ON_INCREMENT, SIZE_BELOW_MINIMUM. It takes the fields, not
    the command: the caller has read them once (place_order, in one call)."""
    account = state.accounts.get(acct)
    if account is None or acct < 2:
        return reject(ErrorCode.UNKNOWN_ACCOUNT, "unknown account", acct, coid)
    spec = state.instruments.get(instrument)
    if spec is None:
        return reject(ErrorCode.UNKNOWN_INSTRUMENT, "unknown instrument", acct, coid)
    expiry_ms: int = spec.expiry_ms
    if expiry_ms and expiry_ms <= ts:
        return reject(ErrorCode.INSTRUMENT_NOT_ACTIVE, "the option has expired", acct, coid)
    if side != 1 and side != -1:
        return reject(ErrorCode.INVALID_SIDE, "side must be +1 (buy) or -1 (sell)", acct, coid)
    if size <= 0:
        return reject(ErrorCode.SIZE_NOT_POSITIVE, "size must be positive", acct, coid)
    if size % spec.size_increment:
        return reject(ErrorCode.SIZE_NOT_ON_INCREMENT, "size is not a multiple of the size increment", acct, coid)
    if size < spec.min_size:
        return reject(ErrorCode.SIZE_BELOW_MINIMUM, "size is below the minimum", acct, coid)
    return account, spec


def increases(position: int, side: int) -> bool:
    """True when an order on ``side`` (+1 buy, −1 sell) would open or grow ``position``
    (lots): it is flat or already on the order's side — what a reduce-only order must not
    do. Otherwise the order points against the position and shrinks (or flips) it."""
    return position == 0 or (position > 0) == (side > 0)


def only_reduces(account: Account, instrument: int, side: int, size: int) -> bool:
    """An order that can only shrink the position (opposite side, at most its size)."""
    position = account.position_size(instrument)
    return not increases(position, side) and size <= abs(position)


def cancel_resting(state: ExchangeState, order: Order, reason: CancelReason, events: list[Event],
                   in_book: bool = True) -> None:
    """Take an open order out of the book (unless already unlinked), the account and the
    order index, and record ``OrderCancelled``."""
    if in_book:
        state.books[order.instrument].remove(order)
    spec = state.instruments[order.instrument]
    state.accounts[order.account].remove_order(order, 10**spec.size_decimals)
    del state.orders[order.order_id]
    events.append(OrderCancelled(order.order_id, order.account, order.instrument, order.remaining, int(reason)))  # type: ignore[arg-type]


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
        if increases(position, order.side):
            cancel_resting(state, order, CancelReason.REDUCE_ONLY_NO_POSITION, events)
        elif order.remaining > abs(position):
            lots = order.remaining - abs(position)
            book.reduce(order, lots)
            account.reduce_order(order, lots, scale)
            order.size -= lots
            events.append(OrderAmended(order.order_id, order.account, instrument, order.price,  # type: ignore[arg-type]
                                       order.size, order.remaining, True))  # type: ignore[arg-type]
