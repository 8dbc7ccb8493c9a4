"""Events: what a command did. ``apply`` returns them in the order things happened.

Events are immutable msgspec Structs with a type tag so engines can journal them or send
them to subscribers (JSON or MessagePack) without a mapping layer. Amounts use the domain
units (units.py).
"""

from __future__ import annotations

import msgspec

from clearway.domain.ids import AccountId, DepositId, InstrumentId, OrderId, TradeId
from clearway.domain.units import BaseAmount, Price, QuoteAmount
from clearway.domain.errors import ErrorCode

_OPTS = dict(frozen=True, tag_field="e")


class Rejected(msgspec.Struct, tag="rejected", **_OPTS):
    """The command changed nothing. ``code`` is stable (errors.ErrorCode)."""

    code: ErrorCode
    message: str
    account: AccountId = AccountId(-1)
    client_order_id: str = ""


class AccountCreated(msgspec.Struct, tag="account_created", **_OPTS):
    account: AccountId
    owner: str


class Deposited(msgspec.Struct, tag="deposited", **_OPTS):
    account: AccountId
    amount: QuoteAmount
    deposit_id: DepositId
    cash: QuoteAmount


class Withdrawn(msgspec.Struct, tag="withdrawn", **_OPTS):
    account: AccountId
    amount: QuoteAmount
    cash: QuoteAmount


class InstrumentListed(msgspec.Struct, tag="instrument_listed", **_OPTS):
    instrument: InstrumentId
    name: str


class PricesSet(msgspec.Struct, tag="prices_set", **_OPTS):
    index: dict[str, Price]
    marks: dict[InstrumentId, Price]


class OrderAccepted(msgspec.Struct, tag="order_accepted", **_OPTS):
    """An order passed validation and the risk check; trades and a possible
    ``OrderCancelled`` (IOC remainder) follow in the same event list. An order with
    remaining size and no cancel event rests in the book."""

    order_id: OrderId
    account: AccountId
    instrument: InstrumentId
    side: int
    price: Price
    size: BaseAmount
    tif: int
    post_only: bool
    reduce_only: bool
    client_order_id: str


class Trade(msgspec.Struct, tag="trade", **_OPTS):
    """One fill at the maker's price. Fees are signed (positive = paid by the account,
    negative = rebate received). ``taker_side`` is the aggressor's side (+1 buy)."""

    trade_id: TradeId
    instrument: InstrumentId
    price: Price
    size: BaseAmount
    taker_side: int
    maker_order_id: OrderId
    taker_order_id: OrderId
    maker_account: AccountId
    taker_account: AccountId
    maker_fee: QuoteAmount
    taker_fee: QuoteAmount


class OrderCancelled(msgspec.Struct, tag="order_cancelled", **_OPTS):
    """An order (or its unfilled remainder) left the book; reason: errors.CancelReason."""

    order_id: OrderId
    account: AccountId
    instrument: InstrumentId
    remaining: BaseAmount
    reason: int


class OrderAmended(msgspec.Struct, tag="order_amended", **_OPTS):
    """An open order's price or size changed. ``priority_kept`` tells whether it kept its
    place in the queue (size decrease only). Also used when a reduce-only order shrinks to
    the position."""

    order_id: OrderId
    account: AccountId
    instrument: InstrumentId
    price: Price
    size: BaseAmount
    remaining: BaseAmount
    priority_kept: bool


class MarketDataSet(msgspec.Struct, tag="market_data_set", **_OPTS):
    """New market data of ``underlying`` (index, stable price in ppm, number of expiries);
    ``marks`` are the option marks derived from it (micro-USDC per contract)."""

    underlying: str
    index: Price
    stable_price: int
    expiries: int
    marks: dict[InstrumentId, Price]


class MarginModeSet(msgspec.Struct, tag="margin_mode_set", **_OPTS):
    """``account`` is now margined in ``mode`` (accounts.MarginMode)."""

    account: AccountId
    mode: int


Event = (
    Rejected | AccountCreated | Deposited | Withdrawn | InstrumentListed | PricesSet
    | OrderAccepted | Trade | OrderCancelled | OrderAmended | MarketDataSet | MarginModeSet
)
