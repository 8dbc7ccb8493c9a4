"""Market data of an underlying: index, per-expiry forward, rate and SVI surface; option marks.

Source: exchange-rules.md "Index, mark price and oracle" ("Option marks") and
portfolio-margin.md "Inputs". Today the operator command ``SetMarketData`` writes this data;
the signed oracle (issue 4) will write the same structure after checking its reports, so
the state holds *what* is known, never *who* said it.

State layout (all integers, so the state hash never depends on float formatting):

- ``ExchangeState.markets[underlying]`` : :class:`UnderlyingMarket` — index price
  (micro-USDC), the time the data refers to (``ts``, ms), the expiries' data, and ``seq``,
  the sequence number of the command that wrote it (the key of every derived cache).
- ``ExchangeState.stable_price`` : USD per USDC in ppm (1_000_000 = at peg), one value for
  the settlement asset (it is not per underlying: cash is not per underlying).
- per expiry, :class:`ExpiryData`: ``forward`` (micro-USDC per contract), ``rate``
  (continuously compounded per year) and the raw SVI parameters (a, b, ρ, m, σ), the last
  six in units of 10⁻¹² (:data:`FIXED_SCALE`).

Derived, never stored: floats for the risk models (:func:`svi_params`, :func:`to_pm_market`)
and option marks (:func:`option_marks`), which the handler writes into ``state.marks`` so
that the rest of the exchange sees a mark for every priced option.

Time to expiry is measured from ``UnderlyingMarket.ts`` (the command's timestamp), so marks
and risk arrays stay fixed between two updates: a replay never depends on when it runs.
"""

from __future__ import annotations

import math
from typing import Iterable, NamedTuple

import msgspec
import numpy as np

from clearway.domain.instruments import InstrumentSpec, Kind, OptionType
from clearway.domain.risk.black76 import black76_price
from clearway.domain.risk.portfolio import ExpiryMarket, OptionInstrument, PMMarket
from clearway.domain.risk.svi import SVIArbitrageError, SVIParams, svi_implied_vol, validate_svi
from clearway.domain.units import PPM

FIXED_SCALE = 10**12
"""Rates and SVI parameters are integers in units of 10⁻¹² (0.05 per year = 50_000_000_000)."""

MS_PER_YEAR = 365 * 86_400 * 1_000
"""T in years = (expiry_ms − ts) / MS_PER_YEAR (portfolio-margin.md "Pricing": 365-day years)."""

MAX_ABS_RATE = 10 * FIXED_SCALE
"""|rate| above 1,000 % per year is rejected as a feed error."""

MAX_STABLE_PRICE = 2 * PPM


class ExpiryData(msgspec.Struct, frozen=True, array_like=True):
    """Oracle data of one expiry of one underlying.

    Attributes
    ----------
    expiry_ms : int
        Expiry time, ms since the epoch (matches ``InstrumentSpec.expiry_ms``).
    forward : Price
        Forward price F, micro-USDC per contract, > 0.
    rate : int
        Continuously compounded rate per year, 10⁻¹² units (the discount uses max(r, 0),
        portfolio-margin.md "Pricing").
    svi_a, svi_b, svi_rho, svi_m, svi_sigma : int
        Raw SVI parameters in total variance, 10⁻¹² units: w(k) = a + b(ρ(k − m) +
        √((k − m)² + σ²)), k = ln(K/F), vol = √(w/T) (exchange-rules.md "Option marks").

    New fields (e.g. the oracle's confidences) are appended at the end with defaults.
    """

    expiry_ms: int
    forward: int
    rate: int
    svi_a: int
    svi_b: int
    svi_rho: int
    svi_m: int
    svi_sigma: int


class UnderlyingMarket(msgspec.Struct, frozen=True, array_like=True):
    """Market data of one underlying as held in the state.

    Attributes
    ----------
    underlying : str
    index : Price
        Index price S, micro-USDC per unit.
    ts : int
        Time the data refers to (ms); times to expiry are measured from it.
    expiries : tuple[ExpiryData, ...]
        Strictly increasing ``expiry_ms``; the whole surface (an update replaces it).
    seq : int
        Sequence number of the command that wrote this data: the key of the risk-array
        cache and of any other structure derived from it.
    """

    underlying: str
    index: int
    ts: int
    expiries: tuple[ExpiryData, ...]
    seq: int

    def expiry(self, expiry_ms: int) -> ExpiryData | None:
        """The data of one expiry, or None (linear scan: a handful of expiries)."""
        for e in self.expiries:
            if e.expiry_ms == expiry_ms:
                return e
        return None


def svi_params(e: ExpiryData) -> SVIParams:
    """The expiry's SVI parameters as floats (exact division of the 10⁻¹² integers)."""
    return SVIParams(e.svi_a / FIXED_SCALE, e.svi_b / FIXED_SCALE, e.svi_rho / FIXED_SCALE,
                     e.svi_m / FIXED_SCALE, e.svi_sigma / FIXED_SCALE)


def years_to_expiry(expiry_ms: int, ts: int) -> float:
    """T = (expiry_ms − ts) / ms per 365-day year; ≤ 0 once expired."""
    return (expiry_ms - ts) / MS_PER_YEAR


