"""Funding of perpetuals (dYdX v4 style, hourly), as pure integer functions.

Source: exchange-rules.md "Funding". Rates and premiums are integers in 10⁻¹² units
(``RATE_SCALE``: 0.1 % = 1_000_000_000); prices micro-USDC per contract; the funding index
is in 10⁻¹² USDC per contract (units.FUNDING_INDEX_SCALE × micro-USDC).

- Every minute: premium P = (max(0, impact_bid − index) − max(0, index − impact_ask)) /
  index, where impact bid/ask is the average fill price of ``impact_notional`` against the
  book; P = 0 if either side cannot fill it; clamped to ±premium_clamp.
- Every hour: rate_8h = mean(samples; missing minutes count as 0) + default_rate, clamped to
  ±6·(IMF − MMF); funding index += index · rate_8h · 3600 / 28800.
- Positions settle lazily: payment = −size · Δindex (units.funding_payment, rounded
  against the account).
"""

from __future__ import annotations

from fractions import Fraction

from clearway.domain.book import OrderBook
from clearway.domain.orders import BUY
from clearway.domain.units import PPM

RATE_SCALE = 10**12
SAMPLES_PER_HOUR = 60


def impact_price(book: OrderBook, side: int, impact_notional: int, scale: int) -> Fraction | None:
    """Average price (micro-USDC per contract, exact) of a market order of ``side`` (BUY
    takes asks) for ``impact_notional`` micro-USDC, or None if the book cannot fill it."""
    remaining = Fraction(impact_notional)
    contracts = Fraction(0)
    for price, lots in book.levels(-side if side == BUY else BUY):
        level_notional = Fraction(lots * price, scale)
        if level_notional >= remaining:
            contracts += remaining / price
            return Fraction(impact_notional) / contracts
        remaining -= level_notional
        contracts += Fraction(lots, scale)
    return None


def premium_sample(book: OrderBook, index: int, impact_notional: int, scale: int, clamp: int) -> int:
    """One premium sample P in 10⁻¹² units (rounded toward zero), clamped to ±clamp."""
    bid = impact_price(book, -BUY, impact_notional, scale)
    ask = impact_price(book, BUY, impact_notional, scale)
    if bid is None or ask is None or index <= 0:
        return 0
    premium = (max(Fraction(0), bid - index) - max(Fraction(0), index - ask)) / index * RATE_SCALE
    value = int(premium)  # toward zero
    return max(-clamp, min(clamp, value))


def hourly_rate(samples: list[int], default_rate: int, imf_ppm: int, mmf_ppm: int,
                slots: int = SAMPLES_PER_HOUR) -> int:
    """rate_8h in 10⁻¹² units: the mean of ``slots`` minute samples (missing count as 0,
    the sum divided by ``slots`` rounded toward zero) plus ``default_rate``, clamped to
    ±6·(IMF − MMF)."""
    total = sum(samples[:slots])
    mean = abs(total) // slots * (1 if total >= 0 else -1)
    cap = 6 * (imf_ppm - mmf_ppm) * (RATE_SCALE // PPM)
    return max(-cap, min(cap, mean + default_rate))


def funding_index_delta(index_price: int, rate_8h: int, seconds: int = 3_600) -> int:
    """Funding-index increment for one tick: index · rate_8h · seconds / 28,800, in 10⁻¹²
    USDC per contract, rounded toward −∞ (longs pay when positive).

    Example (spec): BTC 50,000, rate_8h 0.1 % for one hour → +6.25 USD per BTC.
    """
    return index_price * rate_8h * seconds // (28_800 * PPM)
