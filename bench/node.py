"""Benchmark of the sequencer node (issue 5): ``clearway bench node --json``.

1. Durable throughput and acknowledgement latency, SQLite and (given a URL) PostgreSQL.
   The synthetic mix of clearway/engine/loadgen.py (100 deposits, a mark price, then
   limit orders, IOC orders and cancels on BTC-PERP, ~1,400 resting orders) goes through
   ``Node.submit_many`` from an in-process client thread; a second client thread waits for
   the acknowledgements (see ``_drive``). The client is in-process because that is the
   node's API (the network API calls it the same way from its event loop) and because a
   client in another process would still make the node decode and validate every
   command, while adding pipe I/O and a relay of acknowledgements; it is kept cheap
   instead (one ``submit_many`` per 0.2 ms tick, one wait per chunk), about 1 µs of the
   process's CPU per command.
   - ``commands_per_second``: saturation, the client keeps 2,000 commands in flight;
     median of ``--runs``. ``cpu_us_per_command``: CPU time of the whole process (node
     and client threads; not the PostgreSQL server) per command, a figure less
     sensitive to other load on the machine than wall-clock rates.
   - ``ack_p50_ms`` / ``ack_p99_ms``: latency at a paced load of ``ack_load_cps`` =
     50,000 commands/s if the saturation rate exceeds it by 10%, else 80% of the
     saturation rate (a load the node sustains), for 4 s after a 0.5 s warm-up at the
     same rate that is not counted (the client going from 0 to full rate against a cold
     node: its first ~30 ms alone were most of the slowest 1 % of a 4 s run); measured
     from each command's scheduled submission time to the moment the client sees its
     acknowledgement (so the client's tick, queueing in the node and client stalls count
     too); the run with the median p99 (every run's p50/p99: ``paced_runs``, each with
     ``cpu_probe_ms`` before and after it: ``cpu_probe_ms()``, the machine's speed at the
     time; the saturation runs' in ``saturation_cpu_probe_ms``; and ``steal_percent``,
     the share of the machine's CPU time its hypervisor gave to other guests during the
     run: ``steal_percent()``).
     ``ack_by_load_cps`` adds single paced runs at 5,000 and 20,000 commands/s.
   - The journal is SQLite in WAL mode with ``synchronous=full`` (every commit fsynced:
     an acknowledgement survives power loss). ``sqlite_synchronous_normal`` repeats the
     paced runs with ``synchronous=normal`` (no fsync per commit; survives a crash of the
     process only), to show what the fsync costs on the machine; informational only.
2. Crash test (clearway/engine/crashtest.py): a ``clearway node`` child process under
   load, killed with SIGKILL at random moments and restarted (CLEARWAY_BENCH_KILLS, 20).
3. Recovery of a 1,000,000-command journal (CLEARWAY_BENCH_RECOVERY_COMMANDS) with no
   snapshot and with a snapshot 50,000 commands before the end (half the default
   snapshot interval). The journal was just written, so it sits in the page cache.

Part 1 runs under the node's default idle polling (adaptive: engine/idlepoll.py, as
``clearway node`` does; ``idle_poll`` says whether it ran, CLEARWAY_BENCH_NODE_IDLE_POLL=0
turns it off); the crash test's ``clearway node`` children start their own.
``compiled_domain``: whether the domain's hot path ran compiled (clearway/native.py;
false for an install with CLEARWAY_PURE_PYTHON=1 or without a C compiler, and for a run
with CLEARWAY_PURE_PYTHON=1 in its environment).

Measured first, ``disk_sync`` (bench/disk.py): fdatasync latency of the journal's disk with
its tail. A sync that stalls for 10–20 ms (seen a few times a minute on the bench VM)
delays every acknowledgement waiting for it, whatever the node does.

The PostgreSQL URL comes from ``args.pg_url`` or CLEARWAY_BENCH_PG_URL. Figures depend on
the machine and on whatever else runs on it; the JSON carries the core count and load.
"""

from __future__ import annotations

import os
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from array import array
from pathlib import Path

import msgspec

from clearway.domain.commands import encode_command
from clearway.native import compiled_status
from clearway.domain.state import ExchangeState, apply
from clearway.engine.crashtest import crash_test
from clearway.engine.idlepoll import start_default
from clearway.engine.journal import SqliteJournal, record_checksum, SQLITE_FILE
from clearway.engine.loadgen import bench_genesis, command_stream, take
from clearway.engine.node import Node
from clearway.engine.snapshots import SnapshotStore, anchor_of, build_snapshot
from disk import sync_latency  # bench/ is on sys.path (clearway bench, or python bench/node.py)
from stats import median_run, percentile

