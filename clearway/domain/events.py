"""Events: what a command did. ``apply`` returns them in the order things happened.

Events are immutable msgspec Structs with a type tag so engines can journal them or send
them to subscribers (JSON or MessagePack) without a mapping layer. Amounts use the domain
units (units.py).
"""

from __future__ import annotations

import msgspec

from clearway.domain.ids import AccountId, DepositId, InstrumentId, OrderId, TradeId
from clearway.domain.instruments import InstrumentSpec
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
    """A new instrument (ListInstrument, or one strike of ListOptionSeries, which computes
    the specs: ``spec`` carries it to readers of the events, e.g. the API's read model)."""

    instrument: InstrumentId
    name: str
    spec: InstrumentSpec | None = None


class PricesSet(msgspec.Struct, tag="prices_set", **_OPTS):
    index: dict[str, Price]
    marks: dict[InstrumentId, Price]


class OrderAccepted(msgspec.Struct, tag="order_accepted", **_OPTS):
    """An order passed validation and the risk check; trades and a possible
    ``OrderCancelled`` (IOC remainder) follow in the same event list. An order with
    remaining size and no cancel event rests in the book.

    ``display_size`` > 0: an iceberg; only min(display_size, remaining) is visible in the
    book, and each refill is an ``IcebergRefilled`` event. ``expire_at`` > 0: good-til-time
    (ms). A triggered conditional order is accepted under its own (conditional) order id,
    right after its ``OrderTriggered``."""

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
    display_size: BaseAmount = BaseAmount(0)
    expire_at: int = 0


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


class OracleReportRejected(msgspec.Struct, tag="oracle_report_rejected", **_OPTS):
    """Report number ``position`` of an oracle update did not count (``code``: ORACLE_*).
    The update itself may still be accepted (quorum of the others)."""

    underlying: str
    position: int
    reporter: str
    code: ErrorCode


class OracleUpdated(msgspec.Struct, tag="oracle_updated", **_OPTS):
    """An oracle update was accepted: the median ``index`` (micro-USDC), ``stable_price``
    (ppm; 0 = unchanged), the number of expiries in the surface, the reporters that
    counted, and the marks it set (perps and options, micro-USDC per contract)."""

    underlying: str
    index: Price
    stable_price: int
    expiries: int
    reporters: list[str]
    marks: dict[InstrumentId, Price]


class MarketHalted(msgspec.Struct, tag="market_halted", **_OPTS):
    """No accepted oracle update of ``underlying`` since ``last_update_ts`` for longer than
    ``halt_after_ms``: only cancels and risk-reducing orders, no liquidations."""

    underlying: str
    last_update_ts: int


class MarketResumed(msgspec.Struct, tag="market_resumed", **_OPTS):
    """A valid oracle update ended the halt of ``underlying``."""

    underlying: str


class MarksUpdated(msgspec.Struct, tag="marks_updated", **_OPTS):
    """Perp marks moved by the clock (the EMA of mid − index advanced), micro-USDC."""

    marks: dict[InstrumentId, Price]


class FundingTick(msgspec.Struct, tag="funding_tick", **_OPTS):
    """Hourly funding of a perpetual: ``rate_8h`` (10⁻¹² units, funding.RATE_SCALE) from
    ``samples`` premium samples, ``index_price`` used, and the new cumulative
    ``funding_index`` (10⁻¹² USDC per contract; longs pay when it rises)."""

    instrument: InstrumentId
    ts: int
    rate_8h: int
    index_price: Price
    funding_index: int
    samples: int


class FundingPaid(msgspec.Struct, tag="funding_paid", **_OPTS):
    """Settlement of a position's funding — for every position of the perpetual at each
    funding tick (funding_engine.settle_instrument), or before a size change of a position
    left behind: ``amount`` micro-USDC to the account (negative: paid by it), the fee account
    being the counterparty; ``funding_index`` is the index the position is now settled to."""

    account: AccountId
    instrument: InstrumentId
    amount: QuoteAmount
    funding_index: int


class LiquidationStarted(msgspec.Struct, tag="liquidation_started", **_OPTS):
    """``account`` is liquidatable: equity < maintenance margin (both micro-USDC)."""

    account: AccountId
    equity: QuoteAmount
    maintenance_margin: QuoteAmount


