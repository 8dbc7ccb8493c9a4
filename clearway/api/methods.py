"""The JSON-RPC methods: Deribit's names and shapes, and Clearway's own.

Deribit (https://docs.deribit.com), as ccxt's deribit client reads them:
public/auth, get_time, test, hello, status, get_currencies, get_instruments,
get_instrument, get_order_book, ticker, get_index_price, get_index_price_names,
get_last_trades_by_instrument[_and_time], get_last_trades_by_currency[_and_time],
get_book_summary_by_instrument / _by_currency, subscribe, unsubscribe[_all],
set_heartbeat; private/buy, sell, edit, cancel, cancel_all, cancel_all_by_instrument,
cancel_all_by_currency, cancel_by_label, get_open_orders[_by_instrument|_by_currency],
get_order_state, get_user_trades_by_instrument[_and_time], _by_currency[_and_time],
_by_order, get_positions, get_position, get_account_summary, get_account_summaries,
get_current_deposit_address, subscribe, unsubscribe, list_api_keys, remove_api_key,
logout.

Clearway: public/create_api_key and public/revoke_api_key (EIP-712 signed by the
owner, auth.py), private/get_margin_breakdown (accounts.py), public/get_state_root,
public/get_batch_status, public/get_l1_info, public/request_withdrawal (EIP-712 signed by
the owner, never an API key), public/get_order_typed_data and
public/get_withdrawal_typed_data (what to sign); private/place_twap, cancel_twap,
get_twap_state and cancel_orders (advanced.py).

private/buy and sell also take the advanced-order parameters of orderparams.py
(stop/take-profit ``type`` with ``trigger_price`` and ``trigger``, ``max_show``,
``good_til_day``, Clearway's ``expire_at``).

Deviations from Deribit, by design: ``post_only`` always rejects a crossing order
(Deribit's price-adjusting variant is not offered; ccxt sends ``reject_post_only``
anyway); a ``label`` is the domain's client order id, unique among the account's open
orders; order ids are decimal strings; hidden orders (``max_show`` 0) and trailing stops
are not offered.
"""

from __future__ import annotations

import asyncio

from clearway.api import accounts as acc
from clearway.api.auth import normalise_address, parse_signature
from clearway.api.errors import (
    NOT_IMPLEMENTED, ORDER_NOT_FOUND, RETRY, SYSTEM_MAINTENANCE, ApiError, from_code, invalid_params, unauthorized,
)
from clearway.api.names import SETTLEMENT_CURRENCY, Instrument, parse_usdc, usdc
from clearway.api.orderparams import parse_order_params
from clearway.api.readmodel import OrderView, TradeView
from clearway.api.rpc import Acked, Context, Params, method
from clearway.domain import events as ev
from clearway.domain.commands import AmendOrder, CancelAll, CancelOrder, PlaceOrder, Withdraw
from clearway.domain.errors import ErrorCode
from clearway.engine.errors import CommandRejected, NodeFailed

VERSION = "clearway-api 1.0"
_KINDS = ("future", "option", "any", "spot", "future_combo", "option_combo")
_SORTING = ("asc", "desc", "default")


# ---------------------------------------------------------------------------- helpers
def _instrument(api, p: Params, name: str = "instrument_name") -> Instrument:
    text = p.str(name, required=True)
    inst = api.model.instrument(text)
    if inst is None:
        raise invalid_params(name, "instrument not found")
    return inst


def _owner(ctx: Context) -> str:
    return ctx.key.owner


def _trading_account(api, ctx: Context) -> int:
    account = api.account_id(_owner(ctx))
    if account is None:
        raise from_code(ErrorCode.UNKNOWN_ACCOUNT, "no deposit credited to this address yet")
    return account


def _submit(api, ctx: Context, command):
    try:
        ticket = api.submit(command)
    except CommandRejected as exc:
        raise from_code(exc.code, exc.message) from None
    ctx.pending = ticket
    return ticket


async def _acked(ticket) -> list:
    """The command's events once durable; its rejection as an ApiError."""
    try:
        events = await ticket
    except NodeFailed as exc:
        raise ApiError(SYSTEM_MAINTENANCE, "system_maintenance", {"reason": str(exc)}) from None
    return _check_events(events)


def _check_events(events: list) -> list:
    """``events`` unless the command was rejected (then its ApiError)."""
    first = events[0] if events else None
    if type(first) is ev.Rejected:
        raise from_code(first.code, first.message)
    return events


async def _durable(api, ctx: Context, ticket, owner: str, signed) -> list:
    """The events of a submitted command once durable (its rejection as an ApiError), its
    owner's signature recorded for the batch data if it carried one, and the read model
    caught up with it."""
    events = await _acked(ticket)
    if signed is not None:
        api.record_signed(ticket.seq, ticket.command, owner, *signed)
    await _fresh(api, ctx, ticket.seq)
    return events


