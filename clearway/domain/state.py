"""The exchange state and ``apply``, the only way it changes.

Read ``apply`` top to bottom to see where each command goes (STYLE.md). Deterministic: no
clock, no randomness, no I/O; a rejected command leaves the state exactly as it was and
returns a single ``Rejected`` event.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Final

import msgspec

from clearway.domain.accounts import Account
from clearway.domain.book import OrderBook
from clearway.domain.commands import (
    AmendOrder, CancelAll, CancelOrder, CancelOrders, Command, Deposit, ForcedWithdrawal, ListInstrument,
    ListOptionSeries, OracleUpdate, PlaceOrder, PlaceTwap, SetMarginMode, SetMarketData, SetMarkPrices, Withdraw,
)
from clearway.domain.errors import SequenceError
from clearway.domain.events import Event
from clearway.domain.genesis import FEE_ACCOUNT, INSURANCE_FUND, GenesisConfig
from clearway.domain.health import Margin
from clearway.domain.instruments import InstrumentSpec, Kind
from clearway.domain.market import UnderlyingMarket, option_marks
from clearway.domain.orders import Order

NEVER: Final = 2**62
"""A time after every real timestamp (ms): "no timer"."""


class ExchangeState:
    """Everything the exchange knows.

    Attributes
    ----------
    genesis : GenesisConfig
    last_seq, last_ts : int
        Of the last applied command (0 before the first).
    instruments : dict[int, InstrumentSpec]; books : dict[int, OrderBook]
    marks : dict[int, int]
        Mark price by instrument id (micro-USDC per contract).
    index : dict[str, int]
        Index price by underlying.
    accounts : dict[int, Account]; owners : dict[str, int] (address → account id)
    orders : dict[int, Order]
        Every open order by id.
    next_order_id, next_trade_id : int
    last_deposit_id : int
        Deposits are applied strictly in vault order.
    total_deposits, total_withdrawals : int
        micro-USDC, for the conservation invariant.
    markets : dict[str, UnderlyingMarket]
        Market data by underlying (index, per-expiry forward, rate, SVI; market.py).
    stable_price : int
        USD per USDC in ppm (1_000_000 at peg); held by ``margin``.
    margin : Margin
        Standard and portfolio margin, account health (health.py); its risk-array cache
        is derived from ``markets`` and never part of the hash.

    Market lifecycle (issue 4; exchange-rules.md "Index, mark price and oracle", "Funding",
    "Liquidation", "Option expiry and netting"):

    oracle_last : dict[str, tuple[int, int]]
        (index, ts) of the last accepted signed ``OracleUpdate`` by underlying. An
        underlying listed here is *oracle-governed*: its perp marks follow perp_mark.py, its
        perpetuals pay funding, its accounts can be liquidated, and it halts when the
        oracle goes quiet. Underlyings fed only by the operator commands (``SetMarkPrices``,
        ``SetMarketData``) do none of that (tests and tools drive them directly).
    halted : set[str]
        Oracle-governed underlyings without an accepted update for ``halt_after_ms``.
    mark_ema : dict[int, list[int]]
        Perp id → [numerator, denominator, last ts] of the EMA of (mid − index).
    next_minute, next_hour : int
        Clock: the next premium-sample minute boundary and the next funding tick (ms; 0
        until the first command starts the clock).
    funding_index : dict[int, int]
        Cumulative funding per contract by perp id (units.FundingIndex), from its first tick.
    premium_samples : dict[int, list[int]]
        The current hour's premium samples by perp id (10⁻¹² units).
    index_samples : dict[str, list[tuple[int, int]]]
        (ts, index) of every index change in the last ``settlement_twap_ms`` (plus the one
        before), for the settlement TWAP.
    delisted : set[int]
        Expired options (their ids stay allocated: ids are dense).
    forced_served : set[int]
        Forced-withdrawal request ids already served.
    liquidation_second, liquidation_used : int, dict[int, int]
        Notional liquidated against the book per account in the current second (the
        per-account per-second cap).
    next_timer, next_expiry : int
        Derived schedule (never hashed): the first ts at which ``clock.run_timers`` has
        something to do.

    Advanced order types (issue 9; conditional.py, twap.py, good_til_time.py):

    last_trade : dict[int, int]
        Last trade price by instrument (micro-USDC per contract), the LAST trigger source.
    conditionals : dict[int, Conditional]
        Waiting conditional orders by order id (not in ``orders``: they are off the book).
    account_conditionals : dict[int, dict[int, Conditional]]
        The same by account (derived index).
    triggers : dict[int, TriggerBook]
        Per instrument with waiting conditionals, the sorted trigger lists (derived).
    twaps : dict[int, Twap]
        Running TWAP parents by order id.
    gtt : list[tuple[int, int]]
        Heap of (expire_at, order id) of good-til-time orders (derived, never hashed).
    prices_moved : bool
        A mark or index changed since the last trigger evaluation (derived, never hashed).
    """

    def __init__(self, genesis: GenesisConfig) -> None:
        self.genesis = genesis
        self.last_seq = 0
        self.last_ts = 0
        self.instruments: dict[int, InstrumentSpec] = {}
        self.books: dict[int, OrderBook] = {}
        self.marks: dict[int, int] = {}
        self.index: dict[str, int] = {}
        self.accounts: dict[int, Account] = {}
        self.owners: dict[str, int] = {}
        self.orders: dict[int, Order] = {}
        self.next_order_id = 1
        self.next_trade_id = 1
        self.last_deposit_id = 0
        self.total_deposits = 0
        self.total_withdrawals = 0
        self.markets: dict[str, UnderlyingMarket] = {}
        self.oracle_params = genesis.oracle_params()
        self.oracle_last: dict[str, tuple[int, int]] = {}
        self.halted: set[str] = set()
        self.mark_ema: dict[int, list[int]] = {}
        self.next_minute = 0
        self.next_hour = 0
        self.funding_index: dict[int, int] = {}
        self.premium_samples: dict[int, list[int]] = {}
        self.index_samples: dict[str, list[tuple[int, int]]] = {}
        self.delisted: set[int] = set()
        self.forced_served: set[int] = set()
        self.liquidation_second = -1
        self.liquidation_used: dict[int, int] = {}
        self.next_timer = 0
        self.next_expiry = NEVER
        self.screen_due = False
        self.last_trade: dict[int, int] = {}
        self.conditionals: dict = {}
        self.account_conditionals: dict[int, dict] = {}
        self.triggers: dict = {}
        self.twaps: dict = {}
        self.gtt: list[tuple[int, int]] = []
        self.prices_moved = False
        self.margin = Margin(
            self.marks, self.index, self.instruments,
            genesis.option_im_ppm, genesis.option_im_floor_ppm, genesis.option_mm_ppm, self.markets,
        )
        self.margin.funding = self.funding_index
        self.create_account(genesis.fee_account_owner)  # FEE_ACCOUNT = 0
        self.create_account(genesis.insurance_fund_owner)  # INSURANCE_FUND = 1
        for spec in genesis.instruments:
            reason = spec.validate()
            if reason is not None or spec.instrument_id != len(self.instruments):
                raise ValueError(f"invalid genesis instrument {spec.instrument_id}: {reason or 'ids must be 0..n-1'}")
            self.list_instrument(spec)

    # -- structure -------------------------------------------------------------------
    def create_account(self, owner: str) -> Account:
        account = Account(len(self.accounts), owner)
        self.accounts[account.account_id] = account
        self.owners[owner] = account.account_id
        return account

    def list_instrument(self, spec: InstrumentSpec) -> None:
        """Add ``spec``; an option whose expiry has market data gets its mark at once."""
        self.instruments[spec.instrument_id] = spec
        self.books[spec.instrument_id] = OrderBook(spec.instrument_id)
        self.margin.register(spec)
        market = self.markets.get(spec.underlying)
        if spec.kind == Kind.OPTION and market is not None:
            self.marks.update(option_marks(market, [spec]))
            self.prices_moved = True
        if spec.kind == Kind.OPTION and spec.expiry_ms < self.next_expiry:
            self.next_expiry = spec.expiry_ms
            self.next_timer = min(self.next_timer, spec.expiry_ms)

    @property
    def stable_price(self) -> int:
        return self.margin.stable_price

    def set_market(self, market: UnderlyingMarket, stable_price: int) -> dict[int, int]:
        """Install validated market data: the underlying's surface and index, the stable
        price (ppm, 0 = unchanged), and the option marks derived from it (returned)."""
        self.markets[market.underlying] = market
        self.set_index(market.underlying, market.index, market.ts)
        if stable_price:
            self.margin.set_stable_price(stable_price)
        delisted = self.delisted
        specs = [s for s in self.instruments.values()
                 if s.underlying == market.underlying and s.kind == Kind.OPTION and s.instrument_id not in delisted]
        marks = option_marks(market, specs)
        self.marks.update(marks)
        self.prices_moved = True
        return marks

    def set_index(self, underlying: str, index: int, ts: int) -> None:
        """Set an underlying's index and record the sample for the settlement TWAP
        (expiry.py): samples older than the TWAP window are dropped, except the last one
        before it (it gives the index at the window's start)."""
        self.index[underlying] = index
        self.prices_moved = True
        samples = self.index_samples.get(underlying)
        if samples is None:
            samples = self.index_samples[underlying] = []
        if samples and samples[-1][0] == ts:
            samples[-1] = (ts, index)
        else:
            samples.append((ts, index))
        start = ts - self.genesis.settlement_twap_ms
        cut = 0
        while cut + 1 < len(samples) and samples[cut + 1][0] <= start:
            cut += 1
        if cut:
            del samples[:cut]

    @property
    def fee_account(self) -> Account:
        return self.accounts[FEE_ACCOUNT]

    @property
    def insurance_fund(self) -> Account:
        return self.accounts[INSURANCE_FUND]

    def check_sequence(self, command: Command) -> None:
        """Raise SequenceError unless ``command`` is the next one (seq + 1, time not back)."""
        if command.seq != self.last_seq + 1:
            raise SequenceError(f"expected seq {self.last_seq + 1}, got {command.seq}")
        if command.ts < self.last_ts:
            raise SequenceError(f"timestamp {command.ts} before {self.last_ts}")

    # -- canonical form --------------------------------------------------------------
    def book_rows(self) -> dict[int, list[tuple]]:
        """Every book's resting orders as ``Order.canonical`` rows in priority order, by
        instrument id: the part of ``canonical`` and of snapshot.encode_snapshot that
        grows with the book. ``build_snapshot`` computes it once for both."""
        return {instrument_id: [o.canonical() for o in book.iter_orders()]
                for instrument_id, book in self.books.items()}

    def canonical(self, book_rows: dict[int, list[tuple]] | None = None) -> list:
        """The whole state as nested lists in a fixed order (sorted by id everywhere).
        ``book_rows``: ``self.book_rows()`` if the caller has it already."""
        accounts = []
        for account_id in sorted(self.accounts):
            a = self.accounts[account_id]
            accounts.append([
                a.account_id, a.owner, a.cash, int(a.margin_mode),
                [[i, *a.positions[i].canonical()] for i in sorted(a.positions)],
                sorted(a.orders),
            ])
        if book_rows is None:
            book_rows = self.book_rows()
        books = [[instrument_id, book_rows[instrument_id]] for instrument_id in sorted(self.books)]
        return [
            self.genesis.config_hash(), self.last_seq, self.last_ts,
            [msgspec.msgpack.encode(self.instruments[i]) for i in sorted(self.instruments)],
            sorted(self.marks.items()), sorted(self.index.items()),
            accounts, books, self.next_order_id, self.next_trade_id, self.last_deposit_id,
            self.total_deposits, self.total_withdrawals,
            [msgspec.msgpack.encode(self.markets[u]) for u in sorted(self.markets)], self.stable_price,
            sorted(self.oracle_last.items()), sorted(self.halted), sorted(self.mark_ema.items()),
            self.next_minute, self.next_hour, sorted(self.funding_index.items()),
            sorted(self.premium_samples.items()), sorted(self.index_samples.items()), sorted(self.delisted),
            sorted(self.forced_served), self.liquidation_second, sorted(self.liquidation_used.items()),
            sorted(self.last_trade.items()), [self.conditionals[i].canonical() for i in sorted(self.conditionals)],
            [self.twaps[i].canonical() for i in sorted(self.twaps)],
        ]


def state_hash(state: ExchangeState, book_rows: dict[int, list[tuple]] | None = None) -> str:
    """Hex SHA-256 of the canonical MessagePack encoding of the whole state.

    Same genesis and same commands ⇒ same hash on any machine (no dict-order or float
    dependence: every map is sorted, every number is an integer). ``book_rows``: the
    state's ``book_rows()`` if the caller has it already."""
    return hashlib.sha256(msgspec.msgpack.encode(state.canonical(book_rows))).hexdigest()


def apply(state: ExchangeState, command: Command) -> list[Event]:
    """Apply one sequenced command; the only way exchange state changes.

    Deterministic: no clock, no randomness, no I/O. A rejected command leaves the state
    exactly as it was (apart from the sequence number it consumed) and returns a single
    ``Rejected`` event with a stable ``ErrorCode``.

    Order of work: the clock's due work (clock.run_timers, including good-til-time expiries
    and TWAP intervals), the conditional-order pass over it (conditional.run_triggers), the
    command's handler, then the conditional-order pass over the handler's trades and price
    moves. Events come in that order.

    Raises
    ------
    SequenceError
        ``command.seq`` is not the next sequence number or its time goes backwards.
    KeyError
        Unknown command type.
    """
    ts = command.ts
    seq = command.seq
    if seq != state.last_seq + 1 or ts < state.last_ts:
        state.check_sequence(command)  # raises SequenceError on a gap, a replay or time going back
    handler = _HANDLERS[type(command)]  # one handler per command type, in its own module
    if ts >= state.next_timer:  # time-driven work first: funding, halts, marks, expiries, order timers (clock.py)
        trades = state.next_trade_id
        events = run_timers(state, ts, type(command) is OracleUpdate)
        if state.next_trade_id != trades or state.prices_moved or state.conditionals or state.twaps:
            run_triggers(state, ts, events, 0)  # conditional triggers, liquidations' cancels (conditional.py)
        start = len(events)
        trades = state.next_trade_id
        events += _handle(state, command, handler)
        if state.screen_due:  # a rejected OracleUpdate did not screen (clock.run_timers)
            screen(state, ts, events)
    else:
        start = 0
        trades = state.next_trade_id
        events = _handle(state, command, handler)
    if state.prices_moved or (state.next_trade_id != trades and (state.conditionals or state.twaps)):
        run_triggers(state, ts, events, start)  # conditional triggers after a price move or trades that may fire them
    state.last_seq = seq
    state.last_ts = ts
    return events


def _handle(state: ExchangeState, command: Command, handler: Callable[..., list[Event]]) -> list[Event]:
    """``handler(state, command)``, with the two commands of most of the traffic (PlaceOrder,
    CancelOrder) called by name: compiled (clearway/native.py), that is a direct C call
    instead of a call through the handler table's Python-level entry point."""
    if type(command) is PlaceOrder:
        return place_order(state, command)
    if type(command) is CancelOrder:
        return cancel_order(state, command)
    return handler(state, command)


from clearway.domain.clock import run_timers  # noqa: E402
from clearway.domain.conditional import run_triggers  # noqa: E402
from clearway.domain.liquidation import screen  # noqa: E402
from clearway.domain.handlers.admin import list_instrument, set_mark_prices  # noqa: E402
from clearway.domain.handlers.forced_withdrawal import forced_withdrawal  # noqa: E402
from clearway.domain.handlers.list_series import list_option_series  # noqa: E402
from clearway.domain.handlers.oracle_update import oracle_update  # noqa: E402
from clearway.domain.handlers.amend_order import amend_order  # noqa: E402
from clearway.domain.handlers.cancel_order import cancel_all, cancel_order, cancel_orders  # noqa: E402
from clearway.domain.handlers.funds import deposit, withdraw  # noqa: E402
from clearway.domain.handlers.margin_mode import set_margin_mode  # noqa: E402
from clearway.domain.handlers.market_data import set_market_data  # noqa: E402
from clearway.domain.handlers.place_order import place_order  # noqa: E402
from clearway.domain.handlers.place_twap import place_twap  # noqa: E402

_HANDLERS: dict[type, Callable[..., list[Event]]] = {  # each takes its own command type
    Deposit: deposit,
    Withdraw: withdraw,
    ListInstrument: list_instrument,
    SetMarkPrices: set_mark_prices,
    PlaceOrder: place_order,
    CancelOrder: cancel_order,
    CancelAll: cancel_all,
    AmendOrder: amend_order,
    SetMarketData: set_market_data,
    SetMarginMode: set_margin_mode,
    OracleUpdate: oracle_update,
    ForcedWithdrawal: forced_withdrawal,
    ListOptionSeries: list_option_series,
    PlaceTwap: place_twap,
    CancelOrders: cancel_orders,
}
