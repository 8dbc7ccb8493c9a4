"""Market data of the simulations: the real March 2023 BTC index, USDC/USD, a Deribit-fitted
SVI surface rescaled by realised volatility, the option listing schedule and signed
oracle reporters.

Public API (sim layer; everything is deterministic: same files and arguments ⇒ same
integers):

- :class:`MarketData` — ``MarketData.load(directory)`` reads the four venues of
  ``../shared/data/market/btc-2023-03/`` (``../shared/data/README.md``). ``.times`` are the
  observation times (ms, the close of each 1-minute bar); ``.index_at(ts)``,
  ``.usdc_usd_at(ts)``, ``.realised_vol(ts)`` and ``.close_at(venue, ts)`` give the value of
  the last bar that closed at or before ``ts`` (no look-ahead), ``.has(ts)`` whether a bar
  closed exactly at ``ts``.
- :class:`Surface` — ``Surface.fit_deribit(paths)`` fits one raw SVI slice per tenor of
  real Deribit chains; ``.expiries(ts_ms, index, expiries_ms, realised_vol)`` returns the
  per-expiry :class:`~clearway.domain.market.ExpiryData` (forward, rate, SVI, 10⁻¹² units)
  that oracle reports carry.
- :func:`option_schedule` → list of :class:`Expiry`; :func:`series_fields` /
  :func:`series_command` → ``ListOptionSeries`` fields / command; :func:`perp_spec`.
- :class:`Reporters` — ``Reporters(seed, n)``: n secp256k1 keys derived from a seed;
  ``.addresses``, ``.reports(...)`` and ``.oracle_update(seq, ts, ...)`` → ``OracleUpdate``.
- :class:`OracleFeed` — the three together: ``.reports(ts, expiries)`` for one minute.

Index (BTC/USD, micro-USD per BTC, one value per minute)
--------------------------------------------------------
The data are 1-minute bars, so the index is per minute; a bar's close is observed at the
bar's end (open + 60 s). Venues, each converted to USD:

1. Binance.US BTC/USD close;
2. Binance.US BTC/USDT close, USDT taken at par (in this window USDT traded up to ~0.6 %
   above USD — the median below keeps one biased venue from moving the index);
3. Binance.US BTC/USDC close × USDC/USD;
4. Kraken BTC/USDC close × USDC/USD.

A venue is *fresh* when its last bar with a trade (volume > 0; Kraken's file holds only
such bars) opened at most :data:`STALE_MS` (5 minutes) before the bar; stale venues are
left out. The index is the median of the fresh venues (mean of the two middle values for
an even count), or the Binance.US BTC/USD close if none is fresh,
rounded to the nearest micro-USD.

USDC/USD (ppm): per minute, the median over the fresh USDC venues of Binance.US BTC/USD ÷
BTC/USDC (the brief's "BTC/USDC vs BTC/USD ratio"), then the median of those minute ratios
over the trailing :data:`USDC_WINDOW` (5) minutes, so one stale or thin USDC print does not
move it; carried forward over minutes with no fresh USDC venue; 1.0 before any. It reaches
0.879 (its low) on 11 March 2023. Known cost: while USDC moved fast (11 March) the USDC
venues, converted at that 5-minute median, add noise — the index's 1-minute realised vol
over 11 March is 0.85 against 0.59 for Binance.US BTC/USD alone (0.69 vs 0.72 on 10 March).

Realised volatility (decimal per √year): an EWMA of squared 1-minute log returns of the
index, σ²ₜ = λσ²ₜ₋₁ + (1 − λ)rₜ², λ = 2^(−1/h) with half-life h = :data:`VOL_HALF_LIFE_MIN`
(240 minutes), seeded with the mean r² of the first day of the file, annualised by
√525,600 (minutes per 365-day year; RiskMetrics 1996 ch. 5 for the EWMA estimator).

Surface
-------
Deribit's mark IVs (per row: k = ln(K/F), F = ``underlying_price``, T = (expiry −
timestamp)/365 days) are fitted per expiry with ``clearway.domain.risk.svi.fit_svi`` (the
domain's calibration), leaving out flat wing runs (``riskcheck._flat_wing_mask``) and
expiries shorter than :data:`MIN_FIT_DAYS` (Deribit's same-day smiles). The slices of all
chains become *nodes* sorted by tenor; a node is kept only if its total variance is ≥ the
previous kept node's on the whole check grid (no calendar arbitrage between nodes).

For a tenor T between two nodes, the raw parameters (a, b, b·ρ, m, σ) are interpolated
linearly in T: for nodes sharing m and σ this is exactly the linear interpolation of total
variance (so w increases with T at every k, no calendar arbitrage), and in general the wing
slopes b(1 ± ρ) stay linear in T. Below the first node the first node's total variance is
scaled by T/T₀, beyond the last by T/Tₙ (flat ATM vol). Level: total variance × s² with
s = clamp(realised vol / reference vol, :data:`SCALE_FLOOR`, :data:`SCALE_CAP`), the
reference being the fitted ATM vol at 30 days. Each produced slice is checked with the
domain's ``validate_svi`` on the exact 10⁻¹² integers; a failing slice has its wings
shrunk toward the flat slice of the same ATM variance until it passes (never seen on the
March 2023 window). Across the expiries of one call, a slice whose total variance falls
below the previous expiry's anywhere on the grid (−6 ≤ k ≤ 6) has its ``a`` raised by the
shortfall (calendar arbitrage removed; on 9–14 March this moves ATM vols by < 1 point).
Forward = index × exp(carry·T), carry = median of ln(F/index)/T over the chains' expiries
beyond :data:`MIN_FIT_DAYS`; rate 0 (Deribit's convention, ``../shared/data/README.md``).

Option schedule
---------------
Expiries are Fridays 08:00 UTC. The last Friday of a month is *monthly*, the other
Fridays *weekly*. Weeklies are listed :data:`WEEKLY_LISTED_DAYS` (21) days before expiry
and monthlies :data:`MONTHLY_LISTED_DAYS` (63) days before, at 08:00 UTC — as in the two
real Deribit snapshots of ``../shared/data/deribit/``: on 14 and 21 May 2020 the Fridays
up to 15–21 days ahead and the month-end Friday 35–43 days ahead were listed, the one 71
days ahead (31 July) was not. (Deribit's quarterlies are not modelled.)
Strikes: every :data:`STRIKE_STEP` (1,000 USD) around the forward at listing, enough of
them each side to cover ±30 % (``ListOptionSeries`` computes the grid in the domain).
"""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import msgspec
import numpy as np
from coincurve import PrivateKey
from eth_hash.auto import keccak

