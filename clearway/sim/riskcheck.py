"""Checks of the risk engine against real data and the PM conformance suite (I/O lives here).

Called by ``clearway risk deribit-check | pm | conformance`` (see ``clearway/cli.py``):

- :func:`deribit_check` prices a real Deribit BTC option chain with Clearway's Black-76
  and reports the largest differences from Deribit's own marks and Greeks;
- :func:`deribit_svi_check` fits an SVI slice per expiry of a chain's mark IVs;
- :func:`pm_case` evaluates one portfolio-margin case (conformance schema);
- :func:`conformance` runs every case of a directory and lists the mismatches.
"""

from __future__ import annotations

import ast
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from clearway.domain.risk.black76 import black76_greeks
from clearway.domain.risk.portfolio import (
    PMMarket,
    PMParams,
    PMPortfolio,
    evaluate_portfolio_margin,
    evaluate_portfolio_margin_naive,
)
from clearway.domain.risk.svi import fit_svi

__all__ = [
    "ABSOLUTE_FLOOR",
    "RELATIVE_TOLERANCE",
    "conformance",
    "deribit_check",
    "deribit_svi_check",
    "load_deribit_chain",
    "pm_case",
]

MS_PER_YEAR = 365 * 86_400 * 1000
THETA_MIN_DAYS = 2.0
FORWARD_SLACK_USD = 5.0
PRINT_HALF_WIDTH_FORWARD_USD = 0.005
"""``underlying_price`` is printed with 2 decimals (USD): the true value is within ±0.005."""
PRINT_HALF_WIDTH_VOL = 0.00005
"""``mark_iv`` is printed in percent with 2 decimals: σ is within ±0.005 points (±5e-5)."""
RELATIVE_TOLERANCE = 1e-6
ABSOLUTE_FLOOR = 1e-6
"""Conformance comparison: |got − expected| ≤ max(1e-6 · |expected|, 1e-6) — 1e-6
relative, with an absolute floor of 1e-6 USD for values whose magnitude is below 1
(several cases expect exactly 0 for a requirement, or 3.6e-12 where rounding leaves a
residue of a cancelled position)."""

CHECKED_FIELDS = ("equity", "maintenance_margin", "initial_margin")


def load_deribit_chain(path: Path) -> dict[str, np.ndarray]:
    """Read a Deribit option chain CSV (data/README.md, "deribit/") into arrays.

    Returns columns: strike, forward (``underlying_price``), time (years, (expiry −
    timestamp)/365 days), vol (mark_iv/100), is_call, mark_btc, delta, gamma, vega, theta,
    rho (Deribit's Greeks), expiry (ms).
    """
    rows = list(csv.DictReader(Path(path).open(newline="")))
    greeks = [ast.literal_eval(r["greeks"]) for r in rows]
    return {
        "strike": np.array([float(r["strike"]) for r in rows]),
        "forward": np.array([float(r["underlying_price"]) for r in rows]),
        "time": np.array([(int(r["expiration_timestamp"]) - int(r["timestamp"])) / MS_PER_YEAR for r in rows]),
        "vol": np.array([float(r["mark_iv"]) / 100.0 for r in rows]),
        "is_call": np.array([r["option_type"] == "call" for r in rows]),
        "mark_btc": np.array([float(r["mark_price"]) for r in rows]),
        "delta": np.array([float(g["delta"]) for g in greeks]),
        "gamma": np.array([float(g["gamma"]) for g in greeks]),
        "vega": np.array([float(g["vega"]) for g in greeks]),
        "theta": np.array([float(g["theta"]) for g in greeks]),
        "rho": np.array([float(g["rho"]) for g in greeks]),
        "expiry": np.array([int(r["expiration_timestamp"]) for r in rows]),
    }