class LiquidationFill(msgspec.Struct, tag="liquidation_fill", **_OPTS):
    """One fill of a liquidation order against the book (the ``Trade`` with ``trade_id``
    precedes it; it pays no taker fee). ``side`` +1 buys back a short. ``limit_price`` is
    the fillable price (perps) or mark ± penalty (options); ``quote`` is the cash the
    account received (negative: paid), ``bankruptcy_quote`` the quote that would have left
    its equity/MMR ratio unchanged at zero equity; ``fee`` went to the insurance fund,
    ``insurance_payout`` came from it. All micro-USDC."""

    account: AccountId
    instrument: InstrumentId
    trade_id: TradeId
    side: int
    size: BaseAmount
    price: Price
    limit_price: Price
    quote: QuoteAmount
    bankruptcy_quote: QuoteAmount
    fee: QuoteAmount
    insurance_payout: QuoteAmount


class BackstopTransfer(msgspec.Struct, tag="backstop_transfer", **_OPTS):
    """What the book could not absorb of an option position moved to the insurance fund
    (the backstop account) at ``price`` (mark ± penalty); amounts as ``LiquidationFill``."""

    account: AccountId
    instrument: InstrumentId
    side: int
    size: BaseAmount
    price: Price
    quote: QuoteAmount
    bankruptcy_quote: QuoteAmount
    fee: QuoteAmount
    insurance_payout: QuoteAmount


class Deleveraged(msgspec.Struct, tag="deleveraged", **_OPTS):
    """Auto-deleveraging: ``size`` lots of the bankrupt ``account``'s position closed
    against ``counterparty``'s opposite position at the bankruptcy price. ``side`` is the
    bankrupt account's (+1 it bought); ``quote`` the cash it received (negative: paid) and
    the counterparty paid; ``price`` = |quote| per contract, rounded down (reporting)."""

    instrument: InstrumentId
    account: AccountId
    counterparty: AccountId
    side: int
    size: BaseAmount
    price: Price
    quote: QuoteAmount


class DeleveragingBlocked(msgspec.Struct, tag="deleveraging_blocked", **_OPTS):
    """Auto-deleveraging could not close ``size`` lots of the bankrupt ``account``'s
    position in ``instrument``: every opposite position belongs to an account that would be
    left with a negative net value (deleveraging.py, "Counterparties"). The account keeps
    the position and its negative equity; it stays liquidatable and every later detection
    tries again (exchange-rules.md "Liquidation, insurance fund, deleveraging", step 5)."""

    account: AccountId
    instrument: InstrumentId
    size: BaseAmount


class InsuranceCovered(msgspec.Struct, tag="insurance_covered", **_OPTS):
    """The insurance fund paid ``amount`` micro-USDC into a liquidated account to cover its
    negative equity (or a debt left without positions)."""

    account: AccountId
    amount: QuoteAmount


class LiquidationEnded(msgspec.Struct, tag="liquidation_ended", **_OPTS):
    """End of a liquidation pass over ``account``; ``liquidatable`` when it still is
    (no liquidity within the limits, or the per-second cap): later updates continue it."""

    account: AccountId
    equity: QuoteAmount
    maintenance_margin: QuoteAmount
    liquidatable: bool


class OptionsExpired(msgspec.Struct, tag="options_expired", **_OPTS):
    """The options ``instruments`` of (``underlying``, ``expiry_ms``) expired at
    ``settlement_price`` (index TWAP, micro-USDC) and are delisted; ``residue`` micro-USDC
    of rounding went to the fee account so that the expiry's cash changes sum to zero."""

    underlying: str
    expiry_ms: int
    settlement_price: Price
    instruments: list[InstrumentId]
    residue: QuoteAmount


class ExpiryPayoff(msgspec.Struct, tag="expiry_payoff", **_OPTS):
    """The netted cash change of ``account`` from all its positions of one expiry."""

    account: AccountId
    expiry_ms: int
    amount: QuoteAmount
    cash: QuoteAmount


class ForcedWithdrawalServed(msgspec.Struct, tag="forced_withdrawal_served", **_OPTS):
    """Forced-withdrawal request ``request_id`` served: ``paid`` ≤ ``requested`` micro-USDC
    left ``account`` (−1 when the owner has none) for payment on L1."""

    request_id: int
    account: AccountId
    requested: QuoteAmount
    paid: QuoteAmount


class ConditionalAccepted(msgspec.Struct, tag="conditional_accepted", **_OPTS):
    """A conditional order (stop / take-profit; conditional.py) is waiting for its trigger.
    It is not in the book and reserves no margin. ``order_type``: orders.OrderType (3–6);
    ``price``: the limit of the *_LIMIT types (0 for the *_MARKET types); ``trigger``:
    orders.TriggerSource; ``trigger_price`` micro-USDC per contract."""

    order_id: OrderId
    account: AccountId
    instrument: InstrumentId
    side: int
    order_type: int
    size: BaseAmount
    price: Price
    trigger: int
    trigger_price: Price
    tif: int
    post_only: bool
    reduce_only: bool
    client_order_id: str
    display_size: BaseAmount
    expire_at: int


