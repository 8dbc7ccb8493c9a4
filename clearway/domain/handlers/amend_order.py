"""AmendOrder: change an open order's size and/or price.

A size decrease at the same price keeps time priority (the order shrinks in place). A price
change or a size increase loses it: the order leaves its level, is checked like a new order
(margin, post-only), may trade as a taker at its new price, and rests at the back of the
queue with what is left. The order keeps its id and client order id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.commands import AmendOrder
from clearway.domain.errors import ErrorCode
from clearway.domain.events import Event, OrderAmended
from clearway.domain.handlers.common import enforce_reduce_only, reject
from clearway.domain.handlers.place_order import execute
from clearway.domain.liquidation import check_after_fills

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState


def amend_order(state: ExchangeState, cmd: AmendOrder) -> list[Event]:
    """Handle AmendOrder; ``cmd.size`` is the new total size (lots, > already filled)."""
    account = state.accounts.get(cmd.account)
    if account is None:
        return reject(ErrorCode.UNKNOWN_ACCOUNT, "unknown account", cmd.account)
    order = state.orders.get(cmd.order_id)
    if order is None:
        return reject(ErrorCode.UNKNOWN_ORDER, "no open order with this id", cmd.account)
    if order.account != account.account_id:
        return reject(ErrorCode.NOT_ORDER_OWNER, "order belongs to another account", cmd.account)
    spec = state.instruments[order.instrument]
    coid = order.client_order_id
    size, price = cmd.size, cmd.price
    if size <= 0:
        return reject(ErrorCode.SIZE_NOT_POSITIVE, "size must be positive", cmd.account, coid)
    if size % spec.size_increment:
        return reject(ErrorCode.SIZE_NOT_ON_INCREMENT, "size is not a multiple of the size increment", cmd.account, coid)
    if size <= order.filled:
        return reject(ErrorCode.AMEND_SIZE_NOT_ABOVE_FILLED, "new size must exceed the filled size", cmd.account, coid)
    if size - order.filled < spec.min_size:
        return reject(ErrorCode.SIZE_BELOW_MINIMUM, "remaining size would be below the minimum", cmd.account, coid)
    if price <= 0:
        return reject(ErrorCode.PRICE_NOT_POSITIVE, "price must be positive", cmd.account, coid)
    if price % spec.tick_size:
        return reject(ErrorCode.PRICE_NOT_ON_TICK, "price is not a multiple of the tick size", cmd.account, coid)
    if size == order.size and price == order.price:
        return reject(ErrorCode.AMEND_NOTHING_TO_CHANGE, "amend changes nothing", cmd.account, coid)
    if state.halted and spec.underlying in state.halted and not (price == order.price and size < order.size):
        return reject(ErrorCode.MARKET_HALTED, "the market is halted: only size decreases", cmd.account, coid)
    scale = 10**spec.size_decimals
    book = state.books[order.instrument]

    if price == order.price and size < order.size:  # decrease: keep priority
        lots = order.size - size
        book.reduce(order, lots)
        account.reduce_order(order, lots, scale)
        order.size = size
        return [OrderAmended(order.order_id, account.account_id, order.instrument, price, size,
                             order.remaining, True)]

    new_remaining = size - order.filled
    if order.reduce_only:
        position = account.position_size(order.instrument)
        if new_remaining > abs(position):
            return reject(ErrorCode.REDUCE_ONLY_WOULD_INCREASE, "reduce-only order larger than the position",
                          cmd.account, coid)
    else:
        code = state.margin.check_order(account, spec, order.side, price, new_remaining, replaces=order)
        if code is not None:
            return reject(code, "insufficient margin for this amendment", cmd.account, coid)
    # crossing looks only at the opposite side, which the order itself is not on
    if order.post_only and book.crosses(order.side, price):
        return reject(ErrorCode.POST_ONLY_WOULD_CROSS, "post-only amendment would cross the book",
                      cmd.account, coid)

    # -- validated: the order leaves its place and re-enters as a taker --
    book.remove(order)
    account.remove_order(order, scale)
    order.price = price
    order.size = size
    order.remaining = new_remaining
    events: list[Event] = [OrderAmended(order.order_id, account.account_id, order.instrument, price, size,
                                        new_remaining, False)]
    filled = execute(state, spec, account, order.side, price, new_remaining, order.order_id, events)
    order.remaining = new_remaining - filled
    if order.remaining:
        book.add(order)
        account.add_order(order, scale)
    else:
        del state.orders[order.order_id]
    if filled and order.reduce_only:
        enforce_reduce_only(state, account, order.instrument, events)
    if filled and spec.underlying in state.oracle_last:
        check_after_fills(state, cmd.ts, events)
    return events

