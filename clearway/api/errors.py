"""API errors: JSON-RPC 2.0 errors with Deribit's numeric codes.

Every failure the API reports is an :class:`ApiError` carrying a wire code. Rejections of
the domain (``ErrorCode``) and refusals of the engine (``EngineErrorCode``) are mapped to
wire codes in ONE table, :data:`WIRE_CODES` (STYLE.md: "the API maps codes to wire codes
in one table; the domain never knows the wire"). The codes are Deribit's, chosen so that
an unmodified ccxt client raises the matching exception class (``ccxt/deribit.py``,
``exceptions``): 10009 → InsufficientFunds, 11054 → InvalidOrder (post-only),
10004 → OrderNotFound, 13009 → AuthenticationError, 11029 → BadRequest, 10028 →
DDoSProtection, -32602 / -32601 / -32700 / -32600 → BadRequest.
"""

from __future__ import annotations

from typing import Any

from clearway.domain.errors import ErrorCode
from clearway.engine.errors import EngineErrorCode

# JSON-RPC 2.0 (https://www.jsonrpc.org/specification, "Error object")
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# Deribit codes (https://docs.deribit.com, "Error codes"), by the name Deribit gives them
QTY_TOO_LOW = 10002
ORDER_NOT_FOUND = 10004
NOT_ENOUGH_FUNDS = 10009
BOOK_CLOSED = 10012
MAX_OPEN_ORDERS = 10013
INVALID_INSTRUMENT = 10020
INVALID_AMOUNT = 10021
INVALID_PRICE = 10023
INVALID_ORDER_ID = 10025
TOO_MANY_REQUESTS = 10028
NOT_IMPLEMENTED = 10033
INVALID_MAX_SHOW_AMOUNT = 10036
RETRY = 10040
PRICE_WRONG_TICK = 10043
STOP_PRICE_WRONG_TICK = 10044
MATCHING_ENGINE_QUEUE_FULL = 10047
ALREADY_FILLED = 11008
INVALID_ARGUMENTS = 11029
OTHER_REJECT = 11030
INVALID_STOPPX = 11036
UNSUPPORTED_ARG_COMBINATION = 11047
BAD_REQUEST = 11050
SYSTEM_MAINTENANCE = 11051
POST_ONLY_REJECT = 11054
INVALID_ADDRESS = 11090
INVALID_CREDENTIALS = 13004
UNAUTHORIZED = 13009
FORBIDDEN = 13021

_T = tuple[int, str]

