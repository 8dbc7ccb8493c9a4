"""Benchmark of the trading API (issue 8): ``clearway bench api --json``.

A node (SQLite journal, group commit) with the API is started in a child process; this
process is the client, over WebSocket on loopback, with its own interpreter (no shared
GIL). Orders are ``private/buy`` immediate-or-cancel limit orders that do not cross (each
is accepted, journaled, cancelled, and acknowledged: a full place-and-acknowledge round
trip through the API, the sequencer and the journal, without growing the book).

The client is one thread with no event loop: ``websockets``' sans-I/O ``ClientProtocol``
makes the handshake and the masked frames, ``select`` waits (with 1 µs timer slack) for
the next scheduled send or an answer, and answers are split from the server's unmasked
frames. It stays out of the server's way on a two-core machine.

- Paced: ``rate_per_s`` orders per second (default 2,000; CLEARWAY_BENCH_API_RATE) for
  CLEARWAY_BENCH_API_SECONDS (default 5) seconds; order i is sent at its scheduled time
  t0 + i/rate (orders that fall due together leave in one write; the client sleeps in
  between — polling instead would take a core from the server: measured, the server's
  own p50 then rose from 0.8–1.0 to 1.3 ms on the 2-core bench VM); latency runs from the
  scheduled time to the receipt of the answer, so any queueing (client or server) counts.
  ``p50_ms`` / ``p99_ms``: the run with the median p99 of ``--runs``;
  ``server_p50_ms`` / ``server_p99_ms``: the server's own share (Deribit's ``usDiff``:
  request parsed → answer built, acknowledgement of the durable command included).
- Idle polling (``clearway node --idle-poll``, clearway/engine/idlepoll.py: a SCHED_IDLE
  spinner per CPU, so that vCPUs do not halt and wake-ups do not go through the
  hypervisor): the server runs the node's default, adaptive idle polling (CPUs poll until
  idle for 300 µs), as ``clearway node`` does. Each of the ``--runs`` rounds makes one
  paced run in each mode — adaptive, always, off — in a rotating order, so all three are
  measured in the same minutes; ``by_idle_poll`` has each mode's statistics (the run with
  the median p99, and ``all_runs``); the headline figures are the default's (adaptive).
  CLEARWAY_BENCH_API_IDLE_POLL=0 runs with ``off`` only; where the spinners cannot
  start (no SCHED_IDLE) or would use up a CPU quota, those modes are skipped (with the
  reason) and the headline is ``off``, as ``clearway node`` falls back; ``idle_poll``
  says which mode the headline is.
- Sustained: the client keeps 1,000 orders in flight for 4 s on one connection;
  ``max_sustained_orders_per_s`` = answers per second (median of ``--runs``);
  ``server_cpu_us_per_order`` = CPU time of the server process (all threads: API loop,
  sequencer, committer) per answered order, median of the runs: less sensitive to other
  load than the rates. The paced latency is also measured at 10,000/s
  (``p50_ms_at_10k`` / ``p99_ms_at_10k``).
- The journal lives in a temporary directory under CLEARWAY_BENCH_API_DIR (default: the
  system's temporary directory; ``journal_dir``). ``disk_sync`` (bench/disk.py: 2 s of
  8 KiB overwrites; ``p50_ms``, ``p99_ms`` and the tail): fdatasync latency of that
  directory's disk, measured first: every
  durable acknowledgement waits for at least one, so it bounds the paced latency from
  below (a tmpfs directory such as /dev/shm measures the software path without it, and
  without durability).

Every answer is checked (an error stops the benchmark). Figures depend on the machine
and its load; the JSON carries the core count and the load average.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import time

from clearway.engine.idlepoll import start_default
from disk import sync_latency  # bench/ is on sys.path (clearway bench, or python bench/api.py)
from stats import median_run, percentile

RATE = int(os.environ.get("CLEARWAY_BENCH_API_RATE", "2000"))
SECONDS = float(os.environ.get("CLEARWAY_BENCH_API_SECONDS", "5"))
IDLE_POLL = os.environ.get("CLEARWAY_BENCH_API_IDLE_POLL", "1") != "0"
MODES = ("adaptive", "always", "off")  # the first is the node's default (clearway node --idle-poll)
SATURATION_SECONDS = 4.0
WINDOW = 1_000
HIGH_RATE = 10_000
WARMUP = 500


def _serve(pipe, data_root: str | None = None) -> None:
    """Child: node + API on an ephemeral loopback port; reports (port, id, secret)."""
    from clearway.api.ratelimit import Limits
    from clearway.api.server import ApiServer
    from clearway.api.service import ApiConfig
    from clearway.domain.commands import Deposit, SetMarkPrices
    from clearway.engine.loadgen import bench_genesis
    from clearway.engine.node import Node

    with tempfile.TemporaryDirectory(dir=data_root) as data:
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
        poller = None
        while (mode := pipe.recv()) != "stop":  # an idle-polling mode (MODES)
            if poller is not None:
                poller.stop()
                poller = None
            if mode == "adaptive":  # started here, in the server's process: the node wakes the spinners
                poller, why_not = start_default()
                if poller is None:
                    pipe.send(why_not)
                    continue
            elif mode == "always":  # the default's rule too: not under a quota, which it would use up
                poller, why_not = start_default(window_s=None)
                if poller is None:
                    pipe.send(why_not)
                    continue
            pipe.send("ok")
        if poller is not None:
            poller.stop()
        server.stop()
        node.close(snapshot=False)


def _order(i: int) -> str:
    return ('{"jsonrpc":"2.0","id":%d,"method":"private/buy","params":{"instrument_name":"BTC_USDC-PERPETUAL",'
            '"amount":"0.001","price":"50000","time_in_force":"immediate_or_cancel"}}' % i)


class _Client:
    """A single-threaded WebSocket client on a blocking socket: the handshake and the
    frames come from ``websockets``' sans-I/O ``ClientProtocol`` (RFC 6455, masked
    frames); answers are read with ``select`` and split by a minimal parser of the
    server's unmasked frames. No threads and no event loop: the client's own overhead
    (and its share of the two cores) stays small."""

    def __init__(self, port: int, client_id: str, secret: str) -> None:
        import socket

        from websockets.client import ClientProtocol
        from websockets.protocol import State
        from websockets.uri import parse_uri

        self.proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/ws/api/v2"), max_size=2**24)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.proto.send_request(self.proto.connect())
        self.sock.sendall(b"".join(self.proto.data_to_send()))
        while self.proto.state is not State.OPEN:
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("connection closed during the handshake")
            self.proto.receive_data(data)
            self.proto.events_received()
            if self.proto.handshake_exc is not None:
                raise RuntimeError(f"handshake failed: {self.proto.handshake_exc}")
        self.buf = bytearray()
        self.sock.sendall(self.frame(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "public/auth", "params": {
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}})))
        answer = self.messages(30.0)
        if len(answer) != 1 or '"result"' not in answer[0]:
            raise RuntimeError(f"auth failed: {answer}")

    def frame(self, text: str, opcode: int = 1) -> bytes:
        """One masked client frame (text, or pong for opcode 10)."""
        if opcode == 10:
            self.proto.send_pong(text.encode())
        else:
            self.proto.send_text(text.encode())
        return b"".join(self.proto.data_to_send())

    def messages(self, timeout: float) -> list[str]:
        """The complete text messages received within ``timeout`` s ([] if none);
        answers pings, raises on a close frame."""
        import select

        if not self._split_ready() and not select.select([self.sock], [], [], timeout)[0]:
            return []
        if not self._split_ready():
            data = self.sock.recv(65536)  # under malloc's mmap threshold: no mmap/munmap per read
            if not data:
                raise RuntimeError("server closed the connection")
            self.buf += data
        return self._split()

    def _split_ready(self) -> bool:
        return len(self.buf) >= 2 and len(self.buf) >= self._frame_end(0)

    def _frame_end(self, at: int) -> int:
        buf = self.buf
        length = buf[at + 1] & 0x7F
        if length == 126:
            return at + 4 + (int.from_bytes(buf[at + 2:at + 4], "big") if len(buf) >= at + 4 else 1 << 62)
        if length == 127:
            return at + 10 + (int.from_bytes(buf[at + 2:at + 10], "big") if len(buf) >= at + 10 else 1 << 62)
        return at + 2 + length

    def _split(self) -> list[str]:
        buf = self.buf
        out = []
        at = 0
        while len(buf) - at >= 2:
            end = self._frame_end(at)
            if end > len(buf):
                break
            opcode = buf[at] & 0x0F
            length = buf[at + 1] & 0x7F
            start = at + (2 if length < 126 else 4 if length == 126 else 10)
            payload = bytes(buf[start:end])
            if opcode == 1:
                out.append(payload.decode())
            elif opcode == 9:
                self.sock.sendall(self.frame(payload.decode("latin-1"), opcode=10))
            elif opcode == 8:
                raise RuntimeError(f"server closed the WebSocket: {payload[2:]!r}")
            at = end
        del buf[:at]
        return out

    def close(self) -> None:
        try:
            self.proto.send_close(1000)
            self.sock.sendall(b"".join(self.proto.data_to_send()))
        except Exception:
            pass
        self.sock.close()


def _check(text: str) -> int:
    """The id of a successful answer (the order must have been accepted)."""
    if '"error"' in text:
        raise RuntimeError(f"order failed: {text[:300]}")
    start = text.index('"id":') + 5
    return int(text[start:text.index(",", start)])


def _fine_timers() -> None:
    """Ask Linux for 1 µs timer slack (default 50 µs) so ``select`` wakes the client at
    an order's scheduled time, not up to 50 µs later."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK, ns
    except (OSError, AttributeError):  # pragma: no cover
        pass


