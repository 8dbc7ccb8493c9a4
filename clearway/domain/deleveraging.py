"""Auto-deleveraging (ADL): closing a bankrupt account's positions against ranked opposite
positions at the bankruptcy price.

Source: exchange-rules.md "Liquidation, insurance fund, deleveraging" step 5 (dYdX v4
bankruptcy price; ranking Hyperliquid/BitMEX style, ``liquidation_rules.adl_score``) and
step 6 ("no account except through step 5 ends with negative equity"); the solvency of
counterparties follows dYdX v4 (below).

When: at the end of a liquidation (liquidation.py) whose account still has negative equity
that the insurance fund cannot cover ("If the account's equity is negative and the fund
cannot cover it"): the book could not absorb its positions within the fillable price and
the fund is too small to pay the deficit.

Net value (:func:`net_value`): the account's equity counting, in standard mode, its long
options at their marks — what it would hold with every position closed at its mark. An
account is *bankrupt* when its net value is negative. (Standard-mode equity counts long
options at 0, so an account can be liquidatable with negative equity and still be
solvent: ADL then closes its long options at their mark, below.)

How, one position at a time (short options, then long options, then perpetuals; short
options in the order below, the others by instrument id) while the account's equity is
negative:

- TNC is the account's net value (its long options are closed here too, so their value
  belongs to the account); if TNC ≥ 0 only long options remain to restore it, and they are
  closed at their mark value.
- quote (cash the bankrupt account receives, negative = pays) for the whole position:
  ``bankruptcy_quote(ΔNNV, TNC, −PMMR, TMMR)`` (ΔNNV = −value at the mark); for the last
  position of the account: −cash, which leaves it at exactly zero cash and equity (the
  same as −ΔNNV − TNC up to the margin model's rounding).
- an option's price is never negative (exchange-rules.md "Products": an option pays
  max(S_T − K, 0) or max(K − S_T, 0) ≥ 0): a bankrupt short buys back at a quote ≤ 0 and a
  bankrupt long sells at a quote ≥ 0, the bankruptcy quote clamped to 0 — the counterparty
  of an option never pays to have its long closed, nor is paid to give up its short. The
  deficit share an option cannot carry stays in the account's TNC and so goes to the
  positions closed after it: the perpetuals come last so that the last of them, closed at
  −cash, takes the whole remaining deficit (a perpetual's price has no such bound: its
  counterparty gives back profit, the spec's "closed against the bankrupt position at its
  bankruptcy price"). Short options carry at most their value each, so they go in
  ascending order of value per requirement (|value| / PMMR; in standard mode that is
  ascending mark, mark / (mark + 0.075·S) per contract): each takes its MMR share of the
  remaining deficit up to its value, and what the ones first in line cannot carry is left
  to those that can carry more — the sequential split is then the water-filling one,
  share_i = min(|value_i|, λ · PMMR_i), and the last, closed at −cash, carries its part
  whenever the short options together are worth at least the deficit. (By instrument id,
  an out-of-the-money short call — MM 0.075·S per contract, mark ≈ 0 — closed after a
  short put had its MMR share dropped at the clamp: a debt with no position, −9,317
  micro-USDC, found by the lifecycle state machine.) So that no rounding or requirement
  cap drops a share either, while only short options are left one is closed for at least
  −cash: quote = max(bankruptcy quote, −cash) (= value − TNC − Σ |value| of the others:
  the least that leaves the rest carriable). Only when the short options together are
  worth less than the deficit (cash < 0 with nothing but short options left) does a debt
  with no position remain, which liquidation.py has the insurance fund pay as far as it
  can.
- each pair: funding settled first, cash quote share from the counterparty to the bankrupt
  account, positions reduced, the counterparty's reduce-only orders re-sized, a
  ``Deleveraged`` event. No fees.

Counterparties. Opposite positions in the instrument, of every account but the bankrupt
one and the fee account (the insurance fund included), ranked by ``adl_score``
(unrealised PnL % × effective leverage at the mark) highest first, ties by account id;
each takes min(remaining, |its size|) at the same bankruptcy price: its share of the quote
is quote · lots / |size| truncated toward zero, the last share gets the exact remainder so
the shares sum to the quote. Each pair is first tried on the counterparty and undone
(:func:`_standing_after`), and the counterparties are taken in two rounds, each in that
ranking:

1. those whose net value after the pair is ≥ 0 (*solvent*);
2. then, for what is left, *carriers*: a counterparty whose net value after the pair is
   negative but which still holds a perpetual, is liquidatable and eligible
   (liquidation.eligible; never the insurance fund, which is not liquidated). It takes the
   loss on and its own liquidation, in the same command, deleverages it in turn — a
   perpetual, whose last close is at −cash, can pass any deficit on to its own
   counterparties, where option prices (≥ 0) cannot.

Any other counterparty — bankrupt already or by its share, and left without a perpetual —
is never used: it would be left with a debt that no later step places on anyone (the
position it gave up was its last way to pass a loss on), the silent debt that step 6
forbids. This follows dYdX v4, which applies a deleveraging match only if it is a valid
state transition for the offsetting subaccount too and skips an offsetting subaccount for
which it is not ("non-overlapping bankruptcy prices": ``x/clob/keeper/deleveraging.go``,
``OffsetSubaccountPerpetualPosition`` / ``ProcessDeleveraging``; ``x/subaccounts``,
``IsValidStateTransitionForUndercollateralizedSubaccount``: an undercollateralized
subaccount may only move to a state whose collateral / maintenance requirement does not
fall, and never from a requirement to none — its positions closed — while
undercollateralized). Round 2 is Clearway's own: dYdX leaves such a position for later,
here a chain of bankruptcies is resolved in the same command so that the final loss lands
on solvent accounts with profit, each link closing at its own bankruptcy price. Skipped
counterparties are returned in ``skipped``, so liquidation.py liquidates them in the same
command (when liquidatable and not yet liquidated in it): a bankrupt counterparty is
deleveraged itself — its loss goes to its own counterparties at its own bankruptcy price,
possibly the account that was blocked, which is touched by that and tried again.
liquidation.py also processes the most underwater accounts first, so that in the usual
chain the bankrupt counterparty is deleveraged before anyone is deleveraged against it.

Blocked. When no counterparty can take any of a position, the position is *blocked*: a
``DeleveragingBlocked`` event names the account, the instrument and the lots left, and the
account's deleveraging stops there (it keeps its other positions, so that it can still be
the carrier of the bankrupt counterparty that blocked it). The account keeps its negative
equity; it stays liquidatable and every later detection tries again (a price move,
liquidity on the book, money in the insurance fund or the counterparty's own deleveraging
may resolve it). This is the case where no account can absorb the loss through the
instrument — e.g. two bankrupt accounts that are each other's only counterparty and hold
no other perpetual: the loss stays visible on accounts that still hold positions instead
of being turned into a debt with no position, which nothing would ever cover.

Example (spec): short −1 BTC with cash 54,999 (bankrupt at mark 56,000: equity −1,001)
vs a long +1 BTC with cash 50,000 → the long sells 1 BTC at 54,999 and ends with 104,999.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from clearway.domain.accounts import Account, MarginMode
from clearway.domain.events import Deleveraged, DeleveragingBlocked, Event
from clearway.domain.fills import change_position
from clearway.domain.funding_engine import settle_before_change
from clearway.domain.genesis import FEE_ACCOUNT, INSURANCE_FUND
from clearway.domain.handlers.common import enforce_reduce_only
from clearway.domain.instruments import Kind
from clearway.domain.liquidation_rules import adl_score, bankruptcy_quote

if TYPE_CHECKING:
    from clearway.domain.health import AccountHealth
    from clearway.domain.state import ExchangeState


def long_option_value(state: ExchangeState, account: Account) -> int:
    """Σ size · mark of a standard-mode account's long options (micro-USDC, each position
    rounded down), which its equity counts at 0 (exchange-rules.md "Standard margin"); 0 in
    portfolio mode, whose equity already counts them."""
    if account.margin_mode is MarginMode.PORTFOLIO:
        return 0
    instruments = state.instruments
    marks = state.marks
    total = 0
    for instrument, position in account.positions.items():
        spec = instruments[instrument]
        if spec.kind == Kind.OPTION and position.size > 0:
            total += position.size * marks[instrument] // spec.size_scale
    return total


def net_value(state: ExchangeState, account: Account, health: AccountHealth | None = None) -> int | None:
    """The account's net value: its equity (``health``, computed when not given) plus
    :func:`long_option_value` — micro-USDC, rounded down as the two are. None when the
    account cannot be priced. The account is bankrupt when it is negative (module
    docstring)."""
    if health is None:
        health = state.margin.health(account)
    if health is None:
        return None
    return health.equity + long_option_value(state, account)


def deleverage(state: ExchangeState, account: Account, events: list[Event], touched: set[int],
               skipped: set[int]) -> None:
    """Close ``account``'s positions by ADL while its equity is negative (module docstring);
    accounts whose positions changed are added to ``touched``, counterparties skipped (not
    changed) to ``skipped``. A position no counterparty can take stops it
    (``DeleveragingBlocked``): the account keeps that position and the ones after it."""
    from clearway.domain.liquidation import position_mmr

    margin = state.margin
    instruments = state.instruments
    while account.positions:
        health = margin.health(account)
        if health is None or health.equity >= 0:
            return
        tnc = health.equity + long_option_value(state, account)
        ordered = _ordered(state, account, health)
        if tnc >= 0:  # long options carry the account: close them at their mark value
            ordered = [i for i in ordered if instruments[i].kind == Kind.OPTION and account.positions[i].size > 0]
            if not ordered:
                return
            instrument = ordered[0]
            size = account.positions[instrument].size
            quote = size * state.marks[instrument] // instruments[instrument].size_scale
        else:
            instrument = ordered[0]
            spec = instruments[instrument]
            size = account.positions[instrument].size
            value = size * state.marks[instrument] // spec.size_scale
            if len(account.positions) == 1:
                quote = -account.cash  # the last position: exactly zero cash (= value − TNC up to rounding)
            else:
                pmmr = position_mmr(state, account, instrument, health)
                quote = bankruptcy_quote(-value, tnc, -pmmr, health.maintenance_margin)
        if instruments[instrument].kind == Kind.OPTION:
            if size < 0 and tnc < 0 and _only_short_options(state, account):
                quote = max(quote, -account.cash)  # the short options after it carry only their values
            quote = max(quote, 0) if size > 0 else min(quote, 0)  # option prices are ≥ 0
        if not _close(state, account, instrument, size, quote, events, touched, skipped):
            events.append(DeleveragingBlocked(account.account_id, instrument, abs(size)))
            return


def _only_short_options(state: ExchangeState, account: Account) -> bool:
    """True when every position of the account is a short option: none of them can carry
    more of a deficit than its own mark value (its price ≥ 0; module docstring, "How")."""
    instruments = state.instruments
    return all(instruments[i].kind == Kind.OPTION and p.size < 0 for i, p in account.positions.items())


def _ordered(state: ExchangeState, account: Account, health: AccountHealth) -> list[int]:
    """The account's positions in ADL order: short options, long options, perpetuals (the
    perpetuals last: they carry the deficit options cannot, module docstring); short options
    by ascending mark value per maintenance requirement, |value| / PMMR (exact; PMMR 0 last),
    so those that can carry the least of a deficit go first; otherwise by instrument id."""
    from clearway.domain.liquidation import position_mmr, position_value

    instruments = state.instruments
    marks = state.marks

    def rank(instrument: int) -> tuple[int, int, Fraction, int]:
        spec = instruments[instrument]
        if spec.kind == Kind.PERPETUAL:
            return (2, 0, _ZERO, instrument)
        size = account.positions[instrument].size
        if size > 0:
            return (1, 0, _ZERO, instrument)
        pmmr = position_mmr(state, account, instrument, health)
        if pmmr <= 0:
            return (0, 1, _ZERO, instrument)
        return (0, 0, Fraction(-position_value(state, account, spec, size, marks[instrument]), pmmr), instrument)

    return sorted(account.positions, key=rank)


_ZERO = Fraction(0)


def ranked_counterparties(state: ExchangeState, account: Account, instrument: int, size: int) -> list[int]:
    """Accounts holding the opposite side of ``instrument``, highest ADL score first, ties
    by account id; the fee account and ``account`` itself excluded. (Whether each can take
    its share is decided when it is its turn: ``_close``.)"""
    spec = state.instruments[instrument]
    mark = state.marks[instrument]
    ranked = []
    for other_id in sorted(state.accounts):
        if other_id == account.account_id or other_id == FEE_ACCOUNT:
            continue
        other = state.accounts[other_id]
        position = other.positions.get(instrument)
        if position is None or (position.size > 0) == (size > 0):
            continue
        health = state.margin.health(other)
        equity = health.equity if health is not None else 0
        ranked.append((-adl_score(position.size, position.entry_price, mark, spec.size_scale, equity), other_id))
    ranked.sort()
    return [other_id for _, other_id in ranked]


NEITHER, CARRIER, SOLVENT = 0, 1, 2
"""What a counterparty would be after a pair (``_standing_after``; module docstring,
"Counterparties")."""


def _standing_after(state: ExchangeState, other: Account, instrument: int, lots: int, share: int) -> int:
    """SOLVENT when ``other``'s net value is ≥ 0 after it pays ``share`` micro-USDC and its
    position in ``instrument`` changes by ``lots`` (toward zero); else CARRIER when it then
    still holds a perpetual, is not the insurance fund, is eligible for liquidation and
    liquidatable; else NEITHER (also when it cannot be priced). Tried on the account and
    undone: its cash, the position's fields and its positions dict (in its order) are
    restored, so nothing changes. The caller settles its funding in the instrument
    beforehand, so the try's equity is exactly the pair's."""
    from clearway.domain.liquidation import eligible, liquidatable

    position = other.positions[instrument]
    fields = (position.size, position.entry_price, position.funding_index)
    saved = dict(other.positions)
    cash = other.cash
    other.cash = cash - share
    change_position(other, instrument, lots, position.entry_price, position.funding_index)
    try:
        health = state.margin.health(other)
        value = net_value(state, other, health)
        if value is None:
            return NEITHER
        if value >= 0:
            return SOLVENT
        instruments = state.instruments
        if other.account_id != INSURANCE_FUND and liquidatable(health) and eligible(state, other) and any(
                instruments[i].kind == Kind.PERPETUAL for i in other.positions):
            return CARRIER
        return NEITHER
    finally:
        other.cash = cash
        position.size, position.entry_price, position.funding_index = fields
        other.positions.clear()
        other.positions.update(saved)


def _close(state: ExchangeState, account: Account, instrument: int, size: int, quote: int, events: list[Event],
           touched: set[int], skipped: set[int]) -> int:
    """Close the position (``size`` lots) against ranked counterparties for ``quote`` in
    total: solvent ones first, then carriers (module docstring, "Counterparties"); returns
    the lots closed (0: blocked). Counterparties used are added to ``touched``, those
    skipped to ``skipped``."""
    spec = state.instruments[instrument]
    scale = spec.size_scale
    side = -1 if size > 0 else 1
    total = abs(size)
    remaining = total
    paid = 0
    ranked = ranked_counterparties(state, account, instrument, size)
    for lowest in (SOLVENT, CARRIER):
        for other_id in ranked:
            if not remaining:
                break
            other = state.accounts[other_id]
            position = other.positions.get(instrument)
            if position is None or (position.size > 0) == (size > 0):
                continue  # closed in the first round
            take = min(remaining, abs(position.size))
            if take == remaining:
                share = quote - paid
            else:
                share = quote * take // total if quote >= 0 else -((-quote) * take // total)
            settle_before_change(state, other, instrument, events)
            if _standing_after(state, other, instrument, -side * take, share) < lowest:
                skipped.add(other_id)  # liquidated in turn (liquidation.run) when it is liquidatable
                continue
            paid += share
            index = settle_before_change(state, account, instrument, events)
            account.cash += share
            other.cash -= share
            price = abs(share) * scale // take
            change_position(account, instrument, side * take, price, index)
            change_position(other, instrument, -side * take, price, index)
            events.append(Deleveraged(instrument, account.account_id, other_id, side, take, price, share))
            touched.add(other_id)
            if other.open.get(instrument) is not None:
                enforce_reduce_only(state, other, instrument, events)
            remaining -= take
    return total - remaining
