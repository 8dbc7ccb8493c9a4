"""Account health in either margin mode, and the pre-trade check of portfolio accounts.

``Margin`` (the state's ``margin``) extends ``StandardMargin`` (margin.py) with portfolio
margin (portfolio_margin.py) and dispatches on ``Account.margin_mode``:

- standard accounts: margin.py (perpetuals as before, options per expiry with the max-loss
  cap, equity with long options at 0);
- portfolio accounts: PM per underlying over its options, perpetuals and USDC cash
  (portfolio-margin.md). Per underlying u the account's states σ ∈ {none, all open bids of
  u fill, all open asks of u fill} (at their limit prices) are evaluated in one
  ``pm_evaluate`` call; charge_u(σ) = IM_u(σ) − (equity_u(σ) − equity_u(none)), and the
  account's initial requirement is Σ_u max_σ charge_u(σ) — the rule standard margin
  applies per instrument, applied to the whole underlying because PM nets across it.

:func:`account_health` / ``Margin.health`` return :class:`AccountHealth` for any account;
the liquidation engine and the API use it, withdrawals use ``free_collateral`` (= initial
surplus), and ``check_order`` goes through the same figures.

Rounding (exchange-rules.md, Units): equity = cash · min(1, stable) (floor) + Σ perp
values (floor per position) + option values (standard: short marks, floor per position;
portfolio: ⌊Σ base values⌋); requirements round up (portfolio: ``requirement_to_micro``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from clearway.domain.accounts import Account, MarginMode
from clearway.domain.errors import ErrorCode
from clearway.domain.instruments import InstrumentSpec, Kind
from clearway.domain.margin import StandardMargin
from clearway.domain.portfolio_margin import RiskCache, pm_evaluate, requirement_to_micro, value_to_micro
from clearway.domain.risk.portfolio import PMParams
from clearway.domain.units import PPM

_PORTFOLIO = MarginMode.PORTFOLIO
_OPTION = Kind.OPTION


class AccountHealth(NamedTuple):
    """Health of one account, micro-USDC.

    equity : cash · min(1, stable) + position values (rounded down);
    initial_margin : requirement with open orders counted at their limit price (rounded up);
    maintenance_margin : requirement of the positions (rounded up);
    initial_surplus = equity − initial_margin (< 0: may only reduce risk);
    maintenance_surplus = equity − maintenance_margin (< 0: liquidatable, with MM > 0).
    """

    equity: int
    initial_margin: int
    maintenance_margin: int
    initial_surplus: int
    maintenance_surplus: int


class _Underlying:
    """One underlying's holdings of a portfolio account, gathered for ``pm_evaluate``."""

    __slots__ = ("rows", "lots", "bid", "ask", "bid_cash", "ask_cash", "perps", "order_row")

    def __init__(self) -> None:
        self.rows: list[int] = []          # risk-array rows
        self.lots: list[float] = []        # position, contracts
        self.bid: list[float] = []         # open bids, contracts
        self.ask: list[float] = []         # open asks, contracts
        self.bid_cash = 0                  # Σ bid notional, micro-USDC
        self.ask_cash = 0
        self.perps: list[tuple[int, int, int, int, int]] = []  # (id, size, bid lots, ask lots, scale)
        self.order_row = -1


