"""Portfolio margin inside the exchange: risk arrays per market-data update, PM of k portfolios.

Source: portfolio-margin.md ("Performance shape") on top of ``risk.portfolio``:

- :class:`UnderlyingRisk` holds, for one underlying and one market-data update, the risk
  arrays of every priced option (``risk.portfolio.build_risk_arrays``: each instrument's
  value under every scenario, its base value and its basis-contingency values) packed into
  one table (instruments × (scenarios + 3)). It is derived state: never hashed, never
  snapshotted, rebuilt on demand.
- :class:`RiskCache` keeps one ``UnderlyingRisk`` per underlying, keyed by
  (``UnderlyingMarket.seq``, number of listed instruments): a new ``SetMarketData`` (or the
  oracle's update) or a new listing invalidates it; every pre-trade check and every health
  computation in between reuses it.
- :func:`pm_evaluate` is the per-account step of ``risk.portfolio.margin_from_risk_arrays``
  for k portfolios of one underlying at once (an account's "no order fills", "all bids
  fill", "all asks fill" states in one call): per-expiry sums of size × risk array, then the
  non-linear steps per expiry (static discount by sign, skew −|…|, basis contingency,
  naked shorts), worst loss and loss factors. Same rules, same floats up to summation
  order; tests compare it with ``evaluate_portfolio_margin``.

Confidences: the exchange's market data carries none yet, so every confidence is 1 and the
confidence contingencies are zero (portfolio-margin.md "confidence"); collaterals other
than USDC cash do not exist in the exchange. Both are where the oracle of issue 4 extends.

Float results enter the state only through :func:`requirement_to_micro` (rounded up) and
:func:`value_to_micro` (rounded down).
"""

from __future__ import annotations

import math

import numpy as np

from clearway.domain.instruments import InstrumentSpec, Kind
from clearway.domain.market import UnderlyingMarket, option_instruments, to_pm_market
from clearway.domain.risk.portfolio import PMParams, build_risk_arrays, default_pm_params
from clearway.domain.units import PPM

_TOLERANCE_ABS = 1e-3    # micro-USDC: float noise below this is not rounded up
_TOLERANCE_REL = 1e-12


def requirement_to_micro(usd: float) -> int:
    """A requirement in USD (float) → micro-USDC rounded up.

    ⌈usd·10⁶ − ε⌉ with ε = 10⁻³ + 10⁻¹²·|usd·10⁶| micro-USDC: float64 noise (far below ε)
    must not add a micro-USDC to an exact amount such as 325.0 (exchange-rules.md, Units).
    """
    v = usd * 1e6
    return math.ceil(v - (_TOLERANCE_ABS + _TOLERANCE_REL * abs(v)))


def value_to_micro(usd: float) -> int:
    """A value in USD (float) → micro-USDC rounded down, with the tolerance of
    :func:`requirement_to_micro` in the other direction."""
    v = usd * 1e6
    return math.floor(v + (_TOLERANCE_ABS + _TOLERANCE_REL * abs(v)))


