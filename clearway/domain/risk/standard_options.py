"""Standard (non-portfolio) margin of option positions, per expiry, with the max-loss cap.

Source: exchange-rules.md, "Standard margin" (options), which follows Derive's standard
manager (derivexyz/v2-core ``StandardManager``) and Deribit's standard margin:

- short call or short put, per contract (S = index price):
  IM = mark + max(0.15·S − OTM, 0.10·S),   MM = mark + 0.075·S,
  with OTM = max(K − S, 0) for a call and max(S − K, 0) for a put;
- a long option has no requirement (and its value is not collateral in standard mode);
- per expiry the sum of the per-contract requirements is capped by the expiry's maximum
  loss at settlement, so spreads are not over-margined.

The maximum loss of one expiry, exactly (the same rule for IM and MM except the charge
for unpaired calls):

1. payoff(P) = Σ_i size_i · (max(P − K_i, 0) for calls, max(K_i − P, 0) for puts) is the
   expiry's settlement cash flow at settlement price P; it is evaluated at P = 0 and at
   every strike held (long or short) in the expiry;
2. settlement_loss = max(0, −min_P payoff(P)).  Marks and premiums are NOT part of it:
   the premium a short received is already in the account's cash, and the loss is the
   cash the expiry can take from the account at settlement;
3. unpaired calls = max(0, −Σ_calls size) (net short calls, whose loss grows without bound
   above the highest strike); each is charged ``unpaired_im_scale``·S = 1.4·S for IM and
   ``unpaired_mm_scale``·S = 1.2·S for MM, added to the settlement loss (Derive adds it to
   the minimum over all evaluation points, not only the highest strike; so does this);
4. requirement(expiry) = min(Σ per-contract requirements, settlement_loss + unpaired charge).

Payoffs are piecewise linear with kinks only at strikes, so min over {0} ∪ strikes plus
the slope beyond the highest strike (net calls) is the exact worst case.

What the requirement is compared with: the per-contract formula includes the option's
mark, i.e. the requirement covers buying the short back plus a buffer.  Derive applies it
as ``cash − requirement ≥ 0`` (the short's mark is not subtracted a second time).  An
equity that already includes the short marks (negative) should be compared with the
requirement minus those marks; the caller (the exchange's account margin) decides, this
module only computes the amounts.

All amounts are float64 quote currency (USD); nothing is rounded here: the exchange
converts a requirement to integer quote units rounding up (exchange-rules.md, Units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "ExpiryPositions",
    "StandardOptionMargin",
    "StandardOptionParams",
    "expiry_max_loss",
    "standard_option_margin",
    "standard_option_margin_expiry",
]


@dataclass(frozen=True, slots=True)
class StandardOptionParams:
    """Parameters of the standard option margin (defaults: exchange-rules.md).

    max_spot_req 0.15 and min_spot_req 0.10: IM add-on max(max·S − OTM, min·S);
    mm_spot_req 0.075: MM add-on; unpaired_im_scale 1.4 / unpaired_mm_scale 1.2: max-loss
    charge per net short call, in units of S.
    """

    max_spot_req: float = 0.15
    min_spot_req: float = 0.10
    mm_spot_req: float = 0.075
    unpaired_im_scale: float = 1.4
    unpaired_mm_scale: float = 1.2


DEFAULT_PARAMS = StandardOptionParams()


class StandardOptionMargin(NamedTuple):
    """Standard margin of one expiry (or a sum of expiries), float64 USD.

    initial_margin / maintenance_margin: the requirements after the cap;
    isolated_im / isolated_mm: Σ per-contract requirements before the cap;
    max_loss_im / max_loss_mm: settlement loss plus the unpaired-call charge (the cap).
    """

    initial_margin: float
    maintenance_margin: float
    isolated_im: float
    isolated_mm: float
    max_loss_im: float
    max_loss_mm: float


class ExpiryPositions(NamedTuple):
    """One expiry's option positions, as parallel arrays of shape (n,).

    strikes (USD), is_call (bool), sizes (signed contracts, short < 0), marks (USD per
    contract, ≥ 0).
    """

    strikes: ArrayLike
    is_call: ArrayLike
    sizes: ArrayLike
    marks: ArrayLike


def _arrays(
    strikes: ArrayLike, is_call: ArrayLike, sizes: ArrayLike, marks: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    k = np.asarray(strikes, dtype=np.float64).ravel()
    c = np.asarray(is_call, dtype=bool).ravel()
    n = np.asarray(sizes, dtype=np.float64).ravel()
    m = np.zeros_like(k) if marks is None else np.asarray(marks, dtype=np.float64).ravel()
    if not (k.shape == c.shape == n.shape == m.shape):
        raise ValueError(f"strikes, is_call, sizes and marks must have one entry per position: "
                         f"{k.shape}, {c.shape}, {n.shape}, {m.shape}")
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(n)) and np.all(np.isfinite(m))):
        raise ValueError("strikes, sizes and marks must be finite")
    if np.any(k < 0.0):
        raise ValueError("strikes must be non-negative")
    if np.any(m < 0.0):
        raise ValueError("marks must be non-negative")
    return k, c, n, m


def expiry_max_loss(
    strikes: ArrayLike, is_call: ArrayLike, sizes: ArrayLike, spot: float, unpaired_scale: float
) -> float:
    """Maximum settlement loss of one expiry plus the unpaired-call charge (module docstring).

    Parameters
    ----------
    strikes, is_call, sizes : array-like, shape (n,)
        Positions of one expiry (signed sizes, short < 0).
    spot : float
        Index price S (USD), > 0.
    unpaired_scale : float
        Charge per net short call in units of S (1.4 for IM, 1.2 for MM by default).

    Returns
    -------
    float
        max(0, −min_{P ∈ {0} ∪ strikes} payoff(P)) + unpaired_scale · S · max(0, −Σ call sizes),
        USD, ≥ 0, unrounded.

    Raises
    ------
    ValueError
        On mismatched shapes, non-finite values, negative strikes or S ≤ 0.
    """
    if not (math.isfinite(spot) and spot > 0.0):
        raise ValueError(f"spot must be positive and finite, got {spot!r}")
    k, c, n, _ = _arrays(strikes, is_call, sizes, None)
    if k.size == 0:
        return 0.0
    prices = np.concatenate([[0.0], k])  # evaluation points P
    diff = prices[:, None] - k[None, :]  # P − K, shape (points, positions)
    payoff_each = np.where(c[None, :], np.maximum(diff, 0.0), np.maximum(-diff, 0.0))
    payoff = payoff_each @ n
    settlement_loss = max(0.0, -float(payoff.min()))
    net_calls = float(n[c].sum())
    unpaired = max(0.0, -net_calls)
    return settlement_loss + unpaired_scale * spot * unpaired


def standard_option_margin_expiry(
    strikes: ArrayLike,
    is_call: ArrayLike,
    sizes: ArrayLike,
    marks: ArrayLike,
    spot: float,
    params: StandardOptionParams = DEFAULT_PARAMS,
) -> StandardOptionMargin:
    """Standard IM and MM of one expiry's option positions, capped by the max loss.

    Parameters
    ----------
    strikes : array-like, shape (n,)
        Strikes K, USD.
    is_call : array-like of bool, shape (n,)
    sizes : array-like, shape (n,)
        Signed sizes in contracts (1 contract = 1 unit of the underlying); short < 0.
    marks : array-like, shape (n,)
        Mark price per contract, USD, ≥ 0.
    spot : float
        Index price S, USD, > 0.
    params : StandardOptionParams

    Returns
    -------
    StandardOptionMargin
        IM = min(Σ_short |n|·(mark + max(0.15·S − OTM, 0.10·S)), max_loss_IM) and
        MM = min(Σ_short |n|·(mark + 0.075·S), max_loss_MM), USD float64, unrounded
        (the exchange rounds requirements up when converting to quote units).

    Raises
    ------
    ValueError
        On mismatched shapes, non-finite values, negative strikes or marks, or S ≤ 0.

    Source: exchange-rules.md "Standard margin"; Derive v2-core StandardManager.
    """
    if not (math.isfinite(spot) and spot > 0.0):
        raise ValueError(f"spot must be positive and finite, got {spot!r}")
    k, c, n, m = _arrays(strikes, is_call, sizes, marks)
    short = np.maximum(-n, 0.0)
    otm = np.where(c, np.maximum(k - spot, 0.0), np.maximum(spot - k, 0.0))
    im_each = m + np.maximum(params.max_spot_req * spot - otm, params.min_spot_req * spot)
    mm_each = m + params.mm_spot_req * spot
    isolated_im = float(short @ im_each)
    isolated_mm = float(short @ mm_each)
    max_loss_im = expiry_max_loss(k, c, n, spot, params.unpaired_im_scale)
    max_loss_mm = expiry_max_loss(k, c, n, spot, params.unpaired_mm_scale)
    return StandardOptionMargin(
        initial_margin=min(isolated_im, max_loss_im),
        maintenance_margin=min(isolated_mm, max_loss_mm),
        isolated_im=isolated_im,
        isolated_mm=isolated_mm,
        max_loss_im=max_loss_im,
        max_loss_mm=max_loss_mm,
    )


def standard_option_margin(
    expiries: Iterable[ExpiryPositions],
    spot: float,
    params: StandardOptionParams = DEFAULT_PARAMS,
) -> StandardOptionMargin:
    """Standard option margin of several expiries of one underlying: the sum of the
    per-expiry results of :func:`standard_option_margin_expiry` (the max-loss cap never
    nets across expiries).

    Parameters
    ----------
    expiries : iterable of ExpiryPositions
        One entry per expiry (positions of one underlying).
    spot : float
        Index price S, USD.
    params : StandardOptionParams

    Returns
    -------
    StandardOptionMargin
        Field-by-field sums, USD float64, unrounded.

    Raises
    ------
    ValueError
        As :func:`standard_option_margin_expiry`.
    """
    totals = [0.0] * 6
    for expiry in expiries:
        result = standard_option_margin_expiry(
            expiry.strikes, expiry.is_call, expiry.sizes, expiry.marks, spot, params
        )
        totals = [t + float(v) for t, v in zip(totals, result)]
    return StandardOptionMargin(*totals)
