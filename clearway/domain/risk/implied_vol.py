"""Implied volatility under Black-76, robust in the wings, with explicit refusals.

The root finder is Peter Jäckel's "Let's be rational" (Wilmott 2015, pp. 40–53), as
implemented by the ``py_lets_be_rational`` package: a rational initial guess followed by
at most two Householder(3) steps, accurate to machine precision for any strike and any
total volatility that double precision can represent.

This module adds what the solver leaves to its caller:

- undiscounting (the solver works on undiscounted prices, D = exp(−r·T));
- refusal instead of a wrong number.  Every element gets a :class:`IVStatus`; only
  ``IVStatus.OK`` carries a volatility, every other status carries NaN:

  ===================  =========================================================
  ``INVALID_INPUT``     T ≤ 0, F ≤ 0, K ≤ 0, a negative price, or a non-finite input
  ``BELOW_INTRINSIC``   price < D·intrinsic (no volatility reaches it)
  ``NO_TIME_VALUE``     price = D·intrinsic exactly: σ = 0 reproduces it, and so does
                        every σ small enough out of the money, so no unique answer
  ``ABOVE_MAXIMUM``     price ≥ D·F (call) or D·K (put): only σ = ∞ reaches it
  ``ZERO_VEGA``         a solution exists but vega there is numerically zero: one unit
                        in the last place of the price moves σ by more than 1e-6
                        relative (ε·price / (vega·σ) > 1e-6), so the price does not
                        determine σ (deep in-the-money options, whose time value is
                        lost in the rounding of the intrinsic value; invert the
                        out-of-the-money option of the same strike instead)
  ``NOT_CONVERGED``     the re-priced solution misses the price by more than 1e-8
                        relative (never seen in tests; kept as a guard)
  ===================  =========================================================
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from py_lets_be_rational import implied_volatility_from_a_transformed_rational_guess
from py_lets_be_rational.exceptions import AboveMaximumException, BelowIntrinsicException

from clearway.domain.risk.black76 import black76_greeks

__all__ = [
    "IVStatus",
    "ImpliedVolError",
    "ImpliedVolResult",
    "implied_vol",
    "implied_vol_one",
    "implied_vol_with_status",
]

_EPS = np.finfo(np.float64).eps
_REPRICE_TOLERANCE = 1e-8
_VEGA_RESOLUTION = 1e-6


class IVStatus(IntEnum):
    """Outcome of an implied-volatility inversion (see the module docstring)."""

    OK = 0
    INVALID_INPUT = 1
    BELOW_INTRINSIC = 2
    NO_TIME_VALUE = 3
    ABOVE_MAXIMUM = 4
    ZERO_VEGA = 5
    NOT_CONVERGED = 6


class ImpliedVolError(ValueError):
    """Raised by :func:`implied_vol_one` when the price has no usable implied volatility."""

    def __init__(self, status: IVStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class ImpliedVolResult(NamedTuple):
    """Vectorised result: ``vol`` (float64, NaN unless OK) and ``status`` (int8 codes of
    :class:`IVStatus`), both of the broadcast input shape."""

    vol: NDArray[np.float64]
    status: NDArray[np.int8]


def _solve_one(price: float, forward: float, strike: float, time: float, rate: float, is_call: bool) -> tuple[float, IVStatus]:
    values = (price, forward, strike, time, rate)
    if not all(math.isfinite(v) for v in values):
        return math.nan, IVStatus.INVALID_INPUT
    if time <= 0.0 or forward <= 0.0 or strike <= 0.0 or price < 0.0:
        return math.nan, IVStatus.INVALID_INPUT
    discount = math.exp(-rate * time)
    undiscounted = price / discount
    intrinsic = max(forward - strike, 0.0) if is_call else max(strike - forward, 0.0)
    maximum = forward if is_call else strike
    if undiscounted < intrinsic:
        return math.nan, IVStatus.BELOW_INTRINSIC
    if undiscounted == intrinsic:
        return math.nan, IVStatus.NO_TIME_VALUE
    if undiscounted >= maximum:
        return math.nan, IVStatus.ABOVE_MAXIMUM
    q = 1.0 if is_call else -1.0
    try:
        vol = implied_volatility_from_a_transformed_rational_guess(undiscounted, forward, strike, time, q)
    except BelowIntrinsicException:
        return math.nan, IVStatus.BELOW_INTRINSIC
    except AboveMaximumException:
        return math.nan, IVStatus.ABOVE_MAXIMUM
    if not math.isfinite(vol) or vol <= 0.0:
        # The solver returns 0 for a time value below the subnormal range: not determined.
        return math.nan, IVStatus.ZERO_VEGA
    greeks = black76_greeks(forward, strike, time, vol, 0.0, is_call)
    model = float(greeks.price)
    vega = float(greeks.vega)
    if not vega * vol * _VEGA_RESOLUTION > _EPS * undiscounted:
        return math.nan, IVStatus.ZERO_VEGA
    if abs(model - undiscounted) > _REPRICE_TOLERANCE * undiscounted:
        return math.nan, IVStatus.NOT_CONVERGED
    return vol, IVStatus.OK


def implied_vol_with_status(
    price: ArrayLike,
    forward: ArrayLike,
    strike: ArrayLike,
    time: ArrayLike,
    rate: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> ImpliedVolResult:
    """Black-76 implied volatility of each price, with a status per element.

    Parameters
    ----------
    price : array-like
        Discounted option price in quote currency (as returned by ``black76_price``).
    forward, strike : array-like
        F and K, quote currency.
    time : array-like
        T in years (must be > 0).
    rate : array-like, default 0
        Continuously compounded rate; the price is undiscounted by exp(r·T) first.
    is_call : array-like of bool, default True

    Returns
    -------
    ImpliedVolResult
        ``vol`` (decimal per √year, NaN unless the status is OK) and ``status``
        (:class:`IVStatus` codes), both of the broadcast shape.  No rounding.

    Raises
    ------
    ValueError
        If the inputs do not broadcast.  Bad prices never raise: they get a status.

    Source: Jäckel (2015) "Let's be rational", via ``py_lets_be_rational``; refusal rules
    in the module docstring.
    """
    arrays = np.broadcast_arrays(
        np.asarray(price, dtype=np.float64),
        np.asarray(forward, dtype=np.float64),
        np.asarray(strike, dtype=np.float64),
        np.asarray(time, dtype=np.float64),
        np.asarray(rate, dtype=np.float64),
        np.asarray(is_call, dtype=bool),
    )
    shape = arrays[0].shape
    vols = np.empty(shape, dtype=np.float64)
    status = np.empty(shape, dtype=np.int8)
    flat = [a.ravel() for a in arrays]
    vol_flat = vols.reshape(-1)
    status_flat = status.reshape(-1)
    for i in range(vol_flat.size):
        vol, st = _solve_one(
            float(flat[0][i]), float(flat[1][i]), float(flat[2][i]), float(flat[3][i]), float(flat[4][i]), bool(flat[5][i])
        )
        vol_flat[i] = vol
        status_flat[i] = int(st)
    return ImpliedVolResult(vols, status)


def implied_vol(
    price: ArrayLike,
    forward: ArrayLike,
    strike: ArrayLike,
    time: ArrayLike,
    rate: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> NDArray[np.float64]:
    """Black-76 implied volatility, NaN where there is no usable solution.

    Same inputs and rules as :func:`implied_vol_with_status`; returns only the float64
    volatility array (NaN for every status other than OK).
    """
    return implied_vol_with_status(price, forward, strike, time, rate, is_call).vol


def implied_vol_one(
    price: float, forward: float, strike: float, time: float, rate: float = 0.0, is_call: bool = True
) -> float:
    """Implied volatility of a single price, raising instead of returning NaN.

    Returns
    -------
    float
        σ, decimal per √year.

    Raises
    ------
    ImpliedVolError
        With ``.status`` set to the :class:`IVStatus` refusal reason.
    """
    vol, status = _solve_one(float(price), float(forward), float(strike), float(time), float(rate), bool(is_call))
    if status is not IVStatus.OK:
        raise ImpliedVolError(
            status,
            f"no implied volatility ({status.name}) for price={price!r} F={forward!r} K={strike!r} "
            f"T={time!r} r={rate!r} {'call' if is_call else 'put'}",
        )
    return vol