async def _fresh(api, ctx: Context, seq: int = 0) -> None:
    """Wait until the read model has every durable command (and this context's last one)."""
    pending = ctx.pending
    if pending is not None and not pending.done():
        try:
            await pending
        except NodeFailed:
            pass
    target = max(seq, api.node.durable_seq)
    try:
        await api.model.wait_for(target, api.config.wait_timeout_s)
    except (TimeoutError, asyncio.TimeoutError):
        raise ApiError(RETRY, "retry", {"reason": "read model is catching up"}) from None


async def _after_fresh(api, ctx: Context, build):
    """``build()`` once the read model has every command acknowledged so far (a client
    sees its own orders in the book it asks for right after)."""
    await _fresh(api, ctx)
    return build()


async def _query(api, fn, *args):
    """Run ``fn(state, *args)`` on the sequencer; its result."""
    try:
        future = api.node.query(lambda state: fn(state, *args))
    except CommandRejected as exc:
        raise from_code(exc.code, exc.message) from None
    return await asyncio.wrap_future(future)


def _order_id(p: Params) -> int:
    value = p.get("order_id")
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**62:
        raise ApiError(ORDER_NOT_FOUND, "order_not_found", {"reason": "unknown order_id", "param": "order_id"})
    return value


def _count(p: Params, default: int = 10) -> int:
    return p.int("count", default, lo=1, hi=1_000)


def _currency_match(inst: Instrument, currency: str | None) -> bool:
    return currency in (None, "any", SETTLEMENT_CURRENCY, inst.underlying)


def _kind_match(inst: Instrument, kind: str | None) -> bool:
    return kind in (None, "any") or kind == inst.kind


def _currency(p: Params, required: bool = False) -> str | None:
    value = p.str("currency", required=required, max_len=16)
    return value.upper() if value is not None and value != "any" else value


def _signed(api, p: Params, command, owner: str):
    """Verify an optional EIP-712 signature of ``command`` by ``owner`` (params
    ``signature``, ``nonce``); returns (nonce, signature bytes) or None."""
    if not p.has("signature"):
        return None
    signing = api.config.signing
    if signing is None:
        raise ApiError(NOT_IMPLEMENTED, "not_implemented", {"reason": "signed commands are not configured"})
    sig = parse_signature(p.get("signature"))
    nonce = p.int("nonce", required=True, hi=2**64 - 1)
    try:
        signer = signing.recover(command, owner, nonce, sig)
    except (ValueError, KeyError):
        signer = None
    if signer is None or signer.lower() != owner:
        raise unauthorized("signature is not the account owner's")
    if not api.use_nonce(owner, nonce):
        raise unauthorized("nonce already used")
    return nonce, sig


def _order_from_events(api, events: list, ts: int, order_id: int | None = None):
    """OrderView of the order a PlaceOrder (or AmendOrder of ``order_id``) created, and
    the TradeViews in which it was the taker."""
    model = api.model
    order: OrderView | None = None
    trades: list[TradeView] = []
    for event in events:
        t = type(event)
        if t is ev.OrderAccepted and order is None:
            order = OrderView(event.order_id, event.account, model.instruments[event.instrument], event.side,
                              event.price, event.size, event.tif, event.post_only, event.reduce_only,
                              event.client_order_id, False, ts)
            order.display = event.display_size
            order.shown = min(event.display_size, event.size)
            order.expire_at = event.expire_at
        elif t is ev.ConditionalAccepted and order is None:
            order = OrderView(event.order_id, event.account, model.instruments[event.instrument], event.side,
                              event.price, event.size, event.tif, event.post_only, event.reduce_only,
                              event.client_order_id, False, ts)
            order.state = "untriggered"
            order.order_type = event.order_type
            order.trigger, order.trigger_price, order.triggered = event.trigger, event.trigger_price, False
            order.display, order.expire_at = event.display_size, event.expire_at
        elif t is ev.Trade and order is not None and event.taker_order_id == order.order_id:
            order.filled += event.size
            order.remaining -= event.size
            order.filled_notional += event.size * event.price
            order.commission += event.taker_fee
            inst = model.instruments[event.instrument]
            trades.append(TradeView(event, inst, ts, 0, 0, model.marks.get(event.instrument, 0),
                                    model.index.get(inst.underlying, 0), False))
        elif t is ev.OrderCancelled and order is not None and event.order_id == order.order_id:
            order.state = "cancelled"
    if order is not None and order.state == "open" and order.remaining <= 0:
        order.state = "filled"
    return order, trades


# ---------------------------------------------------------------------------- public
@method("public/get_time")
def get_time(api, ctx, p):
    return api.config.clock()


@method("public/test")
def test(api, ctx, p):
    return {"version": VERSION}


@method("public/hello")
def hello(api, ctx, p):
    return {"version": VERSION}


@method("public/status")
def status(api, ctx, p):
    failed = api.node.failure is not None
    return {"locked": "true" if failed else "false", "locked_indices": [], "last_seq": api.node.last_seq,
            "durable_seq": api.node.durable_seq}


