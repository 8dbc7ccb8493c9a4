"""Integer money, sizes and prices, and the conversions between them.

Every amount inside the state transition is an ``int``; floats and ``Decimal`` appear only
at the edges (API, CLI, reports). Source: exchange-rules.md, "Units and rounding".

Units
-----
QuoteAmount
    micro-USDC (USDC has 6 decimals): 1 USDC = 1_000_000.
Price
    micro-USDC per one whole contract (one unit of the underlying). BTC at 25,000 USDC is
    25_000_000_000.
BaseAmount
    signed size in lots of 10**-size_decimals contracts (``InstrumentSpec.size_decimals``).
    With size_decimals = 4, 1 BTC is 10_000 and 0.0001 BTC is 1.
FundingIndex
    cumulative funding per whole contract in 10**-12 USDC (micro-USDC × 10**-6), so that
    hourly increments of small rates keep their precision.

Rounding (exchange-rules.md): requirements round up; payments to an account round down;
payments by an account round up; notional truncates toward zero. Each function below says
which one it applies.
"""

from __future__ import annotations

from typing import Final, NewType

QuoteAmount = NewType("QuoteAmount", int)
Price = NewType("Price", int)
BaseAmount = NewType("BaseAmount", int)
FundingIndex = NewType("FundingIndex", int)
Ppm = NewType("Ppm", int)

QUOTE_DECIMALS = 6
QUOTE_SCALE = 10**QUOTE_DECIMALS
PPM: Final = 1_000_000
FUNDING_INDEX_SCALE: Final = 10**6  # funding index units per micro-USDC


def ceil_div(numerator: int, denominator: int) -> int:
    """⌈numerator / denominator⌉ for a positive denominator, exact on integers of any size."""
    return -((-numerator) // denominator)


def notional(size: int, price: int, size_scale: int) -> QuoteAmount:
    """|size| · price in micro-USDC, truncated toward zero.

    Parameters
    ----------
    size : BaseAmount
        Signed size in lots; ``size_scale`` = 10**size_decimals lots make one contract.
    price : Price
        micro-USDC per contract.

    Returns
    -------
    QuoteAmount
        Non-negative. Exact for trades, because instruments are only accepted when
        ``tick_size · size_increment`` is a multiple of ``size_scale`` (see
        ``InstrumentSpec.validate``); marks off the tick truncate.
    """
    return QuoteAmount(abs(size) * price // size_scale)


def value_floor(size: int, price: int, size_scale: int) -> QuoteAmount:
    """Signed value size · price in micro-USDC rounded toward −∞ (against the holder).

    Used for equity: a long is valued down, a short's liability is valued up.
    """
    return QuoteAmount(size * price // size_scale)


def fee_amount(trade_notional: int, rate_ppm: int) -> QuoteAmount:
    """Fee charged on ``trade_notional`` at ``rate_ppm`` parts per million.

    A positive rate is a payment by the account and rounds up; a negative rate (maker
    rebate) is a payment to the account and its magnitude rounds down. Returned signed:
    positive = the account pays, negative = the account receives.
    """
    return QuoteAmount(ceil_div(trade_notional * rate_ppm, PPM))


def requirement_ppm(amount: int, rate_ppm: int) -> QuoteAmount:
    """⌈amount · rate_ppm / 10⁶⌉ for a non-negative amount: a margin requirement, rounded up."""
    return QuoteAmount(ceil_div(amount * rate_ppm, PPM))


def funding_payment(size: int, index_now: int, index_then: int, size_scale: int) -> QuoteAmount:
    """Funding cash flow of a position between two funding-index values, in micro-USDC.

    payment = −size · (index_now − index_then) / (size_scale · FUNDING_INDEX_SCALE),
    rounded toward −∞: a payment by the account rounds up, a receipt rounds down
    (exchange-rules.md, "Funding"). Positive = the account receives.
    """
    return QuoteAmount((-size * (index_now - index_then)) // (size_scale * FUNDING_INDEX_SCALE))


def parse_decimal(text: str, decimals: int) -> int:
    """Exact conversion of a decimal string such as ``"25010.5"`` to an integer with
    ``decimals`` places. Raises ValueError if the text has more places than that or is
    not a plain decimal number (no exponent, no float rounding)."""
    text = text.strip()
    negative = text.startswith("-")
    if negative or text.startswith("+"):
        text = text[1:]
    whole, _, frac = text.partition(".")
    if not whole and not frac:
        raise ValueError("empty number")
    if not (whole or "0").isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"not a decimal number: {text!r}")
    if len(frac) > decimals:
        if frac[decimals:].strip("0"):
            raise ValueError(f"{text!r} has more than {decimals} decimal places")
        frac = frac[:decimals]
    value = int(whole or "0") * 10**decimals + int((frac or "0").ljust(decimals, "0"))
    return -value if negative else value


def format_decimal(value: int, decimals: int) -> str:
    """Inverse of ``parse_decimal``: ``format_decimal(25010500000, 6) == "25010.5"``."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**decimals)
    if not decimals or not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}." + str(frac).rjust(decimals, "0").rstrip("0")
