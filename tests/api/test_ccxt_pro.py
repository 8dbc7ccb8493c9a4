"""Unmodified ccxt.pro over the WebSocket API: order book (snapshot then deltas with
change ids; the book ccxt rebuilds equals the domain's), public trades, user orders."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from api_support import PERP, PERP_SYMBOL

WAIT = 20  # seconds: a safety bound on each await, never an expected duration


def _levels(side) -> list:
    return [[float(level[0]), float(level[1])] for level in side]


async def _eventually(check, watch, rounds: int = 400):
    """Return once ``check()`` holds for ccxt's cached state (book, trades, orders).

    ccxt.pro resolves a ``watch_*`` call with the next notification only; one that arrives
    while the call is still setting itself up updates the cache without waking it. So the
    cache is checked first, and each wait for a notification is short and retried: the
    outcome never depends on timing, only the number of rounds does (bounded)."""
    for _ in range(rounds):
        if check():
            return
        try:
            await asyncio.wait_for(watch(), 0.25)
        except (TimeoutError, asyncio.TimeoutError):
            pass
    assert check()


def test_watch_order_book_deltas_rebuild_the_domain_book(harness):
    _, key_a = harness.account()
    _, key_b = harness.account()

    async def scenario():
        watcher, a, b = harness.pro(), harness.pro(key_a), harness.pro(key_b)
        try:
            await watcher.load_markets()
            first = await asyncio.wait_for(watcher.watch_order_book(PERP_SYMBOL), WAIT)
            bids, asks = harness.book()
            assert (_levels(first["bids"]), _levels(first["asks"])) == (bids, asks)  # the snapshot
            o1 = await a.create_order(PERP_SYMBOL, "limit", "buy", 0.3, 59_500)
            await a.create_order(PERP_SYMBOL, "limit", "buy", 0.2, 59_500)
            await a.create_order(PERP_SYMBOL, "limit", "sell", 0.5, 60_500)
            o4 = await b.create_order(PERP_SYMBOL, "limit", "sell", 0.1, 60_400)
            await b.edit_order(o4["id"], PERP_SYMBOL, "limit", "sell", 0.15, 60_450)
            await a.cancel_order(o1["id"])
            await b.create_order(PERP_SYMBOL, "market", "sell", 0.05)  # eats part of the 59,500 level
            target = harness.book()

            def equal():
                book = watcher.orderbooks[PERP_SYMBOL]
                return (_levels(book["bids"]), _levels(book["asks"])) == target
            await _eventually(equal, lambda: watcher.watch_order_book(PERP_SYMBOL))
            await a.cancel_all_orders()
            await b.cancel_all_orders()
        finally:
            await asyncio.gather(watcher.close(), a.close(), b.close())
    asyncio.run(scenario())


def test_watch_trades_sees_a_new_trade(harness):
    _, key_a = harness.account()
    _, key_b = harness.account()

    async def scenario():
        watcher, a, b = harness.pro(), harness.pro(key_a), harness.pro(key_b)
        try:
            await watcher.load_markets()
            task = asyncio.ensure_future(watcher.watch_trades(PERP_SYMBOL))
            await asyncio.wait_for(_registered(harness, f"trades.{PERP}.100ms"), WAIT)
            await a.create_order(PERP_SYMBOL, "limit", "sell", 0.07, 61_230)
            await b.create_order(PERP_SYMBOL, "limit", "buy", 0.07, 61_230)

            def seen():
                return any(t["price"] == 61_230 for t in watcher.trades.get(PERP_SYMBOL, []))
            await _eventually(seen, lambda: watcher.watch_trades(PERP_SYMBOL))
            task.cancel()
            trade = next(t for t in watcher.trades[PERP_SYMBOL] if t["price"] == 61_230)
            assert (trade["side"], trade["amount"], trade["symbol"]) == ("buy", 0.07, PERP_SYMBOL)
        finally:
            await asyncio.gather(watcher.close(), a.close(), b.close())
    asyncio.run(scenario())


async def _registered(harness, channel: str, owner: str | None = None) -> None:
    """Wait until the server has registered ``channel`` (ccxt sends subscriptions without
    waiting for their answer; trading before that would race the subscription)."""
    hub = harness.api.hub

    def present():
        if owner is None:
            return channel in hub.channels
        return channel in hub.user.get(owner, {})
    while not present():
        await asyncio.sleep(0.01)


def test_watch_orders_follows_an_order_from_open_to_cancelled(harness):
    owner, key = harness.account()

    async def scenario():
        ex = harness.pro(key)
        try:
            await ex.load_markets()
            task = asyncio.ensure_future(ex.watch_orders(PERP_SYMBOL))
            await asyncio.wait_for(_registered(harness, "user.orders.any.any.raw", owner), WAIT)
            order = await ex.create_order(PERP_SYMBOL, "limit", "buy", 0.11, 55_000)

            def status(wanted):
                return lambda: any(o["id"] == order["id"] and o["status"] == wanted for o in (ex.orders or []))
            await _eventually(status("open"), lambda: ex.watch_orders(PERP_SYMBOL))
            task.cancel()
            await ex.cancel_order(order["id"])
            await _eventually(status("canceled"), lambda: ex.watch_orders(PERP_SYMBOL))
        finally:
            await ex.close()
    asyncio.run(scenario())


def test_book_notifications_chain_change_ids_from_the_snapshot(harness):
    _, key = harness.account()

    async def scenario():
        async with websockets.connect(harness.server.ws_url) as ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/subscribe",
                                      "params": {"channels": [f"book.{PERP}.raw"]}}))
            messages = []
            ex = harness.pro(key)
            try:
                while len([m for m in messages if m.get("method") == "subscription"]) < 1 \
                        or not any(m.get("id") == 1 for m in messages):
                    messages.append(json.loads(await asyncio.wait_for(ws.recv(), WAIT)))
                for price in (51_000, 51_100, 51_200):
                    await ex.create_order(PERP_SYMBOL, "limit", "buy", 0.01, price)
                await ex.cancel_all_orders()
                notes = [m for m in messages if m.get("method") == "subscription"]
                while sum(1 for m in notes if m["params"]["data"]["type"] == "change") < 4:
                    m = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
                    if m.get("method") == "subscription":
                        notes.append(m)
            finally:
                await ex.close()
        data = [m["params"]["data"] for m in notes]
        assert data[0]["type"] == "snapshot"
        for previous, current in zip(data, data[1:]):
            assert current["type"] == "change" and current["prev_change_id"] == previous["change_id"]
        actions = [entry[0] for d in data[1:] for entry in d["bids"]]
        assert actions.count("new") >= 3 and actions.count("delete") >= 3
    asyncio.run(scenario())


def test_watch_balance_gets_the_portfolio_after_a_trade(harness):
    owner, key = harness.account(usdc=20_000)
    _, maker_key = harness.account()

    async def scenario():
        ex, maker = harness.pro(key), harness.pro(maker_key)
        try:
            await ex.load_markets()
            task = asyncio.ensure_future(ex.watch_balance())
            await asyncio.wait_for(_registered(harness, "user.portfolio.USDC", owner), WAIT)
            await maker.create_order(PERP_SYMBOL, "limit", "sell", 0.1, 60_000)
            await ex.create_order(PERP_SYMBOL, "limit", "buy", 0.1, 60_000)

            def usdc():  # ccxt.pro files the parsed portfolio under its currency
                return ((ex.balance or {}).get("USDC") or {}).get("USDC") or {}

            def updated():
                return (usdc().get("used") or 0) > 0
            await _eventually(updated, ex.watch_balance)
            task.cancel()
            assert usdc()["total"] < 20_000  # the taker fee was paid
        finally:
            await asyncio.gather(ex.close(), maker.close())
    asyncio.run(scenario())
