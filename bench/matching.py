"""Matching benchmark: Clearway's full ``apply()`` path vs liquibook (C++) and pyorderbook.

Run: ``clearway bench matching --json`` (median of ``--runs`` runs, ``--orders`` per flow).

The same deterministic flow (bench/flows.py: 60% GTC limit, 10% IOC, 30% cancels; a normal
book of ~1,000 resting orders and a deep one of ≥ 20,000) goes through:

- Clearway: every operation becomes a sequenced command applied with
  ``clearway.domain.state.apply`` — validation, the standard-margin pre-trade check,
  matching, account and position updates, fees and events. Buy orders come from one group
  of 500 funded accounts and sell orders from another, so self-trade prevention never
  fires and the fills are comparable with the peers'.
- liquibook 2.0.1 (C++ matcher driven from Python with a fill listener; IOC flag on add()).
- pyorderbook 0.4.9 (pure Python).

Throughput is measured on a run without per-command timers; latency (p50/p99 per command,
µs) on a separate run with a timer around each ``apply``. Every run checks that Clearway's
trades and volume equal the reference matcher's.

Advanced flow (issue 9; Clearway only): ``flows.make_advanced_flow`` — the normal flow with
10 % conditional orders (stop and take-profit, market and limit, on the last trade price,
1–8 ticks beyond the touch, so that the price's random walk fires many) and 5 % iceberg
orders. Its order ids are learnt by an untimed dry run (a placement may be rejected, e.g. a
stop whose trigger the last trade already passed, and then takes no id), then the same
commands are timed on a fresh state. JSON: ``advanced_orders_per_second`` (median) and
``advanced`` (counts of one run: conditionals accepted, triggered, rejected at the trigger,
iceberg refills, trades, rejected placements).
"""

from __future__ import annotations

import gc
import statistics
import time

from flows import make_advanced_flow, make_flow, reference_match
from peers import run_liquibook, run_pyorderbook
from stats import percentile

from clearway.domain.commands import CancelOrder, Deposit, PlaceOrder, SetMarkPrices
from clearway.domain.events import (
    ConditionalAccepted, IcebergRefilled, OrderAccepted, OrderTriggered, Rejected, Trade, TriggerRejected,
)
from clearway.domain.genesis import GenesisConfig
from clearway.domain.instruments import InstrumentSpec, Kind
from clearway.domain.orders import OrderType, TimeInForce, TriggerSource
from clearway.domain.state import ExchangeState, apply

TICK = 100_000              # 0.1 USDC per contract
ACCOUNTS_PER_SIDE = 500
TS = 1_678_000_000_000


def _genesis() -> GenesisConfig:
    perp = InstrumentSpec(0, "BTC", Kind.PERPETUAL, tick_size=TICK, size_decimals=4, size_increment=1,
                          min_size=1, maker_fee_ppm=-100, taker_fee_ppm=500, imf_ppm=50_000, mmf_ppm=30_000)
    return GenesisConfig(instruments=[perp], max_open_orders=100_000)


def build_commands(flow) -> tuple[ExchangeState, list, list]:
    """State after setup (deposits, marks, the untimed prefill) and the timed commands."""
    state = ExchangeState(_genesis())
    seq = 0

    def run(command_type, **fields):
        nonlocal seq
        seq += 1
        return command_type(seq=seq, ts=TS, **fields)

    setup = []
    for i in range(2 * ACCOUNTS_PER_SIDE):
        setup.append(run(Deposit, owner="0x" + f"{i + 0x10000:040x}", amount=10**15, deposit_id=i + 1))
    first_price = next(op[3] for op in flow.prefill + flow.ops if op[0] == "add")
    setup.append(run(SetMarkPrices, index={"BTC": first_price * TICK}, marks={0: first_price * TICK}))
    owners = {op[1]: 2 + op[1] % ACCOUNTS_PER_SIDE + (0 if op[2] > 0 else ACCOUNTS_PER_SIDE)
              for op in flow.prefill + flow.ops if op[0] == "add"}
    ids: dict[int, int] = {}  # flow order id → Clearway order id (accepted orders count from 1)

    def convert(op):
        if op[0] == "add":
            _, flow_id, side, price, size, tif = op
            ids[flow_id] = len(ids) + 1
            return run(PlaceOrder, account=owners[flow_id], instrument=0, side=side, size=size,
                       price=price * TICK, tif=TimeInForce.GTC if tif == "GTC" else TimeInForce.IOC)
        return run(CancelOrder, account=owners[op[1]], order_id=ids[op[1]])

    for command in setup:
        apply(state, command)
    for op in flow.prefill:
        events = apply(state, convert(op))
        assert not isinstance(events[0], Rejected), events
    timed = [convert(op) for op in flow.ops]
    return state, timed, setup


