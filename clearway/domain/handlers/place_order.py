"""PlaceOrder: validate, risk-check, match, rest.

Order of work (validate first, then mutate — STYLE.md):
1. account, instrument, side, type, time in force, size, price, client order id;
2. post-only would cross → reject; reduce-only sized to the position or rejected; an
   expired option → reject; a halted market (clock.py) accepts only orders that can only
   reduce the position;
3. pre-trade margin check (margin.StandardMargin.check_order; reduce-only orders only
   shrink a position and skip it);
4. fill-or-kill that cannot fill completely → reject (nothing changed);
then the order gets its id, matches (trades at maker prices, self-trade prevention cancels
the resting order), and the remainder rests (GTC) or is cancelled (IOC, market). When it
traded in an oracle-governed market, the accounts of its trades are checked for
liquidation (liquidation.check_after_fills).

Advanced orders (issue 9): the conditional types (STOP_*, TAKE_PROFIT_*) pass the checks of
step 1 and are then held off the book by ``conditional.place_conditional``; an iceberg
(``display_size``) or good-til-time (``expire_at``) order is checked by
``resting_options`` and otherwise goes the plain way. A fired conditional re-enters here
with its own order id (``order_id``), and TWAP suborders come here too (twap.py).
"""

from __future__ import annotations

from typing import Final, TYPE_CHECKING

import msgspec

from clearway.domain.accounts import Account
from clearway.domain.commands import PlaceOrder
from clearway.domain.errors import CancelReason, ErrorCode
from clearway.domain.events import Event, IcebergRefilled, OrderAccepted, OrderCancelled
from clearway.domain.fills import settle_fill
from clearway.domain.handlers.common import (
    cancel_resting, enforce_reduce_only, increases, only_reduces, order_basics, reject,
)
from clearway.domain.liquidation import check_after_fills
from clearway.domain.orders import AdvancedOrder, Order, OrderType, TimeInForce
from clearway.domain.units import PPM

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState

_GTC: Final = int(TimeInForce.GTC)
_IOC: Final = int(TimeInForce.IOC)
_FOK: Final = int(TimeInForce.FOK)
_LIMIT: Final = int(OrderType.LIMIT)
_MARKET: Final = int(OrderType.MARKET)
_STOP_MARKET: Final = int(OrderType.STOP_MARKET)
_TAKE_PROFIT_LIMIT: Final = int(OrderType.TAKE_PROFIT_LIMIT)
_IOC_REMAINDER: Final = int(CancelReason.IOC_REMAINDER)
_PLACE_ORDER_FIELDS: Final = ("seq", "ts", "account", "instrument", "side", "size", "price", "order_type", "tif",
                              "post_only", "reduce_only", "client_order_id", "trigger_price", "trigger",
                              "display_size", "expire_at")
"""PlaceOrder's fields in the order ``_fields`` returns them, which place_order indexes.
Compiled, a read of a Struct's field is a generic attribute lookup (160–290 instructions:
the type's method cache, the member descriptor, then unboxing), and place_order made about
15 of them per order; one ``msgspec.structs.astuple`` and tuple indexing instead took
``apply()`` of the node benchmark's mix from 15,453 to 13,971 instructions per command
(callgrind, README "The deterministic core"). The order is also the wire format
(``array_like`` commands), so it cannot change without a new command version; checked at
import all the same."""
if PlaceOrder.__struct_fields__ != _PLACE_ORDER_FIELDS:
    raise ImportError(f"PlaceOrder's fields changed: {PlaceOrder.__struct_fields__}; update place_order")
_fields: Final = msgspec.structs.astuple