@method("public/set_heartbeat")
def set_heartbeat(api, ctx, p):
    p.int("interval", 10, lo=10, hi=3_600)
    return "ok"


@method("public/disable_heartbeat")
def disable_heartbeat(api, ctx, p):
    return "ok"


@method("public/get_currencies")
def get_currencies(api, ctx, p):
    out = [{"currency": SETTLEMENT_CURRENCY, "currency_long": "USD Coin", "coin_type": "ERC20",
            "fee_precision": 6, "min_confirmations": 1, "min_withdrawal_fee": 0.0, "withdrawal_fee": 0.0,
            "withdrawal_priorities": [], "in_cross_collateral_pool": False, "network_currency": "ETH",
            "decimals": 6}]
    for underlying in sorted({i.underlying for i in api.model.instruments.values()}):
        out.append({"currency": underlying, "currency_long": underlying, "coin_type": "INDEX",
                    "fee_precision": 6, "min_confirmations": 0, "min_withdrawal_fee": 0.0, "withdrawal_fee": 0.0,
                    "withdrawal_priorities": [], "in_cross_collateral_pool": False,
                    "note": "underlying of USDC-settled contracts; not a deposit currency"})
    return out


@method("public/get_instruments")
def get_instruments(api, ctx, p):
    currency = _currency(p)
    kind = p.choice("kind", _KINDS)
    listed = api.model.delisted if p.bool("expired") else api.model.instruments
    return [inst.info for inst in listed.values() if _currency_match(inst, currency) and _kind_match(inst, kind)]


@method("public/get_instrument")
def get_instrument(api, ctx, p):
    return _instrument(api, p).info


@method("public/get_index_price_names")
def get_index_price_names(api, ctx, p):
    return sorted(f"{u.lower()}_usdc" for u in {i.underlying for i in api.model.instruments.values()})


@method("public/get_index_price")
def get_index_price(api, ctx, p):
    name = p.str("index_name", required=True, max_len=32)
    underlying = name.upper().removesuffix("_USDC").removesuffix("_USD")
    price = api.model.index.get(underlying)
    if price is None:
        raise invalid_params("index_name", "unknown index")
    return {"index_price": usdc(price), "estimated_delivery_price": usdc(price)}


def ticker_json(api, inst: Instrument) -> dict:
    model = api.model
    instrument = inst.instrument_id
    book = model.books[instrument]
    bid, ask = book.best(1), book.best(-1)
    now = model.ts or api.config.clock()
    volume, high, low = model.day_stats(instrument, now)
    mark = model.marks.get(instrument)
    index = model.index.get(inst.underlying)
    last = model.last_price.get(instrument)
    out = {
        "timestamp": now,
        "state": "open",
        "instrument_name": inst.name,
        "last_price": usdc(last) if last is not None else None,
        "mark_price": usdc(mark) if mark is not None else None,
        "index_price": usdc(index) if index is not None else None,
        "estimated_delivery_price": usdc(index) if index is not None else None,
        "settlement_price": usdc(mark) if mark is not None else None,
        "best_bid_price": usdc(bid[0]) if bid else None,
        "best_bid_amount": inst.amount(bid[1]) if bid else 0.0,
        "best_ask_price": usdc(ask[0]) if ask else None,
        "best_ask_amount": inst.amount(ask[1]) if ask else 0.0,
        "open_interest": 0.0,
        "stats": {"volume": inst.amount(volume), "high": usdc(high) if high else None,
                  "low": usdc(low) if low else None, "price_change": None,
                  "volume_usd": None},
    }
    if not inst.is_option:
        out.update({"funding_8h": 0.0, "current_funding": 0.0, "interest_value": 0.0})
    else:
        out.update({"underlying_index": f"{inst.underlying.lower()}_usdc",
                    "underlying_price": usdc(index) if index is not None else None, "interest_rate": 0.0})
    return out


@method("public/ticker")
def ticker(api, ctx, p):
    inst = _instrument(api, p)
    return _after_fresh(api, ctx, lambda: ticker_json(api, inst))


def book_json(api, inst: Instrument, depth: int | None) -> dict:
    book = api.model.books[inst.instrument_id]
    out = ticker_json(api, inst)
    out["change_id"] = book.change_id
    out["bids"] = [[usdc(price), inst.amount(lots)] for price, lots in book.levels(1, depth)]
    out["asks"] = [[usdc(price), inst.amount(lots)] for price, lots in book.levels(-1, depth)]
    return out


@method("public/get_order_book")
def get_order_book(api, ctx, p):
    inst = _instrument(api, p)
    depth = p.int("depth", 20, lo=1, hi=10_000)
    return _after_fresh(api, ctx, lambda: book_json(api, inst, depth))


@method("public/get_order_book_by_instrument_id")
def get_order_book_by_id(api, ctx, p):
    instrument = api.model.instruments.get(p.int("instrument_id", required=True))
    if instrument is None:
        raise invalid_params("instrument_id", "instrument not found")
    depth = p.int("depth", 20, lo=1, hi=10_000)
    return _after_fresh(api, ctx, lambda: book_json(api, instrument, depth))


