"""The demo's trading population: agents reproducible from a seed.

Every agent owns a ``random.Random`` seeded with ``"<seed>:<name>"`` (string seeds are
hashed with SHA-512 by CPython, independent of ``PYTHONHASHSEED``), reads no clock (the
simulated time arrives in the :class:`MarketView`) and acts only at its own cadence
(every ``every`` simulated minutes, offset by ``offset``), so the same seed gives the same
commands in the same order. The orchestrator (demo.py) builds one :class:`MarketView` per
simulated minute with a single node query (:func:`build_view`), then calls ``step`` of the
due agents in a fixed order; each agent acts through a :class:`Venue`.

Population (amounts in USDC, sizes in BTC; one option contract = 1 BTC):

- :class:`MarketMaker` — quotes the perp 3 levels a side (2, 7 and 12 bp from the centre,
  1.5–2 BTC each) around ``index × (1 + basis)`` (basis = the real USDT/USD premium, so
  funding follows it) shifted against its inventory (``skew_bp`` at ``inventory_limit``);
  requotes after a 10 bp move, when a level was taken, and every 20 minutes. Every hour
  (or after a 2 % move) it also quotes the options of the two nearest expiries with a
  strike within 1,500 USD of the index: mark ± max(4 % of the mark, 5 USDC), shifted
  against its position in that series.
- :class:`CcxtMarketMaker` — the same perp logic (3 levels, 1 BTC) through unmodified ccxt
  (``ccxt.deribit`` pointed at the loopback API): ``fetch_ticker`` for the index,
  ``fetch_positions`` for the inventory, ``cancel_all_orders`` and post-only
  ``create_order``; it also quotes the at-the-money call and put of the nearest expiry.
- :class:`DirectionalTrader` — momentum, contrarian or random, 2–20× leverage of a
  10^U(3, 4.7) deposit; opens with an IOC order 0.5 % through the mark, holds ~8 h
  (exponential), takes profit at +30 % of equity (and may withdraw part of it to L1),
  tops up on L1 when maintenance margin exceeds 70 % of equity; liquidated traders may
  deposit again and keep trading.
- :class:`OptionTrader` — buyers (protective puts or OTM calls, 1–4 % of equity per trade)
  and writers (strangles 1–3 strikes out, sized to 20–60 % of equity / (0.15 · S)),
  each in standard or portfolio margin (``SetMarginMode``); portfolio-margin writers hedge
  their options' Black-76 delta with the perp every 4 hours.
- :class:`FundingArbitrageur` — takes the side that receives funding (short when this
  hour's mean premium is above +0.005 %, long below −0.005 %) at 3× leverage, the spot leg
  being held elsewhere; unwinds when the premium falls back under a quarter of that.
- :class:`L1Saver` — deposits through the vault and withdraws (claimed on L1 after the
  batch that includes the withdrawal is finalised) at random times.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from clearway.domain.accounts import MarginMode
from clearway.domain.commands import CancelAll, Command, PlaceOrder, SetMarginMode
from clearway.domain.events import Rejected, Trade
from clearway.domain.instruments import Kind, OptionType
from clearway.domain.orders import TimeInForce

USDC = 1_000_000
LOT = 10_000            # lots per BTC (size_decimals 4)
TICK = 100_000          # 0.1 USDC, perp and options
PERP = 0                # the BTC perpetual's instrument id
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
RATE_SCALE = 10**12     # premiums and funding rates (clearway.domain.funding)


def floor_tick(price: float | int, tick: int = TICK) -> int:
    """``price`` (micro-USDC) rounded down to the tick."""
    return int(price) // tick * tick


def ceil_tick(price: float | int, tick: int = TICK) -> int:
    """``price`` (micro-USDC) rounded up to the tick."""
    return -(-int(math.ceil(price)) // tick) * tick


# -- what agents see -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Series:
    """A listed option: instrument id, expiry (ms), strike (micro-USDC), call or put, and
    its Black-76 delta at the last oracle update (per contract)."""

    instrument: int
    expiry_ms: int
    strike: int
    call: bool
    delta: float


@dataclass(frozen=True, slots=True)
class AccountView:
    """One account: equity, initial and maintenance margin (micro-USDC), positions by
    instrument (lots), open orders (all, and in the perp), portfolio margin or not, and the
    account's cash."""

    equity: int
    initial: int
    maintenance: int
    positions: dict[int, int]
    orders: int
    perp_orders: int
    portfolio: bool
    cash: int


