"""One event-loop turn, one batch: orders that arrive together over a WebSocket are held
(``Node.submit(hold=True)``), released as one batch after the turn, committed together
and answered in request order."""

from __future__ import annotations

import asyncio
import json

import websockets

from api_support import PERP, Harness
from clearway.api.service import ApiConfig


def _burst(harness: Harness, n: int) -> tuple[list[dict], int]:
    """Send ``n`` IOC buys that do not cross in one JSON-RPC batch message; the answers
    and the number of batches the node sequenced for them."""
    _, key = harness.account()

    async def scenario():
        async with websockets.connect(harness.server.ws_url) as ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "public/auth", "params": {
                "grant_type": "client_credentials", "client_id": key.client_id,
                "client_secret": key.client_secret}}))
            assert "result" in json.loads(await ws.recv())
            before = harness.node.stats()
            await ws.send(json.dumps([{"jsonrpc": "2.0", "id": i, "method": "private/buy", "params": {
                "instrument_name": PERP, "amount": "0.001", "price": "50000",
                "time_in_force": "immediate_or_cancel"}} for i in range(1, n + 1)]))
            answers = [json.loads(await ws.recv()) for _ in range(n)]
            return answers, before

    answers, before = asyncio.run(scenario())
    after = harness.node.stats()
    assert after["last_seq"] - before["last_seq"] == n
    return answers, after["commits"] - before["commits"]


def test_a_burst_of_orders_is_one_batch_answered_in_order():
    harness = Harness(ApiConfig())
    try:
        answers, commits = _burst(harness, 20)
    finally:
        harness.close()
    assert [a["id"] for a in answers] == list(range(1, 21))
    assert all(a["result"]["order"]["order_state"] == "cancelled" for a in answers)
    ids = [int(a["result"]["order"]["order_id"]) for a in answers]
    assert ids == sorted(ids)  # sequenced in request order
    assert commits == 1  # one batch: without holding, the first order would be committed alone
