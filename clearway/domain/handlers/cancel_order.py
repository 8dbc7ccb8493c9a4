"""CancelOrder, CancelOrders (batch cancel by id) and CancelAll.

All three reach every kind of open order: resting orders (``OrderCancelled``), waiting
conditional orders (``OrderCancelled``, remaining = their size; conditional.py) and TWAP
parents (``TwapEnded``; twap.py).
"""

from __future__ import annotations

from typing import Any, Final, TYPE_CHECKING

from clearway.domain.commands import CancelAll, CancelOrder, CancelOrders
from clearway.domain.conditional import cancel_conditional
from clearway.domain.errors import CancelReason, ErrorCode
from clearway.domain.events import CancelFailed, Event
from clearway.domain.handlers.common import cancel_resting, reject
from clearway.domain.orders import Order
from clearway.domain.twap import end_twap

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState

MAX_BATCH_CANCEL: Final = 100
"""Most order ids one ``CancelOrders`` may name."""


def _find(state: ExchangeState, order_id: int) -> Any:
    """The open order, waiting conditional or TWAP parent with ``order_id``, or None."""
    order: Any = state.orders.get(order_id)
    if order is None:
        order = state.conditionals.get(order_id)
        if order is None:
            order = state.twaps.get(order_id)
    return order


def _cancel(state: ExchangeState, order, reason: CancelReason, events: list[Event]) -> None:
    """Cancel whatever kind of open order ``order`` is (``_find``)."""
    if order.order_id in state.orders:
        cancel_resting(state, order, reason, events)
    elif order.order_id in state.conditionals:
        cancel_conditional(state, order, reason, events)
    else:
        end_twap(state, order, reason, events)


def cancel_order(state: ExchangeState, cmd: CancelOrder) -> list[Event]:
    """Cancel one open order of ``cmd.account`` by order id, or by client order id when
    ``order_id`` is 0. Unknown, already closed or foreign orders are rejected."""
    account = state.accounts.get(cmd.account)
    if account is None:
        return reject(ErrorCode.UNKNOWN_ACCOUNT, "unknown account", cmd.account, cmd.client_order_id)
    order: Any  # an Order, a conditional or a TWAP parent (_find)
    order_id: int = cmd.order_id
    if order_id:
        resting: Order | None = state.orders.get(order_id)  # typed: its fields are read natively
        if resting is not None and resting.account == account.account_id:  # the common case
            events: list[Event] = []
            cancel_resting(state, resting, CancelReason.REQUESTED, events)
            return events
        order = resting if resting is not None else _find(state, order_id)
        if order is None:
            return reject(ErrorCode.UNKNOWN_ORDER, "no open order with this id", cmd.account, cmd.client_order_id)
        if order.account != account.account_id:
            return reject(ErrorCode.NOT_ORDER_OWNER, "order belongs to another account", cmd.account,
                          cmd.client_order_id)
    else:
        by_client_id = account.client_ids.get(cmd.client_order_id) if cmd.client_order_id else None
        if by_client_id is None:
            return reject(ErrorCode.UNKNOWN_ORDER, "no open order with this client order id", cmd.account,
                          cmd.client_order_id)
        order = _find(state, by_client_id)
    events = []
    _cancel(state, order, CancelReason.REQUESTED, events)
    return events


def cancel_orders(state: ExchangeState, cmd: CancelOrders) -> list[Event]:
    """Cancel up to ``MAX_BATCH_CANCEL`` orders of one account by id, in the given order.

    The list itself is validated first and a bad list changes nothing: UNKNOWN_ACCOUNT,
    BATCH_CANCEL_EMPTY, BATCH_CANCEL_TOO_MANY (> 100), INVALID_ORDER_ID (an id ≤ 0),
    BATCH_CANCEL_DUPLICATE_ID. Then each id is handled on its own: an open order of the
    account (resting, conditional or TWAP) is cancelled (CancelReason.REQUESTED); an id that
    is not open (never existed, filled, cancelled) gives ``CancelFailed(UNKNOWN_ORDER)`` and
    one of another account ``CancelFailed(NOT_ORDER_OWNER)``, without failing the others —
    a client cancelling in a hurry usually races fills, and one filled order must not keep
    the other 99 in the book."""
    account = state.accounts.get(cmd.account)
    if account is None:
        return reject(ErrorCode.UNKNOWN_ACCOUNT, "unknown account", cmd.account)
    ids = cmd.order_ids
    if not ids:
        return reject(ErrorCode.BATCH_CANCEL_EMPTY, "no order ids", cmd.account)
    if len(ids) > MAX_BATCH_CANCEL:
        return reject(ErrorCode.BATCH_CANCEL_TOO_MANY, "at most 100 order ids", cmd.account)
    if min(ids) <= 0:
        return reject(ErrorCode.INVALID_ORDER_ID, "order ids are positive", cmd.account)
    if len(set(ids)) != len(ids):
        return reject(ErrorCode.BATCH_CANCEL_DUPLICATE_ID, "an order id appears twice", cmd.account)
    events: list[Event] = []
    for order_id in ids:
        order = _find(state, order_id)
        if order is None:
            events.append(CancelFailed(order_id, cmd.account, ErrorCode.UNKNOWN_ORDER))
        elif order.account != cmd.account:
            events.append(CancelFailed(order_id, cmd.account, ErrorCode.NOT_ORDER_OWNER))
        else:
            _cancel(state, order, CancelReason.REQUESTED, events)
    return events


def cancel_all(state: ExchangeState, cmd: CancelAll) -> list[Event]:
    """Cancel every open order of the account — resting, conditional and TWAP — in one
    instrument or (−1) all, in order-id order. Cancelling nothing is not an error: it
    returns no events."""
    account = state.accounts.get(cmd.account)
    if account is None:
        return reject(ErrorCode.UNKNOWN_ACCOUNT, "unknown account", cmd.account)
    if cmd.instrument != -1 and cmd.instrument not in state.instruments:
        return reject(ErrorCode.UNKNOWN_INSTRUMENT, "unknown instrument", cmd.account)
    events: list[Event] = []
    ids = list(account.orders)
    conditionals = state.account_conditionals.get(account.account_id)
    if conditionals:
        ids += conditionals
    if state.twaps:
        ids += [i for i, t in state.twaps.items() if t.account == account.account_id]
    for order_id in sorted(ids):
        order = _find(state, order_id)
        if order is not None and (cmd.instrument == -1 or order.instrument == cmd.instrument):
            _cancel(state, order, CancelReason.CANCEL_ALL, events)
    return events
