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

Rounding (exchange-rules.md, Units): equity = cash · min(1, stable) (floor) + unsettled
funding (``pending_funding``, against the account) + Σ perp values (floor per position) + option values (standard: short marks, floor per position;
portfolio: ⌊Σ base values⌋); requirements round up (portfolio: ``requirement_to_micro``).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import NamedTuple

import numpy as np

from clearway.domain.accounts import Account, MarginMode
from clearway.domain.errors import ErrorCode
from clearway.domain.instruments import InstrumentSpec, Kind
from clearway.domain.margin import StandardMargin, _perp_charge
from clearway.domain.portfolio_margin import (
    RiskCache, im_loss_factor, pm_evaluate, requirement_to_micro, value_to_micro,
)
from clearway.domain.revalue import NO_CASH
from clearway.domain.risk.portfolio import PMParams
from clearway.domain.units import PPM

_PORTFOLIO = MarginMode.PORTFOLIO
_OPTION = Kind.OPTION
# The screen keeps a row only when its cash term fits int64 (``PositionMatrix.cash_micro``
# is not ``NO_CASH``) and its revalued equity and initial margin lie within ±_SCREEN_FIT
# micro-USDC (4.6·10^12 USD): then no int64 figure of the row, nor surplus − slack, can
# have wrapped. Other rows are left out and the exact check decides for them.
_SCREEN_FIT = 2**62


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
    """One underlying's holdings of a portfolio account, gathered for ``pm_evaluate``.

    Option lists are parallel (contracts); ``perps`` = (instrument, size, bid lots, ask
    lots, scale); ``order`` = (option index or −1, perp index or −1, Δbid lots, Δbid
    notional, Δask lots, Δask notional, side) of a hypothetical order, or None."""

    __slots__ = ("rows", "lots", "bid", "ask", "scales", "bid_cash", "ask_cash", "perps", "order")

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.lots: list[float] = []
        self.bid: list[float] = []
        self.ask: list[float] = []
        self.scales: list[int] = []
        self.bid_cash = 0
        self.ask_cash = 0
        self.perps: list[tuple[int, int, int, int, int]] = []
        self.order: tuple | None = None


def _int_array(values: np.ndarray) -> array:
    """``array('q')`` copy of an integer numpy array (a memory copy: no Python objects)."""
    out = array("q")
    out.frombytes(np.ascontiguousarray(values, dtype=np.int64).tobytes())
    return out