def _summary(api, inst: Instrument) -> dict:
    t = ticker_json(api, inst)
    bid, ask = t["best_bid_price"], t["best_ask_price"]
    return {"instrument_name": inst.name, "base_currency": inst.underlying, "quote_currency": "USDC",
            "mark_price": t["mark_price"], "last": t["last_price"], "bid_price": bid, "ask_price": ask,
            "mid_price": (bid + ask) / 2 if bid is not None and ask is not None else None,
            "high": t["stats"]["high"], "low": t["stats"]["low"], "volume": t["stats"]["volume"],
            "open_interest": 0.0, "creation_timestamp": t["timestamp"],
            "estimated_delivery_price": t["index_price"], "underlying_price": t["index_price"]}


@method("public/get_book_summary_by_instrument")
def book_summary_by_instrument(api, ctx, p):
    return [_summary(api, _instrument(api, p))]


@method("public/get_book_summary_by_currency")
def book_summary_by_currency(api, ctx, p):
    currency, kind = _currency(p, required=True), p.choice("kind", _KINDS)
    return [_summary(api, i) for i in api.model.instruments.values()
            if _currency_match(i, currency) and _kind_match(i, kind)]


def _trade_page(trades: list, p: Params, render, time_range: bool) -> dict:
    count = _count(p)
    if time_range:
        start = p.int("start_timestamp", 0)
        end = p.int("end_timestamp", 2**62)
        trades = [t for t in trades if start <= t.ts <= end]
    start_seq, end_seq = p.int("start_seq"), p.int("end_seq")
    if start_seq is not None:
        trades = [t for t in trades if t.trade_seq >= start_seq]
    if end_seq is not None:
        trades = [t for t in trades if t.trade_seq <= end_seq]
    sorting = p.choice("sorting", _SORTING, "desc")
    ordered = trades if sorting == "asc" else list(reversed(trades))
    return {"trades": [render(t) for t in ordered[:count]], "has_more": len(ordered) > count}


@method("public/get_last_trades_by_instrument")
def last_trades_by_instrument(api, ctx, p):
    inst = _instrument(api, p)
    return _after_fresh(api, ctx, lambda: _trade_page(list(api.model.trades[inst.instrument_id]), p,
                                                      TradeView.public_json, False))


@method("public/get_last_trades_by_instrument_and_time")
def last_trades_by_instrument_and_time(api, ctx, p):
    inst = _instrument(api, p)
    return _after_fresh(api, ctx, lambda: _trade_page(list(api.model.trades[inst.instrument_id]), p,
                                                      TradeView.public_json, True))


def _currency_trades(api, p: Params) -> list:
    currency, kind = _currency(p, required=True), p.choice("kind", _KINDS)
    out = []
    for inst in api.model.instruments.values():
        if _currency_match(inst, currency) and _kind_match(inst, kind):
            out.extend(api.model.trades[inst.instrument_id])
    out.sort(key=lambda t: t.trade_id)
    return out


@method("public/get_last_trades_by_currency")
def last_trades_by_currency(api, ctx, p):
    return _trade_page(_currency_trades(api, p), p, TradeView.public_json, False)


@method("public/get_last_trades_by_currency_and_time")
def last_trades_by_currency_and_time(api, ctx, p):
    return _trade_page(_currency_trades(api, p), p, TradeView.public_json, True)


# ---------------------------------------------------------------------------- auth & keys
@method("public/auth")
def auth(api, ctx, p):
    result = api.keys.authenticate(p.raw)
    key = api.keys.bearer(result["access_token"])
    ctx.key = key
    if ctx.conn is not None:
        ctx.conn.key = key
    return result


@method("private/logout", private=True)
def logout(api, ctx, p):
    if ctx.conn is not None:
        ctx.conn.key = None
        ctx.key = None
    return "ok"


@method("public/create_api_key")
def create_api_key(api, ctx, p):
    key = api.keys.create_signed(p.raw)
    return {**key.public(), "client_secret": key.client_secret}


@method("public/revoke_api_key")
def revoke_api_key(api, ctx, p):
    key = api.keys.revoke_signed(p.raw)
    api.hub.drop_key(key)
    return key.public()


@method("public/get_api_key_typed_data")
def api_key_typed_data(api, ctx, p):
    from clearway.api.auth import api_key_typed_data as typed

    primary = p.choice("primary_type", ("CreateApiKey", "RevokeApiKey"), "CreateApiKey")
    owner = normalise_address(p.get("owner"))
    message = {"owner": owner, "timestamp": p.int("timestamp", required=True),
               "nonce": p.int("nonce", required=True)}
    if primary == "CreateApiKey":
        message.update(name=p.str("name", "", max_len=64), scope=p.str("scope", "trade", max_len=16))
    else:
        message["clientId"] = p.str("client_id", required=True, max_len=64)
    return typed(api.keys.chain_id, primary, message)


