"""Operator commands: listing instruments and the direct price feed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.commands import ListInstrument, SetMarkPrices
from clearway.domain.errors import ErrorCode
from clearway.domain.events import Event, InstrumentListed, PricesSet
from clearway.domain.handlers.common import reject

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState


def list_instrument(state: ExchangeState, cmd: ListInstrument) -> list[Event]:
    """List ``cmd.spec``; its id must be the next dense id and its name new."""
    spec = cmd.spec
    if spec.instrument_id != len(state.instruments):
        return reject(ErrorCode.INVALID_INSTRUMENT, f"instrument id must be {len(state.instruments)}")
    reason = spec.validate()
    if reason is not None:
        return reject(ErrorCode.INVALID_INSTRUMENT, reason)
    if any(other.name == spec.name for other in state.instruments.values()):
        return reject(ErrorCode.INSTRUMENT_EXISTS, f"{spec.name} is already listed")
    state.list_instrument(spec)
    return [InstrumentListed(spec.instrument_id, spec.name, spec)]


def set_mark_prices(state: ExchangeState, cmd: SetMarkPrices) -> list[Event]:
    """Set index prices (by underlying) and marks (by instrument id); all must be positive
    and name listed instruments; all-or-nothing."""
    underlyings = {spec.underlying for spec in state.instruments.values()}
    for name, price in cmd.index.items():
        if name not in underlyings:
            return reject(ErrorCode.UNKNOWN_INSTRUMENT, f"no instrument on underlying {name}")
        if price <= 0:
            return reject(ErrorCode.INVALID_PRICE, "index price must be positive")
    for instrument, price in cmd.marks.items():
        if instrument not in state.instruments:
            return reject(ErrorCode.UNKNOWN_INSTRUMENT, f"unknown instrument {instrument}")
        if price <= 0:
            return reject(ErrorCode.INVALID_PRICE, "mark price must be positive")
    for name in sorted(cmd.index):
        state.set_index(name, cmd.index[name], cmd.ts)
    state.marks.update(cmd.marks)
    state.prices_moved = True
    return [PricesSet(dict(cmd.index), dict(cmd.marks))]
