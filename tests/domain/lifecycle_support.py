"""Helpers for the market-lifecycle tests: reporters, a genesis with the signed oracle, and
oracle updates signed at the harness clock."""

from __future__ import annotations

import msgspec

from clearway.domain.commands import Deposit, OracleUpdate
from clearway.domain.genesis import GenesisConfig
from clearway.domain.instruments import InstrumentSpec, Kind
from clearway.domain.market import ExpiryData
from clearway.domain.oracle import sign_report
from clearway.domain.orders import BUY, SELL
from support import BTC, TICK, Exchange, usd

KEYS = [bytes([i + 1]) * 32 for i in range(4)]
REPORTERS = [sign_report(k, "BTC", 0, 1, 0).reporter for k in KEYS]
HOUR = 3_600_000
MINUTE = 60_000
FUND_OWNER = "0x" + "00" * 19 + "01"


def lifecycle_perp(instrument_id: int = 0, imf_ppm: int = 50_000, mmf_ppm: int = 30_000,
                   maker_fee_ppm: int = 0, taker_fee_ppm: int = 0) -> InstrumentSpec:
    return InstrumentSpec(instrument_id, "BTC", Kind.PERPETUAL, tick_size=TICK, size_decimals=4,
                          size_increment=1, min_size=1, maker_fee_ppm=maker_fee_ppm, taker_fee_ppm=taker_fee_ppm,
                          imf_ppm=imf_ppm, mmf_ppm=mmf_ppm)


def lifecycle_genesis(instruments=None, **overrides) -> GenesisConfig:
    """Four reporters, quorum 3; ``overrides`` set any other genesis field."""
    fields = dict(instruments=instruments if instruments is not None else [lifecycle_perp()],
                  oracle_reporters=list(REPORTERS), oracle_quorum=3)
    fields.update(overrides)
    return GenesisConfig(**fields)


def reports(ex: Exchange, price_usd: float, stable: int = 1_000_000, expiries: tuple[ExpiryData, ...] = (),
            keys=KEYS, ts: int | None = None, prices=None):
    ts = ex.ts if ts is None else ts
    prices = prices or [usd(price_usd)] * len(keys)
    return tuple(sign_report(k, "BTC", ts, p, stable, expiries) for k, p in zip(keys, prices))


def oracle(ex: Exchange, price_usd: float, **kw):
    """Apply an OracleUpdate signed by all four reporters at the harness clock."""
    return ex.run(OracleUpdate, underlying="BTC", reports=reports(ex, price_usd, **kw))


def advance(ex: Exchange, ms: int) -> None:
    ex.ts += ms


def liquidation_exchange(perp=None, **overrides) -> Exchange:
    ex = Exchange(lifecycle_genesis(instruments=[perp or lifecycle_perp()], **overrides))
    return ex


OPTION_EXPIRY = 1_678_003_200_000  # 05MAR23 08:00 UTC, 53 minutes after the harness clock


def option_oracle(ex: Exchange, price_usd: float):
    """An oracle update at ``price_usd`` with a flat 80 % surface for OPTION_EXPIRY."""
    from option_support import flat_expiry

    return oracle(ex, price_usd, expiries=(flat_expiry(price_usd, 0.8, ex.ts, expiry_ms=OPTION_EXPIRY),))


def options_exchange(*options: InstrumentSpec, index_usd: float = 22_000) -> Exchange:
    """The perpetual (0) and ``options`` (their ids from 1 on), all expiring at
    OPTION_EXPIRY, priced at ``index_usd``; the insurance fund empty."""
    specs = [msgspec.structs.replace(spec, expiry_ms=OPTION_EXPIRY) for spec in options]
    ex = Exchange(lifecycle_genesis(instruments=[lifecycle_perp(), *specs]))
    option_oracle(ex, index_usd)
    return ex


def fund(ex: Exchange, amount: int) -> None:
    ex._deposit_id += 1
    ex.run(Deposit, owner=FUND_OWNER, amount=amount, deposit_id=ex._deposit_id)


def of_kind(events, kind):
    return [e for e in events if isinstance(e, kind)]


def assert_conserved(ex: Exchange) -> None:
    state = ex.state
    assert sum(a.cash for a in state.accounts.values()) == state.total_deposits - state.total_withdrawals
    assert sum(a.position_size(0) for a in state.accounts.values()) == 0


def bankrupt_short(ex: Exchange) -> tuple[int, int]:
    """Short −1 BTC with cash 54,999 and a long +1 BTC with cash 50,000 (the ADL example)."""
    short = ex.deposit(0xA1, usd(4_999))
    long = ex.deposit(0xB2, usd(100_000))
    oracle(ex, 50_000)
    ex.place(long, BUY, BTC, usd(50_000))
    ex.place(short, SELL, BTC, usd(50_000))
    assert (ex.cash(short), ex.cash(long)) == (usd(54_999), usd(50_000))
    advance(ex, 1_000)
    return short, long




def leveraged_long(ex: Exchange, cash_usd: int, price_usd: int) -> tuple[int, int, int]:
    """Account a (0xA1) with ``cash_usd`` buys 0.1 BTC at ``price_usd`` from b (0xB2) after an
    oracle update at that price; c (0xC3) is funded to make the liquidation's bid. The
    spec's liquidation examples start here. Returns (a, b, c)."""
    a = ex.deposit(0xA1, usd(cash_usd))
    b = ex.deposit(0xB2, usd(1_000_000))
    c = ex.deposit(0xC3, usd(1_000_000))
    oracle(ex, price_usd)
    ex.place(b, SELL, BTC // 10, usd(price_usd))
    ex.place(a, BUY, BTC // 10, usd(price_usd))
    return a, b, c


def replay_events(ex: Exchange, screen: bool = True) -> tuple[list[list], str]:
    """Replay the harness's commands from genesis: (events of each command, final state
    hash). ``screen=False`` keeps the pre-trade screen off (``Margin.remember`` keeps
    nothing), so every order check is the exact one."""
    from clearway.domain.health import Margin
    from clearway.domain.state import ExchangeState, apply, state_hash

    def forget(self, matrix, revaluation) -> int:
        self.screen = None
        return 0

    remember = Margin.remember
    if not screen:
        Margin.remember = forget
    try:
        state = ExchangeState(ex.genesis)
        events = [apply(state, command) for command in ex.commands]
        return events, state_hash(state)
    finally:
        Margin.remember = remember