@method("private/list_api_keys", private=True)
def list_api_keys(api, ctx, p):
    return [k.public() for k in api.keys.owned(_owner(ctx))]


@method("private/remove_api_key", private=True)
def remove_api_key(api, ctx, p):
    client_id = p.str("id", max_len=64) or p.str("client_id", required=True, max_len=64)
    key = api.keys.revoke(_owner(ctx), client_id)
    api.hub.drop_key(key)
    return "ok"


# ---------------------------------------------------------------------------- trading
def _place(api, ctx: Context, p: Params, side: int, fresh: bool = False):
    if not fresh and api.account_id(_owner(ctx)) is None:
        return _place_fresh(api, ctx, p, side)  # a new account: let the read model see its deposit
    inst = _instrument(api, p)
    lots = inst.parse_amount(p.get("amount") if p.has("amount") else p.get("contracts"),
                             "amount" if p.has("amount") else "contracts")
    op = parse_order_params(p, inst, lots, api.config.clock())
    market = op.market
    post_only = p.bool("post_only")
    reduce_only = p.bool("reduce_only")
    label = p.str("label", "", max_len=64)
    owner = _owner(ctx)
    account = _trading_account(api, ctx)
    command = PlaceOrder(0, 0, account, inst.instrument_id, side, lots, op.price, op.order_type, op.tif, post_only,
                         reduce_only, label, op.trigger_price, op.trigger, op.display_size, op.expire_at)
    signed = _signed(api, p, command, owner)
    ticket = _submit(api, ctx, command)
    return Acked(ticket, lambda events: _placed(api, ticket, events, account, market, owner, signed))


async def _place_fresh(api, ctx, p, side: int):
    await _fresh(api, ctx)
    return await _place(api, ctx, p, side, fresh=True)


def _placed(api, ticket, events: list, account: int, market: bool, owner: str, signed) -> dict:
    """The answer of private/buy / sell from the acknowledged command's events."""
    _check_events(events)
    sequenced = ticket.command
    if signed is not None:
        api.record_signed(ticket.seq, sequenced, owner, *signed)
    order, trades = _order_from_events(api, events, sequenced.ts)
    if order.triggered is None:
        order.market = market
        order.order_type = sequenced.order_type
    for trade in trades:
        trade.taker_market = market
    return {"order": order.to_json(), "trades": [t.user_json(account) for t in trades]}


@method("private/buy", private=True, matching=True, write=True)
def buy(api, ctx, p):
    return _place(api, ctx, p, 1)


@method("private/sell", private=True, matching=True, write=True)
def sell(api, ctx, p):
    return _place(api, ctx, p, -1)


def _own_order(api, ctx: Context, order_id: int) -> OrderView | None:
    order = api.model.orders.get(order_id)
    if order is not None and api.model.account_owner.get(order.account) != _owner(ctx):
        raise ApiError(ORDER_NOT_FOUND, "order_not_found", {"reason": "unknown order_id", "param": "order_id"})
    return order


@method("private/edit", private=True, matching=True, write=True)
def edit(api, ctx, p):
    order_id = _order_id(p)
    account = _trading_account(api, ctx)
    order = _own_order(api, ctx, order_id)
    if order is None or (not p.has("price") and ctx.pending is not None and not ctx.pending.done()):
        return _edit_later(api, ctx, p, order_id, account)
    return _edit_now(api, ctx, p, order, account)


async def _edit_later(api, ctx, p, order_id: int, account: int):
    await _fresh(api, ctx)
    order = _own_order(api, ctx, order_id)
    if order is None or order.state != "open":
        raise ApiError(ORDER_NOT_FOUND, "order_not_found", {"reason": "no open order with this id"})
    return await _edit_now(api, ctx, p, order, account)


def _edit_now(api, ctx, p, order: OrderView, account: int):
    inst = order.instrument
    lots = inst.parse_amount(p.get("amount") if p.has("amount") else p.get("contracts"))
    price = inst.parse_price(p.get("price")) if p.has("price") else order.price
    command = AmendOrder(0, 0, account, order.order_id, lots, price)
    owner = _owner(ctx)
    signed = _signed(api, p, command, owner)
    ticket = _submit(api, ctx, command)
    return _edited(api, ctx, ticket, order.order_id, account, owner, signed)


async def _edited(api, ctx, ticket, order_id: int, account: int, owner: str, signed):
    events = await _durable(api, ctx, ticket, owner, signed)
    order = api.model.orders.get(order_id)
    return {"order": order.to_json(), "trades": [t.user_json(account) for t in _taker_trades(api, events, order_id)]}


def _taker_trades(api, events: list, order_id: int) -> list:
    """The read model's TradeViews of the trades in ``events`` where ``order_id`` took."""
    ids = {e.trade_id for e in events if type(e) is ev.Trade and e.taker_order_id == order_id}
    if not ids:
        return []
    found = []
    for event in events:
        if type(event) is ev.Trade and event.trade_id in ids:
            recent = api.model.trades.get(event.instrument, ())
            found.extend(t for t in reversed(recent) if t.trade_id == event.trade_id)
    return found