def _paced(port, client_id, secret, rate: int, seconds: float) -> dict:
    """Paced run on one connection: every order is sent at its scheduled time
    t0 + i/rate (orders due together leave in one write), answers are read in between;
    latency = receipt of the answer − scheduled time."""
    client = _Client(port, client_id, secret)
    n = int(rate * seconds)
    interval = 1.0 / rate
    frames = [client.frame(_order(i + 1)) for i in range(n)]
    latency = [0.0] * n
    server = [0.0] * n
    clock = time.perf_counter
    t0 = clock() + 0.05
    sent = received = 0
    deadline = t0 + seconds + 120
    while received < n:
        now = clock()
        if now > deadline:
            raise RuntimeError(f"paced run: {n - received} answers missing")
        if sent < n and t0 + sent * interval <= now:
            last = sent
            while last < n and t0 + last * interval <= now:
                last += 1
            client.sock.sendall(b"".join(frames[sent:last]) if last - sent > 1 else frames[sent])
            sent = last
        wait = max(0.0, t0 + sent * interval - clock()) if sent < n else 1.0
        answers = client.messages(wait)
        if answers:
            now = clock()
            for text in answers:
                i = _check(text) - 1
                latency[i] = now - (t0 + i * interval)
                start = text.rindex('"usDiff":') + 9
                server[i] = int(text[start:text.index(",", start)]) / 1e6
            received += len(answers)
    client.close()
    measured = sorted(latency[min(WARMUP, n // 10):])
    own = sorted(server[min(WARMUP, n // 10):])
    return {"p50_ms": round(1000 * percentile(measured, 0.50, presorted=True), 3),
            "p99_ms": round(1000 * percentile(measured, 0.99, presorted=True), 3), "orders": n,
            "server_p50_ms": round(1000 * percentile(own, 0.50, presorted=True), 3),
            "server_p99_ms": round(1000 * percentile(own, 0.99, presorted=True), 3)}


def _saturate(port, client_id, secret, seconds: float) -> tuple[int, float]:
    """(answers, seconds) with WINDOW orders kept in flight on one connection."""
    client = _Client(port, client_id, secret)
    clock = time.perf_counter
    sent = received = 0
    start = clock()
    stop_at = start + seconds
    while True:
        now = clock()
        if now < stop_at and sent - received < WINDOW:
            count = WINDOW - (sent - received)
            client.sock.sendall(b"".join(client.frame(_order(sent + k + 1)) for k in range(count)))
            sent += count
        elif now >= stop_at and received == sent:
            break
        if now > stop_at + 120:
            raise RuntimeError("saturation run: answers missing")
        answers = client.messages(1.0)
        for text in answers:
            _check(text)
        received += len(answers)
    elapsed = clock() - start
    client.close()
    return received, elapsed


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(args) -> dict:
    """Run the paced and the sustained measurements against a child server (module
    docstring); ``args.runs`` repetitions, medians reported."""
    runs = max(1, getattr(args, "runs", 3) or 1)
    data_root = os.environ.get("CLEARWAY_BENCH_API_DIR") or None
    sync = sync_latency(data_root)
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child, data_root), daemon=True)
    server.start()
    try:
        if not parent.poll(120):
            raise RuntimeError("API server did not start")
        port, client_id, secret = parent.recv()
        _fine_timers()
        modes, skipped = [], {}
        for mode in MODES:  # which modes start here ("off" always does)
            problem = _set_mode(parent, mode) if IDLE_POLL or mode == "off" else "CLEARWAY_BENCH_API_IDLE_POLL=0"
            if problem is None:
                modes.append(mode)
            else:
                skipped[mode] = problem
        default = "adaptive" if "adaptive" in modes else "off"  # as clearway node falls back
        _switch(parent, default)
        _paced(port, client_id, secret, RATE, 1.0)  # warm-up
        by_mode: dict[str, list[dict]] = {mode: [] for mode in modes}
        for r in range(runs):  # every mode once per round, in a rotating order: the same minutes
            for mode in modes[r % len(modes):] + modes[:r % len(modes)]:
                _switch(parent, mode)
                by_mode[mode].append(_paced(port, client_id, secret, RATE, SECONDS))
        chosen = median_run(by_mode[default], "p99_ms")
        _switch(parent, default)  # the sustained and 10,000/s runs: the default
        sustained, cpu = [], []
        for _ in range(runs):
            cpu_before = _cpu_seconds(server.pid)  # (the connection's handshake and auth included)
            orders, elapsed = _saturate(port, client_id, secret, SATURATION_SECONDS)
            sustained.append(orders / elapsed)
            cpu.append((_cpu_seconds(server.pid) - cpu_before) / orders * 1e6)
        high = _paced(port, client_id, secret, HIGH_RATE, 3.0)
        sustained.sort()
        cpu.sort()
    finally:
        parent.send("stop")
        server.join(30)
        if server.is_alive():
            server.kill()
    result = {
        "rate_per_s": RATE,
        "p50_ms": chosen["p50_ms"],
        "p99_ms": chosen["p99_ms"],
        "max_sustained_orders_per_s": round(sustained[len(sustained) // 2]),
        "server_cpu_us_per_order": round(cpu[len(cpu) // 2], 1),
        "server_p50_ms": chosen["server_p50_ms"],
        "server_p99_ms": chosen["server_p99_ms"],
        "p50_ms_at_10k": high["p50_ms"],
        "p99_ms_at_10k": high["p99_ms"],
        "paced_orders_per_run": chosen["orders"],
        "runs": runs,
        "transport": "WebSocket, one connection, loopback; server in a child process (uvloop); "
                     "single-threaded sans-I/O client in this process",
        "journal_dir": data_root or tempfile.gettempdir(),
        "disk_sync": sync,
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    result["idle_poll"] = default
    result["by_idle_poll"] = {}
    for mode, mode_runs in by_mode.items():
        median = median_run(mode_runs, "p99_ms")
        result["by_idle_poll"][mode] = {key: median[key] for key in ("p50_ms", "p99_ms", "server_p50_ms", "server_p99_ms")}
        result["by_idle_poll"][mode]["all_runs"] = [{"p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]} for r in mode_runs]
    for mode, why in skipped.items():
        result["by_idle_poll"][mode] = {"skipped": why}
    result["all_runs"] = result["by_idle_poll"][default]["all_runs"]
    return result


def _set_mode(pipe, mode: str) -> str | None:
    """Switch the server's idle polling to ``mode``; None, or why it cannot start."""
    pipe.send(mode)
    answer = pipe.recv()
    return None if answer == "ok" else answer


def _switch(pipe, mode: str) -> None:
    """Switch to a mode that started before; raises RuntimeError if it no longer does."""
    problem = _set_mode(pipe, mode)
    if problem is not None:
        raise RuntimeError(f"idle polling {mode} stopped working: {problem}")


def print_report(result: dict) -> None:
    print(f"API place-and-acknowledge over WebSocket at {result['rate_per_s']:,} orders/s: "
          f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    print(f"  idle polling {result['idle_poll']} (clearway node's default); each mode, alternating runs:")
    for mode, figures in result["by_idle_poll"].items():
        if "skipped" in figures:
            print(f"    {mode}: skipped ({figures['skipped']})")
        else:
            print(f"    {mode}: p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms "
                  f"(runs: {', '.join(str(r['p50_ms']) + '/' + str(r['p99_ms']) for r in figures['all_runs'])})")
    print(f"  at 10,000 orders/s: p50 {result['p50_ms_at_10k']} ms, p99 {result['p99_ms_at_10k']} ms")
    print(f"  sustained (1,000 in flight): {result['max_sustained_orders_per_s']:,} orders/s, "
          f"server CPU {result['server_cpu_us_per_order']} µs/order")
    print(f"  journal in {result['journal_dir']}: fdatasync p50 {result['disk_sync']['p50_ms']} ms, "
          f"p99 {result['disk_sync']['p99_ms']} ms")
    print(f"  {result['cpus']} CPUs, load average {result['loadavg']}")