def place_order(state: ExchangeState, cmd: PlaceOrder, order_id: int = 0) -> list[Event]:
    """Handle PlaceOrder; see the module docstring. Rejections change nothing.

    ``order_id`` ≠ 0: a fired conditional order entering the book under its own id
    (conditional.fire); 0 allocates the next order id."""
    fields = _fields(cmd)  # every field at once (see _PLACE_ORDER_FIELDS)
    acct: int = fields[2]
    instrument: int = fields[3]
    side: int = fields[4]
    size: int = fields[5]
    order_type: int = fields[7]
    tif: int = fields[8]
    post_only: bool = fields[9]
    reduce_only: bool = fields[10]
    coid: str = fields[11]
    display: int = fields[14]
    expire_at: int = fields[15]
    checked = order_basics(state, acct, instrument, fields[1], side, size, coid)  # fields[1]: ts
    if isinstance(checked, list):
        return checked
    account, spec = checked
    price: int
    if tif != _GTC and tif != _IOC and tif != _FOK:
        return reject(ErrorCode.INVALID_TIME_IN_FORCE, "unknown time in force", acct, coid)
    if order_type == _LIMIT:
        price = fields[6]  # the limit price
        if price <= 0:
            return reject(ErrorCode.PRICE_NOT_POSITIVE, "price must be positive", acct, coid)
        if price % spec.tick_size:
            return reject(ErrorCode.PRICE_NOT_ON_TICK, "price is not a multiple of the tick size", acct, coid)
    elif order_type == _MARKET:
        mark = state.marks.get(instrument)
        if mark is None:
            return reject(ErrorCode.MARK_PRICE_UNAVAILABLE, "no mark price for a market order", acct, coid)
        if post_only:
            return reject(ErrorCode.INVALID_ORDER_TYPE, "a market order cannot be post-only", acct, coid)
        price = protection_price(mark, side, spec.tick_size, state.genesis.market_protection_ppm)
        if tif == _GTC:
            tif = _IOC
    elif _STOP_MARKET <= order_type <= _TAKE_PROFIT_LIMIT:
        return place_conditional(state, cmd, account, spec)
    else:
        return reject(ErrorCode.INVALID_ORDER_TYPE, "unknown order type", acct, coid)
    if coid:
        problem = client_id_problem(state, account, coid)
        if problem is not None:
            return reject(problem[0], problem[1], acct, coid)
    if display or expire_at or fields[12] or fields[13]:  # trigger price, trigger
        problem = resting_options(cmd, spec, tif)
        if problem is not None:
            return reject(problem[0], problem[1], acct, coid)
        if display >= size:
            display = 0  # shows everything: a plain order
    book = state.books[instrument]
    if post_only and book.crosses(side, price):
        return reject(ErrorCode.POST_ONLY_WOULD_CROSS, "post-only order would cross the book", acct, coid)
    if reduce_only:
        position = account.position_size(instrument)
        if increases(position, side):
            return reject(ErrorCode.REDUCE_ONLY_WOULD_INCREASE, "reduce-only order would increase the position",
                          acct, coid)
        if size > abs(position):
            size = abs(position)
            if display >= size:
                display = 0
    else:
        if state.halted and spec.underlying in state.halted and not only_reduces(account, instrument, side, size):
            return reject(ErrorCode.MARKET_HALTED, "the market is halted: only risk-reducing orders", acct,
                          coid)
        if len(account.orders) >= state.genesis.max_open_orders and tif == _GTC:
            return reject(ErrorCode.TOO_MANY_OPEN_ORDERS, "too many open orders", acct, coid)
        code = state.margin.check_order(account, spec, side, price, size)
        if code is not None:
            return reject(code, "insufficient margin for this order", acct, coid)
    if tif == _FOK and book.fillable(side, price, account.account_id, size) < size:
        return reject(ErrorCode.FILL_OR_KILL_NOT_FILLED, "fill-or-kill order cannot be filled completely",
                      acct, coid)

    # -- validated: from here on the command succeeds --
    if not order_id:
        order_id = state.next_order_id
        state.next_order_id = order_id + 1
    events: list[Event] = [OrderAccepted(order_id, account.account_id, instrument, side, price, size, tif,  # type: ignore[arg-type]
                                         post_only, reduce_only, coid, display, expire_at)]  # type: ignore[arg-type]
    filled = 0
    if book.crosses(side, price):
        filled = execute(state, spec, account, side, price, size, order_id, events)
    remaining = size - filled
    if remaining:
        if tif == _GTC:
            order: Order
            if display or expire_at:
                order = AdvancedOrder(order_id, account.account_id, instrument, side, price, size, tif,
                                      post_only, reduce_only, coid, display=display, expire_at=expire_at)
                if expire_at:
                    schedule_expiry(state, expire_at, order_id)
            else:
                order = Order(order_id, account.account_id, instrument, side, price, size, tif,
                              post_only, reduce_only, coid)
            order.remaining = remaining
            book.add(order)
            account.add_order(order, 10**spec.size_decimals)
            state.orders[order_id] = order
        else:
            events.append(OrderCancelled(order_id, account.account_id, instrument, remaining,  # type: ignore[arg-type]
                                         _IOC_REMAINDER))
    if filled and state.oracle_last and spec.underlying in state.oracle_last:
        check_after_fills(state, fields[1], events)
    return events


