"""Commands: the only inputs of the state transition.

Every command is an immutable msgspec Struct that carries its sequence number ``seq``
(1, 2, 3, … with no gaps) and timestamp ``ts`` (ms since the epoch, UTC, non-decreasing),
both assigned by the sequencer. Time reaches the domain only this way.

Commands encode to compact MessagePack arrays tagged by type (``encode_command`` /
``decode_command``); the journal and the batch data use that encoding, so field order is a
wire format: append new fields at the end with defaults, never reorder.
"""

from __future__ import annotations

import msgspec

from clearway.domain.ids import AccountId, DepositId, InstrumentId, OrderId
from clearway.domain.units import BaseAmount, Price, QuoteAmount
from clearway.domain.instruments import InstrumentSpec
from clearway.domain.market import ExpiryData
from clearway.domain.oracle import OracleReport
from clearway.domain.orders import OrderType, TimeInForce

_OPTS = dict(frozen=True, array_like=True, tag_field="t")


class Deposit(msgspec.Struct, tag="dep", **_OPTS):
    """Credit ``amount`` micro-USDC to ``owner``'s account (created on first deposit).

    ``deposit_id`` is the vault's sequential id: deposits must arrive in order, each once.
    """

    seq: int
    ts: int
    owner: str
    amount: QuoteAmount
    deposit_id: DepositId


class Withdraw(msgspec.Struct, tag="wd", **_OPTS):
    """Debit ``amount`` micro-USDC for withdrawal on L1; needs free collateral ≥ amount."""

    seq: int
    ts: int
    account: AccountId
    amount: QuoteAmount


class ListInstrument(msgspec.Struct, tag="list", **_OPTS):
    """Operator command: list a new instrument; ``spec.instrument_id`` must be the next id."""

    seq: int
    ts: int
    spec: InstrumentSpec


class SetMarkPrices(msgspec.Struct, tag="mark", **_OPTS):
    """Operator price feed: index prices by underlying and mark prices by instrument id,
    micro-USDC per contract. The signed oracle (exchange-rules.md "Index, mark price and
    oracle") supersedes it; it remains for tests and tools that drive prices directly."""

    seq: int
    ts: int
    index: dict[str, Price]
    marks: dict[InstrumentId, Price]


class PlaceOrder(msgspec.Struct, tag="place", **_OPTS):
    """Place an order.

    side : +1 buy, −1 sell. size : lots. price : micro-USDC per contract (ignored for
    MARKET, whose limit is the protection price mark ± ``market_protection_ppm``, and for
    STOP_MARKET / TAKE_PROFIT_MARKET). order_type : orders.OrderType. tif :
    orders.TimeInForce. client_order_id : optional, unique among the account's open
    orders (resting, conditional and TWAP).

    Fields added by issue 9 (defaults = a plain order; README "Advanced order types"):

    trigger_price : micro-USDC per contract, > 0 and on the tick, for the conditional
        types (STOP_*, TAKE_PROFIT_*; conditional.py); must be 0 otherwise.
    trigger : orders.TriggerSource (1 mark, 2 index, 3 last trade) for the conditional
        types; 0 otherwise.
    display_size : iceberg display size in lots (0 = show everything); a resting (GTC)
        limit order only, ≤ size, on the size increment, ≥ the minimum size.
    expire_at : good-til-time, ms since the epoch (0 = none); a resting (GTC) order is
        cancelled (CancelReason.GOOD_TIL_TIME) at the first command with ts ≥ expire_at;
        also bounds an untriggered conditional order.
    """

    seq: int
    ts: int
    account: AccountId
    instrument: InstrumentId
    side: int
    size: BaseAmount
    price: Price
    order_type: int = OrderType.LIMIT
    tif: int = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    client_order_id: str = ""
    trigger_price: Price = Price(0)
    trigger: int = 0
    display_size: BaseAmount = BaseAmount(0)
    expire_at: int = 0


class PlaceTwap(msgspec.Struct, tag="twap", **_OPTS):
    """Place a TWAP (time-weighted average price) parent order (twap.py).

    side : +1 buy, −1 sell. size : total lots. duration_ms / interval_ms : 30 s ≤ interval
    ≤ 1 h, 5 min ≤ duration ≤ 24 h, duration a multiple of the interval (dYdX v4's
    TwapParameters bounds). price_tolerance_ppm : 0 … 999,999; each IOC suborder is priced
    at the mark × (1 ± tolerance) (rounded to the tick toward the mark) unless
    ``limit_price`` (> 0, on the tick) is given, which is then every suborder's price.
    The parent gets an order id; ``CancelOrder`` / ``CancelOrders`` / ``CancelAll`` stop it.
    """

    seq: int
    ts: int
    account: AccountId
    instrument: InstrumentId
    side: int
    size: BaseAmount
    duration_ms: int
    interval_ms: int
    price_tolerance_ppm: int = 0
    limit_price: Price = Price(0)
    reduce_only: bool = False
    client_order_id: str = ""