@method("private/cancel", private=True, matching=True, write=True)
def cancel(api, ctx, p):
    order_id = _order_id(p)
    account = _trading_account(api, ctx)
    _own_order(api, ctx, order_id)
    command = CancelOrder(0, 0, account, order_id)
    owner = _owner(ctx)
    signed = _signed(api, p, command, owner)
    ticket = _submit(api, ctx, command)
    return _cancelled(api, ctx, ticket, order_id, owner, signed)


async def _cancelled(api, ctx, ticket, order_id: int, owner: str, signed):
    await _durable(api, ctx, ticket, owner, signed)
    order = api.model.orders.get(order_id)
    if order is None:
        return {"order_id": str(order_id), "order_state": "cancelled"}
    return order.to_json()


@method("private/cancel_by_label", private=True, matching=True, write=True)
def cancel_by_label(api, ctx, p):
    label = p.str("label", required=True, max_len=64)
    account = _trading_account(api, ctx)
    ticket = _submit(api, ctx, CancelOrder(0, 0, account, 0, label))
    return _count_cancelled([ticket], ignore=(ErrorCode.UNKNOWN_ORDER,))


async def _count_cancelled(tickets, ignore=()) -> int:
    total = 0
    for ticket in tickets:
        try:
            events = await _acked(ticket)
        except ApiError as exc:
            if exc.data and exc.data.get("clearway_code") in [int(c) for c in ignore]:
                continue
            raise
        total += sum(1 for e in events if type(e) is ev.OrderCancelled)
    return total


def _cancel_all(api, ctx, instruments: list[int] | None):
    account = api.account_id(_owner(ctx))
    if account is None:
        return 0
    if instruments is None:
        tickets = [_submit(api, ctx, CancelAll(0, 0, account))]
    else:
        tickets = [_submit(api, ctx, CancelAll(0, 0, account, i)) for i in instruments]
    return _count_cancelled(tickets)


@method("private/cancel_all", private=True, matching=True, write=True)
def cancel_all(api, ctx, p):
    return _cancel_all(api, ctx, None)


@method("private/cancel_all_by_instrument", private=True, matching=True, write=True)
def cancel_all_by_instrument(api, ctx, p):
    return _cancel_all(api, ctx, [_instrument(api, p).instrument_id])


@method("private/cancel_all_by_currency", private=True, matching=True, write=True)
def cancel_all_by_currency(api, ctx, p):
    currency, kind = _currency(p, required=True), p.choice("kind", _KINDS)
    ids = [i.instrument_id for i in api.model.instruments.values()
           if _currency_match(i, currency) and _kind_match(i, kind)]
    return _cancel_all(api, ctx, ids)


# ---------------------------------------------------------------------------- private reads
async def _open_orders(api, ctx, match) -> list:
    await _fresh(api, ctx)
    account = api.account_id(_owner(ctx))
    orders = api.model.open_by_account.get(account, {}) if account is not None else {}
    return [o.to_json() for o in sorted(orders.values(), key=lambda o: o.order_id) if match(o)]


_TYPE_FILTERS = {
    "all": None, "limit": {1}, "market": {2}, "trigger_all": {3, 4, 5, 6}, "trigger": {3, 4, 5, 6},
    "stop_all": {3, 4}, "stop_market": {3}, "stop_limit": {4}, "take_all": {5, 6}, "take_market": {5},
    "take_limit": {6}, "trailing_all": set(), "trailing_stop": set(),
}
"""Deribit's ``type`` filter of get_open_orders* → orders.OrderType values (None: all).
``trigger_all`` (and Clearway's alias ``trigger``) are the conditional orders, waiting
("untriggered") or triggered and resting."""


def _order_type_filter(p: Params):
    wanted = _TYPE_FILTERS[p.choice("type", tuple(_TYPE_FILTERS), "all")]
    return lambda o: wanted is None or o.order_type in wanted


@method("private/get_open_orders", private=True)
def get_open_orders(api, ctx, p):
    kind, type_ok = p.choice("kind", _KINDS), _order_type_filter(p)
    return _open_orders(api, ctx, lambda o: _kind_match(o.instrument, kind) and type_ok(o))


@method("private/get_open_orders_by_instrument", private=True)
def get_open_orders_by_instrument(api, ctx, p):
    inst, type_ok = _instrument(api, p), _order_type_filter(p)
    return _open_orders(api, ctx, lambda o: o.instrument is inst and type_ok(o))


@method("private/get_open_orders_by_currency", private=True)
def get_open_orders_by_currency(api, ctx, p):
    currency, kind, type_ok = _currency(p, required=True), p.choice("kind", _KINDS), _order_type_filter(p)
    return _open_orders(api, ctx, lambda o: _currency_match(o.instrument, currency)
                        and _kind_match(o.instrument, kind) and type_ok(o))


@method("private/get_order_state", private=True)
def get_order_state(api, ctx, p):
    return _order_state(api, ctx, _order_id(p))


