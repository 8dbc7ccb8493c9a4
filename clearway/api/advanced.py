"""Clearway's JSON-RPC methods for the advanced orders Deribit has no method for (issue 9):
TWAP parent orders and batch cancel by order ids. (Stop/take-profit, iceberg and
good-til-time orders go through ``private/buy`` / ``private/sell``: orderparams.py.)

- ``private/place_twap`` — ``instrument_name``, ``direction`` ("buy" | "sell"),
  ``amount`` (contracts), ``duration`` and ``interval`` (seconds; 30 ≤ interval ≤ 3,600,
  300 ≤ duration ≤ 86,400, duration a multiple of interval: dYdX v4's bounds),
  ``price_tolerance`` (a fraction, 0 ≤ t < 1, e.g. "0.01"; each IOC suborder is priced at
  the mark × (1 ± t), toward the mark on the tick) or ``price`` (USDC, every suborder's
  limit), optional ``reduce_only`` and ``label``. Answers the TWAP object (below) after the
  first suborder, which runs in the same command.
- ``private/cancel_twap`` — ``order_id``: stops the parent (the suborder of the current
  interval has already run: suborders are immediate-or-cancel). Answers the TWAP object.
- ``private/get_twap_state`` — ``order_id``: the TWAP object: ``order_id``,
  ``instrument_name``, ``direction``, ``order_state`` ("open", "filled", "closed" when
  the last interval ran or the rest is below the minimum size, "cancelled"),
  ``end_reason``, ``amount``, ``filled_amount``, ``remaining_amount``, ``average_price``,
  ``duration``, ``interval`` (s), ``intervals``, ``intervals_left``, ``price_tolerance``,
  ``limit_price``, ``reduce_only``, ``label``, ``creation_timestamp``,
  ``last_update_timestamp``, ``next_suborder_timestamp`` (ms), ``suborder_ids`` (the
  suborders are ordinary immediate-or-cancel orders: get_order_state, user trades).
- ``private/cancel_orders`` — ``order_ids``: 1–100 distinct ids (strings or integers) of
  the caller's open orders (resting, untriggered conditional or TWAP parents), cancelled
  in one command, in the given order. Answers ``{"cancelled": [order objects], "failed":
  [{"order_id", "code", "message", "reason"}]}`` — an id that is not an open order of the
  caller fails alone (10004 order_not_found); an empty list, more than 100 ids, a repeated
  id or an id ≤ 0 refuses the whole batch (11029 invalid_arguments; 10025
  invalid_order_id).

Signed variants (DESIGN.md "Order authorisation"): ``place_twap``, ``cancel_twap`` and
``cancel_orders`` take optional ``signature`` (65 bytes hex, the owner's EIP-712 signature)
and ``nonce`` (uint64, each once per owner), like ``private/buy``. The messages are
``Twap``, ``Cancel`` (of the parent's id) and ``CancelOrders``
(clearway.commitment.authorisation); the command then reaches the batch data as signed,
so verifiers check it instead of trusting the operator. A signature that does not recover
to the caller's address is refused (13009 unauthorized) and nothing is submitted. What to
sign: ``public/get_twap_typed_data`` (the ``place_twap`` parameters plus ``owner`` and
``nonce``) and ``public/get_cancel_orders_typed_data`` (``owner``, ``order_ids``,
``nonce``); for ``cancel_twap``, ``public/get_cancel_typed_data`` (``owner``,
``order_id``, ``nonce``).
"""

from __future__ import annotations

from clearway.api.auth import normalise_address
from clearway.api.errors import INVALID_ARGUMENTS, NOT_IMPLEMENTED, ORDER_NOT_FOUND, ApiError, from_code
from clearway.api.methods import _check_events, _durable, _fresh, _instrument, _order_id, _owner, _signed, _submit, \
    _trading_account
from clearway.api.names import to_units
from clearway.api.orderparams import invalid_argument
from clearway.api.readmodel import TwapView
from clearway.api.rpc import Acked, Params, method
from clearway.domain import events as ev
from clearway.domain.commands import CancelOrder, CancelOrders, PlaceTwap

MAX_BATCH_CANCEL = 100


@method("private/place_twap", private=True, matching=True, write=True)
def place_twap(api, ctx, p: Params):
    owner = _owner(ctx)
    command = _twap_command(api, p, _trading_account(api, ctx))
    signed = _signed(api, p, command, owner)
    ticket = _submit(api, ctx, command)

    def finish(events: list) -> dict:
        twap = _twap_from_events(api, events, ticket.command.ts)
        if signed is not None:
            api.record_signed(ticket.seq, ticket.command, owner, *signed)
        return twap.to_json()
    return Acked(ticket, finish)


def _twap_command(api, p: Params, account: int) -> PlaceTwap:
    """The PlaceTwap of ``place_twap``'s parameters (module docstring) for ``account``."""
    inst = _instrument(api, p)
    side = {"buy": 1, "sell": -1}[_required_choice(p, "direction", ("buy", "sell"))]
    lots = inst.parse_amount(p.get("amount"))
    duration = p.int("duration", required=True, hi=10**9)
    interval = p.int("interval", required=True, hi=10**9)
    if p.has("price") and p.has("price_tolerance"):
        raise invalid_argument("price_tolerance", "give either price or price_tolerance")
    limit_price = inst.parse_price(p.get("price")) if p.has("price") else 0
    tolerance = 0
    if p.has("price_tolerance"):  # a fraction → parts per million
        tolerance = to_units(p.get("price_tolerance"), 6, "price_tolerance", INVALID_ARGUMENTS, "invalid_arguments")
    return PlaceTwap(0, 0, account, inst.instrument_id, side, lots, duration * 1000, interval * 1000, tolerance,
                     limit_price, p.bool("reduce_only"), p.str("label", "", max_len=64))


