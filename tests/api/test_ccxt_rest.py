"""Unmodified ccxt (sync) against the API on loopback: markets, market data, balances,
orders of every kind, trades, positions, and the error mapping to ccxt's exceptions."""

from __future__ import annotations

import ccxt
import pytest

from api_support import MID, PERP_SYMBOL, USDC

OPTION_SYMBOL = "BTC/USDC:USDC-230331-65000-C"


def test_load_markets_lists_linear_usdc_perpetual_and_option(harness):
    ex = harness.ccxt()
    markets = ex.load_markets()
    perp = markets[PERP_SYMBOL]
    assert perp["id"] == "BTC_USDC-PERPETUAL" and perp["swap"] and perp["linear"] and perp["settle"] == "USDC"
    assert perp["precision"] == {"amount": 0.0001, "price": 0.1}
    option = markets[OPTION_SYMBOL]
    assert option["id"] == "BTC_USDC-31MAR23-65000-C" and option["option"] and option["strike"] == 65000
    assert option["optionType"] == "call" and option["linear"]


def test_limit_post_only_rests_and_shows_in_book_ticker_and_open_orders(harness):
    _, key = harness.account()
    ex = harness.ccxt(key)
    order = ex.create_order(PERP_SYMBOL, "limit", "buy", 0.25, 59_000.5, {"postOnly": True})
    assert order["status"] == "open" and order["amount"] == 0.25 and order["price"] == 59_000.5
    assert order["postOnly"] is True
    ticker = ex.fetch_ticker(PERP_SYMBOL)
    assert ticker["markPrice"] == MID / USDC and ticker["bid"] >= 59_000.5
    book = ex.fetch_order_book(PERP_SYMBOL, 1000)
    bids, asks = harness.book()
    assert book["bids"] == bids and book["asks"] == asks
    assert [o["id"] for o in ex.fetch_open_orders(PERP_SYMBOL)] == [order["id"]]
    assert ex.fetch_order(order["id"])["status"] == "open"
    ex.cancel_order(order["id"])


def test_post_only_that_would_cross_raises_invalid_order_and_changes_nothing(harness):
    _, maker_key = harness.account()
    _, key = harness.account()
    maker = harness.ccxt(maker_key)
    resting = maker.create_order(PERP_SYMBOL, "limit", "sell", 0.1, 60_100)
    before = harness.state_hash()
    with pytest.raises(ccxt.InvalidOrder, match="11054"):
        harness.ccxt(key).create_order(PERP_SYMBOL, "limit", "buy", 0.1, 60_100, {"postOnly": True})
    # a rejected command consumes a sequence number and nothing else
    assert harness.book()[1][0] == [60_100.0, 0.1]
    assert before != harness.state_hash()  # seq advanced
    maker.cancel_order(resting["id"])


def test_ioc_fills_what_it_can_and_cancels_the_rest_then_trades_and_positions_show_it(harness):
    _, maker_key = harness.account()
    _, taker_key = harness.account()
    maker, taker = harness.ccxt(maker_key), harness.ccxt(taker_key)
    maker.create_order(PERP_SYMBOL, "limit", "sell", 0.3, 60_200)
    order = taker.create_order(PERP_SYMBOL, "limit", "buy", 0.5, 60_200, {"timeInForce": "IOC"})
    assert order["status"] == "canceled" and order["filled"] == 0.3 and order["average"] == 60_200
    assert order["trades"] and order["trades"][0]["amount"] == 0.3
    trades = taker.fetch_my_trades(PERP_SYMBOL)
    assert [(t["side"], t["amount"], t["price"], t["takerOrMaker"]) for t in trades] == [("buy", 0.3, 60_200, "taker")]
    assert trades[0]["fee"]["cost"] == pytest.approx(0.3 * 60_200 * 0.0005)
    maker_trades = maker.fetch_my_trades(PERP_SYMBOL)
    assert [(t["side"], t["takerOrMaker"]) for t in maker_trades] == [("sell", "maker")]
    positions = taker.fetch_positions([PERP_SYMBOL])
    assert [(p["symbol"], p["contracts"], p["side"]) for p in positions] == [(PERP_SYMBOL, 0.3, "long")]
    assert maker.fetch_positions()[0]["side"] == "short"
    balance = taker.fetch_balance()
    assert balance["USDC"]["total"] < 1_000_000 and balance["USDC"]["used"] > 0


def test_fok_that_cannot_fill_is_refused_and_one_that_can_fills_completely(harness):
    _, maker_key = harness.account()
    _, key = harness.account()
    maker, taker = harness.ccxt(maker_key), harness.ccxt(key)
    maker.create_order(PERP_SYMBOL, "limit", "sell", 0.2, 60_300)
    with pytest.raises(ccxt.ExchangeError, match="fill_or_kill"):
        taker.create_order(PERP_SYMBOL, "limit", "buy", 0.5, 60_300, {"timeInForce": "FOK"})
    order = taker.create_order(PERP_SYMBOL, "limit", "buy", 0.2, 60_300, {"timeInForce": "FOK"})
    assert order["status"] == "closed" and order["filled"] == 0.2


