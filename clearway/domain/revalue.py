"""Revaluation of every account at once after a market-data update (the liquidation screen).

Source: portfolio-margin.md "Performance shape" (risk arrays reused for every account) and
exchange-rules.md "Standard margin". The per-account figures of ``health.Margin.health``
are the authority (exact integers for standard margin; one PM evaluation per account);
this module computes the same rules for all accounts with a few sparse matrix products, in
float64, for the monitoring and liquidation screen after each oracle update:

- :class:`PositionMatrix` — a columnar copy of the positions: CSR accounts × instruments
  (contracts), cash and margin mode per account. Built from the state in one pass
  (``from_state``); positions do not change on a market-data update, so one copy serves
  every revaluation until the next fill (a production engine keeps it up to date on each
  fill; the domain's fill path has no hook for that yet).
- :func:`revalue_all` — equity, maintenance margin and initial margin of the positions
  (open orders are not counted here: the pre-trade check counts them per account) for
  every account, as int64 micro-USDC with the exchange's rounding (requirements up,
  values down). Standard accounts: perps; short options per contract, capped per
  (account, expiry) by the maximum settlement loss evaluated on the expiry's strike grid
  (the grid points up to the account's highest strike there: a piecewise-linear payoff's
  minimum is at 0 or one of its strikes, exchange-rules.md) plus the unpaired-call
  charge. Portfolio accounts: Σ size × risk array per expiry as one sparse product with
  ``UnderlyingRisk.expanded``, then ``portfolio_margin.finish`` for all of them at once.

Agreement with the per-account figures: within a few micro-USDC (float summation order;
standard margin rounds each short position up, the batch rounds the sum). Tests check it.
"""

from __future__ import annotations

from itertools import chain
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from clearway.domain.accounts import MarginMode
from clearway.domain.instruments import Kind, OptionType
from clearway.domain.units import FUNDING_INDEX_SCALE, PPM

# ``PositionMatrix.cash_micro`` of a cash term outside (−2^63, 2^63) micro-USDC.
NO_CASH = -2**63
_TOL_ABS = 1e-3
_TOL_REL = 1e-12


def _up(usd: np.ndarray) -> np.ndarray:
    v = usd * 1e6
    return np.ceil(v - (_TOL_ABS + _TOL_REL * np.abs(v))).astype(np.int64)


def _down(usd: np.ndarray) -> np.ndarray:
    v = usd * 1e6
    return np.floor(v + (_TOL_ABS + _TOL_REL * np.abs(v))).astype(np.int64)


class PositionMatrix:
    """Positions of every account (system accounts excluded) as arrays.

    Attributes
    ----------
    accounts : int64 (A,)
        Account ids, ascending.
    portfolio : bool (A,)
        Account is in portfolio mode.
    cash : float64 (A,)
        cash · min(1, stable price) + unsettled funding, USD (equity's cash terms,
        exchange-rules.md).
    sizes : scipy.sparse.csr_matrix (A, N)
        Position sizes in contracts (lots / 10^size_decimals), N = number of instruments,
        column indices sorted within each row.
    lots : int64 (nnz,) or None
        The same positions in lots, parallel to ``sizes.data`` (``from_state`` fills it;
        the pre-trade screen compares an account's positions with its row through it).
    cash_micro : int64 (A,) or None
        The same cash term as the exact integer, micro-USDC (``from_state`` fills it; the
        pre-trade screen compares an account's cash term with its row through it). A term
        outside (−2^63, 2^63) — beyond 9.2·10^12 USD — is stored as ``NO_CASH`` (−2^63,
        which therefore never stands for an exact term): the screen leaves such rows out.
    """

    __slots__ = ("accounts", "portfolio", "cash", "sizes", "lots", "cash_micro")

    def __init__(self, accounts, portfolio, cash, sizes, lots=None, cash_micro=None) -> None:
        self.accounts = accounts
        self.portfolio = portfolio
        self.cash = cash
        self.sizes = sizes
        self.lots = lots
        self.cash_micro = cash_micro

    @classmethod
    def from_state(cls, state) -> "PositionMatrix":
        """One pass over ``state.accounts`` (ids ≥ 2). The cash term is
        ``margin.cash_value(cash) + margin.pending_funding(account)``, inlined: the
        positions are read with ``numpy.fromiter`` (sizes × 10^−size_decimals in numpy,
        the same float products as per position), unsettled funding per funded perpetual."""
        n_instruments = len(state.instruments)
        inv = np.array([1.0 / 10**state.instruments[i].size_decimals for i in range(n_instruments)])
        margin = state.margin
        portfolio = MarginMode.PORTFOLIO
        accounts = [account for account_id, account in state.accounts.items() if account_id >= 2]
        n = len(accounts)
        held = [account.positions for account in accounts]
        counts = np.fromiter(map(len, held), np.int64, n)
        total = int(counts.sum())
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        indices = np.fromiter(chain.from_iterable(held), np.int64, total)
        lots = np.fromiter([position.size for positions in held for position in positions.values()], np.int64, total)
        cash = [account.cash for account in accounts]
        if not margin.pegged:
            cash_value = margin.cash_value
            cash = [cash_value(value) for value in cash]
        if margin.funding:
            perps = margin.perps
            funded = [(i, index, perps[i][0] * FUNDING_INDEX_SCALE) for i, index in sorted(margin.funding.items())]
            for k, positions in enumerate(held):
                for instrument, index, unit in funded:
                    position = positions.get(instrument)
                    if position is not None and index != position.funding_index:
                        cash[k] += (-position.size * (index - position.funding_index)) // unit
        in_lots = sp.csr_matrix((lots, indices, indptr), shape=(n, n_instruments))
        in_lots.sort_indices()
        sizes = sp.csr_matrix((in_lots.data * inv[in_lots.indices], in_lots.indices, in_lots.indptr),
                              shape=(n, n_instruments))
        sizes.has_sorted_indices = True
        try:
            cash_micro = np.array(cash, dtype=np.int64)
        except OverflowError:  # some term beyond int64: NO_CASH for those rows
            cash_micro = np.array([value if NO_CASH < value < -NO_CASH else NO_CASH for value in cash],
                                  dtype=np.int64)
        return cls(np.fromiter([account.account_id for account in accounts], np.int64, n),
                   np.fromiter([account.margin_mode is portfolio for account in accounts], bool, n),
                   np.array(cash, dtype=np.float64) / 1e6, sizes, in_lots.data, cash_micro)