class _Screen:
    """Remembered lower bounds of accounts' initial surplus (``Margin.remember``), in the
    revaluation's row order: ``ids``, ``portfolio`` (1 for a portfolio row, 2 for a row left
    out beyond ``_SCREEN_FIT``: ``row`` never finds it, the exact check decides),
    ``surplus`` (lower bound, micro-USDC), ``cash`` (the exact cash term, micro-USDC,
    ``PositionMatrix.cash_micro``), the positions (``indptr``, ``indices``,
    ``lots``) — with ``key`` (``Margin._price_key``) and the marks and index prices they were
    valued at. Stored as ``array`` copies of the numpy arrays: no Python object per account
    when remembering, and O(1) element reads (no numpy scalar) in a pre-trade check."""

    __slots__ = ("key", "ids", "portfolio", "surplus", "cash", "indptr", "indices", "lots", "marks", "index")

    def __init__(self, key: tuple, matrix, surplus: np.ndarray, kept: np.ndarray, marks: dict[int, int],
                 index: dict[str, int]) -> None:
        self.key = key
        self.ids = _int_array(matrix.accounts)
        self.portfolio = np.where(kept, matrix.portfolio, 2).astype(np.uint8).tobytes()
        self.surplus = _int_array(surplus)
        self.cash = _int_array(matrix.cash_micro)
        self.indptr = _int_array(matrix.sizes.indptr)
        self.indices = _int_array(matrix.sizes.indices)
        self.lots = _int_array(matrix.lots)
        self.marks = marks
        self.index = index

    def row(self, account_id: int, portfolio: bool) -> int:
        """Row of the account in the remembered revaluation if it was valued in that mode,
        else −1. Rows are in ascending id order; ids are usually consecutive, so the row
        is tried at ``account_id − ids[0]`` before a binary search."""
        ids = self.ids
        n = len(ids)
        if not n:
            return -1
        row = account_id - ids[0]
        if not (0 <= row < n and ids[row] == account_id):
            row = bisect_left(ids, account_id)
            if row >= n or ids[row] != account_id:
                return -1
        return row if self.portfolio[row] == portfolio else -1


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

    __slots__ = ("markets", "risk", "screen")

    def __init__(self, marks, index, instruments, option_im_ppm, option_im_floor_ppm, option_mm_ppm,
                 markets, pm_params: PMParams | None = None) -> None:
        super().__init__(marks, index, instruments, option_im_ppm, option_im_floor_ppm, option_mm_ppm)
        self.markets = markets
        self.risk = RiskCache(markets, instruments, pm_params)
        self.screen: _Screen | None = None

    # -- the pre-trade screen -------------------------------------------------------------
    def _price_key(self) -> tuple:
        """What portfolio margin reads besides the accounts and the index (compared apart,
        ``_Screen.index``): listings, stable price, market-data updates (``seq`` per
        underlying), perpetual marks and funding indices."""
        marks = self.marks
        return (len(self.instruments), self.stable_price, [(u, m.seq) for u, m in self.markets.items()],
                [marks.get(i) for i in self.perps], dict(self.funding))

    def remember(self, matrix, revaluation) -> int:
        """Keep the initial surplus of every account of an all-accounts revaluation
        (revalue.py) as a lower bound for later pre-trade checks. Call it right after
        ``revalue_all(state, matrix)`` on the same state, before anything changes.

        surplus_lb = equity − initial margin − slack, with slack = 10 micro-USDC + 10⁻⁹ of
        the amounts (more than the batch's float difference from ``health``), plus 3 per
        position for standard accounts (their exact figures round each position's value
        down and each requirement up, ≤ 1 micro-USDC per position and per expiry; the
        batch rounds the sums once).

        ``check_order`` then accepts an order without a full evaluation when the account
        has no open orders, its positions and cash term (cash · min(1, stable) + unsettled
        funding) equal the remembered row (``_screen_row``), the prices it is valued at are
        unchanged, and surplus_lb minus a bound on the order's effect (``_screen_accepts``
        for portfolio accounts, ``_standard_screen_accepts``) is still ≥ 0 — a sufficient
        condition for the exact rule, so decisions never differ from the exact check and
        the state never depends on the screen. Returns the number of accounts kept — all
        but those beyond ``_SCREEN_FIT`` (the exact check decides for them) — 0, and no
        screen, for a matrix without ``lots`` or ``cash_micro``.
        """
        if matrix.lots is None or matrix.cash_micro is None:
            self.screen = None
            return 0
        equity = revaluation.equity
        initial = revaluation.initial_margin
        per_position = np.where(matrix.portfolio, 0, 3 * np.diff(matrix.sizes.indptr))
        slack = 10 + per_position + (np.abs(equity) + np.abs(initial)) // 10**9
        kept = ((matrix.cash_micro != NO_CASH) & (-_SCREEN_FIT < equity) & (equity < _SCREEN_FIT)
                & (-_SCREEN_FIT < initial) & (initial < _SCREEN_FIT))
        self.screen = _Screen(self._price_key(), matrix, equity - initial - slack, kept, dict(self.marks),
                              dict(self.index))
        return int(np.count_nonzero(kept))

    def _screen_row(self, account: Account, portfolio: bool) -> int:
        """The account's row in the remembered revaluation when its figures there are its
        figures now — no open orders, the same positions and the same cash term (exact
        integers) — else −1 (prices are checked by the callers)."""
        screen = self.screen
        if account.open:
            return -1
        row = screen.row(account.account_id, portfolio)
        if row < 0:
            return -1
        positions = account.positions
        start, end = screen.indptr[row], screen.indptr[row + 1]
        held = sorted(positions)
        if held != screen.indices[start:end].tolist() \
                or [positions[i].size for i in held] != screen.lots[start:end].tolist():
            return -1
        if self.cash_value(account.cash) + self.pending_funding(account) != screen.cash[row]:
            return -1
        return row

    def _standard_screen_accepts(self, account: Account, spec: InstrumentSpec, side: int, price: int,
                                 lots: int) -> bool:
        """True when a standard account's remembered surplus, plus the order's unit charge
        before minus after, is ≥ 0 — or the order does not raise that charge.

        The exact rule (margin.py ``check_general``) accepts when equity ≥ initial −
        before + after (``before``/``after``: the charge of the order's unit, perpetual or
        option expiry, without and with the order) or when after ≤ before. When the
        account's positions, cash term (cash · min(1, stable) + unsettled funding) and the
        marks and index prices it is valued at are those of the remembered revaluation and
        it has no open orders, equity − initial ≥ surplus_lb, so surplus_lb − after +
        before ≥ 0 implies the exact rule; ``before`` and ``after`` are computed exactly,
        over the unit's positions only (O(positions))."""
        screen = self.screen
        row = self._screen_row(account, False)
        if row < 0 or self.index != screen.index:
            return False
        marks = self.marks
        remembered = screen.marks
        for instrument in account.positions:
            mark = marks.get(instrument)
            if mark is None or mark != remembered.get(instrument):
                return False
        positions = account.positions
        instrument = spec.instrument_id
        if instrument not in marks:
            return False
        delta = self.order_delta(spec, side, price, lots)
        if spec.kind == _OPTION:
            if spec.underlying not in self.index:
                return False
            before, after = self._expiry_before_after(account, spec, delta)
        else:
            perp = self.perps.get(instrument)
            if perp is None:
                return False
            position = positions.get(instrument)
            size = position.size if position is not None else 0
            mark = marks[instrument]
            before = _perp_charge(size, mark, *perp, 0, 0, 0, 0)
            after = _perp_charge(size, mark, *perp, *delta)
        return after <= before or screen.surplus[row] + before - after >= 0

    def _expiry_before_after(self, account: Account, spec: InstrumentSpec,
                             delta: tuple[int, int, int, int]) -> tuple[int, int]:
        """(charge before, charge after) of the order's option expiry for an account
        without open orders: ``expiry_charge`` without and with the order, computed over
        the expiry's positions once (the same integer formulas)."""
        instruments = self.instruments
        underlying, expiry = spec.underlying, spec.expiry_ms
        specs: list[InstrumentSpec] = []
        sizes: list[int] = []
        j = -1
        for instrument, position in account.positions.items():
            other = instruments[instrument]
            if other.kind == _OPTION and other.expiry_ms == expiry and other.underlying == underlying:
                if instrument == spec.instrument_id:
                    j = len(specs)
                specs.append(other)
                sizes.append(position.size)
        if j < 0:
            j = len(specs)
            specs.append(spec)
            sizes.append(0)
        db, dbn, da, dan = delta
        moved = list(sizes)
        size = sizes[j]
        moved[j] = size + db - da
        before, after = self.expiry_requirements(specs, [sizes, moved], True)
        # equity gain of the fill: the order's option value change (``_option_value``:
        # shorts at the mark rounded down, longs 0) minus premium paid, plus premium received
        mark = self.marks[spec.instrument_id]
        scale = 10**spec.size_decimals
        gain = (moved[j] * mark // scale if moved[j] < 0 else 0) - (size * mark // scale if size < 0 else 0) - dbn + dan
        after -= gain
        return before, (after if after > before else before)

    def _screen_accepts(self, account: Account, spec: InstrumentSpec, side: int, price: int, lots: int) -> bool:
        """True when the remembered surplus minus a bound on the order's effect is ≥ 0.

        Bound (portfolio-margin.md steps, each Lipschitz in one row's size Δ contracts):
        worst loss moves by ≤ |Δ|·L_row (``UnderlyingRisk.lipschitz``; the perpetual:
        |Δ|·price·max_s|s − 1|·d_s), naked shorts and |perp| by ≤ |Δ|; so the charge rises
        by ≤ |Δ|·(L·F + S·(mm + im contingency rates)) − Δ·(base value − limit price),
        with F the IM loss factor. 10 micro-USDC cover rounding."""
        screen = self.screen
        if screen.index != self.index or screen.key != self._price_key():
            return False
        account_row = self._screen_row(account, True)
        if account_row < 0:
            return False
        risk = self.risk.get(spec.underlying)
        if risk is None:
            risk = self.risk.empty()
        p = risk.params
        c = p.contingency
        spot = self.index[spec.underlying] / 1e6
        factor = im_loss_factor(p, self.stable_price / PPM)
        delta = side * lots / 10**spec.size_decimals
        limit = price / 1e6
        if spec.kind == _OPTION:
            row = risk.rows.get(spec.instrument_id)
            if row is None:
                return False
            change = delta * (risk.base_of[row] - limit) - abs(delta) * (
                factor * risk.lipschitz[row] + spot * (c.mm_option + c.im_option))
        else:
            mark = self.marks[spec.instrument_id] / 1e6
            change = delta * (mark - limit) - abs(delta) * (
                factor * risk.perp_lipschitz * mark + spot * (c.mm_perp + c.im_perp))
        return screen.surplus[account_row] + change * 1e6 - 10.0 >= 0.0

    # -- portfolio accounts -------------------------------------------------------------
    def _gather(self, account: Account, order: tuple | None = None) -> dict[str, _Underlying] | None:
        """Group a portfolio account's positions and open orders by underlying; None if an
        option has no risk-array row, a perpetual no mark or an underlying no index.
        ``order`` = (instrument, Δbid lots, Δbid notional, Δask lots, Δask notional, side)
        is recorded apart (``_Underlying.order``), not added to the open orders."""
        instruments = self.instruments
        groups: dict[str, _Underlying] = {}
        positions = account.positions
        opened = account.open
        ids = list(positions)
        for instrument in opened:
            if instrument not in positions:
                ids.append(instrument)
        if order is not None and order[0] not in positions and order[0] not in opened:
            ids.append(order[0])
        cache = self.risk
        risks: dict = {}
        for instrument in ids:
            spec = instruments[instrument]
            group = groups.get(spec.underlying)
            if group is None:
                group = groups[spec.underlying] = _Underlying()
            position = positions.get(instrument)
            size = position.size if position is not None else 0
            agg = opened.get(instrument)
            bid = ask = 0
            if agg is not None:
                bid, ask = agg.bid_size, agg.ask_size
                group.bid_cash += agg.bid_notional
                group.ask_cash += agg.ask_notional
            scale = 10**spec.size_decimals
            here = order is not None and order[0] == instrument
            if spec.kind == _OPTION:
                risk = risks.get(spec.underlying, False)
                if risk is False:
                    risk = risks[spec.underlying] = cache.get(spec.underlying)
                row = risk.rows.get(instrument) if risk is not None else None
                if row is None:
                    return None
                if here:
                    group.order = (len(group.rows), -1, *order[1:])
                group.rows.append(row)
                group.lots.append(size / scale)
                group.bid.append(bid / scale)
                group.ask.append(ask / scale)
                group.scales.append(scale)
            else:
                if instrument not in self.marks:
                    return None
                if here:
                    group.order = (-1, len(group.perps), *order[1:])
                group.perps.append((instrument, size, bid, ask, scale))
        index = self.index
        for underlying in groups:
            if underlying not in index:
                return None
        return groups

    def _underlying_figures(self, underlying: str, g: _Underlying) -> tuple[int, int, int, int]:
        """(equity part without cash, MM, IM charge with open orders, the same charge with
        the gathered order added) of one underlying, micro-USDC (the last equals the third
        without an order).

        States: none, all bids fill, all asks fill (those that exist), and with an order the
        state of its side with the order added; one ``pm_evaluate`` call for all of them.
        charge(σ) = IM(σ) − (equity(σ) − equity(none)); requirements rounded up
        (``requirement_to_micro``), option values down (``value_to_micro``).
        """
        marks = self.marks
        n = len(g.rows)
        perps = g.perps
        has_bids = g.bid_cash != 0 or any(g.bid) or any(p[2] for p in perps)
        has_asks = g.ask_cash != 0 or any(g.ask) or any(p[3] for p in perps)
        # each state: (option sizes, perp sizes (lots), cash change)
        states = [(g.lots, [p[1] for p in perps], 0)]
        if has_bids:
            states.append(([a + b for a, b in zip(g.lots, g.bid)], [p[1] + p[2] for p in perps], -g.bid_cash))
        if has_asks:
            states.append(([a - b for a, b in zip(g.lots, g.ask)], [p[1] - p[3] for p in perps], g.ask_cash))
        order = g.order
        if order is not None:
            j, jp, db, dbn, da, dan, side = order
            lots = list(g.lots)
            perp_sizes = [p[1] for p in perps]
            if side > 0:
                opt_extra = [b for b in g.bid]
                perp_sizes = [p[1] + p[2] for p in perps]
                cash = -(g.bid_cash + dbn)
                delta = db
            else:
                opt_extra = [-a for a in g.ask]
                perp_sizes = [p[1] - p[3] for p in perps]
                cash = g.ask_cash + dan
                delta = -da
            lots = [a + b for a, b in zip(lots, opt_extra)]
            if j >= 0:
                lots[j] += delta / g.scales[j]
            else:
                perp_sizes[jp] += delta
            states.append((lots, perp_sizes, cash))
        perp_values, perp_pnl, perp_abs = [], [], []
        for _, sizes, _ in states:
            value = 0
            pnl = 0.0
            absolute = 0.0
            for (instrument, _, _, _, scale), size in zip(perps, sizes):
                mark = marks[instrument]
                value += size * mark // scale
                pnl += size / scale * (mark / 1e6)
                absolute += abs(size) / scale
            perp_values.append(value)
            perp_pnl.append(pnl)
            perp_abs.append(absolute)
        risk = self.risk.get(underlying)
        if risk is None:  # no market data: perpetuals only (an option would be unpriced)
            risk = self.risk.empty()
        m0, mm, im = pm_evaluate(risk, g.rows, [st[0] for st in states] if n else [[]] * len(states),
                                 perp_pnl, perp_abs, self.index[underlying] / 1e6, self.stable_price / PPM)
        equity0 = perp_values[0] + value_to_micro(m0[0])
        charges = [requirement_to_micro(im[0])]
        for j in range(1, len(states)):
            gain = states[j][2] + perp_values[j] + value_to_micro(m0[j]) - equity0
            charges.append(requirement_to_micro(im[j]) - gain)
        mm0 = requirement_to_micro(mm[0])
        if order is None:
            return equity0, mm0, max(charges), max(charges)
        before = max(charges[:-1])
        kept = charges[0]  # after: the order's side is replaced by its new state
        if order[6] > 0:
            if has_asks:
                kept = max(kept, charges[-2])
        elif has_bids:
            kept = max(kept, charges[1])
        return equity0, mm0, before, max(kept, charges[-1])

    def _portfolio_health(self, account: Account) -> AccountHealth | None:
        groups = self._gather(account)
        if groups is None:
            return None
        equity = self.cash_value(account.cash) + self.pending_funding(account)
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
            return self._gather(account, None if extra < 0 else (extra, 0, 0, 0, 0, 1)) is not None
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
        none / bids / asks, the order added to its side), in one ``pm_evaluate`` call;
        accepted if equity ≥ initial − before + after, or if after ≤ before
        (risk-reducing). Never mutates."""
        if account.margin_mode is not _PORTFOLIO:
            if self.screen is not None and replaces is None \
                    and self._standard_screen_accepts(account, spec, side, price, lots):
                return None
            return super().check_general(account, spec, side, price, lots, replaces)
        if self.screen is not None and replaces is None and self._screen_accepts(account, spec, side, price, lots):
            return None
        delta = self.order_delta(spec, side, price, lots, replaces)
        groups = self._gather(account, (spec.instrument_id, *delta, side))
        if groups is None:
            return ErrorCode.MARK_PRICE_UNAVAILABLE
        underlying = spec.underlying
        equity = self.cash_value(account.cash) + self.pending_funding(account)
        total = before_here = after_here = 0
        for name, g in groups.items():
            e, _, before, after = self._underlying_figures(name, g)
            equity += e
            total += before
            if name == underlying:
                before_here, after_here = before, after
        if equity >= total - before_here + after_here:
            return None
        if after_here <= before_here:
            return None  # risk-reducing: accepted even below initial margin
        return ErrorCode.INSUFFICIENT_MARGIN
