"""Helpers for option and portfolio-margin tests: listings, market data, flat SVI slices."""

from __future__ import annotations

from clearway.domain.commands import ListInstrument, SetMarginMode, SetMarketData
from clearway.domain.genesis import GenesisConfig
from clearway.domain.instruments import OptionType
from clearway.domain.market import FIXED_SCALE, MS_PER_YEAR, ExpiryData
from support import Exchange, option_spec, perp_spec, usd

EXPIRY = 1_680_249_600_000   # option_spec's expiry (31 Mar 2023 08:00 UTC)
CALL, PUT = OptionType.CALL, OptionType.PUT


def flat_expiry(forward_usd: float, vol: float, ts: int, expiry_ms: int = EXPIRY, rate: float = 0.0) -> ExpiryData:
    """An expiry whose SVI slice is flat at ``vol`` (b = 0, a = vol²·T)."""
    t = (expiry_ms - ts) / MS_PER_YEAR
    return ExpiryData(expiry_ms, usd(forward_usd), round(rate * FIXED_SCALE), round(vol * vol * t * FIXED_SCALE),
                      0, 0, 0, FIXED_SCALE)


def skewed_expiry(forward_usd: float, ts: int, expiry_ms: int = EXPIRY, rate: float = 0.03) -> ExpiryData:
    """A realistic slice: ATM vol about 60 %, negative skew."""
    t = (expiry_ms - ts) / MS_PER_YEAR
    s = FIXED_SCALE
    return ExpiryData(expiry_ms, usd(forward_usd), round(rate * s), round(0.3 * t * s), round(0.1 * s),
                      round(-0.4 * s), round(0.02 * s), round(0.2 * s))


def option_exchange(strikes: list[tuple[int, OptionType]], perp: bool = True) -> Exchange:
    """A BTC perp (id 0, if ``perp``) and options of EXPIRY (ids from 1), no prices yet."""
    specs = [perp_spec(0)] if perp else []
    for strike, kind in strikes:
        specs.append(option_spec(len(specs), strike, kind))
    return Exchange(GenesisConfig(instruments=specs))


def market_data(ex: Exchange, spot_usd: float, expiries: list[ExpiryData], stable_price: int = 0,
                underlying: str = "BTC"):
    return ex.run(SetMarketData, underlying=underlying, index=usd(spot_usd), stable_price=stable_price,
                  expiries=expiries)


def set_mode(ex: Exchange, account: int, mode: int):
    return ex.run(SetMarginMode, account=account, mode=mode)


def list_option(ex: Exchange, strike: int, kind: OptionType = CALL):
    spec = option_spec(len(ex.state.instruments), strike, kind)
    return ex.run(ListInstrument, spec=spec)
