"""SVI (stochastic volatility inspired) volatility slices: evaluation, checks, calibration.

One slice per expiry in Gatheral's *raw* parameterisation (Gatheral 2004, "A parsimonious
arbitrage-free implied volatility parameterization"; Gatheral & Jacquier 2014, "Arbitrage-
free SVI volatility surfaces", Quantitative Finance 14(1), section 3):

    w(k) = a + b · (ρ·(k − m) + √((k − m)² + σ²)),   k = ln(K / F),   vol(k) = √(w(k) / T)

with w the total implied variance (vol² · T), F the expiry's forward and T in years.
This is the surface format the oracle posts (exchange-rules.md, "Index, mark price and
oracle").

Static-arbitrage checks (:func:`validate_svi`), each failing with :class:`SVIArbitrageError`:

1. b ≥ 0, |ρ| < 1, σ > 0 and all five parameters finite (raw SVI domain);
2. a + b·σ·√(1 − ρ²) ≥ 0: the minimum of w is non-negative;
3. b·(1 + |ρ|) ≤ 4: the wing slopes respect the Roger Lee / Rogers–Tehranchi bound
   (Lee 2004, "The moment formula for implied volatility at extreme strikes"; Gatheral &
   Jacquier 2014, section 3);
4. no butterfly arbitrage: the function g of Gatheral & Jacquier 2014 (section 2),

       g(k) = (1 − k·w'/(2w))² − (w'²/4)·(1/w + 1/4) + w''/2

   is ≥ 0 on a grid of k (default :data:`DEFAULT_K_GRID`, −6 ≤ k ≤ 6 by 0.01, extended
   to the data range during a fit).  g ≥ 0 for all k is their criterion for a slice free of butterfly arbitrage;
   a grid check is necessary, not sufficient, and is what the exchange enforces.

Calendar-spread arbitrage between slices is out of scope here (one slice at a time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import lsq_linear, minimize

__all__ = [
    "DEFAULT_K_GRID",
    "SVIArbitrageError",
    "SVICalibrationError",
    "SVIFit",
    "SVIParams",
    "fit_svi",
    "svi_density",
    "svi_implied_vol",
    "svi_total_variance",
    "validate_svi",
]

DEFAULT_K_GRID: NDArray[np.float64] = np.linspace(-6.0, 6.0, 1201)
"""Log-moneyness grid of the butterfly check: −6 ≤ k ≤ 6 by 0.01 (K/F from 0.25 % to 403)."""

_DENSITY_TOLERANCE = 1e-10  # g(k) ≥ −tolerance counts as non-negative (float rounding)
_LEE_BOUND = 4.0


class SVIArbitrageError(ValueError):
    """An SVI parameter set violates one of the checks of :func:`validate_svi`."""


class SVICalibrationError(RuntimeError):
    """:func:`fit_svi` could not produce an arbitrage-free parameter set."""


@dataclass(frozen=True, slots=True)
class SVIParams:
    """Raw SVI parameters of one expiry (total-variance units, k = ln(K/F)).

    a: level of total variance; b: wing slope scale (≥ 0); rho: skew, |ρ| < 1;
    m: horizontal shift (log-moneyness); sigma: smoothness of the vertex (> 0).
    """

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    def as_array(self) -> NDArray[np.float64]:
        """The parameters as a float64 array (a, b, ρ, m, σ)."""
        return np.array([self.a, self.b, self.rho, self.m, self.sigma], dtype=np.float64)


def _derivatives(k: ArrayLike, p: SVIParams) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    x = np.asarray(k, dtype=np.float64) - p.m
    root = np.sqrt(x * x + p.sigma * p.sigma)
    w = p.a + p.b * (p.rho * x + root)
    w1 = p.b * (p.rho + x / root)
    w2 = p.b * p.sigma * p.sigma / (root * root * root)
    return w, w1, w2


def svi_total_variance(k: ArrayLike, params: SVIParams) -> NDArray[np.float64]:
    """Total implied variance w(k) of a raw SVI slice.

    Parameters
    ----------
    k : array-like
        Log-moneyness ln(K/F), any shape.
    params : SVIParams

    Returns
    -------
    numpy.ndarray
        float64 w(k), same shape as ``k``; no rounding.  May be negative for parameter
        sets that fail :func:`validate_svi`.

    Source: Gatheral (2004), raw SVI; Gatheral & Jacquier (2014), section 3.
    """
    return _derivatives(k, params)[0]


def svi_implied_vol(k: ArrayLike, time: float, params: SVIParams) -> NDArray[np.float64]:
    """Implied volatility √(w(k)/T) of a raw SVI slice.

    Parameters
    ----------
    k : array-like
        Log-moneyness ln(K/F).
    time : float
        T in years, > 0.
    params : SVIParams

    Returns
    -------
    numpy.ndarray
        float64 volatility (decimal per √year), shape of ``k``; NaN where w(k) < 0.

    Raises
    ------
    ValueError
        If ``time`` is not positive.
    """
    if not time > 0.0:
        raise ValueError(f"time to expiry must be positive, got {time!r}")
    w = svi_total_variance(k, params)
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.where(w >= 0.0, w, np.nan) / time)


def svi_density(k: ArrayLike, params: SVIParams) -> NDArray[np.float64]:
    """Butterfly-arbitrage function g(k) of Gatheral & Jacquier (2014), section 2.

    g(k) = (1 − k·w'/(2w))² − (w'²/4)·(1/w + 1/4) + w''/2.  The risk-neutral density of
    ln(S_T/F) is φ(d2)·g(k)/√w, so g < 0 anywhere means a butterfly spread with negative
    price.

    Returns
    -------
    numpy.ndarray
        float64 g(k), shape of ``k``; NaN where w(k) ≤ 0 (g is undefined there).
    """
    w, w1, w2 = _derivatives(k, params)
    kk = np.asarray(k, dtype=np.float64)
    positive = w > 0.0
    w_safe = np.where(positive, w, 1.0)
    g = (1.0 - kk * w1 / (2.0 * w_safe)) ** 2 - (w1 * w1 / 4.0) * (1.0 / w_safe + 0.25) + w2 / 2.0
    return np.where(positive, g, np.nan)


def validate_svi(params: SVIParams, k_grid: ArrayLike | None = None) -> None:
    """Reject a raw SVI parameter set that admits static arbitrage within one slice.

    Parameters
    ----------
    params : SVIParams
    k_grid : array-like, optional
        Log-moneyness points of the butterfly check; default :data:`DEFAULT_K_GRID`.

    Returns
    -------
    None
        When every check of the module docstring passes.

    Raises
    ------
    SVIArbitrageError
        Naming the first failed check and the offending numbers.

    Source: Gatheral & Jacquier (2014), §2–3; Lee (2004).
    """
    a, b, rho, m, sigma = (float(v) for v in (params.a, params.b, params.rho, params.m, params.sigma))
    if not all(math.isfinite(v) for v in (a, b, rho, m, sigma)):
        raise SVIArbitrageError(f"SVI parameters must be finite: {params}")
    if b < 0.0:
        raise SVIArbitrageError(f"SVI b must be >= 0 (wing slopes), got b={b!r}")
    if not abs(rho) < 1.0:
        raise SVIArbitrageError(f"SVI rho must satisfy |rho| < 1, got rho={rho!r}")
    if not sigma > 0.0:
        raise SVIArbitrageError(f"SVI sigma must be > 0, got sigma={sigma!r}")
    minimum = a + b * sigma * math.sqrt(1.0 - rho * rho)
    if minimum < 0.0:
        raise SVIArbitrageError(
            f"SVI minimum total variance a + b*sigma*sqrt(1-rho^2) = {minimum!r} is negative"
        )
    slope = b * (1.0 + abs(rho))
    if slope > _LEE_BOUND:
        raise SVIArbitrageError(f"SVI wing slope b*(1+|rho|) = {slope!r} exceeds the Lee bound {_LEE_BOUND}")
    grid = DEFAULT_K_GRID if k_grid is None else np.asarray(k_grid, dtype=np.float64).ravel()
    g = svi_density(grid, params)
    defined = np.isfinite(g)
    if np.any(defined & (g < -_DENSITY_TOLERANCE)):
        i = int(np.argmin(np.where(defined, g, np.inf)))
        raise SVIArbitrageError(
            f"SVI butterfly arbitrage: g(k) = {float(g[i])!r} < 0 at k = {float(grid[i])!r} "
            "(Gatheral & Jacquier 2014, section 2)"
        )


@dataclass(frozen=True, slots=True)
class SVIFit:
    """Result of :func:`fit_svi`.

    params: validated :class:`SVIParams`; rmse_total_variance: weighted RMSE of w;
    rmse_vol: RMSE of the implied volatility (decimal), unweighted; max_abs_vol_error:
    largest absolute volatility error (decimal); n: number of points fitted.
    """

    params: SVIParams
    rmse_total_variance: float
    rmse_vol: float
    max_abs_vol_error: float
    n: int


def _linear_inner(
    k: NDArray[np.float64], w: NDArray[np.float64], sw: NDArray[np.float64], m: float, sigma: float, b_max: float
) -> tuple[NDArray[np.float64], float]:
    """Best (a, b, ρ) for fixed (m, σ): a bounded linear least-squares problem.

    With y = (k − m)/σ and z = √(y² + 1), w = a + u·(z + y)/2 + v·(z − y)/2 where
    u = bσ(1 + ρ) and v = bσ(1 − ρ) are the wing slopes times σ.  The box 0 ≤ a,
    0 ≤ u, v ≤ b_max·σ enforces b ≥ 0, |ρ| ≤ 1, the Lee bound and a non-negative minimum
    (a ≥ 0 is sufficient).  This is the quasi-explicit reduction of De Marco & Martini
    (Zeliade Systems 2009, "Quasi-explicit calibration of Gatheral's SVI model"); it
    only provides starting points here.

    Returns the parameters (a, b, ρ, m, σ) and the weighted sum of squared residuals.
    """
    y = (k - m) / sigma
    z = np.sqrt(y * y + 1.0)
    design = np.column_stack([np.ones_like(y), 0.5 * (z + y), 0.5 * (z - y)]) * sw[:, None]
    upper = [max(float(w.max()), 1e-12), b_max * sigma, b_max * sigma]
    res = lsq_linear(design, w * sw, bounds=([0.0, 0.0, 0.0], upper), method="bvls")
    a, u, v = (float(x) for x in res.x)
    c = 0.5 * (u + v)
    rho = (u - v) / (u + v) if c > 0.0 else 0.0
    rho = float(np.clip(rho, -0.99 * _RHO_MAX, 0.99 * _RHO_MAX))
    resid = design @ res.x - w * sw
    return np.array([a, c / sigma, rho, m, sigma]), float(resid @ resid)


_RHO_MAX = 0.999


def _pack(p: NDArray[np.float64], scale: float, min_floor: float) -> NDArray[np.float64]:
    """(a, b, ρ, m, σ) in units of ``scale`` → unconstrained optimisation variables.

    A start whose minimum variance a + bσ√(1−ρ²) is below ``min_floor`` is lifted to it.
    """
    a, b, rho, m, sigma = (float(v) for v in p)
    rho = float(np.clip(rho, -0.99 * _RHO_MAX, 0.99 * _RHO_MAX))
    sigma = min(max(sigma, 2e-4), 5.0)
    frac = float(np.clip(b * scale * (1.0 + abs(rho)) / _LEE_BOUND, 1e-9, 1.0 - 1e-9))
    floor = max(a + b * sigma * math.sqrt(1.0 - rho * rho), min_floor)
    return np.array([math.log(floor), math.log(frac / (1.0 - frac)), math.atanh(rho / _RHO_MAX), m, math.log(sigma)])


def _unpack(x: NDArray[np.float64], scale: float) -> SVIParams:
    """Inverse of :func:`_pack`, returning parameters in real (unscaled) units.

    b(1 + |ρ|) = 4·logistic(x1) keeps the Lee bound; a = exp(x0) − bσ√(1−ρ²) keeps the
    minimum variance positive; ρ = 0.999·tanh(x2); σ = exp(x4).
    """
    log_floor, logit_frac, atanh_rho, m, log_sigma = (float(v) for v in x)
    rho = _RHO_MAX * math.tanh(atanh_rho)
    sigma = math.exp(min(max(log_sigma, -20.0), 5.0))
    frac = 1.0 / (1.0 + math.exp(-min(max(logit_frac, -700.0), 700.0)))
    b = _LEE_BOUND * frac / (1.0 + abs(rho))
    a = math.exp(min(log_floor, 50.0)) * scale - b * sigma * math.sqrt(1.0 - rho * rho)
    return SVIParams(a, b, rho, m, sigma)


def _is_valid(params: SVIParams, grid: NDArray[np.float64]) -> bool:
    try:
        validate_svi(params, grid)
    except SVIArbitrageError:
        return False
    return True


def _repair(params: SVIParams, grid: NDArray[np.float64], scale: float, level: float) -> SVIParams | None:
    """Nudge a penalised optimum that still has a tiny butterfly violation into validity.

    A penalty leaves g slightly negative where the constraint binds.  First raise a by
    scale·10⁻⁹ … 10⁻¹ (a higher level lifts g where it binds); then blend the parameters
    toward the flat slice (b = 0, a = ``level``), which is arbitrage-free (g ≡ 1).
    Returns None if nothing validates.
    """
    if _is_valid(params, grid):
        return params
    for exponent in range(-9, 0):
        candidate = SVIParams(params.a + scale * 10.0**exponent, params.b, params.rho, params.m, params.sigma)
        if _is_valid(candidate, grid):
            return candidate
    for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0):
        candidate = SVIParams((1 - t) * params.a + t * level, (1 - t) * params.b, params.rho, params.m, params.sigma)
        if _is_valid(candidate, grid):
            return candidate
    return None


def fit_svi(
    k: ArrayLike,
    total_variance: ArrayLike | None = None,
    time: float | None = None,
    weights: ArrayLike | None = None,
    *,
    vols: ArrayLike | None = None,
    k_grid: ArrayLike | None = None,
) -> SVIFit:
    """Calibrate a raw SVI slice to one expiry's smile and return arbitrage-free parameters.

    Parameters
    ----------
    k : array-like, shape (n,)
        Log-moneyness ln(K/F) of the quotes, n ≥ 5.
    total_variance : array-like, shape (n,), optional
        Observed total variance w = vol²·T.  Give exactly one of ``total_variance`` and
        ``vols``.
    time : float, optional
        T in years; required with ``vols`` (to convert) and used for ``rmse_vol``.
    weights : array-like, shape (n,), optional
        Non-negative weights of the squared residuals (default all 1).  With
        ``total_variance`` the residuals are in total variance; with ``vols`` they are
        total-variance residuals divided by w, i.e. (to first order) volatility residuals.
    vols : array-like, shape (n,), optional
        Observed implied volatilities (decimal); converted to w = vol²·T.
    k_grid : array-like, optional
        Butterfly-check grid (default :data:`DEFAULT_K_GRID` extended to the data range).

    Returns
    -------
    SVIFit
        Parameters that pass :func:`validate_svi` on the grid, with fit statistics.

    Method
    ------
    1. Starting points: for fixed (m, σ) the slice is linear in (a, bσ(1+ρ), bσ(1−ρ)); a
       bounded linear least-squares problem (a ≥ 0, slopes in [0, 4σ]) gives the best
       feasible rest (quasi-explicit method, De Marco & Martini 2009).  (m, σ) is searched
       on a 9 × 7 grid and refined by Nelder–Mead from the three best grid points.
    2. Polish: all five parameters by L-BFGS-B in variables where b ≥ 0, |ρ| ≤ 0.999,
       σ ∈ [1e-4, 5], a + bσ√(1−ρ²) > 0 and b(1+|ρ|) < 4 hold by construction, with a
       quadratic penalty on negative g(k) over the check grid plus the data points,
       raised (1, 1e3, 1e6) until :func:`validate_svi` passes; a remaining violation
       below the penalty's resolution is removed by raising a slightly (or, failing
       that, blending toward the flat slice).
    The best validated candidate (lowest weighted error) is returned.

    Raises
    ------
    ValueError
        Bad shapes, fewer than 5 points, non-finite data, negative weights, missing
        ``time`` with ``vols`` or both/neither of ``total_variance`` and ``vols``.
    SVICalibrationError
        If no candidate passes :func:`validate_svi`.
    """
    kk = np.asarray(k, dtype=np.float64).ravel()
    if (total_variance is None) == (vols is None):
        raise ValueError("give exactly one of total_variance and vols")
    if vols is not None:
        if time is None or not time > 0.0:
            raise ValueError("fitting vols needs a positive time to expiry")
        v = np.asarray(vols, dtype=np.float64).ravel()
        w = v * v * time
    else:
        w = np.asarray(total_variance, dtype=np.float64).ravel()
    if kk.shape != w.shape:
        raise ValueError(f"k and the observations differ in length: {kk.shape} vs {w.shape}")
    if kk.size < 5:
        raise ValueError(f"need at least 5 points to fit SVI, got {kk.size}")
    if not (np.all(np.isfinite(kk)) and np.all(np.isfinite(w))):
        raise ValueError("k and observations must be finite")
    if np.any(w < 0.0):
        raise ValueError("observed total variance must be non-negative")
    wt = np.ones_like(kk) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if wt.shape != kk.shape or np.any(~np.isfinite(wt)) or np.any(wt < 0.0) or not np.any(wt > 0.0):
        raise ValueError("weights must be finite, non-negative, not all zero, one per point")

    # With vols given, weight the total-variance residuals by 1/w so the objective is the
    # squared volatility error to first order (δvol ≈ δw / (2·vol·T)).
    fit_wt = wt / np.maximum(w, 1e-12 * float(w.max()) + 1e-300) if vols is not None else wt
    scale = float(np.average(w, weights=wt)) or 1.0  # work in units of the mean variance
    wn = w / scale
    sw = np.sqrt(fit_wt / fit_wt.sum())
    k_lo, k_hi = float(kk.min()), float(kk.max())
    span = max(k_hi - k_lo, 1e-3)
    check_grid = DEFAULT_K_GRID if k_grid is None else np.asarray(k_grid, dtype=np.float64).ravel()
    check_grid = np.union1d(check_grid, np.linspace(k_lo - span, k_hi + span, 201))
    penalty_grid = np.union1d(check_grid, kk)

    # Stage 1: (m, σ) on a coarse grid with the bounded linear inner problem, then
    # Nelder–Mead from the best grid points.
    b_max = 0.999 * _LEE_BOUND / scale

    def outer(x: NDArray[np.float64]) -> float:
        m, sigma = float(x[0]), math.exp(float(x[1]))
        if not (1e-4 <= sigma <= 5.0 and k_lo - 2.0 * span <= m <= k_hi + 2.0 * span):
            return 1e10
        return _linear_inner(kk, wn, sw, m, sigma, b_max)[1]

    grid_points = []
    for m0 in np.linspace(k_lo - 0.25 * span, k_hi + 0.25 * span, 9):
        for s0 in np.geomspace(max(0.01 * span, 1e-4), 2.0 * span + 0.1, 7):
            grid_points.append((outer(np.array([m0, math.log(s0)])), float(m0), float(s0)))
    grid_points.sort(key=lambda item: item[0])
    starts = []
    for _, m0, s0 in grid_points[:3]:
        res = minimize(outer, np.array([m0, math.log(s0)]), method="Nelder-Mead",
                       options={"xatol": 1e-6, "fatol": 1e-14, "maxiter": 300})
        m, sigma = float(res.x[0]), min(max(math.exp(float(res.x[1])), 1e-4), 5.0)
        params, sse = _linear_inner(kk, wn, sw, m, sigma, b_max)
        starts.append((sse, params))
    starts.sort(key=lambda item: item[0])

    # Stage 2: polish all five parameters in a reparameterisation where checks 1-3 hold
    # by construction, with a quadratic penalty on negative g(k) (check 4), raised until
    # the result validates.
    def unpack(x: NDArray[np.float64]) -> SVIParams:
        return _unpack(x, scale)

    def objective(x: NDArray[np.float64], penalty: float) -> float:
        p = unpack(x)
        r = (svi_total_variance(kk, p) / scale - wn) * sw
        value = float(r @ r)
        if penalty > 0.0:
            g = svi_density(penalty_grid, p)
            neg = np.minimum(np.where(np.isfinite(g), g, -1.0), 0.0)
            value += penalty * float(neg @ neg) / neg.size
        return value

    bounds = [
        (math.log(1e-10), math.log(10.0 * float(wn.max()) + 1e-9)),  # log minimum variance (scaled)
        (-30.0, 30.0),  # logit of b(1+|ρ|)/4
        (-4.0, 4.0),  # atanh(ρ/0.999)
        (k_lo - 2.0 * span, k_hi + 2.0 * span),  # m
        (math.log(1e-4), math.log(5.0)),  # log σ
    ]
    best: tuple[float, SVIParams] | None = None
    seen: list[NDArray[np.float64]] = []
    for _, x0 in starts:
        if any(np.allclose(x0, other, rtol=1e-3, atol=1e-6) for other in seen):
            continue
        seen.append(x0)
        if len(seen) > 4:
            break
        x = _pack(x0, scale, 0.25 * float(wn.min()) + 1e-9)
        x = np.clip(x, [b[0] for b in bounds], [b[1] for b in bounds])
        for penalty in (1.0, 1e3, 1e6):
            res = minimize(objective, x, args=(penalty,), method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": 500, "ftol": 1e-15, "gtol": 1e-12})
            x = res.x
            params = _repair(unpack(x), check_grid, scale, float(np.average(w, weights=fit_wt)))
            if params is None:
                continue
            r = (svi_total_variance(kk, params) / scale - wn) * sw
            sse = float(r @ r)
            if best is None or sse < best[0]:
                best = (sse, params)
            break
    if best is None:
        raise SVICalibrationError("no arbitrage-free SVI parameters found for this slice")

    params = best[1]
    fitted = svi_total_variance(kk, params)
    rmse_w = float(math.sqrt(np.sum(wt * (fitted - w) ** 2) / np.sum(wt)))
    if time is not None and time > 0.0:
        vol_obs = np.sqrt(w / time)
        vol_fit = np.sqrt(np.maximum(fitted, 0.0) / time)
        err = vol_fit - vol_obs
        rmse_vol = float(math.sqrt(np.mean(err * err)))
        max_err = float(np.max(np.abs(err)))
    else:
        rmse_vol = math.nan
        max_err = math.nan
    return SVIFit(params, rmse_w, rmse_vol, max_err, int(kk.size))
