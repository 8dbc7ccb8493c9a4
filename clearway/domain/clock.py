"""Time-driven work of the state machine: funding, halts, perp marks, expiries.

The domain reads no clock: time is the timestamp of the command being applied
(DESIGN.md). Everything that happens "every minute", "every hour", "after 300 s without an
update" or "at expiry" happens on the first command at or after that moment, before the
command itself (``apply`` calls :func:`run_timers` when ``command.ts >= state.next_timer``:
one integer comparison per command). Its events come first in the command's event list;
a rejected command still returns them (followed by its single ``Rejected``) because they
are the passage of time, not the command's effect.

Order of work at ts (exchange-rules.md sections in brackets):

1. the first command ever starts the clock (the next minute and hour boundaries after it);
2. for every hour boundary H ≤ the current minute boundary: a funding tick over that
   hour's premium samples ["Funding"; funding_engine.py];
3. halts: an oracle-governed underlying without an accepted ``OracleUpdate`` for more
   than ``halt_after_ms`` halts ["Index, mark price and oracle"];
4. at a new minute boundary: one premium sample per oracle-governed perpetual (0 while
   halted: the premium against a stale index means nothing), then the perp marks' EMA
   advances (perp_mark.py);
5. options whose expiry is ≤ ts are settled and delisted ["Option expiry"; expiry.py];
   their waiting conditional orders and TWAP parents are cancelled (CancelReason.EXPIRED);
6. order timers (issue 9; good_til_time.py): good-til-time expiries and TWAP intervals due
   at or before ts, in time order;
7. if a mark, the funding index or cash moved: the liquidation screen (liquidation.py) —
   for an ``OracleUpdate`` after its handler, which screens with the new prices anyway.

Conditional triggers are evaluated by ``apply`` right after this work when it traded or
moved a price (conditional.run_triggers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.errors import CancelReason
from clearway.domain.events import Event, MarketHalted, MarksUpdated
from clearway.domain.good_til_time import next_order_timer, run_order_timers

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState


def run_timers(state: ExchangeState, ts: int, defer_screen: bool = False) -> list[Event]:
    """Do the time-driven work due at ``ts`` (module docstring) and reschedule; returns its
    events (often none).

    ``defer_screen``: the command is an ``OracleUpdate``, whose handler screens all accounts
    once it has installed the new prices; the screen this work calls for is then left to it
    (``state.screen_due``; ``apply`` runs it after the handler if the update was rejected),
    so one command never revalues every account twice."""
    from clearway.domain import expiry, funding_engine, liquidation
    from clearway.domain.perp_mark import update_marks

    events: list[Event] = []
    genesis = state.genesis
    minute_ms = genesis.funding_sample_ms
    if state.next_minute == 0:
        state.next_minute = (ts // minute_ms + 1) * minute_ms
        state.next_hour = (ts // genesis.funding_interval_ms + 1) * genesis.funding_interval_ms
    rescreen = False
    if ts >= state.next_minute:
        minute = ts - ts % minute_ms
        while state.next_hour <= minute:
            rescreen |= funding_engine.funding_tick(state, state.next_hour, events)
            state.next_hour += genesis.funding_interval_ms
        check_halts(state, ts, events)
        funding_engine.sample_premiums(state)
        marks = update_marks(state, None, ts)
        if marks:
            events.append(MarksUpdated(marks))
            state.prices_moved = True
            rescreen = True
        state.next_minute = minute + minute_ms
    else:
        check_halts(state, ts, events)
    if ts >= state.next_expiry:
        delisted = len(state.delisted)
        rescreen |= expiry.expire_due(state, ts, events)
        if len(state.delisted) != delisted and (state.conditionals or state.twaps):
            from clearway.domain import conditional, twap

            conditional.drop_instrument(state, state.delisted, CancelReason.EXPIRED, events)
            twap.drop_instrument(state, state.delisted, CancelReason.EXPIRED, events)
    if state.gtt or state.twaps:
        run_order_timers(state, ts, events)  # suborders check their fills for liquidation themselves
    if rescreen:
        if defer_screen:
            state.screen_due = True
        else:
            liquidation.screen(state, ts, events)
    reschedule(state, ts)
    return events


def check_halts(state: ExchangeState, ts: int, events: list[Event]) -> None:
    """Halt every oracle-governed underlying whose last accepted update is older than
    ``halt_after_ms`` at ``ts`` (strictly), with a ``MarketHalted`` event."""
    halt_after = state.genesis.halt_after_ms
    for underlying in sorted(state.oracle_last):
        if underlying in state.halted:
            continue
        last_ts = state.oracle_last[underlying][1]
        if ts - last_ts > halt_after:
            state.halted.add(underlying)
            events.append(MarketHalted(underlying, last_ts))


def is_live(state: ExchangeState, underlying: str) -> bool:
    """True when ``underlying`` is oracle-governed and not halted: its prices may be used
    to liquidate (exchange-rules.md: no liquidations on a stale price)."""
    return underlying in state.oracle_last and underlying not in state.halted


def reschedule(state: ExchangeState, ts: int) -> None:
    """Set ``state.next_timer`` = min(next minute boundary, halt deadlines, next expiry): a
    pure function of the state, so a state restored from a snapshot runs its timers at the
    same commands as the original (an expiry already due but not settleable — no index —
    is retried at every command until it is)."""
    nxt = state.next_minute
    halt_after = state.genesis.halt_after_ms
    for underlying, (_, last_ts) in state.oracle_last.items():
        if underlying not in state.halted:
            deadline = last_ts + halt_after + 1
            if deadline < nxt:
                nxt = deadline
    if state.next_expiry < nxt:
        nxt = state.next_expiry
    if state.gtt or state.twaps:
        order_timer = next_order_timer(state)
        if order_timer is not None and order_timer < nxt:
            nxt = order_timer
    state.next_timer = nxt