class UnderlyingRisk:
    """Risk arrays of one underlying's priced options for one market-data update.

    Attributes
    ----------
    key : tuple[int, int]
        (market-data seq, number of listed instruments) it was built for.
    rows : dict[int, int]
        Instrument id → row of the arrays.
    inv_scale : ndarray (n,)
        10^−size_decimals per row: lots → contracts.
    table : ndarray (n, s + 3)
        Per +1 contract, USD: value in each scenario (before the static discount), then
        base value (= the mark, unrounded), basis-up and basis-down values.
    expiry_of, strike_group : ndarray (n,) int
    n_expiries, n_groups, n_scenarios : int
    static_pos, static_neg, basis_factor : ndarray (e,)
    dampening : ndarray (s,); skew : ndarray (s,) bool; perp_shock : ndarray (s,) = (s − 1)·d
    params : PMParams
    build_ms : float
        Wall time of the build (reporting only, never enters the state).
    """

    __slots__ = ("key", "underlying", "rows", "specs", "inv_scale", "table", "expiry_of", "strike_group",
                 "n_expiries", "n_groups", "n_scenarios", "static_pos", "static_neg", "basis_factor",
                 "dampening", "skew", "perp_shock", "params", "risk", "pm_market", "build_ms",
                 "expanded", "group_of", "skew_slice", "skew_index", "width", "sp_col", "sn_col",
                 "perp_row", "basis_all", "lipschitz", "perp_lipschitz", "base_of")

    def __init__(self, market: UnderlyingMarket, specs: list[InstrumentSpec], params: PMParams,
                 key: tuple[int, int]) -> None:
        import time

        started = time.perf_counter()
        self.key = key
        self.underlying = market.underlying
        self.params = params
        priced, instruments = option_instruments(market, specs)
        self.specs = priced
        self.pm_market = to_pm_market(market, PPM)
        risk = build_risk_arrays(self.pm_market, instruments, params)
        self.risk = risk
        self.rows = {spec.instrument_id: i for i, spec in enumerate(priced)}
        self.inv_scale = np.array([1.0 / 10**s.size_decimals for s in priced], dtype=np.float64)
        n = len(priced)
        s = len(params.scenarios)
        self.n_scenarios = s
        table = np.empty((n, s + 3), dtype=np.float64)
        table[:, :s] = risk.values
        table[:, s] = risk.base
        table[:, s + 1] = risk.basis_up
        table[:, s + 2] = risk.basis_down
        self.table = table
        self.expiry_of = risk.expiry_of
        self.strike_group = risk.strike_group
        self.n_expiries = len(self.pm_market.expiries)
        self.n_groups = max(risk.n_strike_groups, 1)
        self.static_pos = risk.static_positive
        self.static_neg = risk.static_negative
        self.basis_factor = risk.basis_factor
        self.dampening = risk.dampening
        self.skew = risk.is_skew
        shocks = np.array([sc.spot_shock for sc in params.scenarios], dtype=np.float64)
        self.perp_shock = (shocks - 1.0) * risk.dampening
        # expanded[i]: row i's numbers in its expiry's block of width 2s + 3 —
        # [value·d (s) | base·d (s) | base | basis up | basis down] — zeros elsewhere, so one
        # matmul gives every expiry's sums at once, dampening folded in (d > 0 keeps the
        # sign the static discount depends on). Row n, block e, is the perpetual per USD of
        # notional: value s, base 1, static discount 1, no basis factor, so its block yields
        # the perp's scenario PnL notional·(s − 1)·d.
        e = self.n_expiries
        w = 2 * s + 3
        self.width = w
        damp = risk.dampening
        expanded = np.zeros((n + 1, (e + 1) * w), dtype=np.float64)
        rows = np.arange(n)[:, None]
        starts = np.asarray(self.expiry_of, dtype=np.int64)[:, None] * w  # each row's block (vectorised)
        expanded[rows, starts + np.arange(s)] = table[:, :s] * damp
        expanded[rows, starts + s + np.arange(s)] = table[:, s:s + 1] * damp
        expanded[rows, starts + 2 * s + np.arange(3)] = table[:, s:]
        j = e * w
        expanded[n, j:j + s] = np.array([sc.spot_shock for sc in params.scenarios]) * damp
        expanded[n, j + s:j + 2 * s] = damp
        expanded[n, j + 2 * s:j + w] = 1.0
        self.expanded = expanded
        self.perp_row = n
        self.sp_col = np.append(self.static_pos, 1.0)[:, None]
        self.sn_col = np.append(self.static_neg, 1.0)[:, None]
        self.basis_all = np.append(self.basis_factor, 0.0)
        self.group_of = [int(g) for g in self.strike_group]
        skew = np.flatnonzero(self.skew)
        contiguous = skew.size and skew[-1] - skew[0] + 1 == skew.size
        self.skew_slice = slice(int(skew[0]), int(skew[-1]) + 1) if contiguous else None
        self.skew_index = skew
        # Bounds of how fast the worst loss can move per contract of each row (USD): with
        # f(M)·M Lipschitz in M with max(static discounts), −|x| and min 1-Lipschitz, and
        # min(base, up, down) − base moving by at most twice the largest of them. Used by
        # the pre-trade screen (health.Margin.remember) to accept an order without a full
        # evaluation when even the bound leaves the account above initial margin.
        if n:
            of = np.asarray(self.expiry_of, dtype=np.int64)
            fmax = np.maximum(np.asarray(self.static_pos)[of], np.asarray(self.static_neg)[of])[:, None]
            scen = np.max(fmax * np.abs(expanded[rows, starts + np.arange(s)])
                          + np.abs(expanded[rows, starts + s + np.arange(s)]), axis=1)
            basis = 2.0 * np.asarray(self.basis_factor)[of] * np.max(np.abs(table[:, s:]), axis=1)
            self.lipschitz = np.maximum(scen, basis).tolist()
        else:
            self.lipschitz = []
        shocks = np.array([sc.spot_shock for sc in params.scenarios])
        self.perp_lipschitz = float(np.max(np.abs(shocks - 1.0) * damp))  # per USD of perp notional
        self.base_of = [float(v) for v in table[:, s]]
        self.build_ms = (time.perf_counter() - started) * 1e3