from clearway.domain.commands import ListOptionSeries, OracleUpdate
from clearway.domain.expiry import DAY_MS, EXPIRY_TIME_OF_DAY_MS
from clearway.domain.instruments import InstrumentSpec, Kind
from clearway.domain.market import FIXED_SCALE, MS_PER_YEAR, ExpiryData, svi_params
from clearway.domain.oracle import OracleReport, report_digest
from clearway.domain.risk.svi import (
    DEFAULT_K_GRID, SVIArbitrageError, SVIParams, fit_svi, svi_total_variance, validate_svi,
)
from clearway.domain.units import PPM
from clearway.sim.riskcheck import _flat_wing_mask, load_deribit_chain

__all__ = [
    "DEFAULT_DERIBIT", "DEFAULT_PRICES", "VENUES", "Expiry", "MarketData", "Node", "OracleFeed", "Reporter",
    "Reporters", "Surface", "calendar_shortfall", "iso_ms", "option_schedule", "perp_spec", "series_command",
    "series_fields", "strikes_each_side",
]

MINUTE_MS = 60_000
MICRO = 1_000_000
STALE_MS = 5 * MINUTE_MS
"""A venue whose last trade is older than this (at the bar's open) is left out of the index."""
USDC_WINDOW = 5
"""Minutes of the trailing median of the USDC/USD ratio."""
VOL_HALF_LIFE_MIN = 240
"""Half-life of the realised-volatility EWMA, minutes."""
MINUTES_PER_YEAR = 525_600
MIN_FIT_DAYS = 2.0
"""Deribit expiries closer than this are not fitted (their 0–2 day smiles are V-shaped, beyond
what one SVI slice bends to: up to 5 vol points RMSE)."""
REFERENCE_DAYS = 30.0
"""Tenor of the reference ATM volatility the realised volatility is compared with."""
SCALE_FLOOR = 0.5
SCALE_CAP = 2.0
"""Bounds of s = realised vol / reference vol (the total variance is multiplied by s²)."""
WEEKLY_LISTED_DAYS = 21
MONTHLY_LISTED_DAYS = 63
STRIKE_STEP = 1_000 * MICRO
STRIKE_RANGE = 0.30
"""Strikes cover forward × (1 ± 30 %) at listing."""
FRIDAY = 4  # datetime.weekday()

_REPO = Path(__file__).resolve().parents[2]
DEFAULT_PRICES = _REPO.parent / "shared" / "data" / "market" / "btc-2023-03"
DEFAULT_DERIBIT = (_REPO.parent / "shared" / "data" / "deribit" / "btc_options_2020-05-14.csv",
                   _REPO.parent / "shared" / "data" / "deribit" / "btc_options_2020-05-21.csv")
VENUES = ("binanceus_btcusd", "binanceus_btcusdt", "binanceus_btcusdc", "kraken_btcusdc")
_CHECK_GRID = DEFAULT_K_GRID


