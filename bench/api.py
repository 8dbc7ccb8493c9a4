"""Benchmark of the trading API (issue 8): ``clearway bench api --json``.

A node (SQLite journal, group commit) with the API is started in a child process; this
process is the client, over WebSocket on loopback, with its own interpreter (no shared
GIL). Orders are ``private/buy`` immediate-or-cancel limit orders that do not cross (each
is accepted, journaled, cancelled, and acknowledged: a full place-and-acknowledge round
trip through the API, the sequencer and the journal, without growing the book).

- Paced: ``rate_per_s`` orders per second (default 2,000; CLEARWAY_BENCH_API_RATE) for
  CLEARWAY_BENCH_API_SECONDS (default 5) seconds, sent by a thread that sleeps until each
  order's scheduled time t0 + i/rate, answers read by a second thread; latency runs from
  the scheduled time to the receipt of the answer, so any queueing (client or server)
  counts. ``p50_ms`` / ``p99_ms``: the run with the median p99 of ``--runs``;
  ``server_p50_ms`` / ``server_p99_ms``: the server's own share (Deribit's ``usDiff``:
  request parsed → answer built, acknowledgement of the durable command included).
- Sustained: the client keeps 1,000 orders in flight for 4 s on one connection;
  ``max_sustained_orders_per_s`` = answers per second (median of ``--runs``), and the
  paced latency is also measured at 10,000/s (``p50_ms_at_10k`` / ``p99_ms_at_10k``).

Every answer is checked (an error stops the benchmark). Figures depend on the machine
and its load; the JSON carries the core count and the load average.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time

RATE = int(os.environ.get("CLEARWAY_BENCH_API_RATE", "2000"))
SECONDS = float(os.environ.get("CLEARWAY_BENCH_API_SECONDS", "5"))
SATURATION_SECONDS = 4.0
WINDOW = 1_000
HIGH_RATE = 10_000
WARMUP = 500


def _serve(pipe) -> None:
    """Child: node + API on an ephemeral loopback port; reports (port, id, secret)."""
    from clearway.api.ratelimit import Limits
    from clearway.api.server import ApiServer
    from clearway.api.service import ApiConfig
    from clearway.domain.commands import Deposit, SetMarkPrices
    from clearway.engine.loadgen import bench_genesis
    from clearway.engine.node import Node

    with tempfile.TemporaryDirectory() as data:
        node = Node(data, bench_genesis(), snapshot_every=0)
        owner = "0x" + "42" * 20
        node.submit(Deposit(0, 0, owner, 10**15, 1)).result()
        node.submit(SetMarkPrices(0, 0, {"BTC": 60_000_000_000}, {0: 60_000_000_000})).result()
        limits = Limits(matching_rate=1e9, matching_burst=1e9, other_rate=1e9, other_burst=1e9)
        config = ApiConfig(limits=limits, ws_queue_max_messages=1_000_000, ws_queue_max_bytes=1 << 30)
        try:
            import uvloop  # noqa: F401
            loop = "uvloop"
        except ImportError:  # pragma: no cover
            loop = "asyncio"
        server = ApiServer(node, config, loop=loop).start()
        key = server.api.keys.create(owner, "bench")
        pipe.send((server.port, key.client_id, key.client_secret))
        pipe.recv()  # stop
        server.stop()
        node.close(snapshot=False)


def _order(i: int) -> str:
    return ('{"jsonrpc":"2.0","id":%d,"method":"private/buy","params":{"instrument_name":"BTC_USDC-PERPETUAL",'
            '"amount":"0.001","price":"50000","time_in_force":"immediate_or_cancel"}}' % i)


async def _connect(port: int, client_id: str, secret: str):
    from websockets.asyncio.client import connect

    ws = await connect(f"ws://127.0.0.1:{port}/ws/api/v2", max_size=2**24, compression=None)
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "public/auth", "params": {
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}}))
    answer = json.loads(await ws.recv())
    if "result" not in answer:
        raise RuntimeError(f"auth failed: {answer}")
    return ws


def _check(text: str) -> int:
    """The id of a successful answer (the order must have been accepted)."""
    if '"error"' in text:
        raise RuntimeError(f"order failed: {text[:300]}")
    start = text.index('"id":') + 5
    return int(text[start:text.index(",", start)])


def _paced(port, client_id, secret, rate: int, seconds: float) -> dict:
    """Paced run with a sending thread (sleeps until each scheduled time) and a receiving
    thread on one blocking WebSocket connection: the client idles between orders instead
    of competing with the server for the CPU."""
    import threading

    from websockets.sync.client import connect

    ws = connect(f"ws://127.0.0.1:{port}/ws/api/v2", max_size=2**24, compression=None)
    ws.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "public/auth", "params": {
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}}))
    if "result" not in json.loads(ws.recv(timeout=30)):
        raise RuntimeError("auth failed")
    n = int(rate * seconds)
    interval = 1.0 / rate
    latency = [0.0] * n
    server = [0.0] * n
    failure: list = []
    t0 = time.perf_counter() + 0.05

    def receive():
        try:
            for _ in range(n):
                text = ws.recv(timeout=120)
                now = time.perf_counter()
                i = _check(text) - 1
                latency[i] = now - (t0 + i * interval)
                start = text.rindex('"usDiff":') + 9
                server[i] = int(text[start:text.index(",", start)]) / 1e6
        except Exception as exc:  # reported by the caller
            failure.append(exc)

    reader = threading.Thread(target=receive, daemon=True)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)  # the receiving thread gets the GIL back promptly
    reader.start()
    try:
        for i in range(n):
            wait = t0 + i * interval - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            ws.send(_order(i + 1))
        reader.join(180)
    finally:
        sys.setswitchinterval(switch)
    ws.close()
    if failure or reader.is_alive():
        raise RuntimeError(f"paced run failed: {failure[:1]}")
    measured = sorted(latency[min(WARMUP, n // 10):])
    own = sorted(server[min(WARMUP, n // 10):])
    return {"p50_ms": round(1000 * statistics.median(measured), 3),
            "p99_ms": round(1000 * measured[int(0.99 * (len(measured) - 1))], 3), "orders": n,
            "server_p50_ms": round(1000 * statistics.median(own), 3),
            "server_p99_ms": round(1000 * own[int(0.99 * (len(own) - 1))], 3)}


async def _saturate(port, client_id, secret, seconds: float) -> float:
    ws = await _connect(port, client_id, secret)
    sent = received = 0
    window = asyncio.Semaphore(WINDOW)
    stop_at = time.perf_counter() + seconds
    finished = asyncio.get_running_loop().create_future()

    async def receive():
        nonlocal received
        async for text in ws:
            _check(text)
            received += 1
            window.release()
            if received == sent and time.perf_counter() >= stop_at:
                finished.set_result(None)
                return

    reader = asyncio.ensure_future(receive())
    start = time.perf_counter()
    while time.perf_counter() < stop_at:
        await window.acquire()
        sent += 1
        await ws.send(_order(sent))
    await asyncio.wait_for(finished, 120)
    elapsed = time.perf_counter() - start
    reader.cancel()
    await ws.close()
    return received / elapsed


def run(args) -> dict:
    """Run the paced and the sustained measurements against a child server (module
    docstring); ``args.runs`` repetitions, medians reported."""
    runs = max(1, getattr(args, "runs", 3) or 1)
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        if not parent.poll(120):
            raise RuntimeError("API server did not start")
        port, client_id, secret = parent.recv()
        try:
            import uvloop
            runner = uvloop.run
        except ImportError:  # pragma: no cover
            runner = asyncio.run
        _paced(port, client_id, secret, RATE, 1.0)  # warm-up
        paced = [_paced(port, client_id, secret, RATE, SECONDS) for _ in range(runs)]
        paced.sort(key=lambda r: r["p99_ms"])
        chosen = paced[len(paced) // 2]
        sustained = sorted(runner(_saturate(port, client_id, secret, SATURATION_SECONDS)) for _ in range(runs))
        high = _paced(port, client_id, secret, HIGH_RATE, 3.0)
    finally:
        parent.send("stop")
        server.join(30)
        if server.is_alive():
            server.kill()
    return {
        "rate_per_s": RATE,
        "p50_ms": chosen["p50_ms"],
        "p99_ms": chosen["p99_ms"],
        "max_sustained_orders_per_s": round(sustained[len(sustained) // 2]),
        "server_p50_ms": chosen["server_p50_ms"],
        "server_p99_ms": chosen["server_p99_ms"],
        "p50_ms_at_10k": high["p50_ms"],
        "p99_ms_at_10k": high["p99_ms"],
        "paced_orders_per_run": chosen["orders"],
        "runs": runs,
        "transport": "WebSocket, one connection, loopback; server in a child process (uvloop)",
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def print_report(result: dict) -> None:
    print(f"API place-and-acknowledge over WebSocket at {result['rate_per_s']:,} orders/s: "
          f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    print(f"  at 10,000 orders/s: p50 {result['p50_ms_at_10k']} ms, p99 {result['p99_ms_at_10k']} ms")
    print(f"  sustained (1,000 in flight): {result['max_sustained_orders_per_s']:,} orders/s")
    print(f"  {result['cpus']} CPUs, load average {result['loadavg']}")
