"""ListOptionSeries: the operator lists an expiry's calls and puts on a strike grid.

Source: exchange-rules.md "Option expiry and netting" (new expiries are listed by config
or by an operator command, strike grid around the forward) and "Products" (expiry at
08:00 UTC, names ``BTC-<DDMONYY>-<STRIKE>-<C|P>``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.commands import ListOptionSeries
from clearway.domain.errors import ErrorCode
from clearway.domain.events import Event, InstrumentListed
from clearway.domain.expiry import DAY_MS, EXPIRY_TIME_OF_DAY_MS, strike_grid
from clearway.domain.handlers.common import reject
from clearway.domain.instruments import InstrumentSpec, Kind, OptionType

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState

MAX_STRIKES_EACH_SIDE = 50


def list_option_series(state: ExchangeState, cmd: ListOptionSeries) -> list[Event]:
    """List the strike grid of ``cmd`` (commands.ListOptionSeries); all-or-nothing.

    Rejections: UNKNOWN_INSTRUMENT (nothing listed on the underlying yet),
    MARK_PRICE_UNAVAILABLE (no index to centre the grid on), INVALID_INSTRUMENT (expiry not
    in the future or not at 08:00 UTC, step ≤ 0, more than 50 strikes each side, or a spec
    that ``InstrumentSpec.validate`` refuses), INSTRUMENT_EXISTS (every strike is listed).
    """
    underlying = cmd.underlying
    if not any(spec.underlying == underlying for spec in state.instruments.values()):
        return reject(ErrorCode.UNKNOWN_INSTRUMENT, f"no instrument on underlying {underlying}")
    index = state.index.get(underlying)
    if index is None:
        return reject(ErrorCode.MARK_PRICE_UNAVAILABLE, f"no index of {underlying} to centre the strikes on")
    if cmd.expiry_ms <= cmd.ts or cmd.expiry_ms % DAY_MS != EXPIRY_TIME_OF_DAY_MS:
        return reject(ErrorCode.INVALID_INSTRUMENT, "expiry must be in the future, at 08:00 UTC")
    if cmd.strike_step <= 0 or not 0 <= cmd.strikes_each_side <= MAX_STRIKES_EACH_SIDE:
        return reject(ErrorCode.INVALID_INSTRUMENT, "strike step must be positive, at most 50 strikes each side")
    market = state.markets.get(underlying)
    data = market.expiry(cmd.expiry_ms) if market is not None else None
    center = data.forward if data is not None else index
    names = {spec.name for spec in state.instruments.values()}
    specs: list[InstrumentSpec] = []
    for strike in strike_grid(center, cmd.strike_step, cmd.strikes_each_side):
        for option_type in (OptionType.CALL, OptionType.PUT):
            spec = InstrumentSpec(len(state.instruments) + len(specs), underlying, Kind.OPTION, cmd.tick_size,
                                  cmd.size_decimals, cmd.size_increment, cmd.min_size, cmd.maker_fee_ppm,
                                  cmd.taker_fee_ppm, strike=strike, expiry_ms=cmd.expiry_ms,
                                  option_type=option_type)
            if spec.name in names:
                continue
            reason = spec.validate()
            if reason is not None:
                return reject(ErrorCode.INVALID_INSTRUMENT, reason)
            specs.append(spec)
    if not specs:
        return reject(ErrorCode.INSTRUMENT_EXISTS, "every strike of the grid is already listed")
    events: list[Event] = []
    for spec in specs:
        state.list_instrument(spec)
        events.append(InstrumentListed(spec.instrument_id, spec.name, spec))
    return events
