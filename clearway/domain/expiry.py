"""Option expiry: settlement price, cash settlement with netting, delisting; strike grids.

Source: exchange-rules.md "Option expiry and netting" (Deribit style).

Settlement price S_T: the time-weighted average of the index over the last
``settlement_twap_ms`` (30 minutes) before expiry. The state keeps every index change of
the window (``ExchangeState.set_index``: oracle updates and the operator feeds) as
(ts, index) samples; the index is piecewise constant between them, so

    S_T = ⌊ Σ index_i · |[t_i, t_{i+1}) ∩ [E − W, E)| / covered time ⌋   (micro-USDC)

where the sample in force at E − W counts from E − W. If no index is known before the
expiry at all, the current index settles it (an expiry cannot stay open forever); with no
index at all the expiry waits (retried every minute).

At the first command at or after the expiry (clock.py), for each (underlying, expiry):

1. every open order of its options is cancelled (``CancelReason.EXPIRED``);
2. every position receives size · payoff, call max(S − K, 0), put max(K − S, 0); the
   payoffs of one account over all options of the expiry are netted into **one** cash
   change (``ExpiryPayoff``): with L the largest lot scale of the expiry,
   amount = ⌊ Σ size · (L / scale) · payoff / L ⌋ — rounded toward −∞, i.e. against the
   account (a receipt rounds down, a payment rounds up: exchange-rules.md "Units");
3. zero-sum: Σ exact amounts = 0 because Σ size = 0 per option, so the rounded amounts sum
   to −r with 0 ≤ r < number of accounts (micro-USDC); r goes to the fee account, and the
   expiry's cash changes, fee account included, sum to exactly zero (``OptionsExpired``
   carries r as ``residue``);
4. positions are removed, marks dropped, and the options delisted (``state.delisted``:
   ids stay allocated because instrument ids are dense; orders on them are refused).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.errors import CancelReason
from clearway.domain.events import Event, ExpiryPayoff, OptionsExpired
from clearway.domain.genesis import FEE_ACCOUNT
from clearway.domain.handlers.common import cancel_resting
from clearway.domain.instruments import Kind, OptionType

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState

NEVER = 2**62
DAY_MS = 86_400_000
EXPIRY_TIME_OF_DAY_MS = 8 * 3_600_000  # 08:00 UTC (exchange-rules.md "Products")


def settlement_price(samples: list[tuple[int, int]], expiry_ms: int, window_ms: int) -> int | None:
    """TWAP of the index over [expiry − window, expiry) from (ts, index) change samples
    (ascending ts), floored to a micro-USDC; the last index before the expiry if the window
    has no coverage; None if there is no sample before the expiry."""
    start = expiry_ms - window_ms
    total = covered = 0
    last = None
    for i, (ts, value) in enumerate(samples):
        if ts >= expiry_ms:
            break
        last = value
        end = samples[i + 1][0] if i + 1 < len(samples) else expiry_ms
        end = min(end, expiry_ms)
        begin = max(ts, start)
        if end > begin:
            total += value * (end - begin)
            covered += end - begin
    if covered:
        return total // covered
    return last


def payoff(spec, settlement: int) -> int:
    """Cash per long contract at settlement, micro-USDC: call max(S − K, 0), put max(K − S, 0)."""
    if spec.option_type == OptionType.CALL:
        return max(settlement - spec.strike, 0)
    return max(spec.strike - settlement, 0)


def next_expiry(state: ExchangeState) -> int:
    """Earliest expiry among listed options that are not delisted (NEVER if none)."""
    delisted = state.delisted
    times = [s.expiry_ms for s in state.instruments.values()
             if s.kind == Kind.OPTION and s.instrument_id not in delisted]
    return min(times) if times else NEVER


def expire_due(state: ExchangeState, ts: int, events: list[Event]) -> bool:
    """Settle every (underlying, expiry) with expiry ≤ ``ts`` (module docstring). Returns
    True when some cash moved."""
    groups: dict[tuple[int, str], list[int]] = {}
    for spec in state.instruments.values():
        if spec.kind == Kind.OPTION and spec.expiry_ms <= ts and spec.instrument_id not in state.delisted:
            groups.setdefault((spec.expiry_ms, spec.underlying), []).append(spec.instrument_id)
    moved = False
    for (expiry_ms, underlying) in sorted(groups):
        price = settlement_price(state.index_samples.get(underlying, []), expiry_ms, state.genesis.settlement_twap_ms)
        if price is None:
            price = state.index.get(underlying)
        if price is None:
            continue  # no index yet: retried at the next minute
        moved |= _settle(state, underlying, expiry_ms, sorted(groups[(expiry_ms, underlying)]), price, events)
    state.next_expiry = next_expiry(state)
    return moved


def _settle(state: ExchangeState, underlying: str, expiry_ms: int, ids: list[int], price: int,
            events: list[Event]) -> bool:
    wanted = set(ids)
    for order_id in sorted(o.order_id for o in state.orders.values() if o.instrument in wanted):
        cancel_resting(state, state.orders[order_id], CancelReason.EXPIRED, events)
    specs = [state.instruments[i] for i in ids]
    big = max(s.size_scale for s in specs)
    payoffs = {s.instrument_id: (payoff(s, price), big // s.size_scale) for s in specs}
    amounts: list[tuple[int, int]] = []
    for account_id in sorted(state.accounts):
        account = state.accounts[account_id]
        exact = 0
        held = False
        for instrument, position in account.positions.items():
            entry = payoffs.get(instrument)
            if entry is not None:
                held = True
                exact += position.size * entry[1] * entry[0]
        if held:
            amounts.append((account_id, exact // big))
    residue = -sum(amount for _, amount in amounts)
    for account_id, amount in amounts:
        account = state.accounts[account_id]
        account.cash += amount
        for instrument in ids:
            account.positions.pop(instrument, None)
        events.append(ExpiryPayoff(account_id, expiry_ms, amount, account.cash))
    state.accounts[FEE_ACCOUNT].cash += residue
    for instrument in ids:
        state.delisted.add(instrument)
        state.marks.pop(instrument, None)
    events.append(OptionsExpired(underlying, expiry_ms, price, ids, residue))
    return bool(amounts)


def strike_grid(center: int, step: int, each_side: int) -> list[int]:
    """K₀ ± i·step (i ≤ each_side), K₀ = center rounded to the nearest multiple of step
    (half up); positive strikes only, ascending. micro-USDC."""
    k0 = (center + step // 2) // step * step
    return [k0 + i * step for i in range(-each_side, each_side + 1) if k0 + i * step > 0]