_STOP_TYPES = {("stop", True): OrderType.STOP_MARKET, ("stop", False): OrderType.STOP_LIMIT,
               ("take_profit", True): OrderType.TAKE_PROFIT_MARKET, ("take_profit", False): OrderType.TAKE_PROFIT_LIMIT}
_GONE = 2**40  # the Clearway id of a flow order whose placement was rejected: its cancels are rejected


def build_advanced_commands(flow) -> tuple[ExchangeState, list]:
    """State after setup (deposits, marks, prefill, one seed trade at the start price) and
    the timed commands of an advanced flow, with Clearway order ids learnt by applying them
    once to a copy (module docstring)."""
    seed_price = 100_000 * TICK

    def prepared() -> tuple[ExchangeState, int]:
        state, _, setup = build_commands(type(flow)(n=0, seed=flow.seed, deep=False, prefill=flow.prefill))
        seq = state.last_seq
        for account, side, tif in ((2 + ACCOUNTS_PER_SIDE, -1, TimeInForce.GTC), (2, 1, TimeInForce.IOC)):
            seq += 1
            events = apply(state, PlaceOrder(seq=seq, ts=TS, account=account, instrument=0, side=side, size=1,
                                             price=seed_price, tif=tif))
            assert not isinstance(events[0], Rejected), events
        return state, seq

    def owner(flow_id: int, side: int) -> int:
        return 2 + flow_id % ACCOUNTS_PER_SIDE + (0 if side > 0 else ACCOUNTS_PER_SIDE)

    dry, seq = prepared()
    ids: dict[int, int] = {}
    commands = []
    for op in flow.ops:
        seq += 1
        kind = op[0]
        if kind == "add":
            _, flow_id, side, price, size, tif = op
            command = PlaceOrder(seq=seq, ts=TS, account=owner(flow_id, side), instrument=0, side=side, size=size,
                                 price=price * TICK, tif=TimeInForce.GTC if tif == "GTC" else TimeInForce.IOC)
        elif kind == "iceberg":
            _, flow_id, side, price, size, display = op
            command = PlaceOrder(seq=seq, ts=TS, account=owner(flow_id, side), instrument=0, side=side, size=size,
                                 price=price * TICK, display_size=display)
        elif kind == "stop":
            _, flow_id, side, stop_kind, trigger, price, size = op
            command = PlaceOrder(seq=seq, ts=TS, account=owner(flow_id, side), instrument=0, side=side, size=size,
                                 price=price * TICK, order_type=_STOP_TYPES[(stop_kind, price == 0)],
                                 trigger_price=trigger * TICK, trigger=TriggerSource.LAST)
        else:
            flow_id = op[1]
            command = CancelOrder(seq=seq, ts=TS, account=owner(flow_id, 1), order_id=ids.get(flow_id, _GONE))
            if command.order_id in dry.orders or command.order_id in dry.conditionals:
                command = CancelOrder(seq=seq, ts=TS, account=_order_account(dry, command.order_id),
                                      order_id=command.order_id)
        events = apply(dry, command)
        if kind != "cancel":
            first = events[0]
            ids[op[1]] = first.order_id if isinstance(first, (OrderAccepted, ConditionalAccepted)) else _GONE
        commands.append(command)
    state, _ = prepared()
    return state, commands


def _order_account(state: ExchangeState, order_id: int) -> int:
    order = state.orders.get(order_id) or state.conditionals.get(order_id)
    return order.account


def _run_advanced(flow) -> dict:
    state, commands = build_advanced_commands(flow)
    gc.collect()
    gc.disable()
    try:
        results, seconds = _apply_all(state, commands)
    finally:
        gc.enable()
    counts = {"conditionals": 0, "triggered": 0, "trigger_rejected": 0, "iceberg_refills": 0, "trades": 0,
              "rejected_places": 0}
    for command, events in zip(commands, results):
        if isinstance(command, PlaceOrder) and isinstance(events[0], Rejected):
            counts["rejected_places"] += 1
        for event in events:
            t = type(event)
            if t is Trade:
                counts["trades"] += 1
            elif t is ConditionalAccepted:
                counts["conditionals"] += 1
            elif t is OrderTriggered:
                counts["triggered"] += 1
            elif t is TriggerRejected:
                counts["trigger_rejected"] += 1
            elif t is IcebergRefilled:
                counts["iceberg_refills"] += 1
    counts["icebergs"] = sum(1 for c in commands if isinstance(c, PlaceOrder) and c.display_size)
    return {"seconds": seconds, "ops": len(commands), **counts, "resting": len(state.orders),
            "waiting_conditionals": len(state.conditionals)}


def _apply_all(state: ExchangeState, commands: list) -> tuple[list, float]:
    """Apply ``commands`` in order; (their event lists, wall-clock seconds)."""
    results = []
    t0 = time.perf_counter()
    for command in commands:
        results.append(apply(state, command))
    return results, time.perf_counter() - t0