class RiskCache:
    """One :class:`UnderlyingRisk` per underlying, rebuilt when its key changes.

    Parameters
    ----------
    markets : dict[str, UnderlyingMarket]
        The state's market data (shared, read only).
    instruments : dict[int, InstrumentSpec]
        The state's instruments (shared, read only).
    params : PMParams
        Default: ``risk.portfolio.default_pm_params()`` (portfolio-margin.md "Default
        parameters").
    """

    __slots__ = ("markets", "instruments", "params", "entries", "_empty")

    def __init__(self, markets: dict[str, UnderlyingMarket], instruments: dict[int, InstrumentSpec],
                 params: PMParams | None = None) -> None:
        self.markets = markets
        self.instruments = instruments
        self.params = params if params is not None else default_pm_params()
        self.entries: dict[str, UnderlyingRisk] = {}
        self._empty: UnderlyingRisk | None = None

    def empty(self) -> UnderlyingRisk:
        """Risk arrays with no options and no expiries: PM of perpetuals alone (an
        underlying without market data)."""
        if self._empty is None:
            self._empty = UnderlyingRisk(UnderlyingMarket("", 0, 0, (), 0), [], self.params, (0, 0))
        return self._empty

    def get(self, underlying: str) -> UnderlyingRisk | None:
        """The risk arrays of ``underlying`` for the current market data, or None when the
        underlying has no market data. Built at most once per (update, listing)."""
        market = self.markets.get(underlying)
        if market is None:
            return None
        key = (market.seq, len(self.instruments))
        entry = self.entries.get(underlying)
        if entry is None or entry.key != key:
            specs = [s for s in self.instruments.values() if s.underlying == underlying and s.kind == Kind.OPTION]
            entry = self.entries[underlying] = UnderlyingRisk(market, specs, self.params, key)
        return entry


