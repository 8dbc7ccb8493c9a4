"""``clearway demo``: the whole settlement layer on real market data (the main job).

One run, everything embedded (sim/stack.py): an in-process EVM with the vault, the
sequencer node with its SQLite journal, the deposit watcher, the batcher, three verifiers
(threshold 2) and the JSON-RPC API on loopback. Then:

1. **Listing.** Genesis lists the BTC perpetual (marketdata.perp_spec); option expiries
   (Fridays 08:00 UTC, weekly and monthly, marketdata.option_schedule) are listed by
   operator ``ListOptionSeries`` commands ``LISTING_DAYS`` (21) days ahead, strikes every
   1,000 USD covering ±``STRIKE_SPREAD`` (18 %) around the index at listing.
2. **Oracle.** Every simulated minute that has a bar, four reporters sign the real March
   2023 BTC index and USDC/USD with the SVI surface of every live expiry
   (marketdata.OracleFeed: surface fitted to the real Deribit chain, rescaled by realised
   volatility); the node's clock is the simulated time (the bar's close).
3. **Agents** (agents.py) act after each update, in a fixed order, through the node
   (operator-attested API-key orders for market makers, EIP-712-signed orders for the
   directional traders) or, for one market maker, through unmodified ccxt over the API.
   Deposits go through the vault and are credited by the watcher (the stack steps L1
   every ``step_minutes``); withdrawals are signed, batched, and claimed on L1 once
   finalised. Every 10 minutes the insurance fund is sampled and conservation checked
   (Σ cash = deposits − withdrawals, Σ positions = 0 per instrument); every hour the
   margin snapshot (utilisation, portfolio vs standard margin of the same portfolios).
4. **Settlement.** Every ``batch_minutes`` simulated minutes the batcher posts the pending
   commands to the vault (cut to the vault's limits), the verifiers replay them from the
   chain's calldata alone and attest; two attestations finalise.
5. **Burst.** After the window, ``burst_orders`` commands (post-only quotes, crossing IOC
   orders and cancels by client id, in thirds) are submitted back to back in chunks of
   500 (pipelined) from two market-maker accounts: throughput = commands acknowledged
   (durable) / wall seconds from the first submit to the last acknowledgement.
   Then the last batches (funding is settled eagerly at each funding tick, so nothing is
   left to sweep: ``Demo.check_funding_settled`` checks it).
6. **Baseline.** The run's fills (``FillCollector`` over every event) are replayed through
   the on-chain settlement contract (chain/baseline.py) on the same embedded chain: an
   evenly spaced sample of ``baseline_fills`` fills (the gas of one fill does not depend on
   the others); gas per trade and the trades/s a 30M-gas 12-s block allows.
7. **Halt drill** (EmbeddedStack.halt_drill): the sequencer stops, forced withdrawals go
   unanswered, the vault is frozen, every account escapes from chain data; the vault
   reconciles to the micro-USDC.

Latency (``latency_p50_ms`` / ``latency_p99_ms``): for every order an agent sends to the
node, wall time from ``Node.submit`` to the durable acknowledgement (its events); orders
of one agent's step are submitted together and their tickets awaited in order, so a later
order's figure includes waiting for the earlier ones (an upper bound). EIP-712-signed
orders go through ``EmbeddedStack.submit_many`` (signing included): each gets the call's
wall time. Burst commands are not latency samples.
``api_latency_*`` is ccxt's ``create_order`` round trip (HTTP, authentication, node, read
model). Figures depend on the machine's load.

Determinism: agents draw from seeded generators, the node's clock and the chain's time
are the simulated time, commands are submitted from one thread in a fixed order, and every
event is read back through a node subscription in sequence order; the same seed gives the
same state roots (``state_roots`` in the summary: the vault's root of every batch).
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from clearway.chain.baseline import measure_baseline
from clearway.commitment.exchange_state import unsettled_positions
from clearway.domain.commands import CancelOrder, Command, ListOptionSeries, PlaceOrder
from clearway.domain.events import Rejected, Trade
from clearway.domain.genesis import INSURANCE_FUND, GenesisConfig
from clearway.domain.orders import TimeInForce
from clearway.sim.agents import (
    HOUR, MINUTE, PERP, USDC, Agent, Population, build_view, ceil_tick, floor_tick, make_agents,
)
from clearway.sim.marketdata import (
    MarketData, OracleFeed, Reporters, Surface, iso_ms, ms_iso, option_schedule, perp_spec, series_fields, usdc,
)
from clearway.sim.recorder import RunRecorder, summary_from
from clearway.sim.report import write_report
from clearway.sim.stack import EmbeddedStack, StackConfig

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DEFAULT_FROM = "2023-03-09T00:00"
DEFAULT_TO = "2023-03-14T00:00"
INSURANCE_FUND_START = 1_000_000 * USDC
REPORTERS = 4
LISTING_DAYS = 21
"""Expiries are listed this many days ahead (Deribit lists weeklies 28 and monthlies 91
days ahead; a shorter horizon keeps the chain — and the cost of every oracle update's
margin screen, replayed by every verifier — small enough for the 10-minute budget)."""
STRIKE_SPREAD = 0.18
"""Strikes (1,000 USD apart) cover the index ± 18 % at listing (4 each side at 22,000)."""
SUMMARY_KEYS = (
    "orders", "trades", "liquidations", "adl_events", "insurance_fund_start", "insurance_fund_end", "funding_paid",
    "batches", "attestations", "gas_per_trade_clearway", "gas_per_trade_onchain", "latency_p50_ms",
    "latency_p99_ms", "escaped_total", "expected_total", "invariants_ok",
)


@dataclass(frozen=True)
class DemoConfig:
    """One run's parameters (CLI flags in cli.py)."""

    start: str = DEFAULT_FROM
    end: str = DEFAULT_TO
    seed: int = 7
    out: Path = Path("reports")
    data: Path = DEFAULT_DATA
    population: Population = Population()
    batch_minutes: int = 60
    step_minutes: int = 15
    burst_orders: int = 6_000
    baseline_fills: int = 300
    progress: bool = True
    run_id: str | None = None
    write_report: bool = True


