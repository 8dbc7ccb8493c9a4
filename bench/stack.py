"""Benchmark of the embedded settlement layer (clearway/sim/stack.py): ``clearway bench
stack --json``.

On a fresh :class:`~clearway.sim.stack.EmbeddedStack` (embedded chain, vault, sequencer
node, watcher, batcher, three verifiers with threshold 2) and a simulated clock:

1. ``ACCOUNTS`` (300) users deposit through the vault (mint, approve, deposit; one watcher
   poll): ``deposit_ms_per_account``.
2. ``--runs`` rounds: ``BATCH_COMMANDS`` (5,000) orders on BTC-PERP from random accounts
   (70% resting limit orders at 1–30 ticks from the mark, 30% IOC orders crossing 5 ticks)
   are sequenced, then :meth:`settle` builds the batch, submits it, lets the three
   verifiers replay it from calldata and attest, and finalises it:
   ``batch_and_attestations_s`` (median), of which ``verifiers_s`` in the verifiers' syncs,
   and ``cpu_s`` the process CPU time (less sensitive to other load than wall time);
   also for ``SMALL_BATCH_COMMANDS`` (500) orders.
3. The halt drill: the sequencer stops, three forced withdrawals go unanswered, the
   verifiers freeze the vault, the escape tool rebuilds the state from chain data and
   every account escapes: ``rebuild_s``, ``escape_ms_per_account`` (mean over the
   escapes), ``escape_gas``, ``halt_drill_cpu_s``.

Wall-clock figures depend on the load of the machine: the JSON carries the load average.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time

from clearway.chain.selftest import selftest_genesis
from clearway.domain.commands import PlaceOrder, SetMarkPrices
from clearway.domain.orders import TimeInForce
from clearway.sim.stack import USDC, EmbeddedStack, StackConfig

ACCOUNTS = 300
BATCH_COMMANDS = 5_000
SMALL_BATCH_COMMANDS = 500
MARK = 25_000 * USDC
TICK = 100_000


class _Timed:
    """Wall time spent in the verifiers' syncs (VerifierSet.sync, wrapped)."""

    def __init__(self, verifiers) -> None:
        self.seconds = 0.0
        self._sync = verifiers.sync
        verifiers.sync = self.sync
        verifiers._source.before = self.sync

    def sync(self):
        started = time.perf_counter()
        try:
            return self._sync()
        finally:
            self.seconds += time.perf_counter() - started


def _orders(rng: random.Random, accounts: list[int], n: int) -> list[PlaceOrder]:
    out = []
    for _ in range(n):
        account, side, size = rng.choice(accounts), rng.choice((1, -1)), rng.randint(1, 20) * 10
        if rng.random() < 0.7:
            out.append(PlaceOrder(0, 0, account, 0, side, size, MARK - side * rng.randint(1, 30) * TICK))
        else:
            out.append(PlaceOrder(0, 0, account, 0, side, size, MARK + side * 5 * TICK, tif=TimeInForce.IOC))
    return out


def run(args) -> dict:
    runs = max(1, getattr(args, "runs", 3))
    rng = random.Random(getattr(args, "seed", 1))
    clock = [1_678_320_000_000]
    with tempfile.TemporaryDirectory(prefix="clearway-bench-stack-") as tmp:
        stack = EmbeddedStack(tmp, genesis_factory=selftest_genesis, clock=lambda: clock[0],
                              config=StackConfig(batch_max_commands=20_000))
        try:
            timed = _Timed(stack.verifiers)
            keys = [stack.new_key(f"user{i}") for i in range(ACCOUNTS)]
            started = time.perf_counter()
            accounts = stack.deposit_many([(k, 1_000_000 * USDC) for k in keys])
            deposit_s = time.perf_counter() - started
            stack.submit(SetMarkPrices(0, 0, {"BTC": MARK}, {0: MARK}))
            stack.settle()
            figures = {}
            for label, size in (("large", BATCH_COMMANDS), ("small", SMALL_BATCH_COMMANDS)):
                totals, verifying, cpu = [], [], []
                for _ in range(runs):
                    stack.submit_many(_orders(rng, accounts, size))
                    clock[0] += 600_000
                    timed.seconds = 0.0
                    started, cpu_started = time.perf_counter(), time.process_time()
                    stack.settle()
                    totals.append(time.perf_counter() - started)
                    cpu.append(time.process_time() - cpu_started)
                    verifying.append(timed.seconds)
                last = stack.batch_summaries()[-1]
                figures[label] = {"commands": size, "batch_and_attestations_s": round(statistics.median(totals), 3),
                                  "verifiers_s": round(statistics.median(verifying), 3),
                                  "cpu_s": round(statistics.median(cpu), 3),
                                  "batch_bytes": last["data_bytes"], "trades": last["trades"], "gas": last["gas"]}
            cpu_started = time.process_time()
            drill = stack.halt_drill()
            drill_cpu = time.process_time() - cpu_started
        finally:
            stack.close()
    return {
        "accounts": ACCOUNTS,
        "deposit_ms_per_account": round(deposit_s / ACCOUNTS * 1000, 1),
        "batch": figures["large"],
        "small_batch": figures["small"],
        "rebuild_s": drill["seconds"]["freeze_and_rebuild"],
        "escapes": drill["escaped_accounts"],
        "escape_ms_per_account": round(drill["seconds"]["escapes"] / max(1, drill["escaped_accounts"]) * 1000, 1),
        "escape_gas": drill["escape_gas"] // max(1, drill["escaped_accounts"]),
        "halt_drill_cpu_s": round(drill_cpu, 3),
        "reconciled": drill["reconciled"],
        "runs": runs,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def print_report(result: dict) -> None:
    batch, small = result["batch"], result["small_batch"]
    print(f"deposits: {result['deposit_ms_per_account']} ms per account ({result['accounts']} accounts)")
    for label, figures in (("batch", batch), ("small batch", small)):
        print(f"{label} of {figures['commands']} commands + 3 attestations + finalise: "
              f"{figures['batch_and_attestations_s']} s (verifiers {figures['verifiers_s']} s, CPU {figures['cpu_s']} s), "
              f"{figures['batch_bytes']} bytes, {figures['trades']} trades, {figures['gas']} gas")
    print(f"halt drill: rebuild {result['rebuild_s']} s; {result['escapes']} escapes at "
          f"{result['escape_ms_per_account']} ms and {result['escape_gas']} gas each; reconciled {result['reconciled']}")
    print(f"median of {result['runs']} runs; load average {result['load_average']} on {result['cores']} cores")


if __name__ == "__main__":
    import argparse

    print_report(run(argparse.Namespace(runs=3, seed=1)))
