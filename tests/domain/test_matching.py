"""Order placement and matching through apply(): priority, prices, time in force, STP."""

from __future__ import annotations

from clearway.domain.errors import CancelReason, ErrorCode
from clearway.domain.events import OrderAccepted, OrderCancelled, Rejected, Trade
from clearway.domain.orders import BUY, SELL, OrderType, TimeInForce
from support import BTC, Exchange, kinds, usd


def trades(events) -> list[Trade]:
    return [e for e in events if isinstance(e, Trade)]


def test_resting_order_then_crossing_order_trades_at_the_maker_price(exchange):
    exchange.place(2, SELL, BTC, usd(25_000))
    events = exchange.place(3, BUY, BTC // 2, usd(25_100))
    assert kinds(events) == ["OrderAccepted", "Trade"]
    (trade,) = trades(events)
    assert (trade.price, trade.size, trade.taker_side) == (usd(25_000), BTC // 2, BUY)
    assert exchange.position(3) == BTC // 2 and exchange.position(2) == -BTC // 2


def test_price_priority_better_price_fills_first(exchange):
    c = exchange.deposit(0xC3, usd(1_000_000))
    exchange.place(2, SELL, BTC, usd(25_010))
    exchange.place(c, SELL, BTC, usd(25_000))
    events = exchange.place(3, BUY, BTC, usd(25_010))
    assert [t.maker_account for t in trades(events)] == [c]


def test_time_priority_within_a_level_is_fifo(exchange):
    c = exchange.deposit(0xC3, usd(1_000_000))
    exchange.place(c, SELL, BTC, usd(25_000))
    exchange.place(2, SELL, BTC, usd(25_000))
    events = exchange.place(3, BUY, BTC + BTC // 2, usd(25_000))
    assert [(t.maker_account, t.size) for t in trades(events)] == [(c, BTC), (2, BTC // 2)]


def test_sweep_of_several_levels_trades_each_at_its_own_price(exchange):
    exchange.place(2, SELL, BTC, usd(25_000))
    exchange.place(2, SELL, BTC, usd(25_001))
    events = exchange.place(3, BUY, 2 * BTC, usd(25_001))
    assert [t.price for t in trades(events)] == [usd(25_000), usd(25_001)]


def test_ioc_remainder_is_cancelled_and_nothing_rests(exchange):
    exchange.place(2, SELL, BTC, usd(25_000))
    events = exchange.place(3, BUY, 2 * BTC, usd(25_000), tif=TimeInForce.IOC)
    assert kinds(events) == ["OrderAccepted", "Trade", "OrderCancelled"]
    assert events[-1].remaining == BTC and events[-1].reason == CancelReason.IOC_REMAINDER
    assert exchange.state.books[0].best_bid() is None


def test_fok_that_cannot_fill_completely_is_rejected_and_changes_nothing(exchange):
    exchange.place(2, SELL, BTC, usd(25_000))
    before = _hash_without_seq(exchange)
    events = exchange.place(3, BUY, 2 * BTC, usd(25_000), tif=TimeInForce.FOK)
    assert len(events) == 1 and events[0].code == ErrorCode.FILL_OR_KILL_NOT_FILLED
    assert _hash_without_seq(exchange) == before


def test_fok_that_can_fill_fills_completely(exchange):
    exchange.place(2, SELL, BTC, usd(25_000))
    exchange.place(2, SELL, BTC, usd(25_001))
    events = exchange.place(3, BUY, 2 * BTC, usd(25_001), tif=TimeInForce.FOK)
    assert sum(t.size for t in trades(events)) == 2 * BTC


def test_fok_does_not_count_own_resting_orders_as_liquidity(exchange):
    exchange.place(3, SELL, BTC, usd(25_000))
    exchange.place(2, SELL, BTC, usd(25_001))
    events = exchange.place(3, BUY, 2 * BTC, usd(25_001), tif=TimeInForce.FOK)
    assert events[0].code == ErrorCode.FILL_OR_KILL_NOT_FILLED
    assert len(exchange.state.books[0].levels(SELL)) == 2  # the own order was not cancelled


def test_post_only_that_would_cross_is_rejected_and_changes_nothing(exchange):
    exchange.place(2, SELL, BTC, usd(25_000))
    before = _hash_without_seq(exchange)
    events = exchange.place(3, BUY, BTC, usd(25_000), post_only=True)
    assert events == [Rejected(ErrorCode.POST_ONLY_WOULD_CROSS, events[0].message, 3, "")]
    assert _hash_without_seq(exchange) == before


def test_post_only_that_does_not_cross_rests(exchange):
    events = exchange.place(3, BUY, BTC, usd(24_999), post_only=True)
    assert kinds(events) == ["OrderAccepted"]
    assert exchange.state.books[0].best_bid() == usd(24_999)


def test_self_trade_prevention_cancels_the_resting_order_without_a_trade_or_fee(exchange):
    exchange.place(2, SELL, BTC, usd(25_000))
    fee_before = exchange.cash(0)
    events = exchange.place(2, BUY, BTC, usd(25_000))
    assert kinds(events) == ["OrderAccepted", "OrderCancelled"]
    assert events[1].reason == CancelReason.SELF_TRADE
    assert exchange.cash(0) == fee_before
    assert exchange.state.books[0].best_bid() == usd(25_000)  # the taker rests


def test_self_trade_prevention_continues_to_other_makers(exchange):
    exchange.place(2, SELL, BTC, usd(25_000))
    exchange.place(3, SELL, BTC, usd(25_000))
    events = exchange.place(2, BUY, BTC, usd(25_000))
    assert kinds(events) == ["OrderAccepted", "OrderCancelled", "Trade"]
    assert trades(events)[0].maker_account == 3


def test_market_order_trades_within_the_protection_price_and_cancels_the_rest(exchange):
    exchange.place(2, SELL, BTC, usd(25_000))
    exchange.place(2, SELL, BTC, usd(26_300))  # beyond mark + 5% = 26,250
    events = exchange.place(3, BUY, 2 * BTC, order_type=OrderType.MARKET)
    assert [t.price for t in trades(events)] == [usd(25_000)]
    assert isinstance(events[-1], OrderCancelled) and events[-1].remaining == BTC
    accepted = events[0]
    assert isinstance(accepted, OrderAccepted) and accepted.price == usd(26_250)


def test_fees_maker_rebate_and_taker_fee_go_through_the_fee_account(exchange):
    exchange.place(2, SELL, BTC, usd(25_000))
    events = exchange.place(3, BUY, BTC, usd(25_000))
    (trade,) = trades(events)
    # notional 25,000 USDC: taker 5 bp = 12.5 USDC, maker −1 bp = −2.5 USDC (rebate)
    assert trade.taker_fee == usd(12.5) and trade.maker_fee == -usd(2.5)
    assert exchange.cash(0) == usd(10)
    assert exchange.cash(3) == usd(1_000_000) - usd(25_000) - usd(12.5)
    assert exchange.cash(2) == usd(1_000_000) + usd(25_000) + usd(2.5)


def test_fee_rounding_charges_round_up_and_rebates_round_down():
    from clearway.domain.units import fee_amount
    assert fee_amount(3, 500_000) == 2      # 1.5 paid → 2
    assert fee_amount(3, -500_000) == -1    # 1.5 received → 1
    assert fee_amount(1, 1) == 1            # any positive fee is at least one micro-USDC


def test_cancel_by_id_and_by_client_order_id(exchange):
    exchange.place(2, SELL, BTC, usd(25_000), client_order_id="a")
    exchange.place(2, SELL, BTC, usd(25_001))
    assert kinds(exchange.cancel(2, client_order_id="a")) == ["OrderCancelled"]
    assert kinds(exchange.cancel(2, order_id=2)) == ["OrderCancelled"]
    assert exchange.state.books[0].best_ask() is None
    assert exchange.state.accounts[2].open == {}


def test_cancel_of_another_accounts_order_is_rejected(exchange):
    exchange.place(2, SELL, BTC, usd(25_000))
    assert exchange.cancel(3, order_id=1)[0].code == ErrorCode.NOT_ORDER_OWNER
    assert exchange.cancel(3, order_id=99)[0].code == ErrorCode.UNKNOWN_ORDER


def test_cancel_all_per_instrument_and_for_the_account(exchange):
    from clearway.domain.commands import ListInstrument
    from support import perp_spec
    from clearway.domain.instruments import InstrumentSpec
    spec = perp_spec(1)
    spec = InstrumentSpec(**{**{f: getattr(spec, f) for f in spec.__struct_fields__}, "underlying": "ETH"})
    assert kinds(exchange.run(ListInstrument, spec=spec)) == ["InstrumentListed"]
    exchange.run(__import__("clearway.domain.commands", fromlist=["SetMarkPrices"]).SetMarkPrices,
                 index={"ETH": usd(1_500)}, marks={1: usd(1_500)})
    exchange.place(2, SELL, BTC, usd(25_000))
    exchange.place(2, SELL, BTC, usd(1_600), instrument=1)
    exchange.place(2, BUY, BTC, usd(1_400), instrument=1)
    events = exchange.cancel_all(2, instrument=1)
    assert kinds(events) == ["OrderCancelled", "OrderCancelled"]
    assert len(exchange.state.accounts[2].orders) == 1
    assert kinds(exchange.cancel_all(2)) == ["OrderCancelled"]
    assert exchange.cancel_all(2) == []


def test_duplicate_client_order_id_is_rejected_while_the_first_is_open(exchange):
    exchange.place(2, SELL, BTC, usd(25_000), client_order_id="x")
    assert exchange.place(2, SELL, BTC, usd(25_001), client_order_id="x")[0].code == ErrorCode.DUPLICATE_CLIENT_ORDER_ID
    exchange.cancel(2, client_order_id="x")
    assert kinds(exchange.place(2, SELL, BTC, usd(25_001), client_order_id="x")) == ["OrderAccepted"]


def _hash_without_seq(exchange: Exchange) -> str:
    """State hash ignoring the sequence number and clock (which every command advances)."""
    state = exchange.state
    seq, ts = state.last_seq, state.last_ts
    state.last_seq = state.last_ts = 0
    try:
        return exchange.hash()
    finally:
        state.last_seq, state.last_ts = seq, ts
