"""SetMarketData: an underlying's index, the stable price and the volatility surface.

Validates everything first (exchange-rules.md "Index, mark price and oracle"; market.py),
then installs the data, recomputes the underlying's option marks and returns one
``MarketDataSet`` event. The risk-array cache notices the new ``seq`` by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.commands import SetMarketData
from clearway.domain.errors import ErrorCode
from clearway.domain.events import Event, MarketDataSet
from clearway.domain.handlers.common import reject
from clearway.domain.instruments import Kind
from clearway.domain.market import MAX_STABLE_PRICE, UnderlyingMarket, validate_expiries

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState


def set_market_data(state: ExchangeState, cmd: SetMarketData) -> list[Event]:
    """Handle SetMarketData. Rejections (nothing changes):

    - UNKNOWN_INSTRUMENT: no listed instrument on ``cmd.underlying``;
    - INVALID_PRICE: index ≤ 0, stable price outside 0..2·10⁶ ppm, an unusable expiry
      (non-increasing expiry times, forward ≤ 0, rate out of range, SVI with static
      arbitrage: ``market.validate_expiries``), or a listed option of the underlying that
      has not expired at ``cmd.ts`` and whose expiry is missing from the surface.
    """
    underlying = cmd.underlying
    specs = [s for s in state.instruments.values() if s.underlying == underlying]
    if not specs:
        return reject(ErrorCode.UNKNOWN_INSTRUMENT, f"no instrument on underlying {underlying}")
    if cmd.index <= 0:
        return reject(ErrorCode.INVALID_PRICE, "index price must be positive")
    if not 0 <= cmd.stable_price <= MAX_STABLE_PRICE:
        return reject(ErrorCode.INVALID_PRICE, "stable price must be in 0..2,000,000 ppm (0: unchanged)")
    reason = validate_expiries(cmd.expiries)
    if reason is not None:
        return reject(ErrorCode.INVALID_PRICE, reason)
    covered = {e.expiry_ms for e in cmd.expiries}
    for spec in specs:
        if spec.kind == Kind.OPTION and spec.expiry_ms > cmd.ts and spec.expiry_ms not in covered:
            return reject(ErrorCode.INVALID_PRICE, f"the surface has no expiry {spec.expiry_ms} for {spec.name}")
    # -- validated --
    market = UnderlyingMarket(underlying, cmd.index, cmd.ts, tuple(cmd.expiries), cmd.seq)
    marks = state.set_market(market, cmd.stable_price)
    return [MarketDataSet(underlying, cmd.index, state.stable_price, len(cmd.expiries), marks)]
