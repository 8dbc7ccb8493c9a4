"""Liquidation engine: detection, order cancellation, partial liquidation against the book,
insurance fund, option backstop; auto-deleveraging is in deleveraging.py.

Source: exchange-rules.md "Liquidation, insurance fund, deleveraging" (dYdX v4 formulas,
liquidation_rules.py); account figures are ``health.Margin.health`` (exact integers).

Detection (when): after every accepted ``OracleUpdate`` and every clock tick that moved a
mark, a funding index or cash (:func:`screen`: all accounts at once with
``revalue.revalue_all``, then each candidate confirmed exactly), and after every command
whose fills touched an oracle-governed market (:func:`check_after_fills`: the accounts of
its trades). Accounts touched by liquidation fills or deleveraging are checked in turn,
and so are counterparties deleveraging skipped (deleveraging.py, "Counterparties").
Order (:func:`run`): the liquidatable accounts of a detection most underwater first —
ascending net value / maintenance margin (deleveraging.net_value: equity with long options
at their marks), ties by account id — as dYdX v4 sorts its liquidations ("the most
underwater accounts should be liquidated first", ``x/clob/keeper/liquidations.go``,
``SortLiquidationOrders``); then the accounts their liquidations touched, first in first
out. So a bankrupt account is deleveraged against solvent counterparties before a less
underwater account is deleveraged against it (deleveraging.py, "Counterparties").
Only accounts whose every position is in an oracle-governed, non-halted underlying
(clock.is_live) are liquidated: no liquidation on a stale price, and never on the operator
feed's prices. The fee account (0) and the insurance fund (1) are never liquidated.

Per account (``liquidate_account``), with liquidatable ⟺ MM > 0 and equity < MM:

1. ``LiquidationStarted``; cancel all its open orders (``CancelReason.LIQUIDATION``);
   recheck. Settle the funding of all its positions (funding_engine.settle_account).
2. Positions in order — perpetuals, short options, long options (each by instrument id) —
   each closed in steps while the account stays liquidatable. A step is an IOC order
   against the book that pays no taker fee, matched maker by maker with the book's own
   ``OrderBook.match`` (best level first, FIFO; an iceberg gives at most its displayed
   slice per visit and its refill goes behind the orders queued after it, with an
   ``IcebergRefilled`` event, exactly as for any taker):
   - limit: perps the fillable price ``fillable_price(size, mark, PMMR, TNC, TMMR)``
     (a sell rounds up, a buy down to a tick); options mark ± penalty with penalty =
     ⌈option_liquidation_penalty · per-contract MM⌉ (the MM of a short contract,
     mark + 0.075·S, for both sides), a buy's limit rounded down, a sell's up, ≥ one tick;
   - size: at most ``step_notional_limit(|N|)`` notional at the mark and at most the
     account's unused ``liquidation_cap_per_second`` in the current second (ts // 1000),
     in lots rounded down;
   - each fill: quote q (cash received, negative when buying), ΔNNV (the change of the
     position's value as equity counts it), ΔMMR = −PMMR · lots / |size at the step's
     start| (truncated), bankruptcy quote b = ``bankruptcy_quote(ΔNNV, TNC, ΔMMR, TMMR)``,
     ``settle_liquidation_fill(q, b)`` → fee to the insurance fund or payout from it.
     A fill whose payout the fund cannot afford (cash, and equity if it holds positions)
     is cut to what it can afford; nothing affordable ends the book path (dYdX: the
     insurance fund must cover a liquidation below bankruptcy). TNC and TMMR are carried
     forward through the step's fills: TNC += ΔNNV + q + payout − fee, TMMR += ΔMMR.
   PMMR is the position's own requirement in standard mode (perp ⌈|N|·MMF⌉, short option
   per-contract MM, long option 0) and TMMR − MM(account without it) in portfolio mode.
3. An option position the book could not absorb goes to the backstop account — the
   insurance fund — at the step's limit price, split the same way (``BackstopTransfer``).
4. If equity is still negative, the insurance fund pays the deficit into the account
   (``InsuranceCovered``) when it can afford all of it — the account, at zero equity, goes
   on being liquidated by later steps (e.g. after the per-second cap) — and otherwise the
   account is deleveraged (deleveraging.py: "the fund cannot cover it"), only against
   counterparties that stay solvent or carry the loss on (deleveraging.py,
   "Counterparties"); a position none can take stays with the account
   (``DeleveragingBlocked``). A debt left with no position (an option-only remainder,
   deleveraging.py) is paid by the fund as far as it can.
5. ``LiquidationEnded`` (still liquidatable when the book lacked liquidity within the
   limits, the cap was reached or deleveraging was blocked: the next detection
   continues).

Conservation: every cash movement here has its counterpart (maker, fund, fee account), so
Σ cash is unchanged; positions move only in fills, transfers and deleveraging, each between
two accounts.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from clearway.domain.accounts import Account, MarginMode
from clearway.domain.errors import CancelReason
from clearway.domain.events import (
    BackstopTransfer, Event, IcebergRefilled, InsuranceCovered, LiquidationEnded, LiquidationFill, LiquidationStarted,
    Trade,
)
from clearway.domain.fills import change_position, settle_fill
from clearway.domain.genesis import FEE_ACCOUNT, INSURANCE_FUND
from clearway.domain.handlers.common import cancel_resting, enforce_reduce_only
from clearway.domain.instruments import Kind
from clearway.domain.liquidation_rules import (
    bankruptcy_quote, fillable_price, settle_liquidation_fill, step_notional_limit,
)
from clearway.domain.orders import Order
from clearway.domain.units import PPM, ceil_div

if TYPE_CHECKING:
    from clearway.domain.health import AccountHealth
    from clearway.domain.state import ExchangeState

MAX_PASSES = 3
"""Times one account may be liquidated in one command (it can be touched again by another
account's liquidation fills)."""

SCREEN_SLACK = 10_000
"""micro-USDC: the screen flags accounts within this of maintenance margin (the batch
revaluation agrees with ``health`` to a few micro-USDC); ``health`` decides."""


# -- detection -------------------------------------------------------------------------
def check_after_fills(state: ExchangeState, ts: int, events: list[Event]) -> None:
    """Check the accounts of the ``Trade`` events in ``events`` (a command's fills)."""
    touched: set[int] = set()
    for event in events:
        if type(event) is Trade:
            touched.add(event.maker_account)
            touched.add(event.taker_account)
    run(state, sorted(touched), ts, events)


def screen(state: ExchangeState, ts: int, events: list[Event]) -> None:
    """Screen every account after a price change and liquidate the liquidatable ones.

    ``revalue_all`` over all accounts (float64, within micro-USDC of ``health``) picks the
    candidates with equity − MM < ``SCREEN_SLACK`` and MM > 0; each is confirmed with
    ``health``. If the batch cannot price some account, every account with positions is a
    candidate.

    The revaluation is also kept for the pre-trade screen (``Margin.remember``, health.py):
    later order checks of accounts whose positions, cash and prices are unchanged may accept
    without the exact evaluation. The screen only accepts what the exact check accepts
    (tests/domain/test_revalue.py), so no decision, event or state hash depends on it (a
    replica restored from a snapshot has none until its next screen); when the batch cannot
    run, the old screen is dropped."""
    state.screen_due = False
    if not any(u not in state.halted for u in state.oracle_last):
        return
    from clearway.domain.revalue import PositionMatrix, revalue_all

    margin = state.margin
    try:
        matrix = PositionMatrix.from_state(state)
        if not matrix.accounts.size:
            margin.screen = None
            return
        figures = revalue_all(state, matrix)
        margin.remember(matrix, figures)
        flagged = (figures.maintenance_margin > 0) & (figures.equity - figures.maintenance_margin < SCREEN_SLACK)
        candidates = figures.accounts[np.flatnonzero(flagged)].tolist()
    except KeyError:
        margin.screen = None
        candidates = [i for i, a in state.accounts.items() if i >= 2 and a.positions]
    if candidates:
        run(state, sorted(int(i) for i in candidates), ts, events)


def run(state: ExchangeState, account_ids: list[int], ts: int, events: list[Event]) -> None:
    """Liquidate each of ``account_ids`` that is liquidatable, most underwater first
    (:func:`most_underwater_first`), then, in a deterministic order (FIFO, by account id
    within one liquidation), the accounts their liquidations touched — each at most
    MAX_PASSES times — and the counterparties deleveraging skipped that have not been
    liquidated in this run yet (a skip changes nothing: once is enough)."""
    first = most_underwater_first(state, account_ids)
    queue = deque(first)
    queued = set(first)
    passes: dict[int, int] = {}
    while queue:
        account_id = queue.popleft()
        queued.discard(account_id)
        passes[account_id] = passes.get(account_id, 0) + 1
        touched, skipped = liquidate_account(state, account_id, ts, events)
        for other in sorted(touched | skipped):
            done = passes.get(other, 0)
            if other not in queued and (done < MAX_PASSES if other in touched else done == 0):
                queue.append(other)
                queued.add(other)


def most_underwater_first(state: ExchangeState, account_ids: list[int]) -> list[int]:
    """The liquidatable accounts among ``account_ids`` in liquidation order: ascending
    net value / maintenance margin (exact: ``Fraction``; net value = equity with long
    options at their marks, deleveraging.net_value, so a bankrupt account — negative net
    value — comes before any solvent one), ties by account id (module docstring, "Order";
    dYdX v4 ``SortLiquidationOrders``). The others are left out: ``liquidate_account``
    would do nothing for them, and a liquidation changes the health of no account it does
    not report as touched (``run`` queues those; a counterparty deleveraging skipped may have
    had its funding settled, which leaves its equity as it was). One ``health`` per account,
    as ``liquidate_account`` would compute."""
    from clearway.domain.deleveraging import net_value

    margin = state.margin
    accounts = state.accounts
    keyed: list[tuple[Fraction, int]] = []
    for account_id in account_ids:
        account = accounts.get(account_id)
        if account_id < 2 or account is None or not account.positions or not eligible(state, account):
            continue
        health = margin.health(account)
        if not liquidatable(health):
            continue
        value = net_value(state, account, health)
        keyed.append((Fraction(value, health.maintenance_margin), account_id))
    keyed.sort()
    return [account_id for _, account_id in keyed]


def liquidatable(health: AccountHealth | None) -> bool:
    """MM > 0 and equity < MM (exchange-rules.md "Standard margin")."""
    return health is not None and health.maintenance_margin > 0 and health.equity < health.maintenance_margin


def eligible(state: ExchangeState, account: Account) -> bool:
    """Every position of the account is in an oracle-governed underlying that is not halted."""
    oracle, halted, instruments = state.oracle_last, state.halted, state.instruments
    for instrument in account.positions:
        underlying = instruments[instrument].underlying
        if underlying not in oracle or underlying in halted:
            return False
    return True


# -- one account -------------------------------------------------------------------------
def liquidate_account(state: ExchangeState, account_id: int, ts: int,
                      events: list[Event]) -> tuple[set[int], set[int]]:
    """Liquidate ``account_id`` if it is liquidatable (module docstring). Returns the other
    accounts whose positions changed and the counterparties deleveraging skipped (to be
    checked in turn, ``run``); the fee account and the fund are left out."""
    from clearway.domain import funding_engine
    from clearway.domain.deleveraging import deleverage

    touched: set[int] = set()
    skipped: set[int] = set()
    account = state.accounts.get(account_id)
    if account_id < 2 or account is None or not account.positions or not eligible(state, account):
        return touched, skipped
    margin = state.margin
    health = margin.health(account)
    if not liquidatable(health):
        return touched, skipped
    events.append(LiquidationStarted(account_id, health.equity, health.maintenance_margin))
    for order_id in sorted(account.orders):
        cancel_resting(state, account.orders[order_id], CancelReason.LIQUIDATION, events)
    health = margin.health(account)
    if liquidatable(health):
        funding_engine.settle_account(state, account, events)
        _close_positions(state, account, ts, events, touched)
        health = margin.health(account)
        if health is not None and health.equity < 0 and not _cover(state, account, health.equity, events):
            deleverage(state, account, events, touched, skipped)
        if not account.positions and account.cash < 0:
            _cover(state, account, account.cash, events)
        health = margin.health(account)
    for others in (touched, skipped):
        others.discard(account_id)
        others.discard(FEE_ACCOUNT)
        others.discard(INSURANCE_FUND)
    if health is None:
        events.append(LiquidationEnded(account_id, 0, 0, False))
    else:
        events.append(LiquidationEnded(account_id, health.equity, health.maintenance_margin, liquidatable(health)))
    return touched, skipped


def _close_positions(state: ExchangeState, account: Account, ts: int, events: list[Event], touched: set[int]) -> None:
    """Steps 2 and 3: book steps per position, then the option backstop."""
    instruments = state.instruments
    perps, shorts, longs = [], [], []
    for instrument in sorted(account.positions):
        spec = instruments[instrument]
        if spec.kind == Kind.PERPETUAL:
            perps.append(instrument)
        elif account.positions[instrument].size < 0:
            shorts.append(instrument)
        else:
            longs.append(instrument)
    margin = state.margin
    for instrument in (*perps, *shorts, *longs):
        while instrument in account.positions:
            health = margin.health(account)
            if not liquidatable(health):
                return
            if not _book_step(state, account, instrument, health, ts, events, touched):
                break
        if instrument in account.positions and instruments[instrument].kind == Kind.OPTION:
            health = margin.health(account)
            if not liquidatable(health):
                return
            _backstop(state, account, instrument, health, events)


def _cover(state: ExchangeState, account: Account, equity: int, events: list[Event]) -> bool:
    """The insurance fund pays a negative ``equity`` (or a debt without positions) into the
    account as far as it can (``InsuranceCovered``); True when the account no longer has
    negative equity. Below the USDC peg a positive balance counts at the stable price, so
    the payment is grossed up (rounded up) to restore the equity."""
    margin = state.margin
    needed = -equity
    if not margin.pegged and account.cash + needed > 0:
        needed = ceil_div(needed * PPM, margin.stable_price)
    paid = min(needed, fund_available(state))
    if paid <= 0:
        return False
    state.accounts[INSURANCE_FUND].cash -= paid
    account.cash += paid
    events.append(InsuranceCovered(account.account_id, paid))
    health = margin.health(account)
    return health is not None and health.equity >= 0


# -- pricing of one position -------------------------------------------------------------
def position_value(state: ExchangeState, account: Account, spec, size: int, mark: int) -> int:
    """The position's contribution to equity at ``mark`` (micro-USDC, rounded down): size ·
    mark, except long options in standard mode, which count 0."""
    if spec.kind == Kind.OPTION and size > 0 and account.margin_mode is not MarginMode.PORTFOLIO:
        return 0
    return size * mark // spec.size_scale


def position_mmr(state: ExchangeState, account: Account, instrument: int, health: AccountHealth) -> int:
    """PMMR: the maintenance requirement of one position (micro-USDC). Standard mode: its own
    requirement (options per contract, without the expiry cap), at most TMMR; portfolio
    mode: TMMR minus the MM of the account without it (its positions dict is restored in
    its order)."""
    margin = state.margin
    spec = state.instruments[instrument]
    size = account.positions[instrument].size
    if account.margin_mode is not MarginMode.PORTFOLIO:  # at most TMMR (the expiry cap may lower it)
        return min(margin._requirement(spec, state.marks[instrument], size, False), health.maintenance_margin)
    saved = dict(account.positions)
    del account.positions[instrument]
    try:
        without = margin.health(account)
    finally:
        account.positions.clear()
        account.positions.update(saved)
    if without is None:
        return health.maintenance_margin
    return max(health.maintenance_margin - without.maintenance_margin, 0)


def limit_price(state: ExchangeState, spec, size: int, mark: int, pmmr: int, tnc: int, tmmr: int) -> int:
    """The worst price a liquidation of ``size`` lots may trade at (module docstring, step 2)."""
    genesis = state.genesis
    tick = spec.tick_size
    if spec.kind == Kind.PERPETUAL:
        return fillable_price(size, mark, spec.size_scale, pmmr, tnc, tmmr, tick, genesis.liquidation_smmr_ppm,
                              genesis.liquidation_ba_ppm)
    spot = state.index[spec.underlying]
    contract_mm = mark + ceil_div(spot * genesis.option_mm_ppm, PPM)
    penalty = ceil_div(contract_mm * genesis.option_liquidation_penalty_ppm, PPM)
    if size < 0:  # buy back a short: at most mark + penalty, rounded down to a tick
        return max((mark + penalty) // tick * tick, tick)
    return max(ceil_div(mark - penalty, tick) * tick, tick)  # sell a long: at least mark − penalty


def fund_available(state: ExchangeState) -> int:
    """What the insurance fund can pay now (micro-USDC ≥ 0): its cash, and no more than its
    equity when it holds (backstopped) positions."""
    fund = state.accounts[INSURANCE_FUND]
    available = fund.cash
    if fund.positions:
        health = state.margin.health(fund)
        available = min(available, health.equity) if health is not None else 0
    return max(available, 0)


class _Split:
    """One liquidation fill's figures (micro-USDC); see the module docstring."""

    __slots__ = ("lots", "quote", "dnnv", "dmmr", "bankruptcy", "fee", "payout")

    def __init__(self, lots, quote, dnnv, dmmr, bankruptcy, fee, payout) -> None:
        self.lots, self.quote, self.dnnv, self.dmmr = lots, quote, dnnv, dmmr
        self.bankruptcy, self.fee, self.payout = bankruptcy, fee, payout


def split_fill(state: ExchangeState, account: Account, spec, side: int, lots: int, price: int, size_now: int,
               mark: int, pmmr: int, size0: int, tnc: int, tmmr: int) -> _Split:
    """Figures of a liquidation fill of ``lots`` at ``price`` (side +1 buys)."""
    scale = spec.size_scale
    quote = -side * (lots * price // scale)
    dnnv = position_value(state, account, spec, size_now + side * lots, mark) - \
        position_value(state, account, spec, size_now, mark)
    dmmr = -(pmmr * lots // size0) if size0 else 0
    bankruptcy = bankruptcy_quote(dnnv, tnc, dmmr, tmmr)
    fee, payout = settle_liquidation_fill(quote, bankruptcy, state.genesis.liquidation_fee_ppm)
    return _Split(lots, quote, dnnv, dmmr, bankruptcy, fee, payout)


def fund_position_cost(state: ExchangeState, spec, side: int, lots: int, mark: int) -> int:
    """What receiving the other side of a liquidation of ``lots`` (the account's ``side``)
    costs the insurance fund's equity at ``mark``: the value of its position in the
    instrument before minus after (``position_value``, micro-USDC: a short option it takes
    costs its mark value; a long option costs 0 in standard mode, where it counts 0)."""
    fund = state.accounts[INSURANCE_FUND]
    held = fund.position_size(spec.instrument_id)
    return (position_value(state, fund, spec, held, mark)
            - position_value(state, fund, spec, held - side * lots, mark))


def affordable(state: ExchangeState, account: Account, spec, side: int, lots: int, price: int, size_now: int,
               mark: int, pmmr: int, size0: int, tnc: int, tmmr: int, available: int,
               fund_is_counterparty: bool = False) -> _Split | None:
    """The fill of ``lots`` (or of the most lots below it, in size increments) that the
    insurance fund can afford: the fall of its equity, payout − fee (+, when the fund is
    also the counterparty as in a backstop transfer, the quote it pays and
    ``fund_position_cost`` of the position it receives), ≤ ``available``; None when not
    even one increment is affordable. (Without the position's cost a fund with no money
    could take a short option for less than its mark value and be left with negative
    equity, exchange-rules.md step 6.)"""

    def outflow(split: _Split) -> int:
        if not fund_is_counterparty:
            return split.payout - split.fee
        return split.payout - split.fee + split.quote + fund_position_cost(state, spec, side, split.lots, mark)

    split = split_fill(state, account, spec, side, lots, price, size_now, mark, pmmr, size0, tnc, tmmr)
    if outflow(split) <= available:
        return split
    step = spec.size_increment
    lo, hi = 0, lots // step  # in increments: hi is not affordable
    best = None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        candidate = split_fill(state, account, spec, side, mid * step, price, size_now, mark, pmmr, size0, tnc,
                               tmmr)
        if outflow(candidate) <= available:
            lo, best = mid, candidate
        else:
            hi = mid
    return best


def _settle_last(account: Account, split: _Split, size_now: int, available: int) -> bool:
    """When ``split`` closes the account's last position, make its cash end ≥ 0 exactly:
    the carried TNC can differ from the margin model's valuation by a few micro-USDC
    (portfolio values, per-position rounding), so the fee is cut or the payout raised to
    what the cash needs. False when the fund cannot pay that (the fill is refused and the
    position is left to deleveraging, which closes it at exactly zero cash)."""
    if split.lots != abs(size_now) or len(account.positions) != 1:
        return True
    cash_after = account.cash + split.quote + split.payout - split.fee
    if cash_after >= 0:
        return True
    net = split.payout - split.fee - cash_after  # what the account must receive in total
    fee, payout = (0, net) if net >= 0 else (-net, 0)
    if payout - fee > available:
        return False
    split.fee, split.payout = fee, payout
    return True


# -- steps ---------------------------------------------------------------------------------
def _no_self_trade(maker: Order) -> None:
    """The liquidated account's orders were all cancelled first: it has none to match."""
    raise AssertionError(f"liquidation met the account's own order {maker.order_id}")


def _book_step(state: ExchangeState, account: Account, instrument: int, health: AccountHealth, ts: int,
               events: list[Event], touched: set[int]) -> int:
    """One liquidation step of one position against the book; returns the lots filled."""
    genesis = state.genesis
    spec = state.instruments[instrument]
    scale = spec.size_scale
    size = account.positions[instrument].size
    side = -1 if size > 0 else 1
    mark = state.marks[instrument]
    tnc, tmmr = health.equity, health.maintenance_margin
    pmmr = position_mmr(state, account, instrument, health)
    limit = limit_price(state, spec, size, mark, pmmr, tnc, tmmr)
    second = ts // 1000
    if state.liquidation_second != second:
        state.liquidation_second = second
        state.liquidation_used.clear()
    used = state.liquidation_used.get(account.account_id, 0)
    room = min(step_notional_limit(abs(size) * mark // scale, genesis.liquidation_min_step,
                                   genesis.liquidation_step_ppm),
               genesis.liquidation_cap_per_second - used)
    if room <= 0:
        return 0
    wanted = abs(size) if mark <= 0 else min(abs(size), room * scale // mark)
    wanted -= wanted % spec.size_increment
    if wanted <= 0:
        return 0
    book = state.books[instrument]
    fund = state.accounts[INSURANCE_FUND]
    available = fund_available(state)
    size0 = abs(size)
    filled = 0
    fill: list = []  # the split being matched (``on_fill`` settles it)

    def on_fill(maker: Order, lots: int) -> None:
        split = fill[0]
        trade = settle_fill(state, spec, maker, account, side, lots, 0, 0, events)
        events.append(trade)
        account.cash += split.payout - split.fee
        fund.cash += split.fee - split.payout
        events.append(LiquidationFill(account.account_id, instrument, trade.trade_id, side, lots, maker.price, limit,
                                      split.quote, split.bankruptcy, split.fee, split.payout))
        touched.add(maker.account)
        maker_account = state.accounts[maker.account]
        if maker_account.open.get(instrument) is not None:
            enforce_reduce_only(state, maker_account, instrument, events)

    def on_refill(maker: Order) -> None:
        events.append(IcebergRefilled(maker.order_id, maker.account, instrument, maker.side, maker.price,
                                      maker.shown, maker.remaining))

    while filled < wanted:
        if side > 0:
            if not book.ask_keys or -book.ask_keys[-1] > limit:
                break
            maker = book.asks[-book.ask_keys[-1]].head
        else:
            if not book.bid_prices or book.bid_prices[-1] < limit:
                break
            maker = book.bids[book.bid_prices[-1]].head
        if maker.account == account.account_id:  # cannot happen (its orders were cancelled)
            break
        size_now = account.positions[instrument].size
        visible = maker.shown if maker.display else maker.remaining  # an iceberg: its slice this visit
        split = affordable(state, account, spec, side, min(visible, wanted - filled), maker.price, size_now,
                           mark, pmmr, size0, tnc, tmmr, available)
        if split is None or not _settle_last(account, split, size_now, available):
            break
        fill[:] = [split]
        # the book's own match for exactly these lots at this maker's price: it takes only
        # from the head order (lots ≤ its visible size), refills an emptied iceberg slice and
        # moves it behind the orders queued after it, as for any taker
        lots = book.match(side, maker.price, split.lots, account.account_id, on_fill, _no_self_trade, on_refill)
        available += split.fee - split.payout
        tnc += split.dnnv + split.quote + split.payout - split.fee
        tmmr += split.dmmr
        filled += lots
    if filled:
        state.liquidation_used[account.account_id] = used + filled * mark // scale
    return filled


def _backstop(state: ExchangeState, account: Account, instrument: int, health: AccountHealth,
              events: list[Event]) -> None:
    """Step 3: transfer an option position the book could not absorb to the insurance fund
    at the step's limit price (as much as the fund can afford)."""
    spec = state.instruments[instrument]
    size = account.positions[instrument].size
    side = -1 if size > 0 else 1
    mark = state.marks[instrument]
    tnc, tmmr = health.equity, health.maintenance_margin
    pmmr = position_mmr(state, account, instrument, health)
    price = limit_price(state, spec, size, mark, pmmr, tnc, tmmr)
    fund = state.accounts[INSURANCE_FUND]
    available = fund_available(state)
    split = affordable(state, account, spec, side, abs(size), price, size, mark, pmmr, abs(size), tnc, tmmr,
                       available, fund_is_counterparty=True)
    if split is None:
        return
    cost = fund_position_cost(state, spec, side, split.lots, mark)
    if not _settle_last(account, split, size, available - split.quote - cost):
        return
    lots = split.lots
    account.cash += split.quote
    fund.cash -= split.quote
    change_position(account, instrument, side * lots, price, 0)
    change_position(fund, instrument, -side * lots, price, 0)
    account.cash += split.payout - split.fee
    fund.cash += split.fee - split.payout
    events.append(BackstopTransfer(account.account_id, instrument, side, lots, price, split.quote, split.bankruptcy,
                                   split.fee, split.payout))
