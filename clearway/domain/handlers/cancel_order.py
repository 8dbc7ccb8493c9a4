"""CancelOrder and CancelAll."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.commands import CancelAll, CancelOrder
from clearway.domain.errors import CancelReason, ErrorCode
from clearway.domain.events import Event
from clearway.domain.handlers.common import cancel_resting, reject

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState


def cancel_order(state: ExchangeState, cmd: CancelOrder) -> list[Event]:
    """Cancel one open order of ``cmd.account`` by order id, or by client order id when
    ``order_id`` is 0. Unknown, already closed or foreign orders are rejected."""
    account = state.accounts.get(cmd.account)
    if account is None:
        return reject(ErrorCode.UNKNOWN_ACCOUNT, "unknown account", cmd.account, cmd.client_order_id)
    if cmd.order_id:
        order = state.orders.get(cmd.order_id)
        if order is None:
            return reject(ErrorCode.UNKNOWN_ORDER, "no open order with this id", cmd.account, cmd.client_order_id)
        if order.account != account.account_id:
            return reject(ErrorCode.NOT_ORDER_OWNER, "order belongs to another account", cmd.account,
                          cmd.client_order_id)
    else:
        order_id = account.client_ids.get(cmd.client_order_id) if cmd.client_order_id else None
        if order_id is None:
            return reject(ErrorCode.UNKNOWN_ORDER, "no open order with this client order id", cmd.account,
                          cmd.client_order_id)
        order = state.orders[order_id]
    events: list[Event] = []
    cancel_resting(state, order, CancelReason.REQUESTED, events)
    return events


def cancel_all(state: ExchangeState, cmd: CancelAll) -> list[Event]:
    """Cancel every open order of the account (in one instrument, or all when −1), in
    order-id order. Cancelling nothing is not an error: it returns no events."""
    account = state.accounts.get(cmd.account)
    if account is None:
        return reject(ErrorCode.UNKNOWN_ACCOUNT, "unknown account", cmd.account)
    if cmd.instrument != -1 and cmd.instrument not in state.instruments:
        return reject(ErrorCode.UNKNOWN_INSTRUMENT, "unknown instrument", cmd.account)
    events: list[Event] = []
    for order_id in sorted(account.orders):
        order = account.orders[order_id]
        if cmd.instrument == -1 or order.instrument == cmd.instrument:
            cancel_resting(state, order, CancelReason.CANCEL_ALL, events)
    return events
