"""Advanced orders through the API (issue 9): stop / take-profit orders in Deribit's
shapes (placed with unmodified ccxt), icebergs via ``max_show``, good-til-time
(``expire_at``, ``good_til_day``), TWAP parents and batch cancel, with their validation
errors mapped to Deribit codes. Each test uses its own accounts; this module has its own
node (the conftest fixture is per module), whose marks the trigger tests move."""

from __future__ import annotations

import time

import ccxt
import httpx
import pytest

from api_support import MID, PERP, PERP_SYMBOL, USDC


def rpc(harness, key, method: str, **params) -> dict:
    """One JSON-RPC call over HTTP with the key's bearer token; the whole answer."""
    token = httpx.post(harness.server.url + "/api/v2", json={
        "jsonrpc": "2.0", "id": 1, "method": "public/auth",
        "params": {"grant_type": "client_credentials", "client_id": key.client_id,
                   "client_secret": key.client_secret}}).json()["result"]["access_token"]
    return httpx.post(harness.server.url + "/api/v2", json={"jsonrpc": "2.0", "id": 2, "method": method,
                                                             "params": params},
                      headers={"Authorization": f"bearer {token}"}, timeout=30).json()


def error_code(answer: dict) -> int:
    assert "error" in answer, answer
    return answer["error"]["code"]


@pytest.fixture(autouse=True)
def mark_at_mid(harness):
    harness.marks(MID)
    yield
    harness.marks(MID)


def test_ccxt_stop_loss_waits_untriggered_then_enters_the_book_when_the_mark_falls(harness):
    """ccxt's createOrder with ``stopLossPrice`` sends type stop_limit, trigger_price and
    trigger; the order waits off the book, then rests as a limit order once the mark
    reaches the trigger."""
    _, key = harness.account()
    ex = harness.ccxt(key)
    order = ex.create_order(PERP_SYMBOL, "limit", "sell", 0.1, 58_000, {"stopLossPrice": 58_500,
                                                                        "trigger": "mark_price"})
    assert order["status"] == "open" and order["triggerPrice"] == 58_500 and order["price"] == 58_000
    raw = order["info"]
    assert raw["order_type"] == "stop_limit" and raw["order_state"] == "untriggered"
    assert raw["trigger"] == "mark_price" and raw["triggered"] is False
    assert harness.book()[1] == []  # not in the book
    listed = ex.fetch_open_orders(PERP_SYMBOL, params={"type": "stop_all"})
    assert [o["id"] for o in listed] == [order["id"]]
    assert ex.fetch_open_orders(PERP_SYMBOL, params={"type": "limit"}) == []
    harness.marks(58_400 * USDC)  # the mark falls through the trigger
    harness.sync()
    fired = ex.fetch_order(order["id"])
    assert fired["status"] == "open" and fired["info"]["order_state"] == "open"
    assert fired["info"]["triggered"] is True and fired["info"]["order_type"] == "stop_limit"
    assert harness.book()[1] == [[58_000.0, 0.1]]
    ex.cancel_order(order["id"])


def test_take_profit_market_and_wrong_side_and_missing_trigger_are_refused(harness):
    _, key = harness.account()
    ex = harness.ccxt(key)
    with pytest.raises(ccxt.InvalidOrder):  # a stop-sell above the mark would fire at once: 11036
        ex.create_order(PERP_SYMBOL, "market", "sell", 0.1, None, {"stopLossPrice": 61_000, "trigger": "mark_price"})
    answer = rpc(harness, key, "private/sell", instrument_name=PERP, amount="0.1", type="stop_market",
                 trigger_price="61000", trigger="mark_price")
    assert error_code(answer) == 11036
    assert error_code(rpc(harness, key, "private/buy", instrument_name=PERP, amount="0.1", type="stop_market",
                          trigger="mark_price")) == 11029  # no trigger_price
    assert error_code(rpc(harness, key, "private/buy", instrument_name=PERP, amount="0.1", type="stop_market",
                          trigger_price="61000")) == 11029  # no trigger
    assert error_code(rpc(harness, key, "private/buy", instrument_name=PERP, amount="0.1", price="50000",
                          trigger_price="61000", trigger="mark_price")) == 11029  # not a trigger type
    assert error_code(rpc(harness, key, "private/buy", instrument_name=PERP, amount="0.1", type="trailing_stop",
                          trigger_offset=10)) == 10033
    placed = rpc(harness, key, "private/sell", instrument_name=PERP, amount="0.1", type="take_market",
                 trigger_price="61000", trigger="index_price")["result"]["order"]
    assert placed["order_type"] == "take_market" and placed["price"] == "market_price"
    assert placed["order_state"] == "untriggered" and placed["trigger"] == "index_price"
    cancelled = rpc(harness, key, "private/cancel", order_id=placed["order_id"])["result"]
    assert cancelled["order_state"] == "cancelled"


def test_iceberg_shows_only_max_show_in_the_book_and_refills(harness):
    _, maker = harness.account()
    _, taker = harness.account()
    placed = rpc(harness, maker, "private/sell", instrument_name=PERP, amount="1", price="60500", max_show="0.2")
    order = placed["result"]["order"]
    assert order["max_show"] == 0.2 and order["amount"] == 1.0
    harness.sync()
    book = rpc(harness, maker, "public/get_order_book", instrument_name=PERP)["result"]
    assert book["asks"] == [[60_500.0, 0.2]] and harness.book()[1] == [[60_500.0, 0.2]]
    rpc(harness, taker, "private/buy", instrument_name=PERP, amount="0.2", price="60500")
    harness.sync()
    book = rpc(harness, maker, "public/get_order_book", instrument_name=PERP)["result"]
    assert book["asks"] == [[60_500.0, 0.2]] == harness.book()[1]  # refilled from the hidden part
    state = rpc(harness, maker, "private/get_order_state", order_id=order["order_id"])["result"]
    assert state["filled_amount"] == 0.2 and state["order_state"] == "open"
    for bad in ("0", "2", "0.00001"):
        answer = rpc(harness, maker, "private/sell", instrument_name=PERP, amount="1", price="60500", max_show=bad)
        assert error_code(answer) == 10036, bad
    rpc(harness, maker, "private/cancel", order_id=order["order_id"])
    harness.sync()
    assert harness.book()[1] == []