WIRE_CODES: dict[int, _T] = {
    # -- domain validation 1xxx --------------------------------------------------------
    ErrorCode.UNKNOWN_INSTRUMENT: (INVALID_INSTRUMENT, "invalid_or_unsupported_instrument"),
    ErrorCode.PRICE_NOT_ON_TICK: (PRICE_WRONG_TICK, "price_wrong_tick"),
    ErrorCode.SIZE_NOT_ON_INCREMENT: (INVALID_AMOUNT, "invalid_amount"),
    ErrorCode.SIZE_NOT_POSITIVE: (INVALID_AMOUNT, "invalid_amount"),
    ErrorCode.SIZE_BELOW_MINIMUM: (QTY_TOO_LOW, "qty_too_low"),
    ErrorCode.PRICE_NOT_POSITIVE: (INVALID_PRICE, "invalid_price"),
    ErrorCode.UNKNOWN_ACCOUNT: (NOT_ENOUGH_FUNDS, "not_enough_funds"),  # no deposit yet
    ErrorCode.DUPLICATE_CLIENT_ORDER_ID: (INVALID_ARGUMENTS, "invalid_arguments"),
    ErrorCode.UNKNOWN_ORDER: (ORDER_NOT_FOUND, "order_not_found"),
    ErrorCode.NOT_ORDER_OWNER: (ORDER_NOT_FOUND, "order_not_found"),  # never tell whose it is
    ErrorCode.INVALID_TIME_IN_FORCE: (INVALID_ARGUMENTS, "invalid_arguments"),
    ErrorCode.INVALID_ORDER_TYPE: (INVALID_ARGUMENTS, "invalid_arguments"),
    ErrorCode.INVALID_SIDE: (INVALID_ARGUMENTS, "invalid_arguments"),
    ErrorCode.INSTRUMENT_EXISTS: (INVALID_ARGUMENTS, "invalid_arguments"),
    ErrorCode.INVALID_INSTRUMENT: (INVALID_ARGUMENTS, "invalid_arguments"),
    ErrorCode.INVALID_AMOUNT: (INVALID_AMOUNT, "invalid_amount"),
    ErrorCode.DEPOSIT_OUT_OF_ORDER: (OTHER_REJECT, "other_reject"),
    ErrorCode.INSTRUMENT_NOT_ACTIVE: (BOOK_CLOSED, "book_closed"),
    ErrorCode.INVALID_ADDRESS: (INVALID_ADDRESS, "invalid_addr"),
    ErrorCode.CLIENT_ORDER_ID_TOO_LONG: (INVALID_ARGUMENTS, "invalid_arguments"),
    ErrorCode.AMEND_NOTHING_TO_CHANGE: (INVALID_ARGUMENTS, "invalid_arguments"),
    ErrorCode.AMEND_SIZE_NOT_ABOVE_FILLED: (ALREADY_FILLED, "already_filled"),
    ErrorCode.INVALID_PRICE: (INVALID_PRICE, "invalid_price"),
    ErrorCode.TOO_MANY_OPEN_ORDERS: (MAX_OPEN_ORDERS, "max_open_orders"),
    # -- oracle reports 15xx (operator and reporter commands; never sent through the API)
    **{code: (OTHER_REJECT, "other_reject") for code in ErrorCode if 1500 <= code < 1600},
    # -- domain risk 2xxx ---------------------------------------------------------------
    ErrorCode.INSUFFICIENT_MARGIN: (NOT_ENOUGH_FUNDS, "not_enough_funds"),
    ErrorCode.REDUCE_ONLY_WOULD_INCREASE: (OTHER_REJECT, "other_reject"),
    ErrorCode.INSUFFICIENT_FREE_COLLATERAL: (NOT_ENOUGH_FUNDS, "not_enough_funds"),
    ErrorCode.MARK_PRICE_UNAVAILABLE: (RETRY, "retry"),
    # -- domain matching 3xxx -----------------------------------------------------------
    ErrorCode.POST_ONLY_WOULD_CROSS: (POST_ONLY_REJECT, "post_only_reject"),
    ErrorCode.FILL_OR_KILL_NOT_FILLED: (OTHER_REJECT, "other_reject"),
    ErrorCode.NO_LIQUIDITY: (OTHER_REJECT, "other_reject"),
    # -- engine ingress 4xxx and node state 5xxx ----------------------------------------
    EngineErrorCode.MALFORMED_COMMAND: (INVALID_ARGUMENTS, "invalid_arguments"),
    EngineErrorCode.OVERSIZED_COMMAND: (INVALID_ARGUMENTS, "invalid_arguments"),
    EngineErrorCode.UNKNOWN_COMMAND_TYPE: (INVALID_ARGUMENTS, "invalid_arguments"),
    EngineErrorCode.OVERLOADED: (MATCHING_ENGINE_QUEUE_FULL, "matching_engine_queue_full"),
    EngineErrorCode.NODE_CLOSED: (SYSTEM_MAINTENANCE, "system_maintenance"),
    EngineErrorCode.NODE_FAILED: (SYSTEM_MAINTENANCE, "system_maintenance"),
}
"""Domain and engine code → (Deribit wire code, Deribit message). Every ``ErrorCode`` and
``EngineErrorCode`` member has an entry (a test checks it): a code the domain adds later
gets its group's default below until it is given a closer Deribit code here."""

_GROUP_DEFAULTS = ((1000, 1500, (INVALID_ARGUMENTS, "invalid_arguments")),   # validation
                   (1500, 2000, (OTHER_REJECT, "other_reject")),             # oracle, operator
                   (2000, 3000, (NOT_ENOUGH_FUNDS, "not_enough_funds")),     # risk
                   (3000, 10_000, (OTHER_REJECT, "other_reject")))           # matching and later