class SimClock:
    """The simulated time in ms since the epoch; the node and the chain read it."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Demo:
    """One demo run (module docstring); ``run()`` returns the summary dict."""

    def __init__(self, config: DemoConfig, work_dir: Path) -> None:
        self._wall_start = time.perf_counter()
        self.config = config
        self.start = iso_ms(config.start)
        self.end = iso_ms(config.end)
        if self.end <= self.start:
            raise ValueError("--to must be after --from")
        data = Path(config.data)
        self.market = MarketData.load(data / "market" / "btc-2023-03")
        deribit = sorted((data / "deribit").glob("btc_options_*.csv"))
        self.surface = Surface.fit_deribit(deribit)
        self.reporters = Reporters(config.seed, REPORTERS)
        self.feed = OracleFeed(self.market, self.surface, self.reporters)
        self.schedule = option_schedule(self.start, self.end, weekly_listed_days=LISTING_DAYS,
                                        monthly_listed_days=LISTING_DAYS)
        self.clock = SimClock(self.start)
        reporters = self.reporters.addresses

        def genesis(fee_owner: str, insurance_owner: str) -> GenesisConfig:
            return GenesisConfig(fee_account_owner=fee_owner.lower(), insurance_fund_owner=insurance_owner.lower(),
                                 instruments=[perp_spec()], oracle_reporters=reporters, max_open_orders=1_000)

        stack_config = StackConfig(batch_max_commands=20_000, batch_max_seconds=config.batch_minutes * 60,
                                   verifier_snapshot_every=50, chain_seed=b"clearway-demo-%d" % config.seed)
        self.stack = EmbeddedStack(work_dir / "stack", genesis_factory=genesis, clock=self.clock,
                                   config=stack_config)
        self.node = self.stack.node
        self.subscription = self.node.subscribe(max_backlog=1_000_000)
        self.seen_seq = 0
        self.recorder = RunRecorder([perp_spec()])
        self.agents: list[Agent] = make_agents(config.seed, config.population)
        self.by_account: dict[int, Agent] = {}
        self.listed: set[int] = set()
        self.recorder_specs: set[int] = {PERP}
        self.api_latencies: list[float] = []
        self.pending_claims: dict[str, tuple[Any, int]] = {}  # owner → (L1 key, micro-USDC not yet claimed)
        self.claimed = 0
        self.claims = 0
        self.recorded_batches: set[int] = set()
        self.problems: list[str] = []
        self._exchanges: dict[str, Any] = {}

    # -- Venue (agents.py) -------------------------------------------------------------------
    def submit(self, commands: Sequence[Command], signer: Any = None) -> list[list]:
        """Submit in order and wait; latencies of orders recorded (module docstring)."""
        if signer is not None:
            started = time.perf_counter()
            results = self.stack.submit_many(commands, [signer] * len(commands))
            elapsed = (time.perf_counter() - started) * 1e6
            self.recorder.on_latencies_us([elapsed for c in commands if type(c) is PlaceOrder])
            return results
        node = self.node
        stamps, tickets = [], []
        for command in commands:
            stamps.append(time.perf_counter())
            tickets.append(node.submit(command))
        out = []
        for command, stamp, ticket in zip(commands, stamps, tickets):
            out.append(ticket.result(120))
            if type(command) is PlaceOrder:
                self.recorder.on_latency_us((time.perf_counter() - stamp) * 1e6)
        return out

    def deposit(self, agent: Agent, amount: int) -> None:
        self.stack.deposit_on_l1(agent.key, amount)

    def withdraw(self, agent: Agent, amount: int) -> bool:
        events = self.stack.withdraw(agent.key, amount)
        if any(type(e) is Rejected for e in events):
            return False
        owner = agent.key.address.lower()
        owed = self.pending_claims.get(owner, (agent.key, 0))[1]
        self.pending_claims[owner] = (agent.key, owed + amount)
        return True

    def exchange(self, agent: Agent) -> Any:
        ex = self._exchanges.get(agent.name)
        if ex is None:
            import ccxt

            key = self.stack.api_server.api.keys.create(agent.key.address.lower(), agent.name, "trade")
            ex = ccxt.deribit({"enableRateLimit": False, "timeout": 30_000})
            ex.apiKey, ex.secret = key.client_id, key.client_secret
            ex.urls["api"] = {"rest": self.stack.api_server.url}
            ex.load_markets()
            ex.create_order = _timed(ex.create_order, self.api_latencies)
            self._exchanges[agent.name] = ex
        return ex

    # -- the event stream ----------------------------------------------------------------------
    def drain(self) -> None:
        """Feed every durable command's events, in sequence order, to the recorder."""
        target = self.node.durable_seq
        recorder = self.recorder
        while self.seen_seq < target:
            item = self.subscription.get(timeout=60)
            if item is None:
                break
            self.seen_seq = item.seq
            recorder.on_events(item.command.ts, item.events, item.command)

    # -- the run ---------------------------------------------------------------------------------
    def setup(self) -> None:
        stack = self.stack
        stack.serve_api()
        stack.deposit(stack.insurance_key, INSURANCE_FUND_START)
        for agent in self.agents:
            agent.key = stack.new_key(agent.name)
        accounts = stack.deposit_many([(a.key, a.deposit) for a in self.agents])
        for agent, account in zip(self.agents, accounts):
            agent.account = account
            self.by_account[account] = agent
        setup = [c for a in self.agents for c in a.setup(self)]
        self.submit(setup)
        self.drain()

    def list_due(self, ts: int) -> None:
        """List the expiries due (module docstring, 1)."""
        index = self.market.index_at(ts)
        commands = [ListOptionSeries(seq=0, ts=0, **series_fields(e, index, spread=STRIKE_SPREAD))
                    for e in self.schedule if e.listed_ms <= ts < e.expiry_ms - HOUR and e.expiry_ms not in self.listed]
        if not commands:
            return
        for results in self.submit(commands):
            if results and type(results[0]) is Rejected:
                self.problems.append(f"listing refused: {results[0]}")
        self.listed.update(c.expiry_ms for c in commands)
        known = set(self.recorder_specs)
        for spec in self.node.query(lambda state: [s for i, s in state.instruments.items() if i not in known]
                                    ).result(60):
            self.recorder.add_instrument(spec)
            self.recorder_specs.add(spec.instrument_id)

    def live_expiries(self, ts: int) -> list[int]:
        return sorted(e for e in self.listed if e > ts)

    def minute(self, ts: int, number: int) -> None:
        """One simulated minute (module docstring, 2–4)."""
        self.clock.now = ts
        self.submit([self.feed.oracle_update(0, ts, self.live_expiries(ts))])
        basis = max(min(self.market.close_at("binanceus_btcusdt", ts) / self.market.close_at("binanceus_btcusd", ts)
                        - 1.0, 0.003), -0.003)
        vol = self.market.realised_vol(ts)
        due = [a for a in self.agents if a.due(number)]
        ids = [a.account for a in due]
        greeks = any(a.needs_greeks for a in due)
        view = self.node.query(lambda state: build_view(state, ids, basis, vol, greeks)).result(60)
        for agent in due:
            agent.step(view, self)
        self.list_due(ts)  # after the update: the strikes centre on its index; marks come next minute
        if number % self.config.step_minutes == 0:
            self.settle_step()
        self.drain()
        if ts % (10 * MINUTE) == 0:
            self.sample(ts, margin=ts % HOUR == 0)

    def settle_step(self, force: bool = False) -> None:
        """Step L1 (watcher, batcher, verifiers); record finalised batches; claim the
        withdrawals that became claimable."""
        stack = self.stack
        step = stack.settle() if force else stack.step()
        new = sorted(n for n in step.finalised if n not in self.recorded_batches)
        for b in stack.batch_summaries(new):  # these batches only: all of them each time grew quadratically
            self.recorder.on_batch(b["batch_number"], b["gas"], b["trades"], b["data_bytes"], ts_ms=self.clock.now,
                                   commands=b["commands"], attestations=b["attestations"])
            self.recorded_batches.add(b["batch_number"])
        if step.finalised and self.pending_claims:
            for owner, (key, owed) in sorted(self.pending_claims.items()):
                if stack.client.claimable(key.address):
                    paid = stack.claim(key)
                    self.claimed += paid
                    self.claims += 1
                    owed -= paid
                if owed > 0:
                    self.pending_claims[owner] = (key, owed)
                else:
                    del self.pending_claims[owner]

    def sample(self, ts: int, margin: bool) -> None:
        """Insurance fund (and, hourly, the margin snapshot) through a node query; the
        conservation check (Σ cash = deposits − withdrawals, Σ positions = 0 per instrument)."""
        recorder = self.recorder

        def read(state) -> dict[str, Any]:
            recorder.on_state(ts, state, margin)
            return _conservation(state)

        check = self.node.query(read).result(120)
        recorder.on_invariant_check(check["ok"], f"conservation at {ms_iso(ts)}: {check}")

    def burst(self) -> dict[str, Any]:
        """Throughput phase (module docstring, 5)."""
        makers = [a for a in self.agents if a.kind == "market_maker"][:2]
        if len(makers) < 2 or self.config.burst_orders <= 0:
            return {}
        taker = makers[1]
        index = self.node.query(lambda s: s.marks.get(PERP)).result(60)
        commands: list[Command] = []
        for i in range(self.config.burst_orders // 3):
            side = 1 if i % 2 == 0 else -1
            far = floor_tick(index * (1 - 0.01)) if side > 0 else ceil_tick(index * (1 + 0.01))
            commands.append(PlaceOrder(0, 0, taker.account, PERP, side, 10, far, post_only=True,
                                       client_order_id=f"burst{i}"))
            through = ceil_tick(index * 1.003) if side > 0 else floor_tick(index * 0.997)
            commands.append(PlaceOrder(0, 0, taker.account, PERP, side, 10, through, tif=int(TimeInForce.IOC)))
            commands.append(CancelOrder(0, 0, taker.account, client_order_id=f"burst{i}"))
        node = self.node
        started = time.perf_counter()
        acked = trades = orders = 0
        for first in range(0, len(commands), 500):
            chunk = commands[first:first + 500]
            tickets = [node.submit(c) for c in chunk]
            for command, ticket in zip(chunk, tickets):
                events = ticket.result(120)
                acked += 1
                orders += type(command) is PlaceOrder
                trades += sum(1 for e in events if type(e) is Trade)
        seconds = time.perf_counter() - started
        self.drain()
        return {"commands": acked, "orders": orders, "trades": trades, "seconds": round(seconds, 3),
                "commands_per_s": round(acked / seconds, 1), "orders_per_s": round(orders / seconds, 1),
                "trades_per_s": round(trades / seconds, 1)}

    def check_funding_settled(self) -> None:
        """Invariant: no perpetual position carries unsettled funding at the end.

        Funding is settled eagerly at every funding tick (domain/funding_engine.py), so the
        committed states the escapes pay from hold no unsettled funding and the vault
        reconciles without any help from the demo (the one-lot "funding sweep" this replaced
        was a workaround for lazy settlement)."""
        left = self.node.query(unsettled_positions).result(60)
        self.recorder.on_invariant_check(not left, f"funding unsettled at the end: {left[:5]}")

    def run(self) -> dict[str, Any]:
        """The whole run (module docstring); the summary dict (report written if configured)."""
        cfg = self.config
        minutes = [ts for ts in range(self.start - self.start % MINUTE + MINUTE, self.end + 1, MINUTE)
                   if self.market.has(ts)]
        if not minutes:
            raise ValueError("no market data in the window")
        self.clock.now = minutes[0] - MINUTE
        self.setup()
        self.sample(self.clock.now, margin=False)
        progress = _Progress(len(minutes), cfg.progress)
        timings = {"setup_s": round(time.perf_counter() - self._wall_start, 1)}
        started = time.perf_counter()
        for number, ts in enumerate(minutes):
            self.minute(ts, number)
            progress.update(number + 1, ts, self.recorder)
        progress.close()
        timings["market_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        self.sample(self.clock.now, margin=True)
        burst = self.burst()
        self.check_funding_settled()
        self.settle_step(force=True)
        timings["burst_and_settle_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        roots = self.final_state()
        baseline = self.baseline()
        timings["baseline_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        drill = self.stack.halt_drill()
        timings["drill_s"] = round(time.perf_counter() - started, 1)
        self.recorder.on_invariant_check(bool(drill.get("reconciled")), f"halt drill not reconciled: {drill}")
        self.recorder.on_comparison(baseline, throughput_trades_per_s=burst.get("trades_per_s"),
                                    throughput_orders_per_s=burst.get("orders_per_s"))
        timings["total_s"] = round(time.perf_counter() - self._wall_start, 1)
        summary = self.summary(burst, baseline, drill, roots, timings)
        if cfg.write_report:
            out = Path(cfg.out) / summary["run_id"]
            write_report(out, summary, self.recorder, title=f"Clearway demo {summary['run_id']}")
            summary["report"] = str(out / "index.html")
        return summary

    def final_state(self) -> list[str]:
        """Roots of every batch on the vault. Records the last checks."""
        check = self.node.query(_conservation).result(60)
        self.recorder.on_invariant_check(check["ok"], f"conservation at the end: {check}")
        alarms = self.stack.alarms()
        self.recorder.on_invariant_check(not alarms, f"verifier alarms before the halt: {alarms[:5]}")
        status = self.stack.status()
        self.recorder.on_invariant_check(status["finalised"] == status["submitted"] > 0,
                                         f"batches not all finalised: {status}")
        for problem in self.problems:
            self.recorder.on_invariant_check(False, problem)
        client = self.stack.client
        roots = ["0x" + client.batch_root(n).hex() for n in range(1, client.batch_count() + 1)]
        return roots

    def baseline(self) -> dict[str, Any]:
        """The on-chain baseline over an evenly spaced sample of the run's fills."""
        fills = self.recorder.fills.fills if self.recorder.fills else []
        if not fills or self.config.baseline_fills <= 0:
            return {}
        instruments = self.node.query(lambda s: dict(s.instruments)).result(60)
        return measure_baseline(self.stack.chain, fills, instruments, max_fills=self.config.baseline_fills)

    def summary(self, burst: dict, baseline: dict, drill: dict, roots: list[str], timings: dict) -> dict[str, Any]:
        cfg = self.config
        counters = self.recorder.counters
        latency_api = sorted(self.api_latencies)
        run_id = cfg.run_id or f"{cfg.start[:16].replace(':', '')}_{cfg.end[:16].replace(':', '')}_seed{cfg.seed}"
        extra = {
            "escaped_total": usdc(drill.get("escaped_total", 0)),
            "expected_total": usdc(drill.get("expected_total", 0)),
            "run_id": run_id,
            "from": cfg.start,
            "to": cfg.end,
            "seed": cfg.seed,
            "agents": {kind: sum(1 for a in self.agents if a.kind == kind)
                       for kind in sorted({a.kind for a in self.agents})},
            "accounts": len(self.by_account),
            "throughput_orders_per_s": burst.get("orders_per_s"),
            "throughput_trades_per_s": burst.get("trades_per_s"),
            "burst": burst,
            "api_latency_p50_ms": _percentile(latency_api, 50),
            "api_latency_p99_ms": _percentile(latency_api, 99),
            "ccxt_orders": sum(a.orders for a in self.agents if a.uses_ccxt),
            "withdrawals_claimed_on_l1": self.claims,
            "claimed_on_l1": usdc(self.claimed),
            "halt_drill": {k: v for k, v in drill.items()},
            "onchain_baseline": baseline,
            "state_root": roots[-1] if roots else None,
            "state_roots": roots,
            "timings": timings,
        }
        return summary_from(self.recorder, extra)


def _conservation(state) -> dict[str, Any]:
    """Σ cash = deposits − withdrawals and Σ positions = 0 per instrument (micro-USDC, lots)."""
    cash = sum(a.cash for a in state.accounts.values())
    sizes: dict[int, int] = {}
    for account in state.accounts.values():
        for instrument, position in account.positions.items():
            sizes[instrument] = sizes.get(instrument, 0) + position.size
    ok = cash == state.total_deposits - state.total_withdrawals and not any(sizes.values())
    return {"ok": ok, "cash": cash, "net_deposits": state.total_deposits - state.total_withdrawals,
            "insurance_fund": state.accounts[INSURANCE_FUND].cash}


def _timed(fn: Callable, sink: list[float]) -> Callable:
    def call(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sink.append((time.perf_counter() - started) * 1000)
    return call


def _percentile(values: Sequence[float], q: int) -> float | None:
    """Nearest-rank percentile, ms rounded to 3 decimals (None without samples)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)], 3)




class _Progress:
    """A rich progress bar on a terminal (stderr); elsewhere, a plain line on stderr every
    six simulated hours; nothing when disabled."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        self.total = total
        self.enabled = enabled
        self.started = time.perf_counter()
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                TextColumn("{task.completed}/{task.total} min"), TimeElapsedColumn(),
                                TimeRemainingColumn(), transient=False)
            self.bar.start()
            self.task = self.bar.add_task("replaying", total=total)

    def update(self, done: int, ts: int, recorder: RunRecorder) -> None:
        c = recorder.counters
        text = f"{ms_iso(ts)}  trades {c.trades:,}  liquidations {c.liquidations}"
        if self.bar is not None:
            if done % 10 == 0 or done == self.total:
                self.bar.update(self.task, completed=done, description=text)
        elif self.enabled and (ts % (6 * HOUR) == 0 or done == self.total):
            sys.stderr.write(f"{done}/{self.total} min  {text}  {time.perf_counter() - self.started:.0f} s\n")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run the demo (module docstring) in a temporary working directory; the summary."""
    with tempfile.TemporaryDirectory(prefix="clearway-demo-") as tmp:
        demo = Demo(config, Path(tmp))
        try:
            return demo.run()
        finally:
            demo.stack.close()


def summary_text(summary: dict[str, Any]) -> str:
    """The summary for a terminal: the issue's figures, the comparison table and where the
    report is."""
    keys = ("orders", "trades", "liquidations", "adl_events", "insurance_fund_start", "insurance_fund_end",
            "funding_paid", "batches", "attestations", "escaped_total", "expected_total", "invariants_ok")
    lines = [f"Clearway demo {summary.get('run_id', '')}: {summary.get('from')} → {summary.get('to')}, "
             f"seed {summary.get('seed')}"]
    lines += [f"{key:>24}: {summary.get(key)}" for key in keys]
    block = 30_000_000

    def num(value: Any, digits: int = 0) -> str:
        return "n/a" if value is None else f"{value:,.{digits}f}"

    gas_cw, gas_bl = summary.get("gas_per_trade_clearway"), summary.get("gas_per_trade_onchain")
    rows = [
        ("", "Clearway", "on-chain baseline"),
        ("L1 gas per trade", num(gas_cw, 1), num(gas_bl, 1)),
        ("trades per 30M-gas block", num(block / gas_cw if gas_cw else None),
         num(block / gas_bl if gas_bl else None)),
        ("throughput, trades/s", num(summary.get("throughput_trades_per_s"), 1) + " measured",
         num(summary.get("onchain_max_trades_per_s"), 1) + " (30M gas / 12 s)"),
        ("latency p50 / p99, ms", f"{num(summary.get('latency_p50_ms'), 2)} / {num(summary.get('latency_p99_ms'), 2)}",
         "≥ 12,000 (an L1 block)"),
    ]
    lines.append("")
    lines += [f"{a:>26}  {b:>22}  {c}" for a, b, c in rows]
    if summary.get("problems"):
        lines.append("")
        lines += [f"problem: {p}" for p in summary["problems"][:10]]
    if summary.get("report"):
        lines.append(f"\nreport: {summary['report']}")
    lines.append(f"time: {summary.get('timings', {}).get('total_s')} s")
    return "\n".join(lines) + "\n"
