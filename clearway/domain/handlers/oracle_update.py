"""OracleUpdate: signed reports → the underlying's market data, marks, halts, liquidations.

Source: exchange-rules.md "Index, mark price and oracle"; the per-report checks, quorum and
medians are ``oracle.aggregate`` (pure, tested on its own). Here:

1. validate: the underlying has listed instruments; reporters are configured; then
   ``aggregate`` with the genesis ``OracleParams``, the command's ts as "now" and the last
   accepted index and its time (for ``max_move``). Every report that does not count gets
   an ``OracleReportRejected`` event with its code. Below quorum the command changes
   nothing: those events and a ``Rejected(ORACLE_NO_QUORUM)``.
2. the surface: each aggregated expiry is checked like ``SetMarketData``'s
   (``market.validate_expiries``, SVI free of static arbitrage) and dropped if it fails;
   expiries at or before ts are dropped; expiries of the previous surface that the update
   does not carry are kept (an expiry that fewer than ``quorum`` reporters carried this
   time keeps its last accepted data rather than losing its marks).
3. install with ``state.set_market`` (index, USDC/USD when a quorum reported it, option
   marks); record (index, ts) as the last accepted update; a halted underlying resumes
   (``MarketResumed``); perp marks advance (perp_mark.py); ``OracleUpdated``.
4. the liquidation screen over all accounts (liquidation.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.commands import OracleUpdate
from clearway.domain.errors import ErrorCode
from clearway.domain.events import Event, MarketResumed, OracleReportRejected, OracleUpdated, Rejected
from clearway.domain.handlers.common import reject
from clearway.domain.market import UnderlyingMarket, validate_expiries
from clearway.domain.oracle import aggregate

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState


def oracle_update(state: ExchangeState, cmd: OracleUpdate) -> list[Event]:
    """Handle OracleUpdate (module docstring). Rejections: UNKNOWN_INSTRUMENT (nothing is
    listed on the underlying), ORACLE_NOT_CONFIGURED (no reporters in the genesis config),
    ORACLE_NO_QUORUM (after the per-report events)."""
    from clearway.domain import liquidation
    from clearway.domain.clock import reschedule
    from clearway.domain.perp_mark import update_marks

    underlying = cmd.underlying
    if not any(spec.underlying == underlying for spec in state.instruments.values()):
        return reject(ErrorCode.UNKNOWN_INSTRUMENT, f"no instrument on underlying {underlying}")
    params = state.oracle_params
    if not params.reporters:
        return reject(ErrorCode.ORACLE_NOT_CONFIGURED, "the genesis config lists no oracle reporters")
    last = state.oracle_last.get(underlying)
    result, rejections = aggregate(cmd.reports, underlying, cmd.ts, params,
                                   last[0] if last else None, last[1] if last else None)
    events: list[Event] = [
        OracleReportRejected(underlying, position, cmd.reports[position].reporter, code)
        for position, code in rejections
    ]
    if result is None:
        events.append(Rejected(ErrorCode.ORACLE_NO_QUORUM,
                               f"fewer than {params.quorum} valid reports from distinct reporters"))
        return events

    # -- validated: the update is accepted --
    expiries = {e.expiry_ms: e for e in result.expiries if e.expiry_ms > cmd.ts and validate_expiries([e]) is None}
    previous = state.markets.get(underlying)
    if previous is not None:
        for e in previous.expiries:
            if e.expiry_ms > cmd.ts and e.expiry_ms not in expiries:
                expiries[e.expiry_ms] = e
    market = UnderlyingMarket(underlying, result.index, cmd.ts, tuple(expiries[k] for k in sorted(expiries)),
                              cmd.seq)
    marks = state.set_market(market, result.stable_price)
    state.oracle_last[underlying] = (result.index, cmd.ts)
    if underlying in state.halted:
        state.halted.discard(underlying)
        events.append(MarketResumed(underlying))
    marks.update(update_marks(state, underlying, cmd.ts, changed_only=False))
    events.append(OracleUpdated(underlying, result.index, result.stable_price, len(market.expiries),
                                list(result.reporters), marks))
    liquidation.screen(state, cmd.ts, events)
    reschedule(state, cmd.ts)
    return events
