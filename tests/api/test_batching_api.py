"""One event-loop turn, one batch: orders that arrive together over a WebSocket are held
(``Node.submit(hold=True)``), released as one batch after the turn, committed together
and answered in request order."""

from __future__ import annotations

import asyncio
import json

import websockets

from api_support import Harness, auth_request, ioc_buy_request
from clearway.api.service import ApiConfig


def _burst(harness: Harness, n: int) -> tuple[list[dict], int]:
    """Send ``n`` IOC buys that do not cross in one JSON-RPC batch message; the answers
    and the number of batches the node sequenced for them."""
    _, key = harness.account()

    async def scenario():
        async with websockets.connect(harness.server.ws_url) as ws:
            await ws.send(json.dumps(auth_request(key)))
            assert "result" in json.loads(await ws.recv())
            before = harness.node.stats()
            await ws.send(json.dumps([ioc_buy_request(i) for i in range(1, n + 1)]))
            answers = [json.loads(await ws.recv()) for _ in range(n)]
            return answers, before

    answers, before = asyncio.run(scenario())
    after = harness.node.stats()
    assert after["last_seq"] - before["last_seq"] == n
    return answers, after["commits"] - before["commits"]


def test_a_burst_of_orders_is_one_batch_answered_in_order():
    harness = Harness(ApiConfig())
    node = harness.node
    held_at_release = []  # commands waiting in the open batch each time the API releases
    release = node.release

    def spying_release():
        held_at_release.append(len(node._open.commands))
        release()

    node.release = spying_release
    try:
        answers, commits = _burst(harness, 20)
    finally:
        harness.close()
    assert 20 in held_at_release  # all 20 were held until one release (not sequenced one by one)
    assert [a["id"] for a in answers] == list(range(1, 21))
    assert all(a["result"]["order"]["order_state"] == "cancelled" for a in answers)
    ids = [int(a["result"]["order"]["order_id"]) for a in answers]
    assert ids == sorted(ids)  # sequenced in request order
    assert commits == 1  # one batch: without holding, the first order would be committed alone


def test_text_messages_are_handled_from_data_received_without_the_asgi_queue(monkeypatch):
    """After the connection's first message, requests skip uvicorn's per-message queue
    (wsproto.CoalescingWebSocketProtocol.text_handler); answers keep request order, and a
    message over the size limit is still refused whole."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    queued = []
    original = WebSocketsSansIOProtocol.send_receive_event_to_app

    def counting(self):
        queued.append(self.curr_msg_data_type)
        original(self)

    harness = Harness(ApiConfig(max_message_bytes=4_096))  # (its protocol class is chosen at start)
    monkeypatch.setattr(WebSocketsSansIOProtocol, "send_receive_event_to_app", counting)
    _, key = harness.account()

    async def scenario():
        async with websockets.connect(harness.server.ws_url) as ws:
            await ws.send(json.dumps(auth_request(key)))
            assert "result" in json.loads(await ws.recv())
            answers = []
            for i in range(1, 11):  # one at a time, each answered before the next is sent
                await ws.send(json.dumps(ioc_buy_request(i)))
                answers.append(json.loads(await ws.recv()))
            await ws.send("x" * 5_000)
            answers.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 11, "method": "public/test", "params": {}}))
            answers.append(json.loads(await ws.recv()))
            return answers

    try:
        answers = asyncio.run(scenario())
    finally:
        harness.close()
    assert [a["id"] for a in answers[:10]] == list(range(1, 11))
    assert all(a["result"]["order"]["order_state"] == "cancelled" for a in answers[:10])
    assert answers[10]["error"]["code"] == -32600 and answers[11]["id"] == 11 and "result" in answers[11]
    assert len(queued) <= 1  # only a message that arrives before the connection starts reading is queued