class Revaluation(NamedTuple):
    """Figures of every account of a :class:`PositionMatrix`, int64 micro-USDC, row order
    of ``accounts``; ``initial_margin`` counts positions only."""

    accounts: np.ndarray
    equity: np.ndarray
    initial_margin: np.ndarray
    maintenance_margin: np.ndarray


def revalue_all(state, matrix: PositionMatrix) -> Revaluation:
    """Equity, initial (positions only) and maintenance margin of every account.

    Parameters
    ----------
    state : ExchangeState
        Prices, market data and the margin engine (its risk-array cache is reused).
    matrix : PositionMatrix

    Returns
    -------
    Revaluation
        int64 micro-USDC; requirements rounded up, values down (after float64 math).

    Raises
    ------
    KeyError
        If a held instrument has no mark or its underlying no index (or, in portfolio mode,
        an option has no market data).
    """
    n = len(state.instruments)
    specs = [state.instruments[i] for i in range(n)]
    a = matrix.sizes.shape[0]
    equity = np.zeros(a)
    initial = np.zeros(a)
    maintenance = np.zeros(a)
    std = np.flatnonzero(~matrix.portfolio)
    pm = np.flatnonzero(matrix.portfolio)
    if std.size:
        e, i, m = _standard(state, specs, matrix.sizes[std])
        equity[std], initial[std], maintenance[std] = e, i, m
    if pm.size:
        e, i, m = _portfolio(state, specs, matrix.sizes[pm])
        equity[pm], initial[pm], maintenance[pm] = e, i, m
    return Revaluation(matrix.accounts, _down(matrix.cash + equity), _up(initial), _up(maintenance))


def _mark_vector(state, specs) -> np.ndarray:
    return np.array([state.marks.get(s.instrument_id, 0) / 1e6 for s in specs])