def execute(state: ExchangeState, spec, account: Account, side: int, price: int, size: int, order_id: int,
            events: list[Event], taker_fee_ppm: int | None = None) -> int:
    """Match a validated taker order against the book; settle every fill; return lots filled.

    Shared by PlaceOrder and AmendOrder (an amended order that crosses trades as a taker).
    """
    fee_ppm = spec.taker_fee_ppm if taker_fee_ppm is None else taker_fee_ppm
    instrument = spec.instrument_id
    accounts = state.accounts

    def on_fill(maker: Order, lots: int) -> None:
        events.append(settle_fill(state, spec, maker, account, side, lots, order_id, fee_ppm, events))
        maker_account = accounts[maker.account]
        if maker_account.open.get(instrument) is not None:
            enforce_reduce_only(state, maker_account, instrument, events)
        if account.open.get(instrument) is not None:
            enforce_reduce_only(state, account, instrument, events)

    def on_self_trade(maker: Order) -> None:
        cancel_resting(state, maker, CancelReason.SELF_TRADE, events, in_book=False)

    book = state.books[instrument]
    if not book.icebergs:
        return book.match(side, price, size, account.account_id, on_fill, on_self_trade)

    def on_refill(maker: Order) -> None:
        events.append(IcebergRefilled(maker.order_id, maker.account, instrument, maker.side, maker.price,  # type: ignore[arg-type]
                                      maker.shown, maker.remaining))  # type: ignore[arg-type]

    return book.match(side, price, size, account.account_id, on_fill, on_self_trade, on_refill)


def client_id_problem(state: ExchangeState, account: Account, coid: str) -> tuple[ErrorCode, str] | None:
    """(code, message) if ``coid`` is already used by an open order of the account
    (resting, conditional or TWAP) or too long; else None."""
    if coid in account.client_ids:
        return ErrorCode.DUPLICATE_CLIENT_ORDER_ID, "client order id already in use"
    if len(coid) > state.genesis.max_client_order_id_length:
        return ErrorCode.CLIENT_ORDER_ID_TOO_LONG, "client order id too long"
    return None


def resting_options(cmd, spec, tif: int) -> tuple[ErrorCode, str] | None:
    """Check a non-conditional order's iceberg ``display_size`` and good-til-time
    ``expire_at``: (code, message) of the first problem, or None. In order:
    INVALID_TRIGGER_PRICE (a non-conditional order carries no trigger), NOT_A_RESTING_ORDER
    (both options need an order that can rest: GTC, not market), then the values
    (``display_and_expiry_problem``)."""
    if cmd.trigger_price or cmd.trigger:
        return ErrorCode.INVALID_TRIGGER_PRICE, "only conditional order types take a trigger"
    if tif != _GTC or cmd.order_type == _MARKET:
        return ErrorCode.NOT_A_RESTING_ORDER, "display size and expire_at need a resting (GTC limit) order"
    return display_and_expiry_problem(cmd, spec)


def display_and_expiry_problem(cmd, spec) -> tuple[ErrorCode, str] | None:
    """Check the values of an order's ``display_size`` and ``expire_at`` (0: not set), for
    plain orders (resting_options) and conditionals (conditional.place_conditional); whether
    the order may carry them at all is the caller's rule. (code, message) of the first
    problem, or None: INVALID_DISPLAY_SIZE (not on the size increment or < the minimum
    size), DISPLAY_SIZE_ABOVE_TOTAL (> the order's size), EXPIRE_AT_NOT_IN_FUTURE (≤ the
    command's time, or negative)."""
    display = cmd.display_size
    if display:
        if display < 0 or display % spec.size_increment or display < spec.min_size:
            return ErrorCode.INVALID_DISPLAY_SIZE, "display size must be on the size increment and >= the minimum"
        if display > cmd.size:
            return ErrorCode.DISPLAY_SIZE_ABOVE_TOTAL, "display size is larger than the order's size"
    if cmd.expire_at and cmd.expire_at <= cmd.ts:
        return ErrorCode.EXPIRE_AT_NOT_IN_FUTURE, "expire_at must be after the command's time"
    if cmd.expire_at < 0:
        return ErrorCode.EXPIRE_AT_NOT_IN_FUTURE, "expire_at must be positive"
    return None


def protection_price(mark: int, side: int, tick: int, protection_ppm: int) -> int:
    """Market order limit: mark × (1 ± protection), rounded to a tick toward the mark
    (a buy's limit rounds down, a sell's up), never below one tick."""
    if side > 0:
        limit = mark * (PPM + protection_ppm) // PPM
        return max(limit // tick * tick, tick)
    limit = -((-mark * (PPM - protection_ppm)) // PPM)
    return max(-((-limit) // tick) * tick, tick)


from clearway.domain.conditional import place_conditional  # noqa: E402  (conditional.py imports this module)
from clearway.domain.good_til_time import schedule_expiry  # noqa: E402