def test_good_til_time_and_good_til_day(harness):
    _, key = harness.account()
    expire_at = int(time.time() * 1000) + 60_000
    order = rpc(harness, key, "private/buy", instrument_name=PERP, amount="0.1", price="55000",
                expire_at=expire_at)["result"]["order"]
    assert order["expire_at"] == expire_at and order["order_state"] == "open"
    harness.clock_offset_ms += 61_000  # the node's clock passes expire_at
    harness.marks(MID)  # the first command at or after expire_at cancels it
    harness.sync()
    state = rpc(harness, key, "private/get_order_state", order_id=order["order_id"])["result"]
    assert state["order_state"] == "cancelled" and state["cancel_reason"] == "good_til_time"
    day = rpc(harness, key, "private/buy", instrument_name=PERP, amount="0.1", price="55000",
              time_in_force="good_til_day")["result"]["order"]
    assert day["time_in_force"] == "good_til_day"
    assert day["expire_at"] % 86_400_000 == 8 * 3_600_000 and day["expire_at"] > time.time() * 1000
    rpc(harness, key, "private/cancel", order_id=day["order_id"])
    assert error_code(rpc(harness, key, "private/buy", instrument_name=PERP, amount="0.1", price="55000",
                          expire_at=1_000)) == 11029  # in the past
    assert error_code(rpc(harness, key, "private/buy", instrument_name=PERP, amount="0.1", price="55000",
                          time_in_force="immediate_or_cancel", expire_at=expire_at + 10**7)) == 11047


def test_twap_runs_its_first_suborder_reports_state_and_cancels(harness):
    _, maker = harness.account()
    _, key = harness.account()
    rpc(harness, maker, "private/sell", instrument_name=PERP, amount="5", price="60100")
    twap = rpc(harness, key, "private/place_twap", instrument_name=PERP, direction="buy", amount="1",
               duration=300, interval=30, price_tolerance="0.01")["result"]
    assert twap["intervals"] == 10 and twap["order_state"] == "open"
    assert twap["filled_amount"] == 0.1 and twap["intervals_left"] == 9  # ceil(1 / 10)
    assert twap["average_price"] == 60_100.0 and len(twap["suborder_ids"]) == 1
    sub = rpc(harness, key, "private/get_order_state", order_id=twap["suborder_ids"][0])["result"]
    assert sub["order_state"] == "filled" and sub["time_in_force"] == "immediate_or_cancel"
    state = rpc(harness, key, "private/get_twap_state", order_id=twap["order_id"])["result"]
    assert state["filled_amount"] == 0.1 and state["next_suborder_timestamp"] > twap["creation_timestamp"]
    cancelled = rpc(harness, key, "private/cancel_twap", order_id=twap["order_id"])["result"]
    assert cancelled["order_state"] == "cancelled" and cancelled["end_reason"] == "user_request"
    assert error_code(rpc(harness, key, "private/place_twap", instrument_name=PERP, direction="buy", amount="1",
                          duration=300, interval=20, price_tolerance="0.01")) == 11029  # interval < 30 s
    _, other = harness.account()
    assert error_code(rpc(harness, other, "private/get_twap_state", order_id=twap["order_id"])) == 10004
    rpc(harness, maker, "private/cancel_all")


def test_a_twap_that_completes_in_its_first_interval_answers_as_get_twap_state_does(harness):
    _, maker = harness.account()
    _, key = harness.account()
    rpc(harness, maker, "private/sell", instrument_name=PERP, amount="5", price="60100")
    twap = rpc(harness, key, "private/place_twap", instrument_name=PERP, direction="buy", amount="0.5",
               duration=300, interval=300, price_tolerance="0.01")["result"]  # one interval: one suborder
    state = rpc(harness, key, "private/get_twap_state", order_id=twap["order_id"])["result"]
    assert twap["order_state"] == state["order_state"] == "filled"
    assert twap["end_reason"] == state["end_reason"] == "completed"
    rpc(harness, maker, "private/cancel_all")


def test_batch_cancel_by_ids(harness):
    _, key = harness.account()
    ids = [rpc(harness, key, "private/buy", instrument_name=PERP, amount="0.1", price=str(50_000 + i))
           ["result"]["order"]["order_id"] for i in range(3)]
    answer = rpc(harness, key, "private/cancel_orders", order_ids=[ids[0], ids[2], "999999"])["result"]
    assert [o["order_id"] for o in answer["cancelled"]] == [ids[0], ids[2]]
    assert all(o["order_state"] == "cancelled" for o in answer["cancelled"])
    assert answer["failed"] == [{"order_id": "999999", "code": 10004, "message": "order_not_found",
                                 "reason": "unknown_order"}]
    assert error_code(rpc(harness, key, "private/cancel_orders", order_ids=[])) == 11029
    assert error_code(rpc(harness, key, "private/cancel_orders", order_ids=[ids[1], ids[1]])) == 11029
    assert error_code(rpc(harness, key, "private/cancel_orders", order_ids=list(range(1, 102)))) == 11029
    open_ids = [o["order_id"] for o in rpc(harness, key, "private/get_open_orders_by_instrument",
                                             instrument_name=PERP)["result"]]
    assert open_ids == [ids[1]]
    rpc(harness, key, "private/cancel_all")