def _standard(state, specs, sizes: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standard margin of the rows of ``sizes`` (USD floats): position values (cash
    excluded), initial and maintenance requirements."""
    margin = state.margin
    marks = _mark_vector(state, specs)
    perp = np.array([s.kind == Kind.PERPETUAL for s in specs])
    option = ~perp
    imf = np.array([s.imf_ppm / PPM for s in specs])
    mmf = np.array([s.mmf_ppm / PPM for s in specs])
    absolute = abs(sizes)
    shorts = (-sizes).maximum(0).tocsr()
    equity = sizes @ (marks * perp) - shorts @ (marks * option)
    initial = absolute @ (marks * imf * perp)
    maintenance = absolute @ (marks * mmf * perp)
    # options: one unit per (underlying, expiry)
    units: dict[tuple[str, int], list[int]] = {}
    for s in specs:
        if s.kind == Kind.OPTION and s.instrument_id in state.marks:
            units.setdefault((s.underlying, s.expiry_ms), []).append(s.instrument_id)
    if not units:
        return equity, initial, maintenance
    csc = sizes.tocsc()
    shorts_csc = shorts.tocsc()
    for (underlying, _), ids in units.items():
        spot = state.index[underlying]
        ids = np.array(sorted(ids, key=lambda i: specs[i].strike))
        block = csc[:, ids].tocsr()
        rows = np.flatnonzero(np.diff(block.indptr))
        if not rows.size:
            continue
        block = block[rows]
        im_rate = np.empty(ids.size)
        mm_rate = np.empty(ids.size)
        for j, i in enumerate(ids):
            im, mm = margin._short_option_rates(specs[i], state.marks[i])
            im_rate[j], mm_rate[j] = im / 1e6, mm / 1e6
        short_block = shorts_csc[:, ids].tocsr()[rows]
        iso_im = short_block @ im_rate
        iso_mm = short_block @ mm_rate
        strikes = np.array([specs[i].strike / 1e6 for i in ids])
        calls = np.array([specs[i].option_type == OptionType.CALL for i in ids])
        points = np.concatenate([[0.0], np.unique(strikes)])
        diff = points[None, :] - strikes[:, None]
        payoff_matrix = np.where(calls[:, None], np.maximum(diff, 0.0), np.maximum(-diff, 0.0))
        payoff = block @ payoff_matrix  # (rows, points)
        # highest strike each row holds: only grid points up to it are kinks of its payoff
        held_strike = strikes[block.indices]
        top = np.maximum.reduceat(held_strike, block.indptr[:-1])
        payoff[points[None, :] > top[:, None]] = np.inf
        loss = np.maximum(-payoff.min(axis=1), 0.0)
        unpaired = np.maximum(-(block @ calls.astype(np.float64)), 0.0) * (spot / 1e6)
        cap_im = loss + unpaired * (margin.unpaired_im_ppm / PPM)
        cap_mm = loss + unpaired * (margin.unpaired_mm_ppm / PPM)
        initial[rows] += np.minimum(iso_im, cap_im)
        maintenance[rows] += np.minimum(iso_mm, cap_mm)
    return equity, initial, maintenance


def _portfolio(state, specs, sizes: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Portfolio margin of the rows of ``sizes``, summed over underlyings (USD floats)."""
    from clearway.domain.portfolio_margin import im_loss_factor, scenario_worst

    margin = state.margin
    marks = _mark_vector(state, specs)
    k = sizes.shape[0]
    equity = np.zeros(k)
    initial = np.zeros(k)
    maintenance = np.zeros(k)
    n = len(specs)
    for underlying in sorted({s.underlying for s in specs}):
        in_u = np.array([s.underlying == underlying for s in specs])
        perp = in_u & np.array([s.kind == Kind.PERPETUAL for s in specs])
        risk = margin.risk.get(underlying) or margin.risk.empty()
        opt_cols = np.array(sorted(risk.rows), dtype=np.int64)
        opt_rows = np.array([risk.rows[i] for i in opt_cols], dtype=np.int64)
        rows = np.flatnonzero(abs(sizes) @ in_u.astype(np.float64) != 0.0)
        if not rows.size:
            continue
        block = sizes[rows]
        perp_pnl = block @ (marks * perp)
        perp_abs = abs(block) @ perp.astype(np.float64)
        if opt_cols.size:
            select = sp.csr_matrix((np.ones(opt_cols.size), (opt_cols, opt_rows)), shape=(n, len(risk.rows)))
            q = (block @ select).tocsr()
            agg = q @ risk.expanded[:-1]
            groups = sp.csr_matrix((np.ones(len(risk.rows)), (np.arange(len(risk.rows)), risk.strike_group)),
                                   shape=(len(risk.rows), risk.n_groups))
            shorts = (-q).maximum(0) @ groups
            longs = q.maximum(0) @ groups
            naked = np.asarray((shorts - longs).maximum(0).sum(axis=1)).ravel()
        else:
            agg = np.zeros((rows.size, risk.expanded.shape[1]))
            naked = np.zeros(rows.size)
        agg += np.outer(perp_pnl, risk.expanded[-1])
        worst, m0 = scenario_worst(risk, np.ascontiguousarray(agg))
        worst, m0 = np.asarray(worst), np.asarray(m0)
        spot = state.index[underlying] / 1e6
        p = margin.risk.params
        c = p.contingency
        mm_cont = naked * (spot * c.mm_option) + perp_abs * (spot * c.mm_perp)
        im_cont = naked * (spot * c.im_option) + perp_abs * (spot * c.im_perp)
        equity[rows] += m0 + perp_pnl
        initial[rows] += -worst * im_loss_factor(p, margin.stable_price / PPM) + mm_cont + im_cont
        maintenance[rows] += -worst * p.margin.mm_loss_factor + mm_cont
    return equity, initial, maintenance