def deribit_check(path: Path) -> dict[str, Any]:
    """Price one Deribit chain with Black-76 and compare with Deribit's marks and Greeks.

    Deribit conventions (data/README.md): Black-76 on ``underlying_price`` with r = 0,
    T = (expiry − timestamp)/365 days, σ = mark_iv/100; price in BTC = USD price / forward;
    delta plain; gamma per 1 USD; vega per 1 vol point (÷100); theta per day (÷365),
    compared only for expiries more than 2 days away (Deribit reports a capped theta for
    shorter ones).

    Returns
    -------
    dict
        ``options`` (rows), ``price_btc``, ``delta``, ``gamma``, ``vega``,
        ``theta_beyond_2d`` (max absolute differences), plus ``theta_beyond_2d_relative``
        (max |Δθ|/|θ|), ``options_beyond_2d``, ``expiries``, ``price_btc_median``,
        ``price_btc_within_1e-5`` (rows), ``price_usd`` (max, USD) and
        ``price_btc_forward_slack_5usd``: the max price difference when each row's forward
        may be off by up to 5 USD (see :func:`_price_with_forward_slack`) — the rows'
        marks and ``underlying_price`` are not always from the same instant;
        ``price_btc_print_rounding``: the max price difference when ``underlying_price``
        and ``mark_iv`` may be anywhere in their printed rounding intervals (±0.005 USD,
        ±0.005 vol points), and ``price_btc_beyond_1e-5_after_print_rounding`` the rows
        still beyond 1e-5 BTC then: rows no reading of the printed inputs reproduces.
    """
    chain = load_deribit_chain(path)
    g = black76_greeks(chain["forward"], chain["strike"], chain["time"], chain["vol"], 0.0, chain["is_call"])
    price_btc = g.price / chain["forward"]
    vega_point = g.vega / 100.0
    theta_day = g.theta / 365.0
    beyond = chain["time"] * 365.0 > THETA_MIN_DAYS
    theta_diff = np.abs(theta_day - chain["theta"])[beyond]
    theta_rel = theta_diff / np.maximum(np.abs(chain["theta"][beyond]), 1e-12)
    price_diff = np.abs(price_btc - chain["mark_btc"])
    slack = _price_with_forward_slack(chain, FORWARD_SLACK_USD)
    printed = _price_within_input_intervals(chain, PRINT_HALF_WIDTH_FORWARD_USD, PRINT_HALF_WIDTH_VOL)
    return {
        "options": int(chain["strike"].size),
        "price_btc": float(np.max(price_diff)),
        "delta": float(np.max(np.abs(g.delta - chain["delta"]))),
        "gamma": float(np.max(np.abs(g.gamma - chain["gamma"]))),
        "vega": float(np.max(np.abs(vega_point - chain["vega"]))),
        "theta_beyond_2d": float(theta_diff.max()) if theta_diff.size else 0.0,
        "theta_beyond_2d_relative": float(theta_rel.max()) if theta_rel.size else 0.0,
        "options_beyond_2d": int(beyond.sum()),
        "expiries": int(np.unique(chain["expiry"]).size),
        "price_btc_median": float(np.median(price_diff)),
        "price_btc_within_1e-5": int(np.sum(price_diff <= 1e-5)),
        "price_usd": float(np.max(price_diff * chain["forward"])),
        "price_btc_forward_slack_5usd": float(np.max(slack)),
        "price_btc_print_rounding": float(np.max(printed)),
        "price_btc_beyond_1e-5_after_print_rounding": int(np.sum(printed > 1e-5)),
    }


def _price_within_input_intervals(
    chain: dict[str, np.ndarray], forward_half_width: float, vol_half_width: float,
) -> np.ndarray:
    """Per row, min over F' ∈ F ± forward_half_width, σ' ∈ σ ± vol_half_width of
    |V(F', σ')/F' − mark| (BTC).

    V(F)/F is monotone in F (its derivative is K·N(d2)/F² for a call, −K·N(−d2)/F² for a
    put) and V is increasing in σ (vega ≥ 0), so over the rectangle the error ranges
    between its values at the four corners: the minimum is 0 when the corners bracket the
    mark, else the corner nearest to it.
    """
    lo = np.full(chain["strike"].shape, np.inf)
    hi = np.full(chain["strike"].shape, -np.inf)
    for df in (-forward_half_width, forward_half_width):
        f = chain["forward"] + df
        for dv in (-vol_half_width, vol_half_width):
            v = black76_greeks(f, chain["strike"], chain["time"], chain["vol"] + dv, 0.0, chain["is_call"]).price
            err = v / f - chain["mark_btc"]
            lo, hi = np.minimum(lo, err), np.maximum(hi, err)
    return np.where((lo <= 0.0) & (hi >= 0.0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))


def _price_with_forward_slack(chain: dict[str, np.ndarray], slack_usd: float) -> np.ndarray:
    """Per row, min over |δ| ≤ slack_usd of |V(F+δ)/(F+δ) − mark| (BTC), at the row's σ.

    Shows that the price differences come from the recorded ``underlying_price`` of a row
    being a few USD away from the forward Deribit used for that row's mark.
    """
    return _price_within_input_intervals(chain, slack_usd, 0.0)