class OrderTriggered(msgspec.Struct, tag="order_triggered", **_OPTS):
    """Conditional order ``order_id`` fired: its trigger source (``trigger``) reached
    ``trigger_price``; ``price`` is the source's price that fired it (for the last-trade
    source, the extreme trade price of the command step). Followed by either the
    ``OrderAccepted`` of the order entering the book (same order id) and its trades, or a
    ``TriggerRejected``."""

    order_id: OrderId
    account: AccountId
    instrument: InstrumentId
    trigger: int
    trigger_price: Price
    price: Price


class TriggerRejected(msgspec.Struct, tag="trigger_rejected", **_OPTS):
    """The order of a fired conditional was rejected when it entered the book (``code``:
    the ErrorCode its placement returned, e.g. INSUFFICIENT_MARGIN,
    REDUCE_ONLY_WOULD_INCREASE, POST_ONLY_WOULD_CROSS, MARKET_HALTED). The conditional is
    gone; nothing else changed."""

    order_id: OrderId
    account: AccountId
    instrument: InstrumentId
    code: ErrorCode
    message: str


class IcebergRefilled(msgspec.Struct, tag="iceberg_refilled", **_OPTS):
    """Iceberg ``order_id``'s displayed slice was used up and refilled with ``shown`` lots
    at the back of its price level's queue; ``remaining`` (lots) includes the hidden size."""

    order_id: OrderId
    account: AccountId
    instrument: InstrumentId
    side: int
    price: Price
    shown: BaseAmount
    remaining: BaseAmount


class TwapAccepted(msgspec.Struct, tag="twap_accepted", **_OPTS):
    """A TWAP parent order (twap.py) was accepted: ``intervals`` = duration / interval IOC
    suborders, the first at once, then one every ``interval_ms``."""

    order_id: OrderId
    account: AccountId
    instrument: InstrumentId
    side: int
    size: BaseAmount
    duration_ms: int
    interval_ms: int
    price_tolerance_ppm: int
    limit_price: Price
    reduce_only: bool
    client_order_id: str
    intervals: int


class TwapProgress(msgspec.Struct, tag="twap_progress", **_OPTS):
    """One interval of TWAP parent ``order_id``: suborder ``suborder_id`` of
    ``suborder_size`` lots at ``price`` (its OrderAccepted, trades and IOC remainder cancel
    precede this event), or — ``code`` ≠ 0, ``suborder_id`` 0 — the suborder was rejected
    with that ErrorCode and skipped. ``filled`` / ``remaining``: the parent's totals after
    it (lots); ``intervals_left`` after this one."""

    order_id: OrderId
    account: AccountId
    instrument: InstrumentId
    suborder_id: OrderId
    suborder_size: BaseAmount
    price: Price
    filled: BaseAmount
    remaining: BaseAmount
    intervals_left: int
    code: int


class TwapEnded(msgspec.Struct, tag="twap_ended", **_OPTS):
    """TWAP parent ``order_id`` is done: ``reason`` (errors.CancelReason) TWAP_COMPLETED,
    TWAP_ELAPSED, TWAP_BELOW_MINIMUM, or a cancellation (REQUESTED, CANCEL_ALL,
    REDUCE_ONLY_NO_POSITION, LIQUIDATION, EXPIRED)."""

    order_id: OrderId
    account: AccountId
    instrument: InstrumentId
    filled: BaseAmount
    remaining: BaseAmount
    reason: int


class CancelFailed(msgspec.Struct, tag="cancel_failed", **_OPTS):
    """One id of a ``CancelOrders`` batch was not cancelled: ``code`` UNKNOWN_ORDER (no
    open order with this id) or NOT_ORDER_OWNER. The other ids are unaffected."""

    order_id: OrderId
    account: AccountId
    code: ErrorCode


Event = (
    Rejected | AccountCreated | Deposited | Withdrawn | InstrumentListed | PricesSet
    | OrderAccepted | Trade | OrderCancelled | OrderAmended | MarketDataSet | MarginModeSet
    | OracleReportRejected | OracleUpdated | MarketHalted | MarketResumed | MarksUpdated | FundingTick
    | FundingPaid | LiquidationStarted | LiquidationFill | BackstopTransfer | Deleveraged | DeleveragingBlocked
    | InsuranceCovered | LiquidationEnded | OptionsExpired | ExpiryPayoff | ForcedWithdrawalServed
    | ConditionalAccepted | OrderTriggered | TriggerRejected | IcebergRefilled | TwapAccepted | TwapProgress
    | TwapEnded | CancelFailed
)