def validate_expiries(expiries: Iterable[ExpiryData]) -> str | None:
    """Reason string if the expiries are unusable, else None.

    Checks: strictly increasing positive ``expiry_ms``; forward > 0; |rate| ≤ 1,000 %;
    SVI parameters free of static arbitrage within the slice (``risk.svi.validate_svi``:
    Gatheral & Jacquier 2014 §2–3, Lee 2004). Pure; used by the handler before any write.
    """
    last = 0
    for e in expiries:
        if e.expiry_ms <= last:
            return "expiries must have positive, strictly increasing expiry_ms"
        last = e.expiry_ms
        if e.forward <= 0:
            return f"forward of expiry {e.expiry_ms} must be positive"
        if abs(e.rate) > MAX_ABS_RATE:
            return f"rate of expiry {e.expiry_ms} is out of range"
        try:
            validate_svi(svi_params(e))
        except SVIArbitrageError as exc:
            return f"SVI of expiry {e.expiry_ms} rejected: {exc}"
    return None


def mark_vols(market: UnderlyingMarket, specs: list[InstrumentSpec]) -> tuple[list[InstrumentSpec], np.ndarray]:
    """Mark volatility of every option in ``specs`` whose expiry has data.

    Returns the priced specs (input order kept) and their vols (float64, decimal per √year):
    SVI at k = ln(K/F) and T from ``market.ts``; 0 for an expired option (T ≤ 0), which is
    then worth its intrinsic value. Source: exchange-rules.md "Option marks".
    """
    priced: list[InstrumentSpec] = []
    vols: list[float] = []
    by_expiry: dict[int, list[InstrumentSpec]] = {}
    for spec in specs:
        if spec.kind == Kind.OPTION and market.expiry(spec.expiry_ms) is not None:
            by_expiry.setdefault(spec.expiry_ms, []).append(spec)
    out: dict[int, float] = {}
    for expiry_ms, group in by_expiry.items():
        e = market.expiry(expiry_ms)
        t = years_to_expiry(expiry_ms, market.ts)
        if t <= 0.0:
            for spec in group:
                out[spec.instrument_id] = 0.0
            continue
        k = np.log(np.array([s.strike for s in group], dtype=np.float64) / e.forward)
        v = svi_implied_vol(k, t, svi_params(e))
        for spec, vol in zip(group, v):
            out[spec.instrument_id] = float(vol) if math.isfinite(vol) else 0.0
    for spec in specs:
        if spec.instrument_id in out:
            priced.append(spec)
            vols.append(out[spec.instrument_id])
    return priced, np.array(vols, dtype=np.float64)


class Black76Inputs(NamedTuple):
    """Float inputs of Black-76 for the options of one underlying that have market data
    (``priced``, in order): forwards, strikes (USD), times (years), vols, discount rates
    max(r, 0), call flags — arrays of equal length."""

    priced: list[InstrumentSpec]
    forwards: np.ndarray
    strikes: np.ndarray
    times: np.ndarray
    vols: np.ndarray
    rates: np.ndarray
    calls: np.ndarray


def black76_inputs(market: UnderlyingMarket, specs: list[InstrumentSpec]) -> Black76Inputs:
    """Black-76 inputs of every option in ``specs`` whose expiry has data (marks, Greeks)."""
    priced, vols = mark_vols(market, specs)
    forwards, times, rates = [], [], []
    for spec in priced:
        e = market.expiry(spec.expiry_ms)
        forwards.append(e.forward / 1e6)
        times.append(years_to_expiry(spec.expiry_ms, market.ts))
        rates.append(max(e.rate, 0) / FIXED_SCALE)
    return Black76Inputs(priced, np.array(forwards), np.array([s.strike / 1e6 for s in priced]),
                         np.array(times), vols, np.array(rates),
                         np.array([s.option_type == OptionType.CALL for s in priced]))


def option_marks(market: UnderlyingMarket, specs: list[InstrumentSpec]) -> dict[int, int]:
    """Mark price of every option in ``specs`` whose expiry has data, micro-USDC per contract.

    mark = D · Black76(F, K, T, vol) with vol from :func:`mark_vols`, D = exp(−max(r, 0)·T)
    (the discount of portfolio-margin.md "Pricing", so a mark equals the PM base value of
    one contract). A mark is a price, not a payment: it is rounded to the nearest
    micro-USDC (half up); equity then rounds each position's value against its holder.
    Source: exchange-rules.md "Option marks"; Black (1976).
    """
    x = black76_inputs(market, specs)
    if not x.priced:
        return {}
    prices = black76_price(x.forwards, x.strikes, x.times, x.vols, x.rates, x.calls)
    return {spec.instrument_id: int(math.floor(float(p) * 1e6 + 0.5)) for spec, p in zip(x.priced, prices)}


def to_pm_market(market: UnderlyingMarket, stable_price_ppm: int, spot: int | None = None,
                 perp_price: int = 0) -> PMMarket:
    """The PM model's market (floats, USD) for one underlying.

    spot defaults to the market data's index; ``perp_price`` is the perp mark (micro-USDC);
    τ_e = (expiry_ms − ts)/1000 s; confidences 1 (the oracle of issue 4 may add them).
    """
    expiries = tuple(
        ExpiryMarket((e.expiry_ms - market.ts) / 1000.0, e.forward / 1e6, e.rate / FIXED_SCALE)
        for e in market.expiries
    )
    return PMMarket(spot=(market.index if spot is None else spot) / 1e6, stable_price=stable_price_ppm / PPM,
                    perp_price=perp_price / 1e6, expiries=expiries)


def option_instruments(market: UnderlyingMarket, specs: list[InstrumentSpec]
                       ) -> tuple[list[InstrumentSpec], list[OptionInstrument]]:
    """The priced options of ``specs`` as the PM risk arrays see them (τ in s, strike and
    mark vol as floats), in input order. Unpriced options (no data for their expiry) are
    left out."""
    priced, vols = mark_vols(market, specs)
    return priced, [
        OptionInstrument((s.expiry_ms - market.ts) / 1000.0, s.strike / 1e6, s.option_type == OptionType.CALL,
                         float(v))
        for s, v in zip(priced, vols)
    ]