def _run_clearway(flow, timed_each: bool) -> dict:
    state, commands, _ = build_commands(flow)
    trades = volume = rejected_places = 0
    latencies: list[int] = []
    gc.collect()
    gc.disable()
    try:
        if timed_each:
            clock = time.perf_counter_ns
            append = latencies.append
            results = []
            for command in commands:
                t0 = clock()
                events = apply(state, command)
                append(clock() - t0)
                results.append(events)
            seconds = sum(latencies) / 1e9
        else:
            results, seconds = _apply_all(state, commands)
    finally:
        gc.enable()
    for command, events in zip(commands, results):
        for event in events:
            if type(event) is Trade:
                trades += 1
                volume += event.size
        if isinstance(command, PlaceOrder) and isinstance(events[0], Rejected):
            rejected_places += 1
    latencies.sort()
    out = {"seconds": seconds, "ops": len(commands), "trades": trades, "volume": volume,
           "resting": len(state.orders), "rejected_places": rejected_places}
    if latencies:
        out["p50_us"] = percentile(latencies, 0.50, presorted=True) / 1000
        out["p99_us"] = percentile(latencies, 0.99, presorted=True) / 1000
    return out


def run(args) -> dict:
    n, runs, seed = args.orders, max(1, args.runs), args.seed
    flows = {"normal": make_flow(n, seed), "deep": make_flow(n, seed, deep=True)}
    reference = {name: reference_match(flow) for name, flow in flows.items()}
    rates: dict[str, dict[str, list[float]]] = {}
    lat50: list[float] = []
    lat99: list[float] = []
    agreement = {}
    for name, flow in flows.items():
        for _ in range(runs):
            for peer, fn in (("clearway", lambda f: _run_clearway(f, False)), ("liquibook", run_liquibook),
                             ("pyorderbook", run_pyorderbook)):
                result = fn(flow)
                rates.setdefault(peer, {}).setdefault(name, []).append(result["ops"] / result["seconds"])
                if peer == "clearway":
                    agreement[name] = agreement.get(name, True) and (  # every run, not only the last
                        result["trades"] == reference[name]["trades"] and result["volume"] == reference[name]["volume"]
                        and result["resting"] == reference[name]["resting"] and result["rejected_places"] == 0)
            if name == "normal":
                timed = _run_clearway(flow, True)
                lat50.append(timed["p50_us"])
                lat99.append(timed["p99_us"])
    advanced_flow = make_advanced_flow(n, seed)
    advanced_rates: list[float] = []
    advanced: dict = {}
    for _ in range(runs):
        advanced = _run_advanced(advanced_flow)
        advanced_rates.append(advanced["ops"] / advanced["seconds"])

    def med(peer, name):
        return round(statistics.median(rates[peer][name]))

    result = {
        "orders_per_second": med("clearway", "normal"),
        "p50_us": round(statistics.median(lat50), 2),
        "p99_us": round(statistics.median(lat99), 2),
        "deep_orders_per_second": med("clearway", "deep"),
        "peers": {
            peer: {"orders_per_second": med(peer, "normal"), "deep_orders_per_second": med(peer, "deep")}
            for peer in ("liquibook", "pyorderbook")
        },
        "ratio_vs_liquibook": round(med("clearway", "normal") / med("liquibook", "normal"), 3),
        "deep_ratio_vs_liquibook": round(med("clearway", "deep") / med("liquibook", "deep"), 3),
        "fills_match_reference": agreement,
        "advanced_orders_per_second": round(statistics.median(advanced_rates)),
        "advanced": {key: value for key, value in advanced.items() if key != "seconds"},
        "orders": n,
        "runs": runs,
        "seed": seed,
        "reference": reference,
    }
    return result


def print_report(result: dict) -> None:
    print(f"Clearway apply(): {result['orders_per_second']:,} orders/s normal, "
          f"{result['deep_orders_per_second']:,} deep; p50 {result['p50_us']} µs, p99 {result['p99_us']} µs")
    for peer, figures in result["peers"].items():
        print(f"{peer:>12}: {figures['orders_per_second']:,} orders/s normal, {figures['deep_orders_per_second']:,} deep")
    adv = result["advanced"]
    print(f"Clearway advanced flow (10 % conditional, 5 % iceberg): {result['advanced_orders_per_second']:,} orders/s; "
          f"{adv['conditionals']:,} conditionals, {adv['triggered']:,} triggered, {adv['iceberg_refills']:,} refills")
    print(f"vs liquibook: {result['ratio_vs_liquibook']}× normal, {result['deep_ratio_vs_liquibook']}× deep; "
          f"fills match reference: {result['fills_match_reference']}")