TARGET_CPS = 50_000
IDLE_POLL = os.environ.get("CLEARWAY_BENCH_NODE_IDLE_POLL", "1") != "0"
WINDOW = 2_000
PACED_SECONDS = 4  # length of a paced (latency) run
PACED_WARMUP_S = 0.5  # paced at the same rate first, not counted: the start-up transient
LOW_RATES = (5_000, 20_000)  # extra paced runs: latency below the target load
WARMUP = 101
TICK_S = 0.0005  # the client's wake-up period in paced runs (a timed sleep costs ~20 us of CPU here)
T0 = 1_700_000_000_000


def run(args) -> dict:
    """Run the three parts; ``args`` has ``runs``, ``orders`` (commands per throughput
    run), ``seed`` and optionally ``pg_url``."""
    runs = max(1, getattr(args, "runs", 3) or 1)
    n = max(10_000, getattr(args, "orders", 200_000) or 200_000)
    seed = getattr(args, "seed", 1) or 1
    pg_url = getattr(args, "pg_url", None) or os.environ.get("CLEARWAY_BENCH_PG_URL")
    kills = int(os.environ.get("CLEARWAY_BENCH_KILLS", "20"))
    recovery_n = int(os.environ.get("CLEARWAY_BENCH_RECOVERY_COMMANDS", "1000000"))
    root = Path(tempfile.mkdtemp(prefix="clearway-bench-node-"))
    result: dict = {"machine": {"cores": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
                    "commands_per_run": n, "runs": runs,
                    "compiled_domain": all(compiled_status().values())}
    try:
        result["disk_sync"] = sync_latency(str(root))
        commands = take(command_stream(seed), max(n, _paced_count(TARGET_CPS)))
        poller, why_not = start_default() if IDLE_POLL else (None, "CLEARWAY_BENCH_NODE_IDLE_POLL=0")
        result["idle_poll"] = "adaptive" if poller is not None else f"off ({why_not})"
        try:
            result["sqlite"] = _throughput(root, None, commands, runs)
            result["sqlite_synchronous_normal"] = _paced_normal(root, commands, runs, result["sqlite"]["ack_load_cps"])
            if pg_url:
                result["postgresql"] = _throughput(root, pg_url, commands, runs)
            else:
                result["postgresql"] = {"skipped": "no URL: set CLEARWAY_BENCH_PG_URL (bash .ci/postgres.sh prints one)"}
        finally:
            if poller is not None:
                poller.stop()
        crash = crash_test(root / "crash", kills, seed=seed)
        result.update({
            "crash_cycles": crash["crash_cycles"],
            "acknowledged_lost": crash["acknowledged_lost"],
            "state_hash_match": crash["state_hash_match"],
            "crash_detail": crash,
        })
        result.update(_recovery(root / "recovery", recovery_n, seed))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


def print_report(result: dict) -> None:
    out = sys.stdout.write
    out(f"machine: {result['machine']['cores']} cores, load {result['machine']['load_average_1m']} at start\n")
    disk = result["disk_sync"]
    out(f"journal disk: fdatasync p50 {disk['p50_ms']} ms, p99 {disk['p99_ms']} ms, max {disk['max_ms']} ms, "
        f"{disk['over_5ms_per_s']} syncs/s over 5 ms (each stalls every acknowledgement waiting for it)\n")
    out(f"idle polling: {result['idle_poll']}; domain hot path compiled (mypyc): {result['compiled_domain']}\n")
    for name in ("sqlite", "postgresql"):
        r = result[name]
        if "skipped" in r:
            out(f"{name:>10}: skipped ({r['skipped']})\n")
            continue
        out(f"{name:>10}: {r['commands_per_second']:>9,.0f} durable commands/s (target {TARGET_CPS:,}); "
            f"ack p50 {r['ack_p50_ms']:.2f} ms, p99 {r['ack_p99_ms']:.2f} ms at {r['ack_load_cps']:,} commands/s "
            f"(target p99 <= 5 ms); {r['commands_per_commit']:.0f} commands per commit and "
            f"{r['cpu_us_per_command']:.1f} us of process CPU per command at saturation\n")
        out(f"{'':>12}paced runs: p99 " + ", ".join(
            f"{run['ack_p99_ms']:.1f} ms (CPU probe {run['cpu_probe_ms'][0]}-{run['cpu_probe_ms'][1]} ms, "
            f"steal {run['steal_percent']} %)" for run in r["paced_runs"]) + "\n")
        for load, lat in r["ack_by_load_cps"].items():
            out(f"{'':>12}at {int(load):>6,} commands/s: ack p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms\n")
        if name == "sqlite":
            normal = result["sqlite_synchronous_normal"]
            out(f"{'':>12}synchronous=normal (durable against a process crash only) at {normal['ack_load_cps']:,} "
                f"commands/s: ack p50 {normal['ack_p50_ms']:.2f} ms, p99 {normal['ack_p99_ms']:.2f} ms\n")
    out(f"crash test: {result['crash_cycles']} SIGKILLs, {result['crash_detail']['acknowledged']:,} acknowledged, "
        f"{result['acknowledged_lost']} lost, state hash matches a clean replay: {result['state_hash_match']}\n")
    out(f"recovery of {result['recovery_commands']:,} commands: {result['recovery_1m_s']:.2f} s without a snapshot "
        f"(target 30 s), {result['recovery_1m_with_snapshot_s']:.2f} s from a snapshot "
        f"{result['recovery_snapshot_tail']:,} commands back (target 5 s)\n")


# -- 1. throughput and latency ------------------------------------------------------------
def _throughput(root: Path, pg_url: str | None, commands: list, runs: int) -> dict:
    saturation = [_one_run(root, pg_url, commands, rate=None) for _ in range(runs)]
    cps = statistics.median(r["commands_per_second"] for r in saturation)
    rate = TARGET_CPS if cps >= 1.1 * TARGET_CPS else int(0.8 * cps)
    paced = [_one_run(root, pg_url, commands[:_paced_count(rate)], rate=rate) for _ in range(runs)]
    median_paced = median_run(paced, "ack_p99_ms")
    curve = {}
    for low in LOW_RATES:
        r = _one_run(root, pg_url, commands[:_paced_count(low)], rate=low)
        curve[str(low)] = {"p50_ms": r["ack_p50_ms"], "p99_ms": r["ack_p99_ms"]}
    return {
        "commands_per_second": round(cps),
        "ack_p50_ms": median_paced["ack_p50_ms"],
        "ack_p99_ms": median_paced["ack_p99_ms"],
        "ack_max_ms": median_paced["ack_max_ms"],
        "ack_load_cps": rate,
        "paced_runs": [{"ack_p50_ms": r["ack_p50_ms"], "ack_p99_ms": r["ack_p99_ms"],
                        "cpu_probe_ms": r["cpu_probe_ms"], "steal_percent": r["steal_percent"]}
                       for r in paced],
        "saturation_cpu_probe_ms": [r["cpu_probe_ms"] for r in saturation],
        "saturation_steal_percent": [r["steal_percent"] for r in saturation],
        "achieved_paced_cps": median_paced["commands_per_second"],
        "ack_by_load_cps": curve,
        "saturation_ack_p99_ms": statistics.median(r["ack_p99_ms"] for r in saturation),
        "commands_per_commit": statistics.median(r["commands_per_commit"] for r in saturation),
        "cpu_us_per_command": statistics.median(r["cpu_us_per_command"] for r in saturation),
        "all_runs_cps": [r["commands_per_second"] for r in saturation],
    }


def _paced_normal(root: Path, commands: list, runs: int, rate: int) -> dict:
    """The paced runs of ``_throughput`` again on SQLite with ``synchronous=normal`` (no
    fsync per commit: durable against a crash of the process, not a power loss), to show
    what the fsync costs; informational, the headline figures are ``synchronous=full``."""
    paced = [_one_run(root, None, commands[:_paced_count(rate)], rate=rate, synchronous="normal")
             for _ in range(runs)]
    median = median_run(paced, "ack_p99_ms")
    return {"ack_load_cps": rate, "ack_p50_ms": median["ack_p50_ms"], "ack_p99_ms": median["ack_p99_ms"],
            "achieved_paced_cps": median["commands_per_second"],
            "guarantee": "process crash only (no fsync per commit)"}


def _paced_count(rate: int) -> int:
    """Commands of a paced run at ``rate``: the untimed start, the warm-up, the timed part."""
    return WARMUP + int((PACED_WARMUP_S + PACED_SECONDS) * rate)


def _one_run(root: Path, pg_url: str | None, commands: list, rate: int | None, synchronous: str = "full") -> dict:
    data_dir = root / f"tp-{uuid.uuid4().hex[:8]}"
    schema = "bench_" + uuid.uuid4().hex[:12]
    # Sliced before the node opens, whose gc.freeze() then takes the list out of the
    # collector's young generation: a 200,000-element list made during the run was
    # scanned by the first young collection, a 6-11 ms stall of the node (gc.callbacks).
    timed = commands[WARMUP:]
    node = Node(data_dir, bench_genesis(), journal=pg_url, pg_schema=schema, sqlite_synchronous=synchronous)
    try:
        for ticket in [node.submit(c) for c in commands[:WARMUP]]:
            ticket.result(timeout=60)
        commits_before = node.commits
        probe_before = cpu_probe_ms()
        steal_before = cpu_ticks()
        cpu_before = time.process_time()
        started, latencies, elapsed = _drive(node, timed, rate)
        cpu = time.process_time() - cpu_before
        commits = node.commits - commits_before
        steal = steal_percent(steal_before, cpu_ticks())
        probe_after = cpu_probe_ms()
    finally:
        node.close(snapshot=False)
        shutil.rmtree(data_dir, ignore_errors=True)
        if pg_url:
            _drop_schema(pg_url, schema)
    total = len(latencies)
    if rate is not None:  # the warm-up's commands are paced too, but not counted
        latencies = latencies[int(PACED_WARMUP_S * rate):]
    latencies.sort()
    return {
        "commands_per_second": round(total / elapsed),
        "ack_p50_ms": round(percentile(latencies, 0.50, presorted=True) * 1e3, 3),
        "ack_p99_ms": round(percentile(latencies, 0.99, presorted=True) * 1e3, 3),
        "ack_max_ms": round(latencies[-1] * 1e3, 3),
        "commands_per_commit": round(total / max(1, commits), 1),
        "cpu_us_per_command": round(cpu / total * 1e6, 1),
        "cpu_probe_ms": [probe_before, probe_after],
        "steal_percent": steal,
    }


def cpu_ticks(stat: str = "/proc/stat") -> tuple[int, int] | None:
    """(steal, total) clock ticks of all CPUs since boot, from the ``cpu`` line of
    ``/proc/stat`` (user, nice, system, idle, iowait, irq, softirq, steal; guest time is
    already inside user and nice); None where there is no such file (not Linux)."""
    try:
        with open(stat) as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    ticks = [int(x) for x in fields[1:9]]
    return ticks[7], sum(ticks)


def steal_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Percentage of all CPUs' time between two ``cpu_ticks`` readings that the hypervisor
    gave to other guests (steal), or None if unknown. On the 2-vCPU bench VM it was
    0.3-16 % during paced runs at 50,000 commands/s (session 9, README): a vCPU held back
    while one of the node's threads holds the GIL stops every thread of the node."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(100 * (after[0] - before[0]) / (after[1] - before[1]), 1)


def cpu_probe_ms() -> float:
    """How fast this machine runs Python right now: the median wall time (ms) of 5 runs of
    a fixed loop of 50,000 integer additions, about 1.5 ms on the bench VM at its fastest
    and twice that in its slow phases (which last minutes). Taken before and after each
    run so that a run's figures can be read against the machine's speed at the time."""
    clock = time.perf_counter
    times = []
    for _ in range(5):
        start = clock()
        total = 0
        for i in range(50_000):
            total += i
        times.append(clock() - start)
    return round(statistics.median(times) * 1e3, 3)


def _drive(node: Node, commands: list, rate: int | None):
    """Submit ``commands`` from this thread and collect acknowledgements on another.

    The client is kept cheap so that the figures are the node's, not the load
    generator's: it wakes every TICK_S, submits every command due by then with one
    ``Node.submit_many`` (like a network reader handing over what it drained from its
    sockets), and hands the chunk's last ticket to the collector; a chunk is one batch,
    acknowledged at one moment, so the collector waits for that ticket and stamps the
    whole chunk. Per-command latencies are computed after the run.

    rate None: keep WINDOW commands in flight (saturation); latency from the moment the
    chunk was submitted. rate r: command i is due at t0 + i/r and its latency runs from
    that scheduled time to the moment the collector sees its acknowledgement, so waiting
    for the client's next tick, queueing in the node and collector stalls all count."""
    n = len(commands)
    pending: queue.SimpleQueue = queue.SimpleQueue()
    # per chunk: first command, end, submitted, acknowledged; arrays, not a list of tuples,
    # so that the client adds nothing to the collector's young generation (a tuple per
    # tick was most of what triggered the young collections that stalled the node)
    firsts, ends, submits, acks = array("q"), array("q"), array("d"), array("d")
    collected = [0]  # commands acknowledged so far (written by the collector only)
    clock = time.perf_counter

    def collect() -> None:
        get = pending.get
        while (item := get()) is not None:
            first, end, submitted, ticket = item
            ticket.wait()
            acks.append(clock())
            firsts.append(first)
            ends.append(end)
            submits.append(submitted)
            collected[0] = end

    collector = threading.Thread(target=collect, name="bench-collector")
    collector.start()
    submit_many = node.submit_many
    put = pending.put
    sleep = time.sleep
    t0 = clock()
    tick = t0  # paced: the client wakes every TICK_S from t0; once behind, the grid restarts from then
    i = 0
    while i < n:
        now = clock()
        due = n if rate is None else min(n, int((now - t0) * rate) + 1)
        stop = min(due, collected[0] + WINDOW)
        if stop > i:
            tickets = submit_many(commands[i:stop])
            put((i, stop, now, tickets))
            i = stop
            if rate is None:
                continue
        elif rate is None:
            sleep(TICK_S)
            continue
        tick += TICK_S
        delay = tick - clock()
        if delay > 0:
            sleep(delay)
        else:
            tick -= delay  # behind (the submission sequenced a long batch): wake at once, keep the period
    put(None)
    collector.join()
    latencies = []
    for first, end, submitted, acknowledged in zip(firsts, ends, submits, acks):
        if rate is None:
            latencies.extend([acknowledged - submitted] * (end - first))
        else:
            base = acknowledged - t0
            latencies.extend([base - k / rate for k in range(first, end)])
    return t0, latencies, acks[-1] - t0


def _drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- 3. recovery ---------------------------------------------------------------------------
def _recovery(data_dir: Path, n: int, seed: int) -> dict:
    """Write an n-command journal directly (sequenced, applied, with a snapshot 50,000
    commands before the end), then time Node start-up without and with the snapshot."""
    tail = min(50_000, n // 2)
    genesis = bench_genesis()
    data_dir.mkdir(parents=True)
    journal = SqliteJournal(data_dir / SQLITE_FILE)
    journal.set_genesis(genesis.encode())
    store = SnapshotStore(data_dir)
    state = ExchangeState(genesis)
    stream = command_stream(seed + 1)
    replace = msgspec.structs.replace
    records = []
    build_started = time.perf_counter()
    for seq in range(1, n + 1):
        command = replace(next(stream), seq=seq, ts=T0 + seq // 100)
        data = encode_command(command)
        apply(state, command)
        records.append((seq, data, record_checksum(seq, data)))
        if len(records) == 10_000:
            journal.append(records)
            records = []
        if seq == n - tail:
            store.write(seq, build_snapshot(state, anchor_of(data)))
    if records:
        journal.append(records)
    journal.close()
    build_s = time.perf_counter() - build_started

    aside = data_dir.parent / "snapshots-aside"
    store.directory.rename(aside)
    started = time.perf_counter()
    node = Node(data_dir, genesis, snapshot_every=0)
    without = time.perf_counter() - started
    full_report = node.recovery
    node.close(snapshot=False)
    shutil.rmtree(store.directory)
    aside.rename(store.directory)
    started = time.perf_counter()
    node = Node(data_dir, genesis, snapshot_every=0)
    with_snapshot = time.perf_counter() - started
    snap_report = node.recovery
    node.close(snapshot=False)
    assert full_report.state_hash == snap_report.state_hash, "recoveries disagree"
    assert full_report.last_seq == snap_report.last_seq == n
    return {
        "recovery_commands": n,
        "recovery_1m_s": round(without, 2),
        "recovery_1m_with_snapshot_s": round(with_snapshot, 2),
        "recovery_snapshot_tail": snap_report.replayed,
        "recovery_journal_mb": round(os.path.getsize(data_dir / SQLITE_FILE) / 2**20, 1),
        "recovery_build_s": round(build_s, 1),
    }


if __name__ == "__main__":  # python bench/node.py: a quick run without the clearway CLI
    import argparse
    import json

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    outcome = run(arguments)
    if arguments.json:
        print(json.dumps(outcome, indent=2))
    else:
        print_report(outcome)