@dataclass(frozen=True, slots=True)
class MarketView:
    """The market at one simulated minute (built by :func:`build_view`).

    ts : ms; index : BTC index (micro-USD), None before the first accepted oracle update;
    marks, bids, asks : by instrument id (micro-USDC; best prices of the book); premium :
    mean of this hour's funding premium samples (10⁻¹² units); series : listed options;
    accounts : views of the accounts asked for; basis and vol are supplied by the
    orchestrator from the market data (USDT/USD − 1, realised volatility, annualised).
    """

    ts: int
    index: int | None
    marks: dict[int, int]
    bids: dict[int, int]
    asks: dict[int, int]
    premium: int
    series: tuple[Series, ...]
    accounts: dict[int, AccountView]
    halted: bool
    basis: float = 0.0
    vol: float = 0.6


def build_view(state: Any, account_ids: Sequence[int], basis: float = 0.0, vol: float = 0.6,
               greeks: bool = True) -> MarketView:
    """Read a :class:`MarketView` from an ``ExchangeState`` (run it through ``Node.query``:
    it only reads). Accounts that cannot be priced are left out; without ``greeks`` the
    series' deltas are 0.0 (cheaper: no Black-76 pass)."""
    from clearway.domain.market import black76_inputs
    from clearway.domain.risk.black76 import black76_greeks

    bids, asks = {}, {}
    for instrument, book in state.books.items():
        if instrument in state.delisted:
            continue
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None:
            bids[instrument] = bid
        if ask is not None:
            asks[instrument] = ask
    series: list[Series] = []
    market = state.markets.get("BTC")
    options = [s for s in state.instruments.values()
               if s.kind == Kind.OPTION and s.instrument_id not in state.delisted and s.instrument_id in state.marks]
    if market is not None and options:
        x = black76_inputs(market, options)
        deltas = [0.0] * len(x.priced)
        if x.priced and greeks:
            deltas = black76_greeks(x.forwards, x.strikes, x.times, x.vols, x.rates, x.calls).delta.tolist()
        for spec, delta in zip(x.priced, deltas):
            series.append(Series(spec.instrument_id, spec.expiry_ms, spec.strike,
                                 spec.option_type == OptionType.CALL, float(delta)))
    series.sort(key=lambda s: (s.expiry_ms, s.strike, s.call))
    accounts = {}
    for account_id in account_ids:
        account = state.accounts.get(account_id)
        if account is None:
            continue
        health = state.margin.health(account)
        if health is None:
            continue
        accounts[account_id] = AccountView(health.equity, health.initial_margin, health.maintenance_margin,
                                           {i: p.size for i, p in account.positions.items()}, len(account.orders),
                                           sum(1 for o in account.orders.values() if o.instrument == PERP),
                                           account.margin_mode == MarginMode.PORTFOLIO, account.cash)
    samples = state.premium_samples.get(PERP) or []
    premium = sum(samples) // len(samples) if samples else 0
    return MarketView(state.last_ts, state.index.get("BTC"), dict(state.marks), bids, asks, premium,
                      tuple(series), accounts, "BTC" in state.halted, basis, vol)


class Venue(Protocol):
    """How agents act (implemented by the orchestrator)."""

    def submit(self, commands: Sequence[Command], signer: Any = None) -> list[list]:
        """Submit to the sequencer in order, wait until durable; each command's events.
        With ``signer`` (the agent's L1 key) every command is EIP-712 signed by the owner;
        otherwise it is operator-attested (an API-key session)."""

    def deposit(self, agent: "Agent", amount: int) -> None:
        """Mint ``amount`` micro-USDC to the agent's L1 key and deposit it into the vault
        (credited when the watcher next polls)."""

    def withdraw(self, agent: "Agent", amount: int) -> bool:
        """Withdraw ``amount`` from the agent's account; claimed on L1 once its batch is
        finalised. False if refused."""

    def exchange(self, agent: "Agent") -> Any:
        """The agent's ``ccxt.deribit`` client (API key of its account)."""


