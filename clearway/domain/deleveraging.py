"""Auto-deleveraging (ADL): closing a bankrupt account's positions against ranked opposite
positions at the bankruptcy price.

Source: exchange-rules.md "Liquidation, insurance fund, deleveraging" step 5 (dYdX v4
bankruptcy price; ranking Hyperliquid/BitMEX style, ``liquidation_rules.adl_score``).

When: at the end of a liquidation (liquidation.py) whose account still has negative equity
that the insurance fund cannot cover ("If the account's equity is negative and the fund
cannot cover it"): the book could not absorb its positions within the fillable price and
the fund is too small to pay the deficit.

Net value (:func:`net_value`): the account's equity counting, in standard mode, its long
options at their marks — what it would hold with every position closed at its mark. An
account is *bankrupt* when its net value is negative. (Standard-mode equity counts long
options at 0, so an account can be liquidatable with negative equity and still be
solvent: ADL then closes its long options at their mark, below.)

How, one position at a time (short options, then long options, then perpetuals, each by
instrument id) while the account's equity is negative:

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
  bankruptcy price"). Without a perpetual the rest is a debt with no position, which
  liquidation.py has the insurance fund pay as far as it can.
- opposite positions in the instrument, of every account but the bankrupt one and the fee
  account (the insurance fund included), ranked by ``adl_score`` (unrealised PnL % ×
  effective leverage at the mark) highest first, ties by account id; each takes
  min(remaining, |its size|) at the same bankruptcy price: its share of the quote is
  quote · lots / |size| truncated toward zero, the last share gets the exact remainder so
  the shares sum to the quote. No fees.
- each pair: funding settled first, cash quote share from the counterparty to the bankrupt
  account, positions reduced, the counterparty's reduce-only orders re-sized, a
  ``Deleveraged`` event.

Example (spec): short −1 BTC with cash 54,999 (bankrupt at mark 56,000: equity −1,001)
vs a long +1 BTC with cash 50,000 → the long sells 1 BTC at 54,999 and ends with 104,999.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.accounts import Account, MarginMode
from clearway.domain.events import Deleveraged, Event
from clearway.domain.fills import change_position
from clearway.domain.funding_engine import settle_before_change
from clearway.domain.genesis import FEE_ACCOUNT
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


def deleverage(state: ExchangeState, account: Account, events: list[Event], touched: set[int]) -> None:
    """Close ``account``'s positions by ADL while its equity is negative (module docstring);
    accounts whose positions changed are added to ``touched``."""
    from clearway.domain.liquidation import position_mmr

    margin = state.margin
    instruments = state.instruments
    while account.positions:
        health = margin.health(account)
        if health is None or health.equity >= 0:
            return
        tnc = health.equity + long_option_value(state, account)
        ordered = _ordered(state, account)
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
            elif len(ordered) == 1:
                quote = value - tnc
            else:
                pmmr = position_mmr(state, account, instrument, health)
                quote = bankruptcy_quote(-value, tnc, -pmmr, health.maintenance_margin)
        if instruments[instrument].kind == Kind.OPTION:
            quote = max(quote, 0) if size > 0 else min(quote, 0)  # option prices are ≥ 0
        if not _close(state, account, instrument, size, quote, events, touched):
            return


def _ordered(state: ExchangeState, account: Account) -> list[int]:
    """The account's positions in ADL order: short options, long options, perpetuals (the
    perpetuals last: they carry the deficit options cannot, module docstring)."""
    instruments = state.instruments

    def rank(instrument: int) -> tuple[int, int]:
        if instruments[instrument].kind == Kind.PERPETUAL:
            return (2, instrument)
        return (0 if account.positions[instrument].size < 0 else 1, instrument)

    return sorted(account.positions, key=rank)


def ranked_counterparties(state: ExchangeState, account: Account, instrument: int, size: int) -> list[int]:
    """Accounts holding the opposite side of ``instrument``, highest ADL score first, ties
    by account id; the fee account and ``account`` itself excluded."""
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


def _close(state: ExchangeState, account: Account, instrument: int, size: int, quote: int, events: list[Event],
           touched: set[int]) -> bool:
    """Close the whole position (``size`` lots) against ranked counterparties for ``quote``
    in total; False if no counterparty could take any of it."""
    spec = state.instruments[instrument]
    scale = spec.size_scale
    side = -1 if size > 0 else 1
    total = abs(size)
    remaining = total
    paid = 0
    for other_id in ranked_counterparties(state, account, instrument, size):
        if not remaining:
            break
        other = state.accounts[other_id]
        take = min(remaining, abs(other.positions[instrument].size))
        if take == remaining:
            share = quote - paid
        else:
            share = quote * take // total if quote >= 0 else -((-quote) * take // total)
        paid += share
        index = settle_before_change(state, account, instrument, events)
        settle_before_change(state, other, instrument, events)
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
    return remaining < total