async def _order_state(api, ctx, order_id: int):
    await _fresh(api, ctx)
    order = _own_order(api, ctx, order_id)
    if order is None:
        raise ApiError(ORDER_NOT_FOUND, "order_not_found", {"reason": "unknown order_id", "param": "order_id"})
    return order.to_json()


async def _user_trades(api, ctx, p: Params, match, time_range: bool) -> dict:
    await _fresh(api, ctx)
    account = api.account_id(_owner(ctx))
    history = list(api.model.trades_by_account.get(account, ())) if account is not None else []
    return _trade_page([t for t in history if match(t)], p, lambda t: t.user_json(account), time_range)


@method("private/get_user_trades_by_instrument", private=True)
def user_trades_by_instrument(api, ctx, p):
    inst = _instrument(api, p)
    p.bool("include_old")
    return _user_trades(api, ctx, p, lambda t: t.instrument is inst, False)


@method("private/get_user_trades_by_instrument_and_time", private=True)
def user_trades_by_instrument_and_time(api, ctx, p):
    inst = _instrument(api, p)
    return _user_trades(api, ctx, p, lambda t: t.instrument is inst, True)


@method("private/get_user_trades_by_currency", private=True)
def user_trades_by_currency(api, ctx, p):
    currency, kind = _currency(p, required=True), p.choice("kind", _KINDS)
    return _user_trades(api, ctx, p, lambda t: _currency_match(t.instrument, currency)
                        and _kind_match(t.instrument, kind), False)


@method("private/get_user_trades_by_currency_and_time", private=True)
def user_trades_by_currency_and_time(api, ctx, p):
    currency, kind = _currency(p, required=True), p.choice("kind", _KINDS)
    return _user_trades(api, ctx, p, lambda t: _currency_match(t.instrument, currency)
                        and _kind_match(t.instrument, kind), True)


@method("private/get_user_trades_by_order", private=True)
def user_trades_by_order(api, ctx, p):
    order_id = _order_id(p)

    async def run():
        page = await _user_trades(api, ctx, Params({"count": 1_000, "sorting": p.get("sorting", "asc")}),
                                  lambda t: order_id in (t.maker_order_id, t.taker_order_id), False)
        return page["trades"]
    return run()


@method("private/get_positions", private=True)
def get_positions(api, ctx, p):
    currency, kind = _currency(p), p.choice("kind", _KINDS)
    return _query(api, acc.positions, api.account_id(_owner(ctx)), currency, kind)


@method("private/get_position", private=True)
def get_position(api, ctx, p):
    inst = _instrument(api, p)

    async def run():
        found = await _query(api, acc.positions, api.account_id(_owner(ctx)))
        for position in found:
            if position["instrument_name"] == inst.name:
                return position
        return {"instrument_name": inst.name, "kind": inst.kind, "direction": "zero", "size": 0.0,
                "size_currency": 0.0, "average_price": 0.0, "floating_profit_loss": 0.0,
                "initial_margin": 0.0, "maintenance_margin": 0.0, "mark_price": None}
    return run()


def _deposit_address(api) -> str | None:
    settlement = api.config.settlement
    if settlement is None:
        return None
    try:
        return settlement.l1_info().get("vault")
    except Exception:
        return None


@method("private/get_account_summary", private=True)
def get_account_summary(api, ctx, p):
    currency = _currency(p) or SETTLEMENT_CURRENCY
    if currency != SETTLEMENT_CURRENCY:
        raise invalid_params("currency", "accounts hold USDC only")
    owner = _owner(ctx)
    return _query(api, acc.account_summary, api.account_id(owner), owner, _deposit_address(api))


@method("private/get_account_summaries", private=True)
def get_account_summaries(api, ctx, p):
    owner = _owner(ctx)

    async def run():
        summary = await _query(api, acc.account_summary, api.account_id(owner), owner, _deposit_address(api))
        return {"id": summary["id"], "username": owner, "type": "main", "summaries": [summary]}
    return run()


@method("private/get_margin_breakdown", private=True)
def get_margin_breakdown(api, ctx, p):
    owner = _owner(ctx)
    return _query(api, acc.margin_breakdown, api.account_id(owner), owner)


@method("private/get_current_deposit_address", private=True)
def get_current_deposit_address(api, ctx, p):
    currency = _currency(p) or SETTLEMENT_CURRENCY
    if currency != SETTLEMENT_CURRENCY:
        raise invalid_params("currency", "deposits are USDC only")
    address = _deposit_address(api)
    if address is None:
        return None
    return {"address": address, "currency": SETTLEMENT_CURRENCY, "type": "deposit", "creation_timestamp": 0,
            "owner": _owner(ctx),
            "instructions": "approve the vault for the token, then call deposit(amount) (or deposit(amount, owner))"}


# ---------------------------------------------------------------------------- Clearway: L1 side
def _settlement_call(api, name: str) -> dict:
    settlement = api.config.settlement
    if settlement is None:
        return {"available": False, "reason": "no L1 settlement is wired to this node"}
    try:
        return {"available": True, **getattr(settlement, name)()}
    except Exception as exc:  # the chain may be down: say so, never fail the server
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}"[:200]}