# -- the agents --------------------------------------------------------------------------------
@dataclass
class Agent:
    """Base: identity, funding, cadence and the counters every agent keeps."""

    name: str
    seed: int
    deposit: int                  # micro-USDC of the first L1 deposit
    every: int = 10               # minutes between steps
    offset: int = 0
    portfolio: bool = False
    account: int = -1             # set once the deposit is credited
    key: Any = None               # L1 key (set by the orchestrator)
    orders: int = 0
    trades: int = 0
    rejected: int = 0
    topped_up: int = 0
    withdrawn: int = 0
    rng: random.Random = field(init=False, repr=False)

    kind = "agent"
    uses_ccxt = False
    needs_greeks = False          # reads Series.delta
    signs = False                 # EIP-712-sign orders with the L1 key (else API-key session)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}:{self.name}")

    def due(self, minute: int) -> bool:
        """True when the agent acts at simulated minute number ``minute``."""
        return minute % self.every == self.offset % self.every

    def setup(self, venue: Venue) -> list[Command]:
        """Commands to send once the account exists (margin mode)."""
        if self.portfolio:
            return [SetMarginMode(0, 0, self.account, int(MarginMode.PORTFOLIO))]
        return []

    def step(self, view: MarketView, venue: Venue) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    # helpers
    def send(self, venue: Venue, commands: list[Command]) -> list[list]:
        """Submit and count orders, trades (as taker or maker) and rejections."""
        if not commands:
            return []
        results = venue.submit(commands, self.key if self.signs else None)
        for command, events in zip(commands, results):
            if type(command) is PlaceOrder:
                self.orders += 1
            for event in events:
                if type(event) is Trade:
                    self.trades += 1
                elif type(event) is Rejected:
                    self.rejected += 1
        return results

    def order(self, side: int, lots: int, price: int, instrument: int = PERP, tif: int = TimeInForce.GTC,
              post_only: bool = False, reduce_only: bool = False) -> PlaceOrder:
        return PlaceOrder(0, 0, self.account, instrument, side, lots, price, tif=int(tif), post_only=post_only,
                          reduce_only=reduce_only)

    def cross(self, side: int, lots: int, view: MarketView, instrument: int = PERP, reduce_only: bool = False,
              slip: float = 0.005) -> PlaceOrder | None:
        """An IOC order ``slip`` through the mark (a marketable limit)."""
        mark = view.marks.get(instrument)
        if mark is None or lots <= 0:
            return None
        price = ceil_tick(mark * (1 + slip)) if side > 0 else max(floor_tick(mark * (1 - slip)), TICK)
        return self.order(side, lots, price, instrument, TimeInForce.IOC, reduce_only=reduce_only)