def _flat_wing_mask(strikes: np.ndarray, vols: np.ndarray, tolerance: float = 0.005) -> np.ndarray:
    """True for the strikes to fit: drops the ends of a slice where Deribit's mark IV is
    flat (consecutive strikes within 0.5 vol points), a cap SVI cannot represent."""
    unique = np.unique(strikes)
    mean_iv = {k: float(vols[strikes == k].mean()) for k in unique}
    capped: set[float] = set()
    for seq in (list(unique), list(unique[::-1])):
        for a, b in zip(seq, seq[1:]):
            if abs(mean_iv[a] - mean_iv[b]) < tolerance:
                capped.add(a)
            else:
                break
    return np.array([k not in capped for k in strikes])


def deribit_svi_check(path: Path) -> dict[str, Any]:
    """Fit one SVI slice per expiry of a Deribit chain's mark IVs (k = ln(K/underlying)).

    Deribit flattens its mark IV in the far wings; those flat runs at both ends of a slice
    are left out (SVI total variance grows linearly in the wings and cannot be flat).

    Returns
    -------
    dict
        ``expiries``: a list of {expiry_ms, days, points, points_fitted, rmse_vol_points,
        max_abs_vol_points} with errors in volatility points (1 = 1 %).
    """
    chain = load_deribit_chain(path)
    results = []
    for expiry in np.unique(chain["expiry"]):
        rows = chain["expiry"] == expiry
        strikes, vols = chain["strike"][rows], chain["vol"][rows]
        time = float(chain["time"][rows].mean())
        keep = _flat_wing_mask(strikes, vols)
        k = np.log(strikes[keep] / chain["forward"][rows][keep])
        fit = fit_svi(k, vols=vols[keep], time=time)
        results.append({
            "expiry_ms": int(expiry),
            "days": time * 365.0,
            "points": int(rows.sum()),
            "points_fitted": int(keep.sum()),
            "rmse_vol_points": fit.rmse_vol * 100.0,
            "max_abs_vol_points": fit.max_abs_vol_error * 100.0,
            "params": [fit.params.a, fit.params.b, fit.params.rho, fit.params.m, fit.params.sigma],
        })
    return {"expiries": results}


def pm_case(case: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one portfolio-margin case (conformance schema: market, portfolio, params).

    Returns
    -------
    dict
        equity, maintenance_margin, initial_margin, maintenance_surplus, initial_surplus
        (USD floats) and worst_scenario (index into params.scenarios; the number of
        scenarios means the basis contingency), plus worst_scenario_description.
    """
    market = PMMarket.from_dict(case["market"])
    portfolio = PMPortfolio.from_dict(case["portfolio"])
    params = PMParams.from_dict(case["params"])
    return evaluate_portfolio_margin(market, portfolio, params).as_dict()


def _matches(got: float, expected: float) -> bool:
    tolerance = max(RELATIVE_TOLERANCE * abs(expected), ABSOLUTE_FLOOR)
    return math.isfinite(got) and abs(got - expected) <= tolerance


def conformance(directory: Path, *, naive: bool = False) -> dict[str, Any]:
    """Run every ``*.json`` case in ``directory`` and compare with its ``expected``.

    A case passes when equity, maintenance_margin and initial_margin each match to 1e-6
    relative (absolute floor 1e-6 USD for |expected| < 1, see :data:`ABSOLUTE_FLOOR`).
    ``naive=True`` evaluates with the reference scenario loop instead of risk arrays.

    Returns
    -------
    dict
        ``cases`` (count), ``passed``, ``failures`` (list of {name, field, expected, got}).
    """
    files = sorted(Path(directory).glob("*.json"))
    failures: list[dict[str, Any]] = []
    passed = 0
    for file in files:
        case = json.loads(file.read_text())
        name = case.get("name", file.stem)
        try:
            if naive:
                result = evaluate_portfolio_margin_naive(
                    PMMarket.from_dict(case["market"]), PMPortfolio.from_dict(case["portfolio"]),
                    PMParams.from_dict(case["params"])).as_dict()
            else:
                result = pm_case(case)
        except Exception as exc:  # a crashing case is a failure to report, not an abort
            failures.append({"name": name, "field": "error", "expected": None, "got": repr(exc)})
            continue
        ok = True
        for fld in CHECKED_FIELDS:
            expected = float(case["expected"][fld])
            if not _matches(float(result[fld]), expected):
                ok = False
                failures.append({"name": name, "field": fld, "expected": expected, "got": float(result[fld])})
        passed += ok
    return {"cases": len(files), "passed": passed, "failures": failures}