@method("public/get_l1_info")
def get_l1_info(api, ctx, p):
    out = _settlement_call(api, "l1_info")
    out["settlement_currency"] = SETTLEMENT_CURRENCY
    return out


@method("public/get_batch_status")
def get_batch_status(api, ctx, p):
    out = _settlement_call(api, "batch_status")
    out.update(last_seq=api.node.last_seq, durable_seq=api.node.durable_seq)
    return out


@method("public/get_state_root")
def get_state_root(api, ctx, p):
    settlement = api.config.settlement

    async def run():
        if settlement is None:
            return {"available": False, "reason": "no state commitment is wired to this node",
                    "last_seq": api.node.last_seq}
        root, seq = await _query(api, lambda state: (settlement.state_root(state), state.last_seq))
        return {"available": root is not None, "state_root": root, "last_seq": seq,
                "note": "root of the live state; L1 holds the roots of submitted batches (get_batch_status)"}
    return run()


def _withdraw_command(api, p: Params, owner: str) -> Withdraw:
    amount = parse_usdc(p.get("amount"), "amount")
    account = api.account_id(owner)
    if account is None:
        raise from_code(ErrorCode.UNKNOWN_ACCOUNT, "no deposit credited to this address yet")
    return Withdraw(0, 0, account, amount)


@method("public/get_withdrawal_typed_data")
def withdrawal_typed_data(api, ctx, p):
    signing = api.config.signing
    if signing is None:
        raise ApiError(NOT_IMPLEMENTED, "not_implemented", {"reason": "signed commands are not configured"})
    owner = normalise_address(p.get("owner"))
    command = _withdraw_command(api, p, owner)
    return signing.typed_data(command, owner, p.int("nonce", required=True, hi=2**64 - 1))


@method("public/get_order_typed_data")
def order_typed_data(api, ctx, p):
    signing = api.config.signing
    if signing is None:
        raise ApiError(NOT_IMPLEMENTED, "not_implemented", {"reason": "signed commands are not configured"})
    owner = normalise_address(p.get("owner"))
    inst = _instrument(api, p)
    side = {"buy": 1, "sell": -1}[p.choice("direction", ("buy", "sell"), "buy")]
    account = api.account_id(owner)
    lots = inst.parse_amount(p.get("amount"))
    op = parse_order_params(p, inst, lots, api.config.clock())
    command = PlaceOrder(0, 0, account if account is not None else -1, inst.instrument_id, side, lots, op.price,
                         op.order_type, op.tif, p.bool("post_only"), p.bool("reduce_only"),
                         p.str("label", "", max_len=64), op.trigger_price, op.trigger, op.display_size, op.expire_at)
    return signing.typed_data(command, owner, p.int("nonce", required=True, hi=2**64 - 1))


@method("public/request_withdrawal", matching=True)
def request_withdrawal(api, ctx, p):
    """Withdraw USDC to the owner's address on L1: authorised only by the owner's EIP-712
    ``Withdraw`` signature (an API key cannot withdraw). Paid once the batch carrying
    it is finalised on L1 (the vault's ``withdraw()``)."""
    owner = normalise_address(p.get("owner"))
    if not p.has("signature"):
        raise unauthorized("a withdrawal needs the owner's EIP-712 signature")
    command = _withdraw_command(api, p, owner)
    signed = _signed(api, p, command, owner)
    ticket = _submit(api, ctx, command)

    async def run():
        events = await _acked(ticket)
        api.record_signed(ticket.seq, ticket.command, owner, *signed)
        withdrawn = next(e for e in events if type(e) is ev.Withdrawn)
        return {"owner": owner, "amount": usdc(withdrawn.amount), "cash": usdc(withdrawn.cash),
                "seq": ticket.seq, "state": "accepted",
                "note": "claimable on L1 once the batch with this seq is finalised"}
    return run()


# ---------------------------------------------------------------------------- subscriptions
@method("public/subscribe")
def public_subscribe(api, ctx, p):
    return api.hub.subscribe(ctx, p.list("channels", 500), private=False)


@method("private/subscribe", private=True)
def private_subscribe(api, ctx, p):
    return api.hub.subscribe(ctx, p.list("channels", 500), private=True)


@method("public/unsubscribe")
def public_unsubscribe(api, ctx, p):
    return api.hub.unsubscribe(ctx, p.list("channels", 500))


@method("private/unsubscribe", private=True)
def private_unsubscribe(api, ctx, p):
    return api.hub.unsubscribe(ctx, p.list("channels", 500))


@method("public/unsubscribe_all")
def public_unsubscribe_all(api, ctx, p):
    api.hub.unsubscribe_all(ctx)
    return "ok"


@method("private/unsubscribe_all", private=True)
def private_unsubscribe_all(api, ctx, p):
    api.hub.unsubscribe_all(ctx)
    return "ok"