@dataclass
class MarketMaker(Agent):
    """Perp and option quotes with inventory skew (module docstring)."""

    levels: int = 3
    level_lots: int = 15_000
    inventory_limit: int = 30 * LOT
    skew_bp: float = 20.0
    option_lots: int = 2 * LOT
    option_limit: int = 20 * LOT
    quoted_index: int = 0
    quoted_ts: int = -HOUR
    options_ts: int = -HOUR
    options_index: int = 0
    kind = "market_maker"

    def centre(self, view: MarketView, inventory: int) -> float:
        skew = self.skew_bp / 10_000 * max(-1.0, min(1.0, inventory / self.inventory_limit))
        return view.index * (1.0 + view.basis - skew)

    def perp_quotes(self, view: MarketView, inventory: int) -> list[PlaceOrder]:
        """Post-only quotes around the centre, kept inside the book seen in ``view`` (a bid
        below the best ask, an ask above the best bid) so they do not cross another maker's
        older quotes."""
        centre = self.centre(view, inventory)
        best_ask, best_bid = view.asks.get(PERP), view.bids.get(PERP)
        out = []
        for level in range(self.levels):
            spread = 0.0002 + 0.0005 * level
            bid, ask = floor_tick(centre * (1 - spread)), ceil_tick(centre * (1 + spread))
            if best_ask is not None:
                bid = min(bid, best_ask - TICK * (level + 1))
            if best_bid is not None:
                ask = max(ask, best_bid + TICK * (level + 1))
            out.append(self.order(1, self.level_lots, bid, post_only=True))
            out.append(self.order(-1, self.level_lots, ask, post_only=True))
        return out

    def option_quotes(self, view: MarketView, positions: dict[int, int]) -> list[PlaceOrder]:
        expiries = sorted({s.expiry_ms for s in view.series if s.expiry_ms - view.ts > HOUR})[:2]
        out = []
        for s in view.series:
            if s.expiry_ms not in expiries or abs(s.strike - view.index) > 1_500 * USDC:
                continue
            mark = view.marks[s.instrument]
            half = max(0.04 * mark, 5 * USDC)
            skew = -max(-1.0, min(1.0, positions.get(s.instrument, 0) / self.option_limit)) * half
            bid, ask = floor_tick(mark - half + skew), ceil_tick(mark + half + skew)
            if bid >= TICK:
                out.append(self.order(1, self.option_lots, bid, s.instrument, post_only=True))
            out.append(self.order(-1, self.option_lots, max(ask, 2 * TICK), s.instrument, post_only=True))
        return out

    def step(self, view: MarketView, venue: Venue) -> None:
        me = view.accounts.get(self.account)
        if view.index is None or me is None or view.halted:
            return
        moved = abs(view.index - self.quoted_index) * 10_000 > 10 * max(self.quoted_index, 1)
        options_due = view.ts - self.options_ts >= HOUR or \
            abs(view.index - self.options_index) * 50 > max(self.options_index, 1)
        taken = me.perp_orders < 2 * self.levels
        if not (moved or taken or options_due or view.ts - self.quoted_ts >= 20 * MINUTE):
            return
        inventory = me.positions.get(PERP, 0)
        if options_due and view.series:
            commands: list[Command] = [CancelAll(0, 0, self.account)]
            commands += self.perp_quotes(view, inventory) + self.option_quotes(view, me.positions)
            self.options_ts, self.options_index = view.ts, view.index
        else:
            commands = [CancelAll(0, 0, self.account, PERP), *self.perp_quotes(view, inventory)]
        self.quoted_index, self.quoted_ts = view.index, view.ts
        self.send(venue, commands)


