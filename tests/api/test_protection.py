"""The error table, rate limits per key, slow WebSocket clients, and the Clearway methods
(margin breakdown, state root and batch status, L1 info) with and without plug-ins."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import os

import ccxt
import httpx
import pytest
import websockets

from api_support import PERP, PERP_SYMBOL, USDC, Harness
from clearway.domain.commands import CancelOrder, PlaceOrder
from clearway.api.errors import WIRE_CODES
from clearway.api.ratelimit import Limits
from clearway.api.service import ApiConfig
from clearway.domain.errors import ErrorCode
from clearway.engine.errors import EngineErrorCode


def test_every_domain_and_engine_code_has_a_wire_code_ccxt_knows():
    known = set(ccxt.deribit().describe()["exceptions"])
    for code in [*ErrorCode, *EngineErrorCode]:
        wire, message = WIRE_CODES[code]
        assert str(wire) in known, (code, wire)
        assert message


def test_no_domain_code_falls_back_to_its_group_default():
    """Every domain and engine code has a Deribit code chosen for it, the lifecycle ones
    included (a halted market is a closed book; a missing oracle is not implemented)."""
    from clearway.api.errors import EXPLICIT

    assert [c for c in [*ErrorCode, *EngineErrorCode] if c not in EXPLICIT] == []
    exceptions = ccxt.deribit().describe()["exceptions"]
    assert WIRE_CODES[ErrorCode.MARKET_HALTED] == (10012, "book_closed")
    assert exceptions["10012"] is ccxt.InvalidOrder
    assert WIRE_CODES[ErrorCode.FORCED_REQUEST_SEEN] == (11030, "other_reject")
    assert WIRE_CODES[ErrorCode.ORACLE_NOT_CONFIGURED] == (10033, "not_implemented")
    assert exceptions["10033"] is ccxt.NotSupported


class FakeSettlement:
    def l1_info(self):
        return {"chain_id": 31337, "vault": "0x" + "ab" * 20, "token": "0x" + "cd" * 20, "backend": "fake"}

    def batch_status(self):
        return {"submitted": 3, "finalised": 2}

    def state_root(self, state):
        return "0x" + f"{state.last_seq:064x}"


@pytest.fixture(scope="module")
def limited():
    h = Harness(ApiConfig(limits=Limits(matching_rate=1, matching_burst=3, other_rate=1000, other_burst=1000)))
    yield h
    h.close()


@pytest.fixture(scope="module")
def plugged():
    h = Harness(ApiConfig(ws_queue_max_messages=50, settlement=FakeSettlement()))
    yield h
    h.close()


def test_rate_limit_per_key_answers_10028_and_does_nothing(limited):
    _, key = limited.account()
    ex = limited.ccxt(key)
    for _ in range(3):
        ex.create_order(PERP_SYMBOL, "limit", "buy", 0.001, 50_000)
    before = limited.state_hash()
    with pytest.raises(ccxt.DDoSProtection):
        ex.create_order(PERP_SYMBOL, "limit", "buy", 0.001, 50_000)
    assert limited.state_hash() == before
    _, other = limited.account()
    assert limited.ccxt(other).create_order(PERP_SYMBOL, "limit", "buy", 0.001, 50_000)["status"] == "open"
    assert ex.fetch_balance()["USDC"]["total"] > 0  # reads draw on another pool


def test_a_client_that_stops_reading_is_disconnected_and_others_are_served(plugged):
    limited = plugged
    """A raw socket completes the WebSocket handshake, subscribes to the book and never
    reads; the server drops it once its queue overflows and keeps serving."""
    owner, _ = limited.account()
    account = limited.api.account_id(owner)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", limited.server.port))
    sock.sendall(b"GET /ws/api/v2 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert b"101" in sock.recv(4096)
    channels = [f"{kind}.{PERP}.{interval}" for kind in ("book", "ticker", "trades") for interval in ("raw", "100ms", "agg2")]
    payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/subscribe",
                          "params": {"channels": channels}}).encode()
    mask = os.urandom(4)
    frame = bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(payload)) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(frame)
    hub = limited.api.hub
    conn = None
    while conn is None:
        conn = next(iter(hub.channels.get(f"book.{PERP}.raw", set())), None)
    node = limited.node
    rounds = 0
    while not conn.slow:  # each order and cancel is a book change and a ticker change on 6 channels
        for events in [node.submit(PlaceOrder(0, 0, account, 0, 1, 1, (40_000 + rounds % 50) * USDC)).result()]:
            node.submit(CancelOrder(0, 0, account, events[0].order_id)).result()
        rounds += 1
        assert rounds < 20_000
    assert conn not in hub.channels.get(f"book.{PERP}.raw", set())
    assert httpx.get(limited.server.url + "/api/v2/public/test").json()["result"]
    sock.close()


def test_clearway_methods_report_margin_state_root_batches_and_l1(plugged):
    limited = plugged
    owner, key = limited.account()
    ex = limited.ccxt(key)
    maker_owner, maker_key = limited.account()
    limited.ccxt(maker_key).create_order(PERP_SYMBOL, "limit", "sell", 0.5, 60_000)
    ex.create_order(PERP_SYMBOL, "limit", "buy", 0.5, 60_000)
    breakdown = ex.request("get_margin_breakdown", ["private"], "GET", {})["result"]
    assert breakdown["mode"] == "standard" and breakdown["initial_margin"] == pytest.approx(0.5 * 60_000 * 0.05)
    assert breakdown["underlyings"]["BTC"]["delta"] == 0.5
    assert breakdown["modes"]["portfolio"]["equity"] == pytest.approx(breakdown["equity"], rel=1e-3)
    root = ex.request("get_state_root", ["public"], "GET", {})["result"]
    assert root["available"] and int(root["state_root"], 16) == root["last_seq"]
    assert ex.request("get_batch_status", ["public"], "GET", {})["result"]["finalised"] == 2
    info = ex.request("get_l1_info", ["public"], "GET", {})["result"]
    assert info["vault"] == "0x" + "ab" * 20
    assert ex.privateGetGetCurrentDepositAddress({"currency": "USDC"})["result"]["address"] == info["vault"]
    assert ex.fetch_balance()["info"]["summaries"][0]["deposit_address"] == info["vault"]


def test_without_plug_ins_l1_methods_say_unavailable(harness):
    assert httpx.get(harness.server.url + "/api/v2/public/get_l1_info").json()["result"]["available"] is False
    assert httpx.get(harness.server.url + "/api/v2/public/get_state_root").json()["result"]["available"] is False
    signed = httpx.get(harness.server.url + "/api/v2/public/get_withdrawal_typed_data",
                       params={"owner": "0x" + "11" * 20, "amount": "1", "nonce": "1"}).json()
    assert signed["error"]["code"] == 10033