class Margin(StandardMargin):
    """Standard and portfolio margin over the state's prices and market data.

    Parameters
    ----------
    marks, index, instruments, option_* : as ``StandardMargin``
    markets : dict[str, UnderlyingMarket]
        The state's market data (shared).
    pm_params : PMParams, optional
        Default ``risk.portfolio.default_pm_params()``.
    """

    __slots__ = ("markets", "risk")

    def __init__(self, marks, index, instruments, option_im_ppm, option_im_floor_ppm, option_mm_ppm,
                 markets, pm_params: PMParams | None = None) -> None:
        super().__init__(marks, index, instruments, option_im_ppm, option_im_floor_ppm, option_mm_ppm)
        self.markets = markets
        self.risk = RiskCache(markets, instruments, pm_params)

    # -- portfolio accounts -------------------------------------------------------------
    def _gather(self, account: Account, extra: tuple | None = None) -> dict[str, _Underlying] | None:
        """Group a portfolio account's positions and open orders by underlying; None if an
        option has no risk-array row or a perpetual no mark (unpriced). ``extra`` =
        (instrument, Δbid lots, Δbid notional, Δask lots, Δask notional)."""
        instruments = self.instruments
        groups: dict[str, _Underlying] = {}
        positions = account.positions
        opened = account.open
        ids = list(positions)
        for instrument in opened:
            if instrument not in positions:
                ids.append(instrument)
        if extra is not None and extra[0] not in positions and extra[0] not in opened:
            ids.append(extra[0])
        for instrument in ids:
            spec = instruments[instrument]
            group = groups.get(spec.underlying)
            if group is None:
                group = groups[spec.underlying] = _Underlying()
            position = positions.get(instrument)
            size = position.size if position is not None else 0
            agg = opened.get(instrument)
            bid = ask = bid_cash = ask_cash = 0
            if agg is not None:
                bid, bid_cash, ask, ask_cash = agg.bid_size, agg.bid_notional, agg.ask_size, agg.ask_notional
            if extra is not None and extra[0] == instrument:
                bid += extra[1]
                bid_cash += extra[2]
                ask += extra[3]
                ask_cash += extra[4]
            group.bid_cash += bid_cash
            group.ask_cash += ask_cash
            scale = 10**spec.size_decimals
            if spec.kind == _OPTION:
                risk = self.risk.get(spec.underlying)
                row = risk.rows.get(instrument) if risk is not None else None
                if row is None:
                    return None
                if extra is not None and extra[0] == instrument:
                    group.order_row = len(group.rows)
                group.rows.append(row)
                group.lots.append(size / scale)
                group.bid.append(bid / scale)
                group.ask.append(ask / scale)
            else:
                if instrument not in self.marks:
                    return None
                group.perps.append((instrument, size, bid, ask, scale))
        for underlying in groups:
            if underlying not in self.index:
                return None
        return groups

    def _underlying_figures(self, underlying: str, g: _Underlying) -> tuple[int, int, int, int]:
        """(equity part, MM, IM charge with orders, IM of the positions) of one underlying,
        micro-USDC. The equity part excludes cash."""
        marks = self.marks
        has_bids = g.bid_cash != 0 or any(g.bid) or any(p[2] for p in g.perps)
        has_asks = g.ask_cash != 0 or any(g.ask) or any(p[3] for p in g.perps)
        lots = [g.lots]
        perp_values = [0]
        perp_pnl = [0.0]
        perp_abs = [0.0]
        cash = [0]
        if has_bids:
            lots.append([a + b for a, b in zip(g.lots, g.bid)])
            perp_values.append(0)
            perp_pnl.append(0.0)
            perp_abs.append(0.0)
            cash.append(-g.bid_cash)
        if has_asks:
            lots.append([a - b for a, b in zip(g.lots, g.ask)])
            perp_values.append(0)
            perp_pnl.append(0.0)
            perp_abs.append(0.0)
            cash.append(g.ask_cash)
        for instrument, size, bid, ask, scale in g.perps:
            mark = marks[instrument]
            sizes = [size]
            if has_bids:
                sizes.append(size + bid)
            if has_asks:
                sizes.append(size - ask)
            for j, n in enumerate(sizes):
                perp_values[j] += n * mark // scale
                perp_pnl[j] += n / scale * (mark / 1e6)
                perp_abs[j] += abs(n) / scale
        risk = self.risk.get(underlying)
        if risk is None:  # no market data: perpetuals only (an option would be unpriced)
            risk = self.risk.empty()
        k = len(lots)
        rows = np.array(g.rows, dtype=np.int64)
        sizes = np.array(lots, dtype=np.float64).reshape(k, len(g.rows))
        m0, mm, im = pm_evaluate(risk, rows, sizes, np.array(perp_pnl), np.array(perp_abs),
                                 self.index[underlying] / 1e6, self.stable_price / PPM)
        equity0 = perp_values[0] + value_to_micro(float(m0[0]))
        charge = requirement_to_micro(float(im[0]))
        im_positions = charge
        for j in range(1, k):
            gain = cash[j] + perp_values[j] + value_to_micro(float(m0[j])) - equity0
            c = requirement_to_micro(float(im[j])) - gain
            if c > charge:
                charge = c
        return equity0, requirement_to_micro(float(mm[0])), charge, im_positions

    def _portfolio_health(self, account: Account) -> AccountHealth | None:
        groups = self._gather(account)
        if groups is None:
            return None
        equity = self.cash_value(account.cash)
        mm = im = 0
        for underlying, g in groups.items():
            e, m, i, _ = self._underlying_figures(underlying, g)
            equity += e
            mm += m
            im += i
        return AccountHealth(equity, im, mm, equity - im, equity - mm)

    # -- any account ----------------------------------------------------------------------
    def health(self, account: Account, mode: MarginMode | None = None) -> AccountHealth | None:
        """Equity, initial and maintenance margin and surpluses of ``account`` (micro-USDC),
        in its own margin mode or in ``mode``; None when a position or order cannot be
        priced (no mark, no index, or an option without market data in portfolio mode).

        Standard: margin.py (exchange-rules.md "Standard margin"); portfolio:
        portfolio-margin.md through the cached risk arrays. Never mutates.
        """
        mode = account.margin_mode if mode is None else MarginMode(mode)
        if mode is _PORTFOLIO:
            return self._portfolio_health(account)
        if not StandardMargin.priced(self, account):
            return None
        equity = StandardMargin.equity(self, account)
        im = StandardMargin.initial(self, account)
        mm = StandardMargin.maintenance(self, account)
        return AccountHealth(equity, im, mm, equity - im, equity - mm)

    def priced(self, account: Account, extra: int = -1) -> bool:
        """True when every instrument the account touches (and ``extra``) can be valued in
        the account's mode."""
        if account.margin_mode is _PORTFOLIO:
            return self._gather(account, None if extra < 0 else (extra, 0, 0, 0, 0)) is not None
        return super().priced(account, extra)

    def equity(self, account: Account) -> int:
        """Equity in the account's mode, micro-USDC rounded down (see ``health``)."""
        if account.margin_mode is _PORTFOLIO:
            h = self._portfolio_health(account)
            if h is None:
                raise KeyError("account cannot be priced")
            return h.equity
        return super().equity(account)

    def initial(self, account: Account) -> int:
        """Initial requirement with open orders in the account's mode, rounded up."""
        if account.margin_mode is _PORTFOLIO:
            h = self._portfolio_health(account)
            if h is None:
                raise KeyError("account cannot be priced")
            return h.initial_margin
        return super().initial(account)

    def maintenance(self, account: Account) -> int:
        """Maintenance requirement in the account's mode, rounded up."""
        if account.margin_mode is _PORTFOLIO:
            h = self._portfolio_health(account)
            if h is None:
                raise KeyError("account cannot be priced")
            return h.maintenance_margin
        return super().maintenance(account)

    def free_collateral(self, account: Account) -> int:
        """Initial surplus in the account's mode (may be negative); withdrawals need
        amount ≤ this. Raises KeyError when the account cannot be priced."""
        h = self.health(account)
        if h is None:
            raise KeyError("account cannot be priced")
        return h.initial_surplus

    def check_general(self, account: Account, spec: InstrumentSpec, side: int, price: int, lots: int,
                      replaces=None) -> ErrorCode | None:
        """Pre-trade check outside the perpetual fast path. Standard accounts: margin.py.
        Portfolio accounts: the order's underlying is charged before and after (states
        none / bids / asks with the order added to its side); accepted if equity ≥ initial
        − before + after, or if after ≤ before (risk-reducing). Never mutates."""
        if account.margin_mode is not _PORTFOLIO:
            return super().check_general(account, spec, side, price, lots, replaces)
        delta = self.order_delta(spec, side, price, lots, replaces)
        before = self._gather(account)
        after = self._gather(account, (spec.instrument_id, *delta))
        if before is None or after is None:
            return ErrorCode.MARK_PRICE_UNAVAILABLE
        underlying = spec.underlying
        equity = self.cash_value(account.cash)
        total = 0
        before_here = 0
        for name, g in before.items():
            e, _, i, _ = self._underlying_figures(name, g)
            equity += e
            total += i
            if name == underlying:
                before_here = i
        after_here = self._underlying_figures(underlying, after[underlying])[2]
        if equity >= total - before_here + after_here:
            return None
        if after_here <= before_here:
            return None  # risk-reducing: accepted even below initial margin
        return ErrorCode.INSUFFICIENT_MARGIN
