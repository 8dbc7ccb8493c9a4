"""The order parameters of ``private/buy`` / ``private/sell`` beyond a plain limit or
market order (issue 9), in Deribit's shapes where Deribit has them:

- ``type``: ``stop_limit``, ``stop_market``, ``take_limit``, ``take_market`` (conditional
  orders: held off the book until the trigger fires; domain ``conditional.py``), with
  ``trigger_price`` (USDC) and ``trigger`` (``index_price``, ``mark_price`` or
  ``last_price``). The ``*_market`` types ignore ``price``. ``trailing_stop`` and
  ``market_limit`` are answered 10033 ``not_implemented``.
- ``max_show`` (contracts): an iceberg order showing at most this much of its size;
  equal to ``amount`` (or absent) shows everything. Deribit's ``max_show: 0`` (a hidden
  order) is refused with 10036 ``invalid_max_show_amount``.
- ``time_in_force: "good_til_day"``: a resting order cancelled at the end of the trading
  day, 08:00 UTC (Deribit's session end), i.e. the next 08:00 UTC after the request.
- ``expire_at`` (Clearway): good-til-time, an explicit expiry in milliseconds since the
  epoch (UTC); the order (resting, or a waiting conditional) is cancelled at the first
  command at or after it. Not with ``good_til_day``.

Errors: a missing or meaningless parameter is 11029 ``invalid_arguments`` naming it
(``data.param``); values the domain refuses come back with the wire codes of errors.py
(e.g. a trigger already reached → 11036, a display size off the increment → 10036, an
expiry in the past → 11029).
"""

from __future__ import annotations

from dataclasses import dataclass

from clearway.api.errors import INVALID_ARGUMENTS, INVALID_MAX_SHOW_AMOUNT, NOT_IMPLEMENTED, ApiError
from clearway.api.names import Instrument, to_units
from clearway.api.rpc import Params
from clearway.domain.orders import OrderType, TimeInForce, TriggerSource

DAY_MS = 86_400_000
SESSION_END_MS = 8 * 3_600_000  # 08:00 UTC

ORDER_TYPES = {
    "limit": OrderType.LIMIT, "market": OrderType.MARKET,
    "stop_limit": OrderType.STOP_LIMIT, "stop_market": OrderType.STOP_MARKET,
    "take_limit": OrderType.TAKE_PROFIT_LIMIT, "take_market": OrderType.TAKE_PROFIT_MARKET,
}
"""Deribit ``type`` → orders.OrderType."""
UNSUPPORTED_TYPES = ("trailing_stop", "market_limit")
MARKET_TYPES = frozenset({OrderType.MARKET, OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET})
TRIGGERS = {"mark_price": TriggerSource.MARK, "index_price": TriggerSource.INDEX, "last_price": TriggerSource.LAST}
"""Deribit ``trigger`` → orders.TriggerSource."""
TIME_IN_FORCE = {"good_til_cancelled": TimeInForce.GTC, "good_til_day": TimeInForce.GTC,
                 "immediate_or_cancel": TimeInForce.IOC, "fill_or_kill": TimeInForce.FOK}


def invalid_argument(param: str, reason: str) -> ApiError:
    """11029 ``invalid_arguments`` with Deribit's ``data`` shape."""
    return ApiError(INVALID_ARGUMENTS, "invalid_arguments", {"reason": reason, "param": param})


@dataclass(frozen=True)
class OrderParams:
    """What ``private/buy`` / ``sell`` parsed, in domain units (PlaceOrder's fields)."""

    order_type: int
    price: int
    tif: int
    trigger_price: int
    trigger: int
    display_size: int
    expire_at: int

    @property
    def market(self) -> bool:
        return self.order_type in MARKET_TYPES


def next_session_end(now_ms: int) -> int:
    """The first 08:00 UTC strictly after ``now_ms`` (ms since the epoch)."""
    day = now_ms - now_ms % DAY_MS
    end = day + SESSION_END_MS
    return end if end > now_ms else end + DAY_MS


def parse_order_params(p: Params, inst: Instrument, lots: int, now_ms: int) -> OrderParams:
    """Parse ``type``, ``price``, ``time_in_force``, ``trigger_price``, ``trigger``,
    ``max_show`` and ``expire_at`` (module docstring). Raises ApiError."""
    kind = p.choice("type", (*ORDER_TYPES, *UNSUPPORTED_TYPES), "limit")
    if kind in UNSUPPORTED_TYPES:
        raise ApiError(NOT_IMPLEMENTED, "not_implemented", {"reason": f"order type {kind} is not supported",
                                                             "param": "type"})
    order_type = int(ORDER_TYPES[kind])
    conditional = order_type not in (OrderType.LIMIT, OrderType.MARKET)
    price = 0 if order_type in MARKET_TYPES else inst.parse_price(p.get("price"))
    tif_name = p.choice("time_in_force", tuple(TIME_IN_FORCE), "good_til_cancelled")
    tif = int(TIME_IN_FORCE[tif_name])
    trigger_price = trigger = 0
    if conditional:
        if not p.has("trigger_price"):
            raise invalid_argument("trigger_price", f"required for type {kind}")
        trigger_price = inst.parse_price(p.get("trigger_price"), "trigger_price")
        name = p.choice("trigger", tuple(TRIGGERS))
        if name is None:
            raise invalid_argument("trigger", f"required for type {kind}: index_price, mark_price or last_price")
        trigger = int(TRIGGERS[name])
    elif p.has("trigger_price") or p.has("trigger"):
        raise invalid_argument("trigger_price" if p.has("trigger_price") else "trigger",
                               "only for stop_limit, stop_market, take_limit and take_market orders")
    display = 0
    if p.has("max_show"):
        shown = to_units(p.get("max_show"), inst.spec.size_decimals, "max_show", INVALID_MAX_SHOW_AMOUNT,
                         "invalid_max_show_amount")
        if shown < 0:
            raise ApiError(INVALID_MAX_SHOW_AMOUNT, "invalid_max_show_amount",
                           {"reason": "max_show must not be negative", "param": "max_show"})
        if shown == 0:
            raise ApiError(INVALID_MAX_SHOW_AMOUNT, "invalid_max_show_amount",
                           {"reason": "hidden orders (max_show 0) are not supported", "param": "max_show"})
        if shown > lots:
            raise ApiError(INVALID_MAX_SHOW_AMOUNT, "invalid_max_show_amount",
                           {"reason": "max_show is larger than amount", "param": "max_show"})
        display = 0 if shown == lots else shown
    expire_at = 0
    if p.has("expire_at"):
        if tif_name == "good_til_day":
            raise invalid_argument("expire_at", "not with time_in_force good_til_day")
        expire_at = p.int("expire_at", lo=1, hi=2**62)
    elif tif_name == "good_til_day":
        expire_at = next_session_end(now_ms)
    return OrderParams(order_type, price, tif, trigger_price, trigger, display, expire_at)