@dataclass
class CcxtMarketMaker(MarketMaker):
    """A market maker that trades only through ccxt over the loopback API."""

    levels: int = 3
    level_lots: int = LOT
    symbol: str = "BTC/USDC:USDC"
    ccxt_calls: int = 0
    kind = "ccxt_market_maker"
    uses_ccxt = True

    def step(self, view: MarketView, venue: Venue) -> None:
        if view.halted:
            return
        ex = venue.exchange(self)
        ticker = ex.fetch_ticker(self.symbol)
        self.ccxt_calls += 1
        index = ticker["info"].get("index_price") or ticker.get("markPrice")
        if not index:
            return
        index = int(round(float(index) * USDC))
        moved = abs(index - self.quoted_index) * 10_000 > 10 * max(self.quoted_index, 1)
        if not moved and view.ts - self.quoted_ts < 15 * MINUTE:
            return
        positions = {p["symbol"]: p["contracts"] * (1 if p["side"] == "long" else -1)
                     for p in ex.fetch_positions() if p.get("contracts")}
        ex.cancel_all_orders()
        self.ccxt_calls += 2
        inventory = round(positions.get(self.symbol, 0.0) * LOT)
        quotes = self.perp_quotes(_with_index(view, index), inventory)
        option_due = view.ts - self.options_ts >= HOUR
        if option_due:
            quotes += self.atm_quotes(view, index, positions)
            self.options_ts = view.ts
        for q in quotes:
            symbol = self.symbol if q.instrument == PERP else self.option_symbol(ex, view, q.instrument)
            if symbol is None:
                continue
            side = "buy" if q.side > 0 else "sell"
            try:
                ex.create_order(symbol, "limit", side, q.size / LOT, q.price / USDC, {"postOnly": True})
                self.orders += 1
            except Exception as exc:  # ccxt raises its own classes for exchange refusals
                if type(exc).__module__.split(".")[0] != "ccxt":
                    raise
                self.rejected += 1
            self.ccxt_calls += 1
        self.quoted_index, self.quoted_ts = index, view.ts

    def atm_quotes(self, view: MarketView, index: int, positions: dict[str, float]) -> list[PlaceOrder]:
        upcoming = sorted({s.expiry_ms for s in view.series if s.expiry_ms - view.ts > 6 * HOUR})
        if not upcoming:
            return []
        chain = [s for s in view.series if s.expiry_ms == upcoming[0]]
        atm = min(chain, key=lambda s: abs(s.strike - index)).strike
        out = []
        for s in chain:
            if s.strike != atm:
                continue
            mark = view.marks[s.instrument]
            half = max(0.05 * mark, 5 * USDC)
            if mark - half >= TICK:
                out.append(self.order(1, LOT, floor_tick(mark - half), s.instrument, post_only=True))
            out.append(self.order(-1, LOT, ceil_tick(mark + half), s.instrument, post_only=True))
        return out

    def option_symbol(self, ex: Any, view: MarketView, instrument: int) -> str | None:
        """ccxt's unified symbol of an option (markets reloaded when a new series appears)."""
        series = next((s for s in view.series if s.instrument == instrument), None)
        if series is None:
            return None
        from datetime import datetime, timezone

        day = datetime.fromtimestamp(series.expiry_ms / 1000, tz=timezone.utc).strftime("%y%m%d")
        symbol = f"BTC/USDC:USDC-{day}-{series.strike // USDC}-{'C' if series.call else 'P'}"
        if ex.markets is None or symbol not in ex.markets:
            ex.load_markets(reload=True)
            self.ccxt_calls += 1
        return symbol if symbol in ex.markets else None


def _with_index(view: MarketView, index: int) -> MarketView:
    return MarketView(view.ts, index, view.marks, view.bids, view.asks, view.premium, view.series, view.accounts,
                      view.halted, view.basis, view.vol)