class CancelOrders(msgspec.Struct, tag="cancel_orders", **_OPTS):
    """Cancel up to 100 open orders (resting, conditional or TWAP parents) of ``account`` by
    order id, in the given order. Rejected as a whole (nothing cancelled) when the list is
    empty, longer than 100, holds an id twice or an id ≤ 0; otherwise each id that is not
    an open order of the account gets a ``CancelFailed`` event and the others are
    cancelled (handlers/cancel_order.py)."""

    seq: int
    ts: int
    account: AccountId
    order_ids: tuple[OrderId, ...]


class CancelOrder(msgspec.Struct, tag="cancel", **_OPTS):
    """Cancel one open order by ``order_id`` (if non-zero) or else by ``client_order_id``."""

    seq: int
    ts: int
    account: AccountId
    order_id: OrderId = OrderId(0)
    client_order_id: str = ""


class CancelAll(msgspec.Struct, tag="cancel_all", **_OPTS):
    """Cancel all open orders of ``account``, in one instrument or (``instrument`` = −1) all."""

    seq: int
    ts: int
    account: AccountId
    instrument: InstrumentId = InstrumentId(-1)


class AmendOrder(msgspec.Struct, tag="amend", **_OPTS):
    """Change an open order's total ``size`` (lots, > filled) and/or ``price``.

    A size decrease at the same price keeps time priority; a price change or a size
    increase re-enters the order at the back of the queue (and it may trade).
    """

    seq: int
    ts: int
    account: AccountId
    order_id: OrderId
    size: BaseAmount
    price: Price


class SetMarketData(msgspec.Struct, tag="market", **_OPTS):
    """Operator market data of one underlying (the signed oracle of issue 4 will write the
    same state): index price (micro-USDC), stable price (USD per USDC in ppm; 0 leaves it
    unchanged) and the whole volatility surface, one ``ExpiryData`` per expiry (forward,
    rate, raw SVI; market.py). Replaces the underlying's previous surface; every listed
    option of the underlying that has not expired must have its expiry in it. Option marks
    are recomputed from it (exchange-rules.md "Option marks")."""

    seq: int
    ts: int
    underlying: str
    index: Price
    stable_price: int
    expiries: list[ExpiryData]


class SetMarginMode(msgspec.Struct, tag="margin_mode", **_OPTS):
    """Switch ``account`` to ``mode`` (accounts.MarginMode: 1 standard, 2 portfolio);
    accepted only if the account satisfies initial margin in the new mode."""

    seq: int
    ts: int
    account: AccountId
    mode: int


class OracleUpdate(msgspec.Struct, tag="oracle", **_OPTS):
    """Signed oracle reports of one underlying (exchange-rules.md "Index, mark price and
    oracle"; oracle.py): index, USDC/USD and per-expiry forward, rate and SVI surface, one
    report per reporter. Accepted when ``GenesisConfig.oracle_quorum`` distinct reporters
    pass every check; the medians become the underlying's market data, the perp marks and
    option marks are recomputed, and liquidations are screened. The sequencer relays the
    reports as the reporters signed them; it cannot alter a price without breaking a
    signature."""

    seq: int
    ts: int
    underlying: str
    reports: tuple[OracleReport, ...]


class ForcedWithdrawal(msgspec.Struct, tag="forced_wd", **_OPTS):
    """Serve the vault's forced-withdrawal request ``request_id`` of ``owner`` (an L1
    address): pay min(``amount``, free collateral ≥ 0) micro-USDC from the owner's account.
    Always served once (possibly with 0); a request id seen before is rejected."""

    seq: int
    ts: int
    request_id: int
    owner: str
    amount: QuoteAmount


class ListOptionSeries(msgspec.Struct, tag="list_series", **_OPTS):
    """Operator command: list calls and puts of one expiry on a strike grid around the
    forward (exchange-rules.md "Option expiry and netting": new expiries by operator command).

    Strikes: K₀ = the expiry's forward (or the index when the surface has no such expiry
    yet) rounded to the nearest multiple of ``strike_step``; K₀ + i·strike_step for
    i = −strikes_each_side … +strikes_each_side, positive ones only. Strikes already listed
    are skipped. ``expiry_ms`` must be in the future and at 08:00 UTC. The remaining
    fields are those of ``InstrumentSpec`` (ids are assigned in order: strikes ascending,
    call before put)."""

    seq: int
    ts: int
    underlying: str
    expiry_ms: int
    strike_step: Price
    strikes_each_side: int
    tick_size: Price
    size_decimals: int
    size_increment: BaseAmount
    min_size: BaseAmount
    maker_fee_ppm: int
    taker_fee_ppm: int


Command = (
    Deposit | Withdraw | ListInstrument | SetMarkPrices | PlaceOrder | CancelOrder | CancelAll | AmendOrder
    | SetMarketData | SetMarginMode | OracleUpdate | ForcedWithdrawal | ListOptionSeries | PlaceTwap | CancelOrders
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Command)


def encode_command(command: Command) -> bytes:
    """MessagePack bytes of one command (array form, first element the type tag)."""
    return _encoder.encode(command)


def decode_command(data: bytes) -> Command:
    """Inverse of ``encode_command``. Raises ``msgspec.ValidationError`` or
    ``msgspec.DecodeError`` on anything that is not exactly one valid command."""
    return _decoder.decode(data)
