"""Instruments: linear USDC perpetuals and European cash-settled options.

Names follow exchange-rules.md "Products": ``BTC-PERP`` and ``BTC-<DDMONYY>-<STRIKE>-<C|P>``
(expiry 08:00 UTC; one contract = one unit of the underlying). The API maps these to other
venues' names.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import IntEnum

import msgspec

from clearway.domain.units import format_decimal

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


class Kind(IntEnum):
    PERPETUAL = 1
    OPTION = 2


class OptionType(IntEnum):
    CALL = 1
    PUT = 2


class InstrumentSpec(msgspec.Struct, frozen=True, array_like=True):
    """Static description of a tradable instrument.

    Attributes
    ----------
    instrument_id : int
        Dense id assigned at listing (also the key of the committed instruments tree).
    underlying : str
        Index name, e.g. ``"BTC"``.
    kind : Kind
    tick_size : Price
        Price increment in micro-USDC per contract.
    size_decimals : int
        Sizes are lots of 10**-size_decimals contracts.
    size_increment, min_size : BaseAmount
        Lot multiple and smallest order size, in lots.
    strike : Price
        Options only (0 for perps).
    expiry_ms : int
        Options only: expiry time, ms since the epoch, UTC (0 for perps).
    option_type : OptionType | None
        Options only.
    maker_fee_ppm, taker_fee_ppm : int
        Fee rates in parts per million of notional; maker may be negative (a rebate).
    imf_ppm, mmf_ppm : int
        Perpetuals: initial and maintenance margin fractions in ppm of notional
        (exchange-rules.md "Standard margin": BTC defaults 50_000 and 30_000).
    """

    instrument_id: int
    underlying: str
    kind: Kind
    tick_size: int
    size_decimals: int
    size_increment: int
    min_size: int
    maker_fee_ppm: int
    taker_fee_ppm: int
    imf_ppm: int = 0
    mmf_ppm: int = 0
    strike: int = 0
    expiry_ms: int = 0
    option_type: OptionType | None = None

    @property
    def size_scale(self) -> int:
        return 10**self.size_decimals

    @property
    def name(self) -> str:
        if self.kind == Kind.PERPETUAL:
            return f"{self.underlying}-PERP"
        return option_name(self.underlying, self.expiry_ms, self.strike, self.option_type)

    def validate(self) -> str | None:
        """Return a reason string if the spec is unusable, else None.

        Besides positivity, requires ``tick_size · size_increment`` to be a multiple of
        ``10**size_decimals`` so that every trade's notional is an exact number of
        micro-USDC: no rounding residue is ever created by matching.
        """
        if self.tick_size <= 0 or self.size_increment <= 0 or self.min_size <= 0:
            return "tick_size, size_increment and min_size must be positive"
        if not 0 <= self.size_decimals <= 18:
            return "size_decimals must be in 0..18"
        if self.min_size % self.size_increment:
            return "min_size must be a multiple of size_increment"
        if (self.tick_size * self.size_increment) % self.size_scale:
            return "tick_size × size_increment must be a whole number of micro-USDC"
        if not self.underlying.isalnum():
            return "underlying must be alphanumeric"
        if abs(self.maker_fee_ppm) >= 1_000_000 or not 0 <= self.taker_fee_ppm < 1_000_000:
            return "fee rates out of range"
        if self.maker_fee_ppm + self.taker_fee_ppm < 0:
            return "maker rebate larger than the taker fee"
        if self.kind == Kind.OPTION:
            if self.strike <= 0:
                return "option strike must be positive"
            if self.expiry_ms <= 0 or self.option_type is None:
                return "option needs expiry and option_type"
        elif self.strike or self.expiry_ms or self.option_type is not None:
            return "perpetual has no strike, expiry or option type"
        elif not 0 < self.mmf_ppm <= self.imf_ppm <= 1_000_000:
            return "perpetual needs 0 < mmf_ppm <= imf_ppm <= 1_000_000"
        return None


def option_name(underlying: str, expiry_ms: int, strike: int, option_type: OptionType | None) -> str:
    """``BTC-31MAR23-25000-C``: expiry date in UTC, strike in whole USDC (decimals kept)."""
    day = datetime.fromtimestamp(expiry_ms / 1000, tz=timezone.utc)
    date = f"{day.day}{MONTHS[day.month - 1]}{day.year % 100:02d}"
    letter = "C" if option_type == OptionType.CALL else "P"
    return f"{underlying}-{date}-{format_decimal(strike, 6)}-{letter}"
