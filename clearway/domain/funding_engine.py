"""Funding in the state: premium samples, hourly ticks, lazy settlement of positions.

Source: exchange-rules.md "Funding" (dYdX v4 style); the formulas are funding.py's and
units.funding_payment's, this module only decides *when* they run and *where the money
goes*.

- Samples (clock.py, first command at or after each minute boundary): for every perpetual
  of an oracle-governed underlying that is not halted, ``funding.premium_sample`` from the
  book's impact prices against the current index, appended to
  ``state.premium_samples[perp]``. A halted underlying gets no sample (it counts as 0).
- Ticks (first command at or after each hour boundary H): rate_8h = ``hourly_rate`` of the
  hour's samples (60 slots, missing = 0) + default rate, clamped to ±6·(IMF − MMF);
  ``state.funding_index[perp] += funding_index_delta(index, rate_8h, 3600)``; a
  ``FundingTick`` event. The samples start over.
- Settlement is eager at each tick: when a tick moves a perp's funding index, every
  position in that perp is settled at once (accounts by id), payment = −size ·
  (index_now − index_pos), rounded against the account (``units.funding_payment``:
  toward −∞), with a ``FundingPaid`` event — as Hyperliquid and Binance pay every open
  position at each funding time. A position remembers the index it was last settled at
  (``Position.funding_index``). The lazy path (settlement before every change of a
  position's size in fills.py, liquidation, deleveraging, and when an account is
  liquidated; ``StandardMargin.pending_funding`` in margin checks) is kept and stays
  correct, but after an eager tick it finds nothing to settle: a position opened after
  a tick carries that tick's index.

Why eager, not lazy with an aggregate (the alternative considered): the committed state
(commitment/exchange_state.py) and the vault's escape (commitment/escape.py, Vault.vy)
value each position's unsettled funding against the fee account, its counterparty, yet
the fee account's leaf holds only its cash. With lazy settlement Σ escape values exceeded
the vault's holdings by the net funding owed to unsettled receivers ("escape pool
exhausted"). Settling every position at the tick makes every committed state carry no
unsettled funding, so the escape's funding term is 0 and conservation follows from cash
alone: Σ cash is unchanged by each settlement, and the fee account keeps the rounding
residue (≥ 0, see below). The cost is O(positions of the perp) per perp per funding hour
(README, "Funding settlement": measured with ``clearway stress``), paid once an hour,
against an extra committed aggregate, a fee-account leaf format change and a vault
change that design (ii) would need.

Where the money goes: the **fee account is the counterparty of every funding payment**
(a payment by an account is credited to it, a receipt debited from it). Σ cash over all
accounts is therefore conserved exactly by each settlement. The fee account's cash holds
(a) the funding that payers have settled and receivers not yet, and (b) the rounding
residue, which is ≥ 0 because every payment rounds against its account: over any set of
positions that all settle the same interval, Σ exact payments = 0 (Σ size = 0) and Σ
rounded payments ≤ 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.accounts import Account, Position
from clearway.domain.events import Event, FundingPaid, FundingTick
from clearway.domain.funding import funding_index_delta, hourly_rate, premium_sample
from clearway.domain.genesis import FEE_ACCOUNT
from clearway.domain.units import funding_payment

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState


def _funded_perps(state: ExchangeState) -> list[int]:
    """Perpetual ids of oracle-governed underlyings, ascending."""
    oracle = state.oracle_last
    instruments = state.instruments
    return [i for i in sorted(state.margin.perps) if instruments[i].underlying in oracle]


def sample_premiums(state: ExchangeState) -> None:
    """Take this minute's premium sample of every funded perpetual (module docstring)."""
    genesis = state.genesis
    for instrument in _funded_perps(state):
        spec = state.instruments[instrument]
        if spec.underlying in state.halted:
            continue
        index = state.index.get(spec.underlying)
        if index is None:
            continue
        sample = premium_sample(state.books[instrument], index, genesis.impact_notional, spec.size_scale,
                                genesis.premium_clamp)
        samples = state.premium_samples.get(instrument)
        if samples is None:
            samples = state.premium_samples[instrument] = []
        samples.append(sample)


def funding_tick(state: ExchangeState, hour_ts: int, events: list[Event]) -> bool:
    """The hourly funding tick at ``hour_ts`` for every funded perpetual; returns True when
    some funding index moved (account equities changed)."""
    genesis = state.genesis
    slots = genesis.funding_interval_ms // genesis.funding_sample_ms
    seconds = genesis.funding_interval_ms // 1000
    moved = False
    for instrument in _funded_perps(state):
        spec = state.instruments[instrument]
        index = state.index.get(spec.underlying)
        if index is None:
            continue
        samples = state.premium_samples.pop(instrument, [])
        rate = hourly_rate(samples, genesis.default_funding_rate, spec.imf_ppm, spec.mmf_ppm, slots)
        delta = funding_index_delta(index, rate, seconds)
        value = state.funding_index.get(instrument, 0) + delta
        state.funding_index[instrument] = value
        events.append(FundingTick(instrument, hour_ts, rate, index, value, len(samples)))
        if delta:
            moved = True
            settle_instrument(state, instrument, value, events)
    return moved


def settle_instrument(state: ExchangeState, instrument: int, index: int, events: list[Event]) -> None:
    """Settle every open position in perpetual ``instrument`` up to ``index`` (its new
    funding index), accounts in ascending id order, one ``FundingPaid`` per non-zero
    payment (``settle_position``). Cost: one pass over the accounts."""
    accounts = state.accounts
    for account_id in sorted(accounts):
        account = accounts[account_id]
        position = account.positions.get(instrument)
        if position is not None and position.funding_index != index:
            settle_position(state, account, instrument, position, index, events)


def settle_position(state: ExchangeState, account: Account, instrument: int, position: Position, index: int,
                    events: list[Event]) -> int:
    """Settle one position's funding up to ``index`` (the instrument's current funding
    index): cash moves between the account and the fee account, the position is marked
    settled. Returns the payment to the account (micro-USDC; negative = paid)."""
    scale = 10**state.instruments[instrument].size_decimals
    payment = funding_payment(position.size, index, position.funding_index, scale)
    position.funding_index = index
    if payment:
        account.cash += payment
        state.accounts[FEE_ACCOUNT].cash -= payment
        events.append(FundingPaid(account.account_id, instrument, payment, index))
    return payment


def settle_account(state: ExchangeState, account: Account, events: list[Event]) -> None:
    """Settle the funding of every perpetual position of ``account`` (by instrument id)."""
    funding = state.funding_index
    if not funding:
        return
    for instrument in sorted(account.positions):
        index = funding.get(instrument)
        position = account.positions[instrument]
        if index is not None and index != position.funding_index:
            settle_position(state, account, instrument, position, index, events)


def settle_before_change(state: ExchangeState, account: Account, instrument: int, events: list[Event]) -> int:
    """Settle one position (if any) before its size changes; return the funding index a new
    or changed position must carry (0 for instruments without funding)."""
    index = state.funding_index.get(instrument)
    if index is None:
        return 0
    position = account.positions.get(instrument)
    if position is not None and position.funding_index != index:
        settle_position(state, account, instrument, position, index, events)
    return index