def _required_choice(p: Params, name: str, choices: tuple[str, ...]) -> str:
    value = p.choice(name, choices)
    if value is None:
        raise invalid_argument(name, "one of " + ", ".join(choices))
    return value


def _twap_from_events(api, events: list, ts: int) -> TwapView:
    """The TwapView of the parent a PlaceTwap created, with its first interval."""
    _check_events(events)
    model = api.model
    twap: TwapView | None = None
    notional: dict[int, int] = {}
    for event in events:
        t = type(event)
        if t is ev.TwapAccepted:
            twap = TwapView.accepted(event, model.instruments[event.instrument], ts)
        elif t is ev.Trade:
            notional[event.taker_order_id] = notional.get(event.taker_order_id, 0) + event.size * event.price
        elif twap is not None and t is ev.TwapProgress and event.order_id == twap.order_id:
            twap.progress(event, notional.get(event.suborder_id, 0), ts)
        elif twap is not None and t is ev.TwapEnded and event.order_id == twap.order_id:
            twap.end(event, ts)
    if twap is None:
        raise ApiError(ORDER_NOT_FOUND, "order_not_found", {"reason": "no TWAP was created"})
    return twap


def _own_twap(api, ctx, order_id: int) -> TwapView:
    twap = api.model.twaps.get(order_id)
    if twap is None or api.model.account_owner.get(twap.account) != _owner(ctx):
        raise ApiError(ORDER_NOT_FOUND, "order_not_found", {"reason": "no TWAP order with this id",
                                                            "param": "order_id"})
    return twap


@method("private/get_twap_state", private=True)
def get_twap_state(api, ctx, p: Params):
    order_id = _order_id(p)

    async def run():
        await _fresh(api, ctx)
        return _own_twap(api, ctx, order_id).to_json()
    return run()


@method("private/cancel_twap", private=True, matching=True, write=True)
def cancel_twap(api, ctx, p: Params):
    order_id = _order_id(p)
    account = _trading_account(api, ctx)
    owner = _owner(ctx)
    command = CancelOrder(0, 0, account, order_id)
    signed = _signed(api, p, command, owner)

    async def run():
        await _fresh(api, ctx)
        twap = _own_twap(api, ctx, order_id)
        if twap.state != "open":
            return twap.to_json()
        await _durable(api, ctx, _submit(api, ctx, command), owner, signed)
        return api.model.twaps[order_id].to_json()
    return run()


@method("private/cancel_orders", private=True, matching=True, write=True)
def cancel_orders(api, ctx, p: Params):
    ids = _order_ids(p)
    account = _trading_account(api, ctx)
    owner = _owner(ctx)
    command = CancelOrders(0, 0, account, ids)
    signed = _signed(api, p, command, owner)
    ticket = _submit(api, ctx, command)

    async def run():
        events = await _durable(api, ctx, ticket, owner, signed)
        model = api.model
        cancelled, failed = [], []
        for event in events:
            t = type(event)
            if t is ev.OrderCancelled:
                order = model.orders.get(event.order_id)
                cancelled.append(order.to_json() if order is not None else
                                 {"order_id": str(event.order_id), "order_state": "cancelled"})
            elif t is ev.TwapEnded:
                twap = model.twaps.get(event.order_id)
                cancelled.append(twap.to_json() if twap is not None else
                                 {"order_id": str(event.order_id), "order_state": "cancelled"})
            elif t is ev.CancelFailed:
                error = from_code(event.code)
                failed.append({"order_id": str(event.order_id), "code": error.code, "message": error.message,
                               "reason": error.data.get("clearway_error") if error.data else None})
        return {"cancelled": cancelled, "failed": failed}
    return run()


def _order_ids(p: Params) -> tuple[int, ...]:
    """``order_ids`` as integers (decimal strings or integers); the domain checks count,
    duplicates and sign (CancelOrders)."""
    ids = []
    for value in p.list("order_ids", MAX_BATCH_CANCEL * 10):
        if isinstance(value, str) and value.isdigit() and len(value) < 19:
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not -2**62 < value < 2**62:
            raise invalid_argument("order_ids", "order ids are decimal strings or integers")
        ids.append(value)
    return tuple(ids)


# ---------------------------------------------------------------------------- what to sign
def _typed(api, p: Params, build) -> dict:
    """EIP-712 typed data of ``build(account, owner)`` for ``owner`` and ``nonce``."""
    signing = api.config.signing
    if signing is None:
        raise ApiError(NOT_IMPLEMENTED, "not_implemented", {"reason": "signed commands are not configured"})
    owner = normalise_address(p.get("owner"))
    account = api.account_id(owner)
    command = build(account if account is not None else -1)
    return signing.typed_data(command, owner, p.int("nonce", required=True, hi=2**64 - 1))


@method("public/get_twap_typed_data")
def twap_typed_data(api, ctx, p: Params):
    return _typed(api, p, lambda account: _twap_command(api, p, account))


@method("public/get_cancel_orders_typed_data")
def cancel_orders_typed_data(api, ctx, p: Params):
    return _typed(api, p, lambda account: CancelOrders(0, 0, account, _order_ids(p)))


@method("public/get_cancel_typed_data")
def cancel_typed_data(api, ctx, p: Params):
    return _typed(api, p, lambda account: CancelOrder(0, 0, account, _order_id(p)))
