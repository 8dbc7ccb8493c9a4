"""PlaceTwap: validate a TWAP parent order, accept it and run its first interval (twap.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.commands import PlaceTwap
from clearway.domain.errors import ErrorCode
from clearway.domain.events import Event, TwapAccepted
from clearway.domain.handlers.common import increases, only_reduces, order_basics, reject
from clearway.domain.handlers.place_order import client_id_problem
from clearway.domain.twap import (
    MAX_DURATION_MS, MAX_INTERVAL_MS, MAX_PRICE_TOLERANCE_PPM, MAX_TWAPS_PER_ACCOUNT, MIN_DURATION_MS,
    MIN_INTERVAL_MS, Twap, run_interval,
)

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState


def place_twap(state: ExchangeState, cmd: PlaceTwap) -> list[Event]:
    """Handle PlaceTwap. Rejections (nothing changes), in this order: UNKNOWN_ACCOUNT,
    UNKNOWN_INSTRUMENT, INSTRUMENT_NOT_ACTIVE (expired option), INVALID_SIDE,
    SIZE_NOT_POSITIVE, SIZE_NOT_ON_INCREMENT, SIZE_BELOW_MINIMUM, TWAP_INVALID_INTERVAL,
    TWAP_INVALID_DURATION, TWAP_INVALID_PRICE_TOLERANCE, PRICE_NOT_POSITIVE /
    PRICE_NOT_ON_TICK (limit price < 0 or off the tick), MARK_PRICE_UNAVAILABLE (no limit
    price and no mark), DUPLICATE_CLIENT_ORDER_ID, CLIENT_ORDER_ID_TOO_LONG,
    TWAP_SIZE_TOO_SMALL (size < intervals × minimum size), REDUCE_ONLY_WOULD_INCREASE,
    MARKET_HALTED (not reduce-only in a halted market), TOO_MANY_OPEN_ORDERS (more than
    ``MAX_TWAPS_PER_ACCOUNT`` running parents)."""
    coid = cmd.client_order_id
    acct = cmd.account
    side, size = cmd.side, cmd.size
    checked = order_basics(state, acct, cmd.instrument, cmd.ts, side, size, coid)
    if type(checked) is list:
        return checked
    account, spec = checked
    interval, duration = cmd.interval_ms, cmd.duration_ms
    if not MIN_INTERVAL_MS <= interval <= MAX_INTERVAL_MS:
        return reject(ErrorCode.TWAP_INVALID_INTERVAL, "interval must be 30 s to 1 h", acct, coid)
    if not MIN_DURATION_MS <= duration <= MAX_DURATION_MS or duration % interval:
        return reject(ErrorCode.TWAP_INVALID_DURATION, "duration must be 5 min to 24 h and a multiple of the "
                      "interval", acct, coid)
    if not 0 <= cmd.price_tolerance_ppm <= MAX_PRICE_TOLERANCE_PPM:
        return reject(ErrorCode.TWAP_INVALID_PRICE_TOLERANCE, "price tolerance must be 0 to 999,999 ppm", acct, coid)
    if cmd.limit_price < 0:
        return reject(ErrorCode.PRICE_NOT_POSITIVE, "limit price must be positive (or 0: none)", acct, coid)
    if cmd.limit_price % spec.tick_size:
        return reject(ErrorCode.PRICE_NOT_ON_TICK, "limit price is not a multiple of the tick size", acct, coid)
    if not cmd.limit_price and spec.instrument_id not in state.marks:
        return reject(ErrorCode.MARK_PRICE_UNAVAILABLE, "no mark price to price the suborders", acct, coid)
    if coid:
        problem = client_id_problem(state, account, coid)
        if problem is not None:
            return reject(problem[0], problem[1], acct, coid)
    intervals = duration // interval
    if size < intervals * spec.min_size:
        return reject(ErrorCode.TWAP_SIZE_TOO_SMALL, "size must be at least intervals x the minimum size", acct,
                      coid)
    position = account.position_size(spec.instrument_id)
    if cmd.reduce_only and increases(position, side):
        return reject(ErrorCode.REDUCE_ONLY_WOULD_INCREASE, "reduce-only order would increase the position", acct,
                      coid)
    if state.halted and spec.underlying in state.halted and not only_reduces(account, spec.instrument_id, side, size):
        return reject(ErrorCode.MARKET_HALTED, "the market is halted: only risk-reducing orders", acct, coid)
    if sum(1 for t in state.twaps.values() if t.account == acct) >= MAX_TWAPS_PER_ACCOUNT:
        return reject(ErrorCode.TOO_MANY_OPEN_ORDERS, "too many TWAP orders", acct, coid)

    # -- validated --
    order_id = state.next_order_id
    state.next_order_id = order_id + 1
    twap = Twap(order_id, acct, spec.instrument_id, side, size, duration, interval, cmd.price_tolerance_ppm,
                cmd.limit_price, cmd.reduce_only, coid, cmd.ts)
    state.twaps[order_id] = twap
    if coid:
        account.client_ids[coid] = order_id
    events: list[Event] = [TwapAccepted(order_id, acct, spec.instrument_id, side, size, duration, interval,
                                        cmd.price_tolerance_ppm, cmd.limit_price, cmd.reduce_only, coid, intervals)]
    run_interval(state, twap, cmd.ts, events)
    if order_id in state.twaps and twap.next_ts < state.next_timer:
        state.next_timer = twap.next_ts
    return events