@dataclass
class DirectionalTrader(Agent):
    """A leveraged perp trader (module docstring)."""

    style: str = "random"          # momentum | contrarian | random
    leverage: float = 5.0
    hold_minutes: float = 480.0
    history: list[int] = field(default_factory=list)
    had_position: bool = False
    kind = "directional"
    signs = True

    def step(self, view: MarketView, venue: Venue) -> None:
        me = view.accounts.get(self.account)
        if view.index is None or view.halted:
            return
        self.history.append(view.index)
        del self.history[:-13]
        if me is None:
            return
        rng = self.rng
        size = me.positions.get(PERP, 0)
        if size == 0:
            if self.had_position and me.equity < self.deposit // 10 and rng.random() < 0.3:
                venue.deposit(self, self.deposit // 2)   # liquidated: comes back with fresh money
                self.topped_up += 1
            self.had_position = False
            if me.equity <= 0 or rng.random() > 0.15:
                return
            side = self.choose_side(rng)
            lots = int(me.equity * self.leverage * LOT // view.marks.get(PERP, view.index))
            order = self.cross(side, lots, view)
            if order is not None:
                self.send(venue, [order])
                self.had_position = True
            return
        self.had_position = True
        if me.maintenance > 0.7 * me.equity and self.topped_up < 2 and rng.random() < 0.3:
            venue.deposit(self, self.deposit // 2)
            self.topped_up += 1
        close = rng.random() < self.every / self.hold_minutes or me.equity > 1.3 * self.deposit * (1 + self.topped_up)
        if close:
            order = self.cross(-1 if size > 0 else 1, abs(size), view, reduce_only=True)
            if order is not None:
                self.send(venue, [order])
            amount = (me.equity - self.deposit) // 2 // USDC * USDC
            if amount > 0 and rng.random() < 0.5 and venue.withdraw(self, amount):
                self.withdrawn += amount

    def choose_side(self, rng: random.Random) -> int:
        if self.style != "random" and len(self.history) >= 2 and self.history[-1] != self.history[0]:
            trend = 1 if self.history[-1] > self.history[0] else -1
            return trend if self.style == "momentum" else -trend
        return rng.choice((1, -1))


@dataclass
class OptionTrader(Agent):
    """Option buyers and writers in standard or portfolio margin (module docstring)."""

    writer: bool = False
    hedged_ts: int = 0
    traded_expiry: int = 0
    kind = "option_trader"

    @property
    def needs_greeks(self) -> bool:
        return self.writer and self.portfolio

    def step(self, view: MarketView, venue: Venue) -> None:
        me = view.accounts.get(self.account)
        if view.index is None or view.halted or me is None or me.equity <= 0:
            return
        commands: list[Command] = []
        upcoming = sorted({s.expiry_ms for s in view.series if s.expiry_ms - view.ts > 12 * HOUR})
        holds_options = any(i != PERP for i in me.positions)
        if upcoming and not holds_options and upcoming[0] != self.traded_expiry and self.rng.random() < 0.5:
            chain = [s for s in view.series if s.expiry_ms == upcoming[0]]
            commands += self.writes(view, me, chain) if self.writer else self.buys(view, me, chain)
            if commands:
                self.traded_expiry = upcoming[0]
        elif self.writer and self.portfolio and holds_options and view.ts - self.hedged_ts >= 4 * HOUR:
            commands += self.hedge(view, me)
            self.hedged_ts = view.ts
        self.send(venue, commands)

    def strikes_out(self, view: MarketView, chain: list[Series], call: bool, away: int) -> Series | None:
        side = sorted((s for s in chain if s.call == call and (s.strike > view.index if call else s.strike < view.index)),
                      key=lambda s: abs(s.strike - view.index))
        return side[min(away, len(side) - 1)] if side else None

    def writes(self, view: MarketView, me: AccountView, chain: list[Series]) -> list[Command]:
        contracts = me.equity * self.rng.uniform(0.2, 0.6) / (0.15 * view.index)
        lots = int(contracts * LOT / 2) // 100 * 100
        out: list[Command] = []
        away = self.rng.randint(0, 2)
        for call in (True, False):
            s = self.strikes_out(view, chain, call, away)
            bid = view.bids.get(s.instrument) if s else None
            if s is None or bid is None or lots <= 0:
                continue
            out.append(self.order(-1, lots, bid, s.instrument, TimeInForce.IOC))
        return out

    def buys(self, view: MarketView, me: AccountView, chain: list[Series]) -> list[Command]:
        call = self.rng.random() < 0.35
        s = self.strikes_out(view, chain, call, self.rng.randint(0, 2))
        ask = view.asks.get(s.instrument) if s else None
        if s is None or ask is None:
            return []
        budget = me.equity * self.rng.uniform(0.01, 0.04)
        lots = int(budget * LOT // ask) // 100 * 100
        return [self.order(1, lots, ask, s.instrument, TimeInForce.IOC)] if lots > 0 else []

    def hedge(self, view: MarketView, me: AccountView) -> list[Command]:
        deltas = {s.instrument: s.delta for s in view.series}
        option_delta = sum(size * deltas.get(i, 0.0) for i, size in me.positions.items() if i != PERP)
        target = -round(option_delta)
        diff = target - me.positions.get(PERP, 0)
        if abs(diff) < LOT // 10:
            return []
        order = self.cross(1 if diff > 0 else -1, abs(diff) // 10 * 10, view)
        return [order] if order is not None else []


@dataclass
class FundingArbitrageur(Agent):
    """Receives funding against an outside spot hedge (module docstring)."""

    enter: int = 50_000_000        # 0.005 % in 10⁻¹² units
    leverage: float = 3.0
    kind = "funding_arbitrageur"

    def step(self, view: MarketView, venue: Venue) -> None:
        me = view.accounts.get(self.account)
        if view.index is None or view.halted or me is None:
            return
        size = me.positions.get(PERP, 0)
        premium = view.premium
        if size == 0 and abs(premium) > self.enter and me.equity > 0:
            side = -1 if premium > 0 else 1
            lots = int(me.equity * self.leverage * LOT // view.marks.get(PERP, view.index))
            order = self.cross(side, lots, view, slip=0.002)
            self.send(venue, [order] if order else [])
        elif size != 0 and (premium * size > 0 or abs(premium) < self.enter // 4):
            order = self.cross(-1 if size > 0 else 1, abs(size), view, reduce_only=True, slip=0.005)
            self.send(venue, [order] if order else [])


@dataclass
class L1Saver(Agent):
    """Deposits and withdraws through the vault (module docstring)."""

    kind = "l1_user"

    def step(self, view: MarketView, venue: Venue) -> None:
        me = view.accounts.get(self.account)
        if me is None or self.rng.random() > 0.25:
            return
        if self.rng.random() < 0.5:
            venue.deposit(self, int(10 ** self.rng.uniform(2.5, 4)) * USDC)
        else:
            amount = int(me.cash * self.rng.uniform(0.1, 0.5)) // USDC * USDC
            if amount > 0 and venue.withdraw(self, amount):
                self.withdrawn += amount


@dataclass(frozen=True)
class Population:
    """How many agents of each kind (the demo's defaults; tests use fewer)."""

    market_makers: int = 2
    ccxt_market_makers: int = 1
    directional: int = 40
    option_buyers: int = 8
    option_writers: int = 8
    funding_arbitrageurs: int = 2
    l1_savers: int = 6


def make_agents(seed: int, population: Population = Population()) -> list[Agent]:
    """The population, in the fixed order the orchestrator steps it (module docstring)."""
    rng = random.Random(f"{seed}:population")
    agents: list[Agent] = []
    for i in range(population.market_makers):
        agents.append(MarketMaker(f"mm{i}", seed, 40_000_000 * USDC, every=1, skew_bp=15.0 + 10.0 * i,
                                  level_lots=15_000 + 5_000 * i))
    for i in range(population.ccxt_market_makers):
        agents.append(CcxtMarketMaker(f"ccxt-mm{i}", seed, 5_000_000 * USDC, every=5, offset=i))
    styles = ("momentum", "contrarian", "random")
    for i in range(population.directional):
        agents.append(DirectionalTrader(f"trader{i}", seed, int(10 ** rng.uniform(3, 4.7)) * USDC, every=10,
                                        offset=rng.randrange(10), style=styles[i % 3],
                                        leverage=round(rng.uniform(2.0, 20.0), 2)))
    for i in range(population.option_buyers):
        agents.append(OptionTrader(f"buyer{i}", seed, int(10 ** rng.uniform(3.5, 5)) * USDC, every=60,
                                   offset=rng.randrange(60), portfolio=i % 2 == 1))
    for i in range(population.option_writers):
        agents.append(OptionTrader(f"writer{i}", seed, int(10 ** rng.uniform(4, 5.5)) * USDC, every=60,
                                   offset=rng.randrange(60), portfolio=i % 2 == 1, writer=True))
    for i in range(population.funding_arbitrageurs):
        agents.append(FundingArbitrageur(f"arb{i}", seed, 2_000_000 * USDC, every=15, offset=rng.randrange(15),
                                         portfolio=i % 2 == 1))
    for i in range(population.l1_savers):
        agents.append(L1Saver(f"saver{i}", seed, int(10 ** rng.uniform(3, 4.5)) * USDC, every=60,
                              offset=rng.randrange(60)))
    return agents
