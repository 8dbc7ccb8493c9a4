"""Instruments as the API names them, and the conversion of wire numbers to domain units.

Names are Deribit's linear USDC names, so clients such as ccxt parse our instruments as
linear, USDC-settled contracts whose amounts are in the base currency:

=====================================  =================================
domain (``InstrumentSpec.name``)        API (``Instrument.name``)
=====================================  =================================
``BTC-PERP``                            ``BTC_USDC-PERPETUAL``
``BTC-31MAR23-25000-C``                 ``BTC_USDC-31MAR23-25000-C``
``XRP-30JUN23-0.625-C``                 ``XRP_USDC-30JUN23-0d625-C`` (Deribit writes a
                                        decimal point in a strike as ``d``)
=====================================  =================================

Numbers: the wire carries prices in USDC per contract and amounts in contracts (one
contract = one unit of the underlying) as JSON numbers; the domain holds micro-USDC and
lots of 10**-size_decimals (units.py). Outgoing numbers are ``int / 10**decimals`` as a
float: correctly rounded, and its shortest repr is the exact decimal for every value the
domain can hold below 10**15 units. Incoming numbers (strings, integers or floats) are
converted exactly with ``Decimal`` and refused when they have more decimals than the
unit allows or are out of range — never rounded.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from clearway.api.errors import ApiError, INVALID_AMOUNT, INVALID_PRICE, PRICE_WRONG_TICK, invalid_params
from clearway.domain.instruments import MONTHS, InstrumentSpec, Kind, OptionType
from clearway.domain.units import QUOTE_DECIMALS, format_decimal

SETTLEMENT_CURRENCY = "USDC"
PERPETUAL_EXPIRY_MS = 32_503_708_800_000  # what Deribit reports for a perpetual (year 3000)
MAX_UNITS = 2**62  # any price, amount or id beyond this is refused (commands hold int64)
_MAX_DIGITS = 40


class Instrument:
    """The API's view of one listed instrument (names, scales, Deribit fields)."""

    __slots__ = ("spec", "instrument_id", "name", "underlying", "scale", "is_option", "kind", "info")

    def __init__(self, spec: InstrumentSpec, created_ms: int = 0) -> None:
        self.spec = spec
        self.instrument_id = spec.instrument_id
        self.underlying = spec.underlying
        self.name = api_name(spec)
        self.scale = 10**spec.size_decimals
        self.is_option = spec.kind == Kind.OPTION
        self.kind = "option" if self.is_option else "future"
        self.info = self._info(created_ms)

    def _info(self, created_ms: int) -> dict:
        spec = self.spec
        out = {
            "instrument_name": self.name,
            "instrument_id": spec.instrument_id,
            "kind": self.kind,
            "instrument_type": "linear",
            "base_currency": spec.underlying,
            "quote_currency": SETTLEMENT_CURRENCY,
            "counter_currency": SETTLEMENT_CURRENCY,
            "settlement_currency": SETTLEMENT_CURRENCY,
            "price_index": f"{spec.underlying.lower()}_usdc",
            "contract_size": 1.0,
            "tick_size": spec.tick_size / 10**QUOTE_DECIMALS,
            "tick_size_steps": [],
            "min_trade_amount": spec.min_size / self.scale,
            "maker_commission": spec.maker_fee_ppm / 1e6,
            "taker_commission": spec.taker_fee_ppm / 1e6,
            "block_trade_commission": spec.taker_fee_ppm / 1e6,
            "is_active": True,
            "rfq": False,
            "creation_timestamp": created_ms,
            "clearway_name": spec.name,
            "size_decimals": spec.size_decimals,
            "amount_step": spec.size_increment / self.scale,
        }
        if self.is_option:
            out.update({
                "settlement_period": "month",
                "expiration_timestamp": spec.expiry_ms,
                "strike": spec.strike / 10**QUOTE_DECIMALS,
                "option_type": "call" if spec.option_type == OptionType.CALL else "put",
            })
        else:
            out.update({
                "settlement_period": "perpetual",
                "expiration_timestamp": PERPETUAL_EXPIRY_MS,
                "future_type": "linear",
                "max_leverage": int(1_000_000 // spec.imf_ppm) if spec.imf_ppm else 0,
            })
        return out

    def price(self, value: int) -> float:
        """micro-USDC per contract → USDC per contract (float)."""
        return value / 1_000_000

    def amount(self, lots: int) -> float:
        """Lots → contracts (float)."""
        return lots / self.scale

    def parse_amount(self, value: object, param: str = "amount") -> int:
        """Contracts on the wire → lots; ApiError 10021 if not a positive whole number of lots."""
        lots = to_units(value, self.spec.size_decimals, param, INVALID_AMOUNT, "invalid_amount")
        if lots <= 0:
            raise ApiError(INVALID_AMOUNT, "invalid_amount", {"reason": "amount must be positive", "param": param})
        return lots

    def parse_price(self, value: object, param: str = "price") -> int:
        """USDC on the wire → micro-USDC; ApiError 10023 if unparsable or not positive, 10043
        if finer than a micro-USDC (the domain checks the instrument's tick)."""
        try:
            price = to_units(value, QUOTE_DECIMALS, param, INVALID_PRICE, "invalid_price")
        except ApiError as exc:
            if exc.data and exc.data.get("reason") == "too many decimals":
                raise ApiError(PRICE_WRONG_TICK, "price_wrong_tick", exc.data) from None
            raise
        if price <= 0:
            raise ApiError(INVALID_PRICE, "invalid_price", {"reason": "price must be positive", "param": param})
        return price


def api_name(spec: InstrumentSpec) -> str:
    """Deribit linear USDC name of ``spec`` (module docstring)."""
    prefix = f"{spec.underlying}_{SETTLEMENT_CURRENCY}"
    if spec.kind == Kind.PERPETUAL:
        return f"{prefix}-PERPETUAL"
    day = datetime.fromtimestamp(spec.expiry_ms / 1000, tz=timezone.utc)
    date = f"{day.day}{MONTHS[day.month - 1]}{day.year % 100:02d}"
    strike = format_decimal(spec.strike, QUOTE_DECIMALS).replace(".", "d")
    letter = "C" if spec.option_type == OptionType.CALL else "P"
    return f"{prefix}-{date}-{strike}-{letter}"


def to_units(value: object, decimals: int, param: str, code: int, message: str) -> int:
    """Exact conversion of a wire number (decimal string, int or float; never bool) to an
    integer with ``decimals`` places. Raises ApiError(code, message) when it is not a
    finite number, has more places than ``decimals`` (reason "too many decimals") or is
    not below MAX_UNITS in magnitude."""
    if isinstance(value, bool):
        raise ApiError(code, message, {"reason": "not a number", "param": param})
    if isinstance(value, int):
        units = value * 10**decimals if abs(value) < MAX_UNITS else MAX_UNITS
    else:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ApiError(code, message, {"reason": "not a finite number", "param": param})
            text = repr(value)
        elif isinstance(value, str) and 0 < len(value) <= _MAX_DIGITS:
            text = value.strip()
        else:
            raise ApiError(code, message, {"reason": "not a number", "param": param})
        units = _plain_units(text, decimals)
        if units is not None:
            if units >= MAX_UNITS:
                raise ApiError(code, message, {"reason": "out of range", "param": param})
            return units
        try:
            number = Decimal(text)
        except (InvalidOperation, ValueError):
            raise ApiError(code, message, {"reason": "not a number", "param": param}) from None
        if not number.is_finite():
            raise ApiError(code, message, {"reason": "not a finite number", "param": param})
        if number and number.adjusted() > 20:
            raise ApiError(code, message, {"reason": "out of range", "param": param})
        if number and number.adjusted() < -40:
            raise ApiError(code, message, {"reason": "too many decimals", "param": param})
        scaled = number.scaleb(decimals)
        if scaled != scaled.to_integral_value():
            raise ApiError(code, message, {"reason": "too many decimals", "param": param})
        units = int(scaled)
    if abs(units) >= MAX_UNITS:
        raise ApiError(code, message, {"reason": "out of range", "param": param})
    return units


def _plain_units(text: str, decimals: int) -> int | None:
    """Fast exact path of ``to_units`` for plain non-negative decimals ("0.001", "50000",
    "60000.5"): whole and fraction digits only, at most ``decimals`` places; None for
    anything else (signs, exponents, too many places…), which takes the Decimal path."""
    whole, dot, frac = text.partition(".")
    if not (whole.isdigit() and whole.isascii()) or len(whole) > 20 or len(frac) > decimals:
        return None
    if dot and not (frac.isdigit() and frac.isascii()):
        return None
    return int(whole) * 10**decimals + (int(frac) * 10**(decimals - len(frac)) if frac else 0)


def usdc(micro: int) -> float:
    """micro-USDC → USDC (float)."""
    return micro / 1_000_000


def parse_usdc(value: object, param: str) -> int:
    """USDC on the wire → micro-USDC (exact; -32602 if not a plain positive amount)."""
    try:
        units = to_units(value, QUOTE_DECIMALS, param, 0, "")
    except ApiError as exc:
        raise invalid_params(param, (exc.data or {}).get("reason", "invalid")) from None
    if units <= 0:
        raise invalid_params(param, "must be positive")
    return units