def iso_ms(text: str) -> int:
    """'2023-03-09T00:00', '2023-03-09' or '2023-03-01 00:00:00+00:00' → ms since the epoch
    (naive times are UTC). Raises ValueError on anything else."""
    moment = datetime.fromisoformat(text.strip().replace(" ", "T"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp()) * 1000


def ms_iso(ms: int) -> str:
    """'YYYY-MM-DDTHH:MM' (UTC) of ms since the epoch (the inverse of ``iso_ms``)."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M")


def usdc(micro: int | float | None) -> float | None:
    """micro-USDC → USDC rounded to 6 places, for reports (None stays None)."""
    return None if micro is None else round(micro / 1_000_000, 6)


# -- prices ---------------------------------------------------------------------------------
def _load_binance(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binance.US bars: (open ms int64, close float64 USD, volume float64 BTC)."""
    opens, closes, volumes = [], [], []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            opens.append(iso_ms(row["open_time"]))
            closes.append(float(row["close"]))
            volumes.append(float(row["volume"]))
    return np.array(opens, dtype=np.int64), np.array(closes), np.array(volumes)


def _load_kraken(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Kraken raw bars (no header: unix s, open, high, low, close, volume, count), only
    minutes with trades: (open ms int64 ascending, close float64)."""
    opens, closes = [], []
    with path.open(newline="") as handle:
        for row in csv.reader(handle):
            opens.append(int(row[0]) * 1000)
            closes.append(float(row[4]))
    return np.array(opens, dtype=np.int64), np.array(closes)


def _last_trade(opens: np.ndarray, volumes: np.ndarray) -> np.ndarray:
    """Per bar, the open (ms) of the last bar at or before it with volume > 0 (−2⁶² if none)."""
    traded = np.where(volumes > 0, opens, np.int64(-(2**62)))
    return np.maximum.accumulate(traded)


def _trailing_nanmedian(values: np.ndarray, window: int) -> np.ndarray:
    """Median of the non-NaN values among the last ``window`` (this one included); NaN if none."""
    padded = np.concatenate([np.full(window - 1, np.nan), values])
    view = np.lib.stride_tricks.sliding_window_view(padded, window)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(view, axis=1)


def _forward_fill(values: np.ndarray, start: float) -> np.ndarray:
    out = values.copy()
    last = start
    for i in range(out.size):
        if math.isnan(out[i]):
            out[i] = last
        else:
            last = out[i]
    return out


@dataclass(frozen=True)
class MarketData:
    """The BTC/USD index, USDC/USD and realised volatility on a 1-minute grid (module
    docstring for the methods).

    Attributes
    ----------
    opens : numpy.ndarray
        int64, bar opens (ms), every minute of the Binance.US files, ascending.
    times : numpy.ndarray
        int64, observation times = opens + 60,000 ms.
    closes : dict[str, numpy.ndarray]
        Per venue (:data:`VENUES`), the last close at or before each bar in its own quote
        currency (float64; Kraken forward-filled, NaN before its first bar).
    fresh : dict[str, numpy.ndarray]
        Per venue, bool: the venue traded within :data:`STALE_MS`.
    index : numpy.ndarray
        int64, BTC/USD index, micro-USD per BTC.
    usdc_usd : numpy.ndarray
        int64, USD per USDC in ppm (1,000,000 = at peg).
    vol : numpy.ndarray
        float64, realised volatility (decimal per √year).
    """

    opens: np.ndarray
    times: np.ndarray
    closes: dict[str, np.ndarray]
    fresh: dict[str, np.ndarray]
    index: np.ndarray
    usdc_usd: np.ndarray
    vol: np.ndarray

    @classmethod
    def load(cls, directory: Path | str = DEFAULT_PRICES) -> "MarketData":
        """Read the four files of ``directory`` and build the series.

        Raises FileNotFoundError if a file is missing, ValueError if the Binance.US files
        are not on the same minute grid.
        """
        directory = Path(directory)
        usd_t, usd, usd_v = _load_binance(directory / "binanceus_BTCUSD_1m.csv")
        usdt_t, usdt, usdt_v = _load_binance(directory / "binanceus_BTCUSDT_1m.csv")
        usdc_t, usdc, usdc_v = _load_binance(directory / "binanceus_BTCUSDC_1m.csv")
        if not (np.array_equal(usd_t, usdt_t) and np.array_equal(usd_t, usdc_t)):
            raise ValueError("the Binance.US files are not on the same minute grid")
        if usd_t.size < 2 or np.any(np.diff(usd_t) != MINUTE_MS):
            raise ValueError("the Binance.US files must hold consecutive minutes")
        k_t, k_close = _load_kraken(directory / "kraken_BTCUSDC_1m_raw.csv")
        return cls.from_bars(usd_t, {"binanceus_btcusd": (usd, usd_v), "binanceus_btcusdt": (usdt, usdt_v),
                                     "binanceus_btcusdc": (usdc, usdc_v)}, (k_t, k_close))

    @classmethod
    def from_bars(cls, opens: np.ndarray, binance: dict[str, tuple[np.ndarray, np.ndarray]],
                  kraken: tuple[np.ndarray, np.ndarray]) -> "MarketData":
        """Build the series from bars already in memory (``load`` reads them from files):
        ``opens`` the minute grid (ms), ``binance`` venue → (closes, volumes) on the grid,
        ``kraken`` (bar opens ms ascending, closes) of the minutes with trades."""
        closes: dict[str, np.ndarray] = {}
        fresh: dict[str, np.ndarray] = {}
        for venue in VENUES[:3]:
            close, volume = binance[venue]
            closes[venue] = close
            fresh[venue] = opens - _last_trade(opens, volume) <= STALE_MS
        k_t, k_close = kraken
        position = np.searchsorted(k_t, opens, side="right") - 1
        has = position >= 0
        safe = np.maximum(position, 0)
        closes["kraken_btcusdc"] = np.where(has, k_close[safe], np.nan)
        fresh["kraken_btcusdc"] = has & (opens - k_t[safe] <= STALE_MS)

        usd = closes["binanceus_btcusd"]
        ratios = np.full((opens.size, 2), np.nan)
        for j, venue in enumerate(("binanceus_btcusdc", "kraken_btcusdc")):
            ok = fresh[venue] & fresh["binanceus_btcusd"]
            ratios[ok, j] = usd[ok] / closes[venue][ok]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            minute_ratio = np.nanmedian(ratios, axis=1)
        usdc_usd = _forward_fill(_trailing_nanmedian(minute_ratio, USDC_WINDOW), 1.0)

        in_usd = np.full((opens.size, 4), np.nan)
        in_usd[:, 0] = np.where(fresh["binanceus_btcusd"], usd, np.nan)
        in_usd[:, 1] = np.where(fresh["binanceus_btcusdt"], closes["binanceus_btcusdt"], np.nan)
        in_usd[:, 2] = np.where(fresh["binanceus_btcusdc"], closes["binanceus_btcusdc"] * usdc_usd, np.nan)
        in_usd[:, 3] = np.where(fresh["kraken_btcusdc"], closes["kraken_btcusdc"] * usdc_usd, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            index = np.nanmedian(in_usd, axis=1)
        index = np.where(np.isnan(index), usd, index)
        index_micro = np.rint(index * MICRO).astype(np.int64)
        usdc_ppm = np.rint(usdc_usd * PPM).astype(np.int64)
        return cls(opens, opens + MINUTE_MS, closes, fresh, index_micro, usdc_ppm, _ewma_vol(index_micro))

    # -- look-ups ---------------------------------------------------------------------------
    def row(self, ts_ms: int) -> int:
        """Row of the last bar that closed at or before ``ts_ms``. Raises KeyError if
        ``ts_ms`` is before the first bar's close."""
        i = int(np.searchsorted(self.times, ts_ms, side="right")) - 1
        if i < 0:
            raise KeyError(f"no market data at or before {ms_iso(ts_ms)}")
        return i

    def has(self, ts_ms: int) -> bool:
        """True when a bar closed exactly at ``ts_ms``."""
        i = int(np.searchsorted(self.times, ts_ms))
        return i < self.times.size and int(self.times[i]) == ts_ms

    def index_at(self, ts_ms: int) -> int:
        """BTC/USD index known at ``ts_ms``, micro-USD per BTC (module docstring)."""
        return int(self.index[self.row(ts_ms)])

    def usdc_usd_at(self, ts_ms: int) -> int:
        """USD per USDC known at ``ts_ms``, ppm."""
        return int(self.usdc_usd[self.row(ts_ms)])

    def realised_vol(self, ts_ms: int) -> float:
        """Realised volatility known at ``ts_ms`` (EWMA, decimal per √year)."""
        return float(self.vol[self.row(ts_ms)])

    def close_at(self, venue: str, ts_ms: int) -> float:
        """Last close of one venue (:data:`VENUES`) known at ``ts_ms``, in its quote
        currency (NaN before Kraken's first bar). Raises KeyError for an unknown venue."""
        return float(self.closes[venue][self.row(ts_ms)])

    @property
    def start_ms(self) -> int:
        """Time of the first observation (close of the first bar)."""
        return int(self.times[0])

    @property
    def end_ms(self) -> int:
        """Time of the last observation."""
        return int(self.times[-1])


def _ewma_vol(index: np.ndarray) -> np.ndarray:
    """Annualised EWMA volatility of 1-minute log returns (module docstring); entry i uses
    the returns up to bar i."""
    returns = np.diff(np.log(index.astype(np.float64)))
    squared = returns * returns
    lam = 2.0 ** (-1.0 / VOL_HALF_LIFE_MIN)
    var = float(squared[:1440].mean()) if squared.size else 0.0
    out = np.empty(index.size)
    out[0] = var
    for i, r2 in enumerate(squared.tolist(), start=1):
        var = lam * var + (1.0 - lam) * r2
        out[i] = var
    return np.sqrt(out * MINUTES_PER_YEAR)


# -- surface --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    """One fitted Deribit slice: tenor (years), ATM total variance θ = w(0), SVI params,
    fit RMSE (vol points), expiry and snapshot time of the source (ms), points fitted."""

    time: float
    theta: float
    params: SVIParams
    rmse_vol_points: float
    max_abs_vol_points: float
    expiry_ms: int
    snapshot_ms: int
    points: int


def calendar_shortfall(earlier: SVIParams, later: SVIParams, grid: np.ndarray = _CHECK_GRID) -> float:
    """max over the grid of w_earlier(k) − w_later(k) (> 0: calendar-spread arbitrage
    between the two slices, Gatheral & Jacquier 2014 §2: total variance must not decrease
    with tenor at fixed k)."""
    return float(np.max(svi_total_variance(grid, earlier) - svi_total_variance(grid, later)))


def _valid(params: SVIParams) -> bool:
    try:
        validate_svi(params)
    except SVIArbitrageError:
        return False
    return True


def _flatten_wings(params: SVIParams) -> SVIParams:
    """The first of b × (1, 0.9, …, 0) with a moved so w(0) is unchanged that passes
    ``validate_svi`` (b = 0 is the flat slice, always valid when w(0) > 0)."""
    theta = float(svi_total_variance(0.0, params))
    for step in range(10, -1, -1):
        b = params.b * step / 10
        a = theta - b * (-params.rho * params.m + math.hypot(params.m, params.sigma))
        candidate = SVIParams(a, b, params.rho, params.m, params.sigma)
        if _valid(candidate):
            return candidate
    raise SVIArbitrageError(f"no arbitrage-free slice with the ATM variance of {params}")


def _to_fixed(expiry_ms: int, forward: int, p: SVIParams) -> ExpiryData:
    return ExpiryData(expiry_ms, forward, 0, round(p.a * FIXED_SCALE), round(p.b * FIXED_SCALE),
                      round(p.rho * FIXED_SCALE), round(p.m * FIXED_SCALE), round(p.sigma * FIXED_SCALE))


@dataclass(frozen=True)
class Surface:
    """Deribit-fitted SVI nodes and the carry of the forward (module docstring).

    Attributes
    ----------
    nodes : tuple[Node, ...]
        Increasing tenor, increasing total variance at every k of the check grid.
    carry : float
        Continuously compounded forward carry per year (F = S·exp(carry·T)).
    reference_vol : float
        ATM vol of the fitted surface at :data:`REFERENCE_DAYS` (decimal).
    fits : tuple[Node, ...]
        Every fitted slice, kept or not (fit quality reports).
    """

    nodes: tuple[Node, ...]
    carry: float
    reference_vol: float
    fits: tuple[Node, ...]

    @classmethod
    def fit_deribit(cls, paths: Iterable[Path | str] = DEFAULT_DERIBIT) -> "Surface":
        """Fit one SVI slice per expiry of each chain (module docstring). Results are cached
        per tuple of paths. Raises FileNotFoundError, or ValueError if no slice fits."""
        return _fit_cached(tuple(str(Path(p).resolve()) for p in paths))

    def base(self, time: float) -> SVIParams:
        """Raw SVI of the fitted surface at tenor ``time`` (years, > 0), before the level
        rescale: between two nodes, (a, b, b·ρ, m, σ) interpolated linearly in T — the exact
        linear interpolation of total variance when the nodes share m and σ, and wing slopes
        b(1 ± ρ) linear in T; below the first node its total variance × T/T₀, beyond the
        last × T/Tₙ (flat ATM vol)."""
        nodes = self.nodes
        if time <= nodes[0].time or time >= nodes[-1].time:
            node = nodes[0] if time <= nodes[0].time else nodes[-1]
            c = time / node.time
            return SVIParams(node.params.a * c, node.params.b * c, node.params.rho, node.params.m, node.params.sigma)
        i = int(np.searchsorted([n.time for n in nodes], time))
        lo, hi = nodes[i - 1].params, nodes[i].params
        alpha = (time - nodes[i - 1].time) / (nodes[i].time - nodes[i - 1].time)

        def mix(x: float, y: float) -> float:
            return x + alpha * (y - x)

        b = mix(lo.b, hi.b)
        return SVIParams(mix(lo.a, hi.a), b, mix(lo.b * lo.rho, hi.b * hi.rho) / b, mix(lo.m, hi.m),
                         mix(lo.sigma, hi.sigma))

    def theta(self, time: float) -> float:
        """ATM total variance w(0) of :meth:`base` at tenor ``time``."""
        return float(svi_total_variance(0.0, self.base(time)))

    def level_scale(self, realised_vol: float) -> float:
        """s = clamp(realised_vol / reference_vol, SCALE_FLOOR, SCALE_CAP); total variance
        is multiplied by s²."""
        return min(max(realised_vol / self.reference_vol, SCALE_FLOOR), SCALE_CAP)

    def slice(self, time: float, realised_vol: float) -> SVIParams:
        """Raw SVI of tenor ``time`` (years, > 0) with the level rescaled by the realised
        volatility, before any cross-expiry adjustment; free of butterfly arbitrage."""
        params = self._scaled(time, realised_vol)
        return params if _valid(params) else _flatten_wings(params)

    def _scaled(self, time: float, realised_vol: float) -> SVIParams:
        c = self.level_scale(realised_vol) ** 2
        u = self.base(time)
        return SVIParams(u.a * c, u.b * c, u.rho, u.m, u.sigma)

    def expiries(self, ts_ms: int, index: int, expiries_ms: Sequence[int], realised_vol: float
                 ) -> tuple[ExpiryData, ...]:
        """Per-expiry forward, rate and raw SVI (10⁻¹² units) of every expiry after
        ``ts_ms`` (earlier ones are skipped), ascending, as oracle reports carry them.

        ``index`` is micro-USD per BTC; T = (expiry − ts)/MS_PER_YEAR; forward =
        round(index·exp(carry·T)); rate 0. Every slice passes ``validate_svi`` on its exact
        10⁻¹² integers (so the result passes ``market.validate_expiries``) and total
        variance does not decrease from one expiry to the next on the check grid (module
        docstring). Raises ValueError if ``index`` ≤ 0 or the volatility is not finite.
        """
        if index <= 0 or not math.isfinite(realised_vol):
            raise ValueError(f"index must be positive and vol finite, got {index}, {realised_vol}")
        out: list[ExpiryData] = []
        previous: np.ndarray | None = None   # total variance of the previous slice on the grid
        for expiry_ms in sorted(set(expiries_ms)):
            time = (expiry_ms - ts_ms) / MS_PER_YEAR
            if time <= 0:
                continue
            forward = round(index * math.exp(self.carry * time))
            data = _to_fixed(expiry_ms, forward, self._scaled(time, realised_vol))
            variance = svi_total_variance(_CHECK_GRID, svi_params(data))
            if previous is not None:
                gap = float(np.max(previous - variance))
                if gap > 0:   # raise a by the shortfall, rounded up to the next 10⁻¹²
                    lift = math.ceil(gap * FIXED_SCALE) + 1
                    data = msgspec.structs.replace(data, svi_a=data.svi_a + lift)
                    variance = variance + lift / FIXED_SCALE
            if not _valid(svi_params(data)):
                data = _to_fixed(expiry_ms, forward, _flatten_wings(svi_params(data)))
                variance = svi_total_variance(_CHECK_GRID, svi_params(data))
                if not _valid(svi_params(data)) or (previous is not None and np.any(previous > variance)):
                    raise SVIArbitrageError(f"no arbitrage-free slice for expiry {expiry_ms} at {ts_ms}")
            previous = variance
            out.append(data)
        return tuple(out)


SURFACE_FIT_VERSION = 1
"""Bumped whenever the Deribit fit changes in a way the sources hashed by
:func:`surface_fit_cache_key` would not show (e.g. a changed data file format)."""

_FIT_CODE = (
    Path(__file__),
    Path(__file__).parent / "riskcheck.py",
    Path(__file__).parents[1] / "domain" / "risk" / "svi.py",
)
"""Sources whose code decides the fitted slices (this module, the chain loader, the SVI fit)."""


def surface_fit_cache_key(paths: Sequence[str]) -> str:
    """sha256 (hex) of everything the Deribit fit of ``paths`` depends on: the bytes of each
    CSV (in order), :data:`MIN_FIT_DAYS`, :data:`SURFACE_FIT_VERSION`, the bytes of the fit's
    source files (:data:`_FIT_CODE`) and the numpy/scipy versions (the optimiser's results
    may differ between releases). Raises FileNotFoundError for a missing CSV."""
    import hashlib
    import json

    import scipy

    material = {
        "version": SURFACE_FIT_VERSION,
        "min_fit_days": MIN_FIT_DAYS,
        "csv": [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths],
        "code": [hashlib.sha256(f.read_bytes()).hexdigest() for f in _FIT_CODE],
        "libs": [np.__version__, scipy.__version__],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _fit_slices(paths: tuple[str, ...]) -> dict[str, Any]:
    """Every fitted slice of ``paths`` and its carry, as JSON-ready data (see _fit_cached)."""
    slices: list[dict[str, Any]] = []
    for path in paths:
        chain = load_deribit_chain(Path(path))
        index_usd, stamps = _index_and_stamps(Path(path))
        snapshot = int(np.median(stamps))
        for expiry in np.unique(chain["expiry"]).tolist():
            rows = chain["expiry"] == expiry
            time = float(chain["time"][rows].mean())
            if time * 365.0 < MIN_FIT_DAYS:
                continue
            strikes, vols, forwards = chain["strike"][rows], chain["vol"][rows], chain["forward"][rows]
            keep = _flat_wing_mask(strikes, vols)
            fit = fit_svi(np.log(strikes[keep] / forwards[keep]), vols=vols[keep], time=time)
            p = fit.params
            slices.append({
                "time": time, "theta": float(svi_total_variance(0.0, p)),
                "params": [float(p.a), float(p.b), float(p.rho), float(p.m), float(p.sigma)],
                "rmse_vol_points": float(fit.rmse_vol * 100.0),
                "max_abs_vol_points": float(fit.max_abs_vol_error * 100.0),
                "expiry_ms": int(expiry), "snapshot_ms": snapshot, "points": int(keep.sum()),
                "carry": math.log(float(np.median(forwards)) / float(np.median(index_usd[rows]))) / time,
            })
    return {"slices": slices}


def _valid_slices(value: Any) -> bool:
    try:
        return all(len(s["params"]) == 5 and isinstance(s["expiry_ms"], int) for s in value["slices"])
    except (TypeError, KeyError):
        return False


@lru_cache(maxsize=4)
def _fit_cached(paths: tuple[str, ...]) -> Surface:
    """The surface of ``paths``; the per-slice fits (the costly part, 5-12 s) are memoised
    on disk with ``clearway.chain.contracts.cached_json`` (kind ``"surface"``, key
    :func:`surface_fit_cache_key`); JSON keeps every float exactly, so a hit gives the
    same surface as a fresh fit."""
    from clearway.chain.contracts import cached_json

    data = cached_json("surface", surface_fit_cache_key(paths), lambda: _fit_slices(paths), _valid_slices)
    fits = [Node(s["time"], s["theta"], SVIParams(*s["params"]), s["rmse_vol_points"], s["max_abs_vol_points"],
                 s["expiry_ms"], s["snapshot_ms"], s["points"]) for s in data["slices"]]
    carries = [s["carry"] for s in data["slices"]]
    if not fits:
        raise ValueError(f"no Deribit expiry of at least {MIN_FIT_DAYS} days in {paths}")
    nodes: list[Node] = []
    for node in sorted(fits, key=lambda n: (n.time, n.snapshot_ms)):
        if nodes and (node.time <= nodes[-1].time or calendar_shortfall(nodes[-1].params, node.params) > 0):
            continue
        nodes.append(node)
    surface = Surface(tuple(nodes), float(np.median(carries)), 1.0, tuple(fits))
    t_ref = REFERENCE_DAYS / 365.0
    return Surface(surface.nodes, surface.carry, math.sqrt(surface.theta(t_ref) / t_ref), surface.fits)


def _index_and_stamps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a Deribit chain (the order of ``load_deribit_chain``): ``index_price``
    (USD) and ``timestamp`` (ms)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return (np.array([float(r["index_price"]) for r in rows]),
            np.array([int(r["timestamp"]) for r in rows], dtype=np.int64))


# -- option schedule -----------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Expiry:
    """One option expiry: ``expiry_ms`` (a Friday 08:00 UTC), ``kind`` ("weekly" |
    "monthly"), ``listed_ms`` (08:00 UTC, :data:`WEEKLY_LISTED_DAYS` /
    :data:`MONTHLY_LISTED_DAYS` before expiry)."""

    expiry_ms: int
    kind: str
    listed_ms: int

    @property
    def name(self) -> str:
        """Deribit-style date code, e.g. '10MAR23'."""
        return datetime.fromtimestamp(self.expiry_ms / 1000, tz=timezone.utc).strftime("%d%b%y").upper()


def _is_last_friday(moment: datetime) -> bool:
    return (moment.day + 7) > _days_in_month(moment.year, moment.month)


def _days_in_month(year: int, month: int) -> int:
    nxt = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=timezone.utc)
    return (nxt - datetime(year, month, 1, tzinfo=timezone.utc)).days


def option_schedule(start_ms: int, end_ms: int, *, weekly_listed_days: int = WEEKLY_LISTED_DAYS,
                    monthly_listed_days: int = MONTHLY_LISTED_DAYS) -> list[Expiry]:
    """Expiries that are live at some time in [start_ms, end_ms): expiry > start_ms and
    listed before end_ms, ascending (module docstring: Fridays 08:00 UTC, monthly = last
    Friday of the month, listed ``weekly_listed_days`` / ``monthly_listed_days`` ahead).
    Raises ValueError if end_ms ≤ start_ms or a listing horizon is below one day."""
    if end_ms <= start_ms:
        raise ValueError("end must be after start")
    if weekly_listed_days < 1 or monthly_listed_days < 1:
        raise ValueError("expiries are listed at least one day ahead")
    day = start_ms - start_ms % DAY_MS + EXPIRY_TIME_OF_DAY_MS
    out: list[Expiry] = []
    horizon = end_ms + max(weekly_listed_days, monthly_listed_days) * DAY_MS
    while day < horizon:
        moment = datetime.fromtimestamp(day / 1000, tz=timezone.utc)
        if moment.weekday() == FRIDAY and day > start_ms:
            kind = "monthly" if _is_last_friday(moment) else "weekly"
            ahead = monthly_listed_days if kind == "monthly" else weekly_listed_days
            listed = day - ahead * DAY_MS
            if listed < end_ms:
                out.append(Expiry(day, kind, listed))
        day += DAY_MS
    return out


def strikes_each_side(forward: int, step: int = STRIKE_STEP, spread: float = STRIKE_RANGE) -> int:
    """Strikes each side of the ATM strike so the grid covers forward × (1 ± spread)."""
    return max(1, math.ceil(forward * spread / step))


def series_fields(expiry: Expiry, forward: int, *, underlying: str = "BTC", step: int = STRIKE_STEP,
                  spread: float = STRIKE_RANGE, tick_size: int = 100_000, size_decimals: int = 4,
                  maker_fee_ppm: int = 0, taker_fee_ppm: int = 300) -> dict[str, Any]:
    """Fields of ``ListOptionSeries`` (all but seq and ts) for one expiry listed when the
    forward is ``forward`` (micro-USD): strikes every ``step`` covering ±``spread`` (30 %;
    the domain centres the grid on its own forward). Fees: Deribit's 0.03 % taker, 0
    maker."""
    return dict(underlying=underlying, expiry_ms=expiry.expiry_ms, strike_step=step,
                strikes_each_side=strikes_each_side(forward, step, spread), tick_size=tick_size,
                size_decimals=size_decimals, size_increment=1, min_size=1, maker_fee_ppm=maker_fee_ppm,
                taker_fee_ppm=taker_fee_ppm)


def series_command(expiry: Expiry, forward: int, seq: int, ts: int, **options: Any) -> ListOptionSeries:
    """``ListOptionSeries`` command for one expiry (:func:`series_fields`)."""
    return ListOptionSeries(seq=seq, ts=ts, **series_fields(expiry, forward, **options))


def perp_spec(instrument_id: int = 0, underlying: str = "BTC") -> InstrumentSpec:
    """The BTC perpetual's spec for ``ListInstrument`` / genesis: tick 0.1 USDC, size in
    10⁻⁴ BTC, maker −0.01 %, taker 0.05 %, IMF 5 %, MMF 3 % (exchange-rules.md defaults)."""
    return InstrumentSpec(instrument_id, underlying, Kind.PERPETUAL, tick_size=100_000, size_decimals=4,
                          size_increment=1, min_size=1, maker_fee_ppm=-100, taker_fee_ppm=500, imf_ppm=50_000,
                          mmf_ppm=30_000)


# -- oracle reporters ------------------------------------------------------------------------
class Reporter:
    """A secp256k1 key that signs oracle reports (``oracle.report_digest``) with coincurve:
    the same 65-byte (r, s, v) signature as ``oracle.sign_report``, ~10× faster.

    ``secret`` is keccak256(``seed``) (a 32-byte private key)."""

    def __init__(self, seed: bytes) -> None:
        self.key = PrivateKey(keccak(seed))
        public = self.key.public_key.format(compressed=False)[1:]
        self.address = "0x" + keccak(public)[-20:].hex()

    def sign(self, underlying: str, ts: int, index: int, stable: int, expiries: tuple[ExpiryData, ...]
             ) -> OracleReport:
        """One signed report (oracle.py units: micro-USD index, ppm stable price)."""
        digest = report_digest(underlying, ts, index, stable, expiries)
        signature = self.key.sign_recoverable(digest, hasher=None)
        return OracleReport(self.address, underlying, ts, index, stable, expiries, signature)


class Reporters:
    """``n`` oracle reporters whose keys derive from ``seed``: reporter i's secret is
    keccak256(b"clearway oracle reporter" ‖ seed (8 bytes, big-endian, two's complement)
    ‖ i (4 bytes)). Raises ValueError if n < 1, OverflowError if the seed is outside the
    signed 64-bit range."""

    def __init__(self, seed: int, n: int) -> None:
        if n < 1:
            raise ValueError("at least one reporter")
        self.members = [Reporter(b"clearway oracle reporter" + seed.to_bytes(8, "big", signed=True)
                                 + i.to_bytes(4, "big")) for i in range(n)]

    @property
    def addresses(self) -> list[str]:
        """The reporters' addresses (lower-case hex), for ``GenesisConfig.oracle_reporters``."""
        return [r.address for r in self.members]

    def reports(self, ts: int, index: int, stable: int, expiries: tuple[ExpiryData, ...],
                underlying: str = "BTC") -> tuple[OracleReport, ...]:
        """Every reporter's signed report of the same observation."""
        return tuple(r.sign(underlying, ts, index, stable, expiries) for r in self.members)

    def oracle_update(self, seq: int, ts: int, index: int, stable: int, expiries: tuple[ExpiryData, ...],
                      underlying: str = "BTC") -> OracleUpdate:
        """``OracleUpdate`` command carrying :meth:`reports` observed at ``ts``."""
        return OracleUpdate(seq=seq, ts=ts, underlying=underlying,
                            reports=self.reports(ts, index, stable, expiries, underlying))


@dataclass
class OracleFeed:
    """Market data + surface + reporters: what the oracle posts at a time."""

    market: MarketData
    surface: Surface
    reporters: Reporters
    underlying: str = "BTC"

    def observation(self, ts: int, expiries_ms: Sequence[int]) -> tuple[int, int, tuple[ExpiryData, ...]]:
        """(index micro-USD, USDC/USD ppm, per-expiry data) known at ``ts``."""
        index = self.market.index_at(ts)
        return (index, self.market.usdc_usd_at(ts),
                self.surface.expiries(ts, index, expiries_ms, self.market.realised_vol(ts)))

    def reports(self, ts: int, expiries_ms: Sequence[int]) -> tuple[OracleReport, ...]:
        """Signed reports of :meth:`observation` (for an engine that assigns seq itself)."""
        index, stable, expiries = self.observation(ts, expiries_ms)
        return self.reporters.reports(ts, index, stable, expiries, self.underlying)

    def oracle_update(self, seq: int, ts: int, expiries_ms: Sequence[int]) -> OracleUpdate:
        """``OracleUpdate`` of :meth:`observation`."""
        return OracleUpdate(seq=seq, ts=ts, underlying=self.underlying, reports=self.reports(ts, expiries_ms))
