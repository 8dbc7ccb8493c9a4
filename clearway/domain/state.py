"""The exchange state and ``apply``, the only way it changes.

Read ``apply`` top to bottom to see where each command goes (STYLE.md). Deterministic: no
clock, no randomness, no I/O; a rejected command leaves the state exactly as it was and
returns a single ``Rejected`` event.
"""

from __future__ import annotations

import hashlib
from typing import Callable

import msgspec

from clearway.domain.accounts import Account
from clearway.domain.book import OrderBook
from clearway.domain.commands import (
    AmendOrder, CancelAll, CancelOrder, Command, Deposit, ListInstrument, PlaceOrder,
    SetMarginMode, SetMarketData, SetMarkPrices, Withdraw,
)
from clearway.domain.errors import SequenceError
from clearway.domain.events import Event
from clearway.domain.genesis import FEE_ACCOUNT, INSURANCE_FUND, GenesisConfig
from clearway.domain.health import Margin
from clearway.domain.instruments import InstrumentSpec, Kind
from clearway.domain.market import UnderlyingMarket, option_marks
from clearway.domain.orders import Order


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
        self.margin = Margin(
            self.marks, self.index, self.instruments,
            genesis.option_im_ppm, genesis.option_im_floor_ppm, genesis.option_mm_ppm, self.markets,
        )
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

    @property
    def stable_price(self) -> int:
        return self.margin.stable_price

    def set_market(self, market: UnderlyingMarket, stable_price: int) -> dict[int, int]:
        """Install validated market data: the underlying's surface and index, the stable
        price (ppm, 0 = unchanged), and the option marks derived from it (returned)."""
        self.markets[market.underlying] = market
        self.index[market.underlying] = market.index
        if stable_price:
            self.margin.set_stable_price(stable_price)
        specs = [s for s in self.instruments.values() if s.underlying == market.underlying and s.kind == Kind.OPTION]
        marks = option_marks(market, specs)
        self.marks.update(marks)
        return marks

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
    def canonical(self) -> list:
        """The whole state as nested lists in a fixed order (sorted by id everywhere)."""
        accounts = []
        for account_id in sorted(self.accounts):
            a = self.accounts[account_id]
            accounts.append([
                a.account_id, a.owner, a.cash, int(a.margin_mode),
                [[i, *a.positions[i].canonical()] for i in sorted(a.positions)],
                sorted(a.orders),
            ])
        books = []
        for instrument_id in sorted(self.books):
            books.append([instrument_id, [o.canonical() for o in self.books[instrument_id].iter_orders()]])
        return [
            self.genesis.config_hash(), self.last_seq, self.last_ts,
            [msgspec.msgpack.encode(self.instruments[i]) for i in sorted(self.instruments)],
            sorted(self.marks.items()), sorted(self.index.items()),
            accounts, books, self.next_order_id, self.next_trade_id, self.last_deposit_id,
            self.total_deposits, self.total_withdrawals,
            [msgspec.msgpack.encode(self.markets[u]) for u in sorted(self.markets)], self.stable_price,
        ]


def state_hash(state: ExchangeState) -> str:
    """Hex SHA-256 of the canonical MessagePack encoding of the whole state.

    Same genesis and same commands ⇒ same hash on any machine (no dict-order or float
    dependence: every map is sorted, every number is an integer)."""
    return hashlib.sha256(msgspec.msgpack.encode(state.canonical())).hexdigest()


def apply(state: ExchangeState, command: Command) -> list[Event]:
    """Apply one sequenced command; the only way exchange state changes.

    Deterministic: no clock, no randomness, no I/O. A rejected command leaves the state
    exactly as it was (apart from the sequence number it consumed) and returns a single
    ``Rejected`` event with a stable ``ErrorCode``.

    Raises
    ------
    SequenceError
        ``command.seq`` is not the next sequence number or its time goes backwards.
    KeyError
        Unknown command type.
    """
    if command.seq != state.last_seq + 1 or command.ts < state.last_ts:
        state.check_sequence(command)  # raises SequenceError on a gap, a replay or time going back
    handler = _HANDLERS[type(command)]  # one handler per command type, in its own module
    events = handler(state, command)
    state.last_seq = command.seq
    state.last_ts = command.ts
    return events


from clearway.domain.handlers.admin import list_instrument, set_mark_prices  # noqa: E402
from clearway.domain.handlers.amend_order import amend_order  # noqa: E402
from clearway.domain.handlers.cancel_order import cancel_all, cancel_order  # noqa: E402
from clearway.domain.handlers.funds import deposit, withdraw  # noqa: E402
from clearway.domain.handlers.margin_mode import set_margin_mode  # noqa: E402
from clearway.domain.handlers.market_data import set_market_data  # noqa: E402
from clearway.domain.handlers.place_order import place_order  # noqa: E402

_HANDLERS: dict[type, Callable[[ExchangeState, Command], list[Event]]] = {
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
}
