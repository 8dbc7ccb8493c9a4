"""Perpetual mark price (Hyperliquid style): median(index, index + EMA(mid − index), mid).

Source: exchange-rules.md "Index, mark price and oracle". The mark must resist a thin or
spoofed book: with an empty side (or an empty book) mid is the index, and the EMA term
lets a persistent premium move the mark only gradually.

The EMA (time constant τ = ``GenesisConfig.mark_ema_ms``, 150 s) is kept per perpetual as
a numerator/denominator pair in the state, so unequal intervals weigh by their length and
no float enters the state::

    d   = max(τ − Δt, 0)                     Δt = ms since the last update
    num ← num · d / τ + (mid − index) · Δt   (each product truncated toward zero)
    den ← den · d / τ + Δt
    ema = num / den                          (truncated toward zero)

The history starts as (num, den) = (0, τ): a zero premium held for one time constant, so
a first observed premium does not move the mark at once. den then stays τ, so a sample
held for Δt < τ has weight Δt/τ (an exponential average with time constant τ); an
interval of τ or more replaces the history. The sample of an interval is (mid − index) at
its end, i.e. the book and index that the advancing command sees.

When the EMA advances (deterministic, from command timestamps only): on every accepted
``OracleUpdate`` of the underlying (after the new index is installed) and on the first
command at or after each minute boundary (clock.py). Between two advances the mark is
constant. Only underlyings governed by the signed oracle get this mark; the operator feed
(``SetMarkPrices``) keeps setting perp marks directly elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.instruments import Kind

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState


def _trunc_mul_div(x: int, a: int, b: int) -> int:
    """x · a / b truncated toward zero (a, b > 0)."""
    return x * a // b if x >= 0 else -((-x) * a // b)


def book_mid(state: ExchangeState, instrument: int, index: int) -> int:
    """(best bid + best ask) // 2 when both sides exist, else ``index`` (micro-USDC)."""
    book = state.books[instrument]
    if book.bid_prices and book.ask_keys:
        return (book.bid_prices[-1] - book.ask_keys[-1]) // 2
    return index


def advance(state: ExchangeState, instrument: int, ts: int) -> int | None:
    """Advance the EMA of one perpetual to ``ts`` and return its new mark (micro-USDC per
    contract), or None if its underlying has no index. Writes ``state.mark_ema`` only."""
    spec = state.instruments[instrument]
    index = state.index.get(spec.underlying)
    if index is None:
        return None
    mid = book_mid(state, instrument, index)
    sample = mid - index
    ema_state = state.mark_ema.get(instrument)
    if ema_state is None:  # the history starts at a zero premium worth one time constant
        ema_state = state.mark_ema[instrument] = [0, state.genesis.mark_ema_ms, ts]
    num, den, last = ema_state
    dt = ts - last
    if dt > 0:
        tau = state.genesis.mark_ema_ms
        keep = tau - dt if dt < tau else 0
        num = _trunc_mul_div(num, keep, tau) + sample * dt
        den = den * keep // tau + dt
        ema_state[0], ema_state[1], ema_state[2] = num, den, ts
    ema = _trunc_mul_div(num, 1, den) if den else 0
    a, b, c = sorted((index, index + ema, mid))
    return b


def update_marks(state: ExchangeState, underlying: str | None, ts: int, changed_only: bool = True) -> dict[int, int]:
    """Advance every oracle-governed perpetual (of ``underlying``, or of all when None) and
    write its mark; return the marks that changed (or all of them)."""
    changed: dict[int, int] = {}
    oracle = state.oracle_last
    for instrument in sorted(state.margin.perps):
        spec = state.instruments[instrument]
        if spec.kind != Kind.PERPETUAL or spec.underlying not in oracle:
            continue
        if underlying is not None and spec.underlying != underlying:
            continue
        mark = advance(state, instrument, ts)
        if mark is not None and (not changed_only or state.marks.get(instrument) != mark):
            state.marks[instrument] = mark
            changed[instrument] = mark
    return changed