def pm_evaluate(risk: UnderlyingRisk, rows: list[int], sizes: list[list[float]], perp_notional: list[float],
                perp_abs: list[float], spot: float, stable_price: float
                ) -> tuple[list[float], list[float], list[float]]:
    """Portfolio margin of k portfolios of one underlying (the per-account step).

    Parameters
    ----------
    risk : UnderlyingRisk
    rows : list of int (m,)
        Rows of the options held in any of the k portfolios.
    sizes : k lists of m floats
        Signed sizes in contracts (short < 0) per portfolio and row.
    perp_notional : k floats
        Σ perp size (contracts) × perp price (USD): scenario PnL = this · (s − 1) · d.
    perp_abs : k floats
        Σ |perp size| (contracts), for the perp contingencies (× S).
    spot : float
        Index price S, USD.
    stable_price : float
        USD per USDC (raises the IM loss factor below the peg threshold).

    Returns
    -------
    (m0, maintenance, initial) : three lists of k floats, USD, unrounded
        m0 = Σ_e base value of the options (their equity contribution);
        maintenance = −worst·mm_loss_factor + MM contingencies;
        initial = −worst·(im_loss_factor + peg loss) + MM + IM contingencies, where worst =
        min(basis contingency, min over scenarios of the PnL).

    Source: portfolio-margin.md "Per expiry", "Scenario loss", "Contingencies and result";
    the same steps as ``risk.portfolio.margin_from_risk_arrays``.
    """
    q = np.array([[*row, notional] for row, notional in zip(sizes, perp_notional)], dtype=np.float64)
    agg = q @ risk.expanded[[*rows, risk.perp_row]]
    worst, m0 = scenario_worst(risk, agg)
    group_of = risk.group_of
    groups = [group_of[r] for r in rows]
    shared = len(set(groups)) != len(groups)
    p = risk.params
    c = p.contingency
    mm_loss = p.margin.mm_loss_factor
    im_loss = im_loss_factor(p, stable_price)
    mm_out, im_out = [], []
    for j, lots in enumerate(sizes):
        if shared:
            net: dict[int, float] = {}
            for g, v in zip(groups, lots):
                net[g] = net.get(g, 0.0) - v  # shorts − longs at the strike
            naked = sum(v for v in net.values() if v > 0.0)
        else:
            naked = -sum(v for v in lots if v < 0.0)
        mm_cont = naked * (spot * c.mm_option) + perp_abs[j] * (spot * c.mm_perp)
        im_cont = naked * (spot * c.im_option) + perp_abs[j] * (spot * c.im_perp)
        mm_out.append(-worst[j] * mm_loss + mm_cont)
        im_out.append(-worst[j] * im_loss + mm_cont + im_cont)
    return m0, mm_out, im_out


def im_loss_factor(p: PMParams, stable_price: float) -> float:
    """im_loss_factor, plus (peg threshold − stable)·peg factor below the threshold
    (portfolio-margin.md "Contingencies and result")."""
    c = p.contingency
    factor = p.margin.im_loss_factor
    if stable_price < c.peg_loss_threshold:
        factor += (c.peg_loss_threshold - stable_price) * c.peg_loss_factor
    return factor


def scenario_worst(risk: UnderlyingRisk, agg: np.ndarray):
    """Worst loss and option base value of k portfolios from their per-expiry sums.

    ``agg`` (k, (e + 1)·(2s + 3)): Σ size × ``UnderlyingRisk.expanded`` rows (options in
    contracts, the perp row in USD of notional). Per expiry the shocked value M (already ×
    d) is multiplied by the static discount of its sign, the base × d subtracted, skew
    scenarios take −|…|; the expiries and the perp add up; worst = min(basis contingency,
    min over scenarios). Returns (worst, m0) as lists for small k, arrays for large k
    (the all-accounts revaluation).
    """
    s = risk.n_scenarios
    k = agg.shape[0]
    x = agg.reshape(k, risk.n_expiries + 1, risk.width)
    shocked = x[:, :, :s]
    pnl_e = np.where(shocked >= 0.0, risk.sp_col, risk.sn_col)
    pnl_e *= shocked
    pnl_e -= x[:, :, s:2 * s]
    if risk.skew_slice is not None:
        view = pnl_e[:, :, risk.skew_slice]
        np.abs(view, out=view)
        np.negative(view, out=view)
    elif risk.skew_index.size:
        pnl_e[:, :, risk.skew_index] = -np.abs(pnl_e[:, :, risk.skew_index])
    tail = x[:, :, 2 * s:]
    base = tail[:, :, 0]
    worst = np.minimum(pnl_e.sum(axis=1).min(axis=1), (tail.min(axis=2) - base) @ risk.basis_all)
    m0 = base[:, :-1].sum(axis=1)
    if k <= 8:
        return worst.tolist(), m0.tolist()
    return worst, m0