def test_market_reduce_only_closes_a_position_and_is_refused_without_one(harness):
    _, maker_key = harness.account()
    _, key = harness.account()
    maker, taker = harness.ccxt(maker_key), harness.ccxt(key)
    maker.create_order(PERP_SYMBOL, "limit", "sell", 0.4, 60_010)
    taker.create_order(PERP_SYMBOL, "market", "buy", 0.4)
    maker.create_order(PERP_SYMBOL, "limit", "buy", 1.0, 59_990)
    closed = taker.create_order(PERP_SYMBOL, "market", "sell", 1.0, None, {"reduceOnly": True})
    assert closed["filled"] == 0.4 and closed["info"]["reduce_only"] is True  # sized down to the position
    assert taker.fetch_positions() == []
    with pytest.raises(ccxt.ExchangeError, match="reduce_only_would_increase"):
        taker.create_order(PERP_SYMBOL, "market", "sell", 0.1, None, {"reduceOnly": True})
    maker.cancel_all_orders()


def test_edit_order_moves_the_price_and_cancel_all_empties_the_account(harness):
    _, key = harness.account()
    ex = harness.ccxt(key)
    first = ex.create_order(PERP_SYMBOL, "limit", "buy", 0.1, 58_000)
    second = ex.create_order(PERP_SYMBOL, "limit", "buy", 0.1, 58_100)
    edited = ex.edit_order(first["id"], PERP_SYMBOL, "limit", "buy", 0.2, 58_050)
    assert edited["id"] == first["id"] and edited["price"] == 58_050 and edited["amount"] == 0.2
    assert sorted((o["price"], o["amount"]) for o in ex.fetch_open_orders(PERP_SYMBOL)) == [(58_050, 0.2), (58_100, 0.1)]
    cancelled = ex.cancel_order(second["id"])
    assert cancelled["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order(second["id"])
    ex.cancel_all_orders()
    assert ex.fetch_open_orders(PERP_SYMBOL) == []
    assert ex.fetch_order(first["id"])["status"] == "canceled"


def test_errors_map_to_ccxt_exceptions(harness):
    owner, key = harness.account(usdc=100)
    ex = harness.ccxt(key)
    with pytest.raises(ccxt.InsufficientFunds):  # 10009
        ex.create_order(PERP_SYMBOL, "limit", "buy", 10, 60_000)
    with pytest.raises(ccxt.OrderNotFound):  # 10004
        ex.fetch_order("999999")
    with pytest.raises(ccxt.BadRequest):  # 11029: a label already used by an open order
        ex.create_order(PERP_SYMBOL, "limit", "buy", 0.0001, 50_000, {"label": "x"})
        ex.create_order(PERP_SYMBOL, "limit", "buy", 0.0001, 50_000, {"label": "x"})
    with pytest.raises(ccxt.InvalidOrder, match="10043"):  # price off the tick (ccxt would round it)
        ex.privateGetBuy({"instrument_name": "BTC_USDC-PERPETUAL", "amount": "0.0001", "price": "50000.05"})
    with pytest.raises(ccxt.BadRequest):  # -32602 unknown instrument
        ex.publicGetTicker({"instrument_name": "ETH_USDC-PERPETUAL"})
    stranger = harness.ccxt()
    stranger.apiKey, stranger.secret = key.client_id, "wrong-secret"
    with pytest.raises(ccxt.AuthenticationError):  # 13009 bad signature
        stranger.fetch_balance()
    with pytest.raises(ccxt.BadRequest):  # -32601
        ex.publicGetGetTradingviewChartData({"instrument_name": "BTC_USDC-PERPETUAL"})
    _, no_funds = harness.account(usdc=0)
    with pytest.raises(ccxt.InsufficientFunds):  # never deposited
        harness.ccxt(no_funds).create_order(PERP_SYMBOL, "limit", "buy", 0.1, 50_000)
    ex.cancel_all_orders()


def test_read_only_key_cannot_trade(harness):
    _, key = harness.account(scope="read")
    ex = harness.ccxt(key)
    assert ex.fetch_balance()["USDC"]["total"] == 1_000_000
    with pytest.raises(ccxt.PermissionDenied):  # 13021
        ex.create_order(PERP_SYMBOL, "limit", "buy", 0.1, 50_000)


def test_edit_that_crosses_trades_as_taker_and_reports_the_trades(harness):
    _, maker_key = harness.account()
    _, key = harness.account()
    maker, ex = harness.ccxt(maker_key), harness.ccxt(key)
    maker.create_order(PERP_SYMBOL, "limit", "sell", 0.05, 60_700)
    order = ex.create_order(PERP_SYMBOL, "limit", "buy", 0.05, 57_000)
    edited = ex.edit_order(order["id"], PERP_SYMBOL, "limit", "buy", 0.05, 60_700)
    assert edited["status"] == "closed" and edited["filled"] == 0.05 and edited["average"] == 60_700
    assert [(t["price"], t["amount"], t["takerOrMaker"]) for t in edited["trades"]] == [(60_700, 0.05, "taker")]
