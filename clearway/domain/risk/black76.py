"""Black-76: European options on a forward, priced and differentiated with numpy.

Every function takes array-likes that broadcast against each other (numpy rules) and
returns float64 arrays of the broadcast shape (0-d arrays for scalar inputs; call
``float()`` on them if a Python float is wanted).

Conventions (the same everywhere in ``clearway.domain.risk``):

- ``forward`` F and ``strike`` K in quote currency (USD) per unit of the underlying;
- ``time`` T in years (the exchange uses seconds / (365 · 86400));
- ``vol`` σ as a decimal (0.45 = 45 %), per √year;
- ``rate`` r continuously compounded per year; the discount factor is D = exp(−r·T) for
  T > 0 and 1 for T ≤ 0 (an expired option is worth its intrinsic value);
- ``is_call`` a boolean (True = call, False = put).

Formula (Black, F. 1976, "The pricing of commodity contracts", J. Financial Economics 3):

    d1 = (ln(F/K) + σ²T/2) / (σ√T),   d2 = d1 − σ√T
    call = D · (F·N(d1) − K·N(d2)),  put = D · (K·N(−d2) − F·N(−d1))

The out-of-the-money side is evaluated with the formula and the in-the-money side by
put-call parity (call − put = D·(F − K)), so a price is never below D·intrinsic because
of cancellation.  Degenerate inputs — T ≤ 0, σ ≤ 0, F ≤ 0 or K ≤ 0 — are priced at
D·intrinsic without evaluating logarithms or divisions, so no NaN or warning is produced.
Non-finite inputs propagate as NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

__all__ = [
    "Black76Greeks",
    "black76_greeks",
    "black76_price",
    "discount_factor",
    "intrinsic_value",
]

_INV_SQRT_2PI = 0.3989422804014327  # 1 / √(2π)

FloatArray = NDArray[np.float64]


class Black76Greeks(NamedTuple):
    """Price and sensitivities of one option (or an array of options) per unit of size.

    All fields are float64 arrays of the broadcast input shape.

    - ``price``: D · Black-76 value, quote currency.
    - ``delta``: ∂price/∂F (forward delta; equals D·N(d1) for a call, D·(N(d1) − 1) for a put).
    - ``gamma``: ∂²price/∂F², per unit of the forward price squared.
    - ``vega``: ∂price/∂σ per 1.00 of volatility (divide by 100 for "per vol point").
    - ``theta``: ∂price/∂t per year of calendar time passing with F, σ, r fixed
      (= −∂price/∂T = −D·F·φ(d1)·σ/(2√T) + r·price); divide by 365 for "per day".
    - ``rho``: ∂price/∂r per 1.00 of rate with F fixed (= −T · price).
    """

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray


def discount_factor(rate: ArrayLike, time: ArrayLike) -> FloatArray:
    """Discount factor D = exp(−r · max(T, 0)), float64, broadcast shape.

    Parameters
    ----------
    rate : array-like
        Continuously compounded rate per year (decimal).
    time : array-like
        Time to expiry in years; T ≤ 0 gives D = 1.
    """
    r = np.asarray(rate, dtype=np.float64)
    t = np.asarray(time, dtype=np.float64)
    return np.exp(-r * np.maximum(t, 0.0))


def intrinsic_value(forward: ArrayLike, strike: ArrayLike, is_call: ArrayLike) -> FloatArray:
    """Undiscounted intrinsic value: max(F − K, 0) for calls, max(K − F, 0) for puts.

    Float64 array of the broadcast shape of the three inputs.
    """
    f = np.asarray(forward, dtype=np.float64)
    k = np.asarray(strike, dtype=np.float64)
    c = np.asarray(is_call, dtype=bool)
    return np.where(c, np.maximum(f - k, 0.0), np.maximum(k - f, 0.0))


def _prepare(
    forward: ArrayLike, strike: ArrayLike, time: ArrayLike, vol: ArrayLike, rate: ArrayLike, is_call: ArrayLike
) -> tuple[FloatArray, ...]:
    f, k, t, s, r = (np.asarray(x, dtype=np.float64) for x in (forward, strike, time, vol, rate))
    c = np.asarray(is_call, dtype=bool)
    f, k, t, s, r, c = np.broadcast_arrays(f, k, t, s, r, c)
    return f, k, t, s, r, c


def black76_price(
    forward: ArrayLike,
    strike: ArrayLike,
    time: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> FloatArray:
    """Black-76 price of a European option on a forward, per unit of the underlying.

    Parameters
    ----------
    forward, strike : array-like
        F and K in quote currency; broadcast together with the others.
    time : array-like
        T in years.  T ≤ 0 returns the intrinsic value (D = 1).
    vol : array-like
        σ (decimal, per √year).  σ ≤ 0 returns D · intrinsic.
    rate : array-like, default 0
        Continuously compounded rate r; D = exp(−r·T).
    is_call : array-like of bool, default True

    Returns
    -------
    numpy.ndarray
        float64 prices of the broadcast shape, never below D·intrinsic and never above
        D·F (call) or D·K (put).  No rounding: callers that charge a requirement round it
        up themselves when converting to quote units.

    Raises
    ------
    ValueError
        If the inputs do not broadcast.

    Source: Black (1976); see the module docstring.
    """
    return _black76(forward, strike, time, vol, rate, is_call, greeks=False).price


def black76_greeks(
    forward: ArrayLike,
    strike: ArrayLike,
    time: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> Black76Greeks:
    """Black-76 price with delta, gamma, vega, theta and rho (see :class:`Black76Greeks`).

    Inputs as for :func:`black76_price`.  Degenerate inputs take their limiting values:

    - T ≤ 0 (expired): price = intrinsic, delta = ±1 in the money, ±0.5 exactly at the
      money, 0 out of the money; gamma = vega = theta = rho = 0.
    - σ ≤ 0 with T > 0: price = D·intrinsic, delta = ±D in the money (±D/2 at the money),
      gamma = 0 (the Dirac mass at F = K is not represented), vega = D·F·√T·φ(0) at the
      money and 0 elsewhere, theta = r·price, rho = −T·price.
    - F ≤ 0 or K ≤ 0: treated as σ = 0 (the option is worth D·intrinsic).

    Returns
    -------
    Black76Greeks
        float64 arrays of the broadcast shape; no rounding.

    Raises
    ------
    ValueError
        If the inputs do not broadcast.

    Source: Black (1976); the Greeks by direct differentiation of the formula (checked
    against central finite differences in the tests).
    """
    return _black76(forward, strike, time, vol, rate, is_call, greeks=True)


def _black76(
    forward: ArrayLike,
    strike: ArrayLike,
    time: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike,
    is_call: ArrayLike,
    *,
    greeks: bool,
) -> Black76Greeks:
    f, k, t, s, r, c = _prepare(forward, strike, time, vol, rate, is_call)
    shape = f.shape
    t_pos = np.maximum(t, 0.0)
    disc = np.exp(-r * t_pos)
    with np.errstate(invalid="ignore"):
        sqrt_t = np.sqrt(t_pos)
    total_vol = s * sqrt_t
    # Regular points: everything strictly positive and finite-ish.  NaN inputs fail the
    # comparisons and fall through to the degenerate branch, which propagates the NaN.
    regular = (t > 0.0) & (s > 0.0) & (f > 0.0) & (k > 0.0) & (total_vol > 0.0)

    # Safe copies: degenerate entries replaced by harmless values (F = K = 1, σ√T = 1).
    f_s = np.where(regular, f, 1.0)
    k_s = np.where(regular, k, 1.0)
    v_s = np.where(regular, total_vol, 1.0)
    d1 = (np.log(f_s / k_s) + 0.5 * v_s * v_s) / v_s
    d2 = d1 - v_s

    # Out-of-the-money side by formula, in-the-money side by parity.
    call_otm = f_s < k_s  # the call is out of the money (the put in the money)
    call_formula = disc * (f_s * ndtr(d1) - k_s * ndtr(d2))
    put_formula = disc * (k_s * ndtr(-d2) - f_s * ndtr(-d1))
    call_formula = np.maximum(call_formula, 0.0)
    put_formula = np.maximum(put_formula, 0.0)
    parity = disc * (f_s - k_s)
    call_price = np.where(call_otm, call_formula, put_formula + parity)
    put_price = np.where(call_otm, call_formula - parity, put_formula)
    price_regular = np.where(c, call_price, put_price)

    intrinsic = intrinsic_value(f, k, c)
    nan_in = np.isnan(f) | np.isnan(k) | np.isnan(t) | np.isnan(s) | np.isnan(r)
    price = np.where(regular, price_regular, np.where(nan_in, np.nan, disc * intrinsic))
    price = np.asarray(price, dtype=np.float64).reshape(shape)

    if not greeks:
        zeros = np.zeros(shape)
        return Black76Greeks(price, zeros, zeros, zeros, zeros, zeros)

    pdf_d1 = _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    n_d1 = ndtr(d1)
    delta_regular = disc * np.where(c, n_d1, n_d1 - 1.0)
    gamma_regular = disc * pdf_d1 / (f_s * v_s)
    vega_regular = disc * f_s * pdf_d1 * np.where(regular, sqrt_t, 1.0)
    theta_regular = -disc * f_s * pdf_d1 * v_s / (2.0 * np.where(regular, t_pos, 1.0)) + r * price_regular

    # Limits for degenerate points.
    itm = np.where(c, f > k, k > f)
    atm = f == k
    sign = np.where(c, 1.0, -1.0)
    delta_deg = sign * disc * np.where(itm, 1.0, np.where(atm, 0.5, 0.0))
    live = t > 0.0
    vega_deg = np.where(live & atm & (f > 0.0), disc * f * sqrt_t * _INV_SQRT_2PI, 0.0)
    theta_deg = np.where(live, r * price, 0.0)
    rho_all = np.where(live, -t_pos * price, 0.0)

    delta = np.where(regular, delta_regular, np.where(nan_in, np.nan, delta_deg))
    gamma = np.where(regular, gamma_regular, np.where(nan_in, np.nan, 0.0))
    vega = np.where(regular, vega_regular, np.where(nan_in, np.nan, vega_deg))
    theta = np.where(regular, theta_regular, np.where(nan_in, np.nan, theta_deg))
    rho = np.where(nan_in, np.nan, rho_all)
    return Black76Greeks(
        price,
        np.asarray(delta, dtype=np.float64).reshape(shape),
        np.asarray(gamma, dtype=np.float64).reshape(shape),
        np.asarray(vega, dtype=np.float64).reshape(shape),
        np.asarray(theta, dtype=np.float64).reshape(shape),
        np.asarray(rho, dtype=np.float64).reshape(shape),
    )
