"""Stress test of the market lifecycle on real prices: the March 2023 banking crisis.

``clearway stress --prices ../shared/data/market/btc-2023-03 --from 2023-03-09T00:00
--to 2023-03-14T00:00 --accounts 500 --seed 7 --json`` replays BTC's 1-minute prices (BTC
fell from ~23,100 to 19,570 on 10 March, USDC lost its peg on 10–11 March, then BTC
rallied to 28,560) as signed oracle updates through ``clearway.domain.state.apply`` —
the same state transition the sequencer and the verifiers run — with a reproducible
population of accounts, and reports liquidations, deleveraging, the insurance fund and
funding.

Oracle (``clearway.sim.marketdata``): four reporters (``Reporters(ORACLE_SEED, 4)``), one
report each per minute, ts = the end of the minute bar, all signing the market data's
observation: the BTC/USD index (median of Binance.US BTC/USD, BTC/USDT, BTC/USDC and
Kraken BTC/USDC in USD, stale venues left out), USDC/USD from the BTC/USDC vs BTC/USD
ratio, and per listed expiry the forward and the raw SVI slice of the Deribit-fitted
surface, its level rescaled by the EWMA realised volatility of the index
(``Surface.expiries``).

Population (``random.Random(seed)``; amounts in USDC):

- a backstop market maker (200,000,000 deposited) quoting the perp (requoted when the index
  moved more than 5 bp, when a level was taken, and at least every 10 minutes), 5 levels
  per side (2 BTC each, 2–22 bp from the centre); the centre is the index × (1 + basis)
  (not the mark: the mark follows the book, quoting around it would feed back), basis = Binance BTCUSDT / BTCUSD − 1 clamped to ±0.3 % (so funding follows the
  real stablecoin basis). It takes the other side of every opening trade (resting order by
  the account, IOC by the maker);
- 70 % perp traders, long or short at 2×–19.5× leverage of a deposit of 10^U(3, 5); a
  trader without position re-opens with probability 5 % each hour;
- 30 % option writers (half of them in portfolio margin) selling a strangle of the next
  daily expiry (08:00 UTC) every day, sized to 30–90 % of their deposit / (0.15 · S)
  contracts, OTM by 0–3 strikes.
- the insurance fund starts with 1,000,000.

Operator commands: a daily expiry is listed two days ahead (``ListOptionSeries``, strikes
every 1,000 USD, ±4 around the forward); expiries settle by themselves (clock.py).

Report: ``liquidations`` counts liquidation episodes (an account becoming liquidatable;
repeated passes while it stays so count once), ``liquidated_notional`` the USDC of
liquidation fills, backstop transfers and deleveraging, ``funding_paid`` what payers paid
(gross hourly payments: every position is settled at each funding tick), amounts in USDC.

Checks: every 10 minutes Σ cash = deposits − withdrawals and Σ size per
instrument = 0; every hour no user account has negative equity unless it was
deleveraged that hour (``revalue_all`` screens, ``health`` confirms); replay determinism
is the state hash (same arguments ⇒ same hash).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from clearway.domain.accounts import MarginMode
from clearway.domain.commands import (
    CancelAll, Deposit, ListOptionSeries, OracleUpdate, PlaceOrder, SetMarginMode,
)
from clearway.domain.events import (
    BackstopTransfer, Deleveraged, FundingPaid, LiquidationEnded, LiquidationFill, LiquidationStarted, OracleUpdated,
    Rejected,
)
from clearway.domain.expiry import DAY_MS, EXPIRY_TIME_OF_DAY_MS
from clearway.domain.genesis import FEE_ACCOUNT, INSURANCE_FUND, GenesisConfig
from clearway.domain.instruments import Kind
from clearway.domain.orders import TimeInForce
from clearway.domain.revalue import PositionMatrix, revalue_all
from clearway.domain.state import ExchangeState, apply, state_hash
from clearway.domain.units import funding_payment
from clearway.sim.marketdata import (
    DEFAULT_PRICES, MarketData, OracleFeed, Reporters, Surface, iso_ms, ms_iso, perp_spec, usdc,
)


MINUTE = 60_000
HOUR = 3_600_000
USDC = 1_000_000
LOT = 10_000                 # lots per BTC (size_decimals 4)
TICK = 100_000               # 0.1 USDC
OPTION_TICK = 100_000
STRIKE_STEP = 1_000 * USDC
STRIKES_EACH_SIDE = 4
FUND_START = 1_000_000 * USDC
MAKER_DEPOSIT = 200_000_000 * USDC
ORACLE_SEED = 0
ORACLE_REPORTERS = 4


# -- the simulation ----------------------------------------------------------------------------
@dataclass
class Trader:
    account: int
    kind: str                 # "perp" | "writer"
    deposit: int
    leverage: float = 0.0
    side: int = 1
    portfolio: bool = False


@dataclass
class Metrics:
    oracle_updates: int = 0
    oracle_rejected_reports: int = 0
    liquidations: int = 0
    liquidated_notional: int = 0
    adl_events: int = 0
    backstop_transfers: int = 0
    funding_paid: int = 0
    min_account_equity: int | None = None
    invariants_ok: bool = True
    problems: list[str] = field(default_factory=list)
    commands: int = 0


class Stress:
    """One stress run (module docstring). ``run()`` returns the report dict."""

    def __init__(self, market: MarketData, surface: Surface, start_ms: int, end_ms: int, accounts: int,
                 seed: int) -> None:
        self.market = market
        self.start = start_ms - start_ms % MINUTE
        self.end = end_ms
        self.n_accounts = accounts
        self.rng = random.Random(seed)
        reporters = Reporters(ORACLE_SEED, ORACLE_REPORTERS)
        self.feed = OracleFeed(market, surface, reporters)
        self.genesis = GenesisConfig(instruments=[perp_spec(0)], max_open_orders=10_000,
                                     oracle_reporters=reporters.addresses)
        self.state = ExchangeState(self.genesis)
        self.seq = 0
        self.ts = self.start
        self.deposit_id = 0
        self.metrics = Metrics()
        self.traders: list[Trader] = []
        self.maker = -1
        self.expiries: list[int] = []
        self.deleveraged_this_hour: set[int] = set()
        self.in_liquidation: set[int] = set()   # accounts liquidatable after their last pass
        self.quoted: tuple[int, int] | None = None  # (index, ts) of the last requote
        self.basis = 0.0

    # -- plumbing --------------------------------------------------------------------------------
    def apply(self, command_type, **fields) -> list:
        self.seq += 1
        events = apply(self.state, command_type(seq=self.seq, ts=self.ts, **fields))
        self.metrics.commands += 1
        self._observe(events)
        return events

    def _observe(self, events: list) -> None:
        m = self.metrics
        for e in events:
            t = type(e)
            if t is LiquidationStarted:
                if e.account not in self.in_liquidation:
                    m.liquidations += 1
                    self.in_liquidation.add(e.account)
            elif t is LiquidationEnded:
                if not e.liquidatable:
                    self.in_liquidation.discard(e.account)
            elif t is LiquidationFill:
                m.liquidated_notional += e.size * e.price // LOT
            elif t is BackstopTransfer:
                m.backstop_transfers += 1
                m.liquidated_notional += e.size * e.price // LOT
            elif t is Deleveraged:
                m.adl_events += 1
                m.liquidated_notional += abs(e.quote)
                self.deleveraged_this_hour.add(e.account)
            elif t is FundingPaid and e.amount < 0:
                m.funding_paid += -e.amount
            elif t is OracleUpdated:
                m.oracle_updates += 1

    def deposit(self, owner: str, amount: int) -> int:
        self.deposit_id += 1
        self.apply(Deposit, owner=owner, amount=amount, deposit_id=self.deposit_id)
        return self.state.owners[owner]

    def cross(self, maker_account: int, instrument: int, side: int, lots: int, price: int) -> bool:
        """``maker_account`` rests ``side`` ``lots`` at ``price``; the market maker takes it
        (IOC). True when it traded."""
        if lots <= 0:
            return False
        events = self.apply(PlaceOrder, account=maker_account, instrument=instrument, side=side, size=lots,
                            price=price)
        if isinstance(events[-1], Rejected):
            return False
        order_id = events[0].order_id
        if order_id not in self.state.orders:
            return True
        self.apply(PlaceOrder, account=self.maker, instrument=instrument, side=-side, size=lots, price=price,
                   tif=TimeInForce.IOC)
        if order_id in self.state.orders:  # not filled (e.g. the maker's own risk): withdraw it
            self.apply(CancelAll, account=maker_account, instrument=instrument)
        return True

    # -- oracle ----------------------------------------------------------------------------------
    def oracle(self, minute: int) -> bool:
        """The signed reports of the bar that opened at ``minute`` (observed at its close,
        ``self.ts``); False if the market data has no such bar."""
        ts = self.ts
        if not self.market.has(minute + MINUTE):
            return False
        listed = [e for e in self.expiries if e > ts]
        events = self.apply(OracleUpdate, underlying="BTC", reports=self.feed.reports(minute + MINUTE, listed))
        self.metrics.oracle_rejected_reports += sum(1 for e in events if type(e).__name__ == "OracleReportRejected")
        usd = self.market.close_at("binanceus_btcusd", minute + MINUTE)
        usdt = self.market.close_at("binanceus_btcusdt", minute + MINUTE)
        self.basis = max(min(usdt / usd - 1.0, 0.003), -0.003)
        return True

    # -- the market maker -------------------------------------------------------------------------
    def quote(self, force: bool = False) -> None:
        """Requote the perp when the index moved more than 5 bp since the last quote, after a
        liquidation took liquidity, or every 10 minutes."""
        index = self.state.index.get("BTC")
        if index is None:
            return
        book = self.state.books[0]
        full = len(book.bid_prices) >= 5 and len(book.ask_keys) >= 5
        if not force and full and self.quoted and abs(index - self.quoted[0]) * 10_000 <= 5 * self.quoted[0] \
                and self.ts - self.quoted[1] < 10 * MINUTE:
            return
        self.quoted = (index, self.ts)
        self.apply(CancelAll, account=self.maker, instrument=0)
        centre = index * (1.0 + self.basis)
        for level in range(5):
            spread = 0.0002 + 0.0005 * level
            bid = int(centre * (1 - spread)) // TICK * TICK
            ask = -(-int(centre * (1 + spread)) // TICK) * TICK
            self.apply(PlaceOrder, account=self.maker, instrument=0, side=1, size=2 * LOT, price=bid)
            self.apply(PlaceOrder, account=self.maker, instrument=0, side=-1, size=2 * LOT, price=ask)

    # -- population -------------------------------------------------------------------------------
    def populate(self) -> None:
        rng = self.rng
        self.maker = self.deposit("0x" + "ee" * 20, MAKER_DEPOSIT)
        for i in range(self.n_accounts):
            owner = "0x" + f"{0x1000 + i:040x}"
            if rng.random() < 0.7:
                amount = int(10 ** rng.uniform(3, 5)) * USDC
                trader = Trader(self.deposit(owner, amount), "perp", amount, rng.uniform(2.0, 19.5),
                                rng.choice((1, -1)))
            else:
                amount = int(10 ** rng.uniform(3.5, 5.5)) * USDC
                trader = Trader(self.deposit(owner, amount), "writer", amount, portfolio=rng.random() < 0.5)
                if trader.portfolio:
                    self.apply(SetMarginMode, account=trader.account, mode=int(MarginMode.PORTFOLIO))
            self.traders.append(trader)

    def open_perp(self, trader: Trader) -> None:
        mark = self.state.marks.get(0)
        health = self.state.margin.health(self.state.accounts[trader.account])
        if mark is None or health is None or health.equity <= 0:
            return
        lots = int(health.equity * trader.leverage * LOT // mark)
        price = mark // TICK * TICK if trader.side > 0 else -(-mark // TICK) * TICK
        self.cross(trader.account, 0, trader.side, lots, price)

    def write_options(self, trader: Trader, expiry: int) -> None:
        state = self.state
        index = state.index.get("BTC")
        if index is None:
            return
        account = state.accounts[trader.account]
        health = state.margin.health(account)
        if health is None or health.equity <= 0:
            return
        contracts = health.equity * self.rng.uniform(0.3, 0.9) / (0.15 * index)
        lots = int(contracts * LOT / 2)
        atm = (index + STRIKE_STEP // 2) // STRIKE_STEP * STRIKE_STEP
        away = self.rng.randint(0, 3) * STRIKE_STEP
        for spec in state.instruments.values():
            if spec.kind != Kind.OPTION or spec.expiry_ms != expiry or spec.instrument_id in state.delisted:
                continue
            wanted = atm + away + STRIKE_STEP if spec.option_type == 1 else atm - away - STRIKE_STEP
            if spec.strike == wanted and spec.instrument_id in state.marks:
                price = max(state.marks[spec.instrument_id] // OPTION_TICK * OPTION_TICK, OPTION_TICK)
                self.cross(trader.account, spec.instrument_id, -1, lots, price)

    def list_expiry(self, expiry: int) -> None:
        if expiry in self.expiries:
            return
        events = self.apply(ListOptionSeries, underlying="BTC", expiry_ms=expiry, strike_step=STRIKE_STEP,
                            strikes_each_side=STRIKES_EACH_SIDE, tick_size=OPTION_TICK, size_decimals=4,
                            size_increment=1, min_size=1, maker_fee_ppm=0, taker_fee_ppm=300)
        if not isinstance(events[0], Rejected):
            self.expiries.append(expiry)

    # -- checks -------------------------------------------------------------------------------------
    def check_conservation(self) -> None:
        state = self.state
        cash = sum(a.cash for a in state.accounts.values())
        if cash != state.total_deposits - state.total_withdrawals:
            self._problem(f"cash {cash} != deposits - withdrawals at {self.ts}")
        sizes: dict[int, int] = {}
        for account in state.accounts.values():
            for instrument, position in account.positions.items():
                sizes[instrument] = sizes.get(instrument, 0) + position.size
        if any(sizes.values()):
            self._problem(f"positions do not sum to zero at {self.ts}")

    def check_equity(self) -> None:
        """Hourly: no user account below zero equity unless deleveraged this hour."""
        state = self.state
        figures = revalue_all(state, PositionMatrix.from_state(state))
        low = figures.accounts[figures.equity < 1_000].tolist()
        for account_id in low:
            account = state.accounts[int(account_id)]
            health = state.margin.health(account)
            if health is None:
                continue
            m = self.metrics
            m.min_account_equity = health.equity if m.min_account_equity is None else min(m.min_account_equity,
                                                                                          health.equity)
            if health.equity < 0 and int(account_id) not in self.deleveraged_this_hour \
                    and not state.halted:
                self._problem(f"account {account_id} has equity {health.equity} at {self.ts}")
        if len(figures.equity):
            lowest = int(figures.equity.min())
            m = self.metrics
            m.min_account_equity = lowest if m.min_account_equity is None else min(m.min_account_equity, lowest)
        self.deleveraged_this_hour.clear()

    def _problem(self, text: str) -> None:
        self.metrics.invariants_ok = False
        if len(self.metrics.problems) < 20:
            self.metrics.problems.append(text)

    # -- main loop -----------------------------------------------------------------------------
    def run(self) -> dict:
        started = time.perf_counter()
        self.ts = self.start
        self.deposit(self.genesis.insurance_fund_owner, FUND_START)
        self.populate()
        first = self.start
        while not self.market.has(first + MINUTE) and first < self.end:
            first += MINUTE
        self.ts = first + MINUTE
        self.oracle(first)
        day = (self.ts // DAY_MS) * DAY_MS + EXPIRY_TIME_OF_DAY_MS
        for k in (1, 2):
            self.list_expiry(day + k * DAY_MS if day <= self.ts else day + (k - 1) * DAY_MS)
        self.oracle_again(first)
        self.quote()
        for trader in self.traders:
            if trader.kind == "perp":
                self.open_perp(trader)
            else:
                self.write_options(trader, min(e for e in self.expiries if e > self.ts))
        minute = first + MINUTE
        while minute + MINUTE <= self.end:
            self.ts = minute + MINUTE
            if not self.oracle(minute):
                minute += MINUTE
                continue
            self.quote()
            if self.ts % HOUR == 0:
                self.hourly()
            if self.ts % DAY_MS == EXPIRY_TIME_OF_DAY_MS:
                self.daily()
            if self.ts % (10 * MINUTE) == 0:
                self.check_conservation()
            minute += MINUTE
        self.check_conservation()
        self.check_equity()
        state = self.state
        m = self.metrics
        for account in state.accounts.values():  # funding owed but not yet settled (lazy)
            for instrument, position in account.positions.items():
                index = state.funding_index.get(instrument)
                if index is not None and index != position.funding_index:
                    owed = funding_payment(position.size, index, position.funding_index, LOT)
                    if owed < 0:
                        m.funding_paid += -owed
        seconds = time.perf_counter() - started
        return {
            "oracle_updates": m.oracle_updates,
            "liquidations": m.liquidations,
            "liquidated_notional": usdc(m.liquidated_notional),
            "adl_events": m.adl_events,
            "insurance_fund_start": usdc(FUND_START),
            "insurance_fund_end": usdc(state.accounts[INSURANCE_FUND].cash),
            "funding_paid": usdc(m.funding_paid),
            "min_account_equity": usdc(m.min_account_equity or 0),
            "invariants_ok": m.invariants_ok,
            "state_hash": state_hash(state),
            "backstop_transfers": m.backstop_transfers,
            "oracle_rejected_reports": m.oracle_rejected_reports,
            "fee_account": usdc(state.accounts[FEE_ACCOUNT].cash),
            "commands": m.commands,
            "accounts": self.n_accounts,
            "from": ms_iso(self.start),
            "to": ms_iso(self.end),
            "seconds": round(seconds, 1),
            "problems": m.problems,
        }

    def oracle_again(self, minute: int) -> None:
        """Re-send the first minute's prices once the first expiries are listed (their marks)."""
        self.oracle(minute)

    def hourly(self) -> None:
        self.check_equity()
        for trader in self.traders:
            if trader.kind == "perp" and not self.state.accounts[trader.account].positions \
                    and self.rng.random() < 0.05:
                trader.side = self.rng.choice((1, -1))
                trader.leverage = self.rng.uniform(2.0, 19.5)
                self.open_perp(trader)

    def daily(self) -> None:
        self.list_expiry(self.ts + 2 * DAY_MS)
        upcoming = [e for e in self.expiries if e > self.ts]
        if not upcoming:
            return
        nearest = min(upcoming)
        for trader in self.traders:
            if trader.kind == "writer":
                self.write_options(trader, nearest)