_BY_NAME = {  # codes newer than this table's first version (looked up by name: absent ones are skipped)
    # the underlying's oracle is stale: the book takes only cancels and risk-reducing orders
    "MARKET_HALTED": (BOOK_CLOSED, "book_closed"),
    # an L1 forced-withdrawal request served twice (bridge command, like DEPOSIT_OUT_OF_ORDER)
    "FORCED_REQUEST_SEEN": (OTHER_REJECT, "other_reject"),
    # this deployment has no oracle reporters: the feature is not available
    "ORACLE_NOT_CONFIGURED": (NOT_IMPLEMENTED, "not_implemented"),
    # advanced orders (issue 9): Deribit's codes for stop/trigger prices, max_show and ids
    "INVALID_TRIGGER_SOURCE": (INVALID_ARGUMENTS, "invalid_arguments"),
    "INVALID_TRIGGER_PRICE": (INVALID_STOPPX, "invalid_stoppx_for_index_or_last"),
    "TRIGGER_WRONG_SIDE": (INVALID_STOPPX, "invalid_stoppx_for_index_or_last"),
    "TRIGGER_PRICE_UNAVAILABLE": (RETRY, "retry"),  # no mark/index/last price yet
    "INVALID_DISPLAY_SIZE": (INVALID_MAX_SHOW_AMOUNT, "invalid_max_show_amount"),
    "DISPLAY_SIZE_ABOVE_TOTAL": (INVALID_MAX_SHOW_AMOUNT, "invalid_max_show_amount"),
    "NOT_A_RESTING_ORDER": (UNSUPPORTED_ARG_COMBINATION, "unsupported_arg_combination"),
    "EXPIRE_AT_NOT_IN_FUTURE": (INVALID_ARGUMENTS, "invalid_arguments"),
    "TWAP_INVALID_INTERVAL": (INVALID_ARGUMENTS, "invalid_arguments"),
    "TWAP_INVALID_DURATION": (INVALID_ARGUMENTS, "invalid_arguments"),
    "TWAP_INVALID_PRICE_TOLERANCE": (INVALID_ARGUMENTS, "invalid_arguments"),
    "TWAP_SIZE_TOO_SMALL": (QTY_TOO_LOW, "qty_too_low"),
    "BATCH_CANCEL_EMPTY": (INVALID_ARGUMENTS, "invalid_arguments"),
    "BATCH_CANCEL_TOO_MANY": (INVALID_ARGUMENTS, "invalid_arguments"),
    "BATCH_CANCEL_DUPLICATE_ID": (INVALID_ARGUMENTS, "invalid_arguments"),
    "INVALID_ORDER_ID": (INVALID_ORDER_ID, "invalid_order_id"),
}
for _name, _wire in _BY_NAME.items():
    if hasattr(ErrorCode, _name):
        WIRE_CODES[getattr(ErrorCode, _name)] = _wire
EXPLICIT: frozenset[int] = frozenset(WIRE_CODES)
"""Codes with an entry of their own (the rest fall back to their group's default)."""
for _code in ErrorCode:
    if _code not in WIRE_CODES:
        WIRE_CODES[_code] = next(wire for lo, hi, wire in _GROUP_DEFAULTS if lo <= _code < hi)


class ApiError(Exception):
    """An error answered as a JSON-RPC error object.

    Attributes
    ----------
    code : int
        Wire code (Deribit's or JSON-RPC's).
    message : str
        Deribit's short message (``"not_enough_funds"``, ``"Invalid params"``…).
    data : dict | None
        ``{"reason": …, "param": …}`` or, for a domain rejection, ``{"reason": …,
        "clearway_code": <ErrorCode value>}``.
    """

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


def from_code(code: int, reason: str = "") -> ApiError:
    """The ApiError of a domain ``ErrorCode`` or an ``EngineErrorCode`` (via WIRE_CODES)."""
    wire, message = WIRE_CODES.get(code, (OTHER_REJECT, "other_reject"))
    name = getattr(code, "name", str(code)).lower()
    return ApiError(wire, message, {"reason": reason or name, "clearway_code": int(code), "clearway_error": name})


def invalid_params(param: str, reason: str) -> ApiError:
    """-32602 with Deribit's ``data`` shape (``reason``, ``param``)."""
    return ApiError(INVALID_PARAMS, "Invalid params", {"reason": reason, "param": param})


def unauthorized(reason: str) -> ApiError:
    return ApiError(UNAUTHORIZED, "unauthorized", {"reason": reason})