def run_stress(prices_dir: Path, start: str, end: str, accounts: int, seed: int) -> dict:
    """Load the prices, fit the surface and run one stress simulation (module docstring);
    the report dict."""
    return Stress(MarketData.load(prices_dir), Surface.fit_deribit(), iso_ms(start), iso_ms(end), accounts,
                  seed).run()


# -- CLI ------------------------------------------------------------------------------------------
def add_stress_parser(subparsers) -> None:
    """Register ``clearway stress`` on an argparse subparsers object."""
    parser = subparsers.add_parser("stress", help="liquidations, ADL, funding and expiries on real March 2023 prices")
    parser.add_argument("--prices", default=str(DEFAULT_PRICES), help="directory of the 1-minute BTC series")
    parser.add_argument("--from", dest="start", default="2023-03-01T00:00", help="UTC start (ISO 8601)")
    parser.add_argument("--to", dest="end", default="2023-03-22T00:00", help="UTC end (ISO 8601)")
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run_stress_command)


def run_stress_command(args: argparse.Namespace) -> int:
    """Handler of ``clearway stress``: prints the report; exit status 1 if an invariant broke."""
    result = run_stress(Path(args.prices), args.start, args.end, args.accounts, args.seed)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        for key, value in result.items():
            sys.stdout.write(f"{key:>24}: {value}\n")
    return 0 if result["invariants_ok"] else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m clearway.sim.stress …`` until the CLI wires the subcommand."""
    parser = argparse.ArgumentParser(prog="clearway")
    add_stress_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["stress", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())

