"""Margin benchmark: one market-data update over 100,000 accounts.

Run: ``clearway bench margin --json`` (``--runs`` repetitions, medians reported; ``--seed``).

Setup (not timed): one BTC perpetual and 5 expiries × 52 strikes × call/put = 520 options;
100,000 funded accounts (Deposit commands): 90 % standard with a perp position and 1–3
option positions, 10 % portfolio mode with 5–30 option positions over the 5 expiries and a
perp. Positions are written into the accounts directly (this is a margin benchmark, not a
matching one; sizes need not sum to zero). Then one ``SetMarketData`` (SVI per expiry)
goes through ``apply`` and marks every option.

Timed:
- ``risk_arrays_ms``: building the per-instrument risk arrays of the update (520 options ×
  31 scenarios + base and basis values; ``RiskCache.get`` after the update);
- ``gather_ms``: the columnar copy of all positions (``revalue.PositionMatrix.from_state``);
- ``revalue_all_ms``: ``revalue.revalue_all`` over all 100,000 accounts (equity, IM of
  positions, MM; the copy above excluded, it is reused until positions change);
  ``revalue_all_pm_ms``: the same for the 10,000 portfolio accounts alone;
- ``pretrade_check_*_us``: ``state.margin.check_order`` of a random option order (0.1–1
  contract near the mark) on random accounts: p50/p99 over all sampled checks (CHECKS =
  20,000 per run, half portfolio, half standard accounts with options; with the 2,000 of
  earlier versions the p99 was the 20th slowest check and moved by ±10 µs between runs),
  then per mode; garbage collection is
  paused while they run (as in bench/matching.py). Wall-clock percentiles, plus the
  thread CPU time of the same checks (``*_cpu_*``: excludes time the process was
  descheduled, which on a shared machine adds ~4 ms scheduler ticks to ~1–2 % of checks,
  counted in ``pretrade_checks_over_1ms_wall``);
- the pre-trade screen: after the revaluation ``Margin.remember`` keeps each account's
  surplus (``screen_ms``); a check accepts from it when a bound on the order's effect
  (portfolio) or the order's exact unit charge after minus before (standard) leaves the
  surplus ≥ 0, else evaluates exactly (decisions are identical, tests check it);
  ``pretrade_pm_screen_hits`` / ``pretrade_standard_screen_hits`` count the checks it
  decided. ``pretrade_check_pm_exact_*`` / ``pretrade_check_standard_exact_*``: the same
  checks with the screen switched off (the cost when an account changed since the last
  revaluation);
- ``health_per_account_us``: ``state.margin.health`` of one portfolio account (mean);
- ``naive_revalue_all_ms``: ``risk.portfolio.evaluate_portfolio_margin_naive`` (the
  per-account scenario loop, repricing every expiry in every scenario) measured on a
  sample of portfolio accounts and scaled to all of them (``naive_sample`` accounts).
- ``batch_vs_health_max_diff_micro``: largest difference between ``revalue_all`` and the
  per-account ``health`` (IM without open orders) on a sample, micro-USDC.
"""

from __future__ import annotations

import gc
import statistics
import time

import numpy as np

from clearway.domain.accounts import MarginMode, Position
from clearway.domain.commands import Deposit, SetMarketData, SetMarkPrices
from clearway.domain.genesis import GenesisConfig
from clearway.domain.instruments import InstrumentSpec, Kind, OptionType
from clearway.domain.market import FIXED_SCALE, MS_PER_YEAR, ExpiryData, to_pm_market
from clearway.domain.revalue import PositionMatrix, revalue_all
from clearway.domain.risk.portfolio import OptionPosition, PerpPosition, PMPortfolio, evaluate_portfolio_margin_naive
from clearway.domain.state import ExchangeState, apply
from stats import percentile  # bench/ is on sys.path

ACCOUNTS = 100_000
PM_SHARE = 0.10
TS = 1_700_000_000_000
DAY = 86_400_000
EXPIRY_DAYS = (2, 9, 30, 93, 184)
STRIKES = list(range(20_000, 45_500, 500))[:52]
SPOT = 31_000
USDC = 1_000_000
TICK = 100_000
LOT = 10_000                      # lots per contract (size_decimals 4)
NAIVE_SAMPLE = 100
CHECKS = 20_000  # screened checks per run (half portfolio, half standard): a p99 from 20,000 samples
EXACT_CHECKS = 1_000  # exact (screen off) checks per run and mode


def _genesis() -> GenesisConfig:
    specs = [InstrumentSpec(0, "BTC", Kind.PERPETUAL, tick_size=TICK, size_decimals=4, size_increment=1, min_size=1,
                            maker_fee_ppm=-100, taker_fee_ppm=500, imf_ppm=50_000, mmf_ppm=30_000)]
    for days in EXPIRY_DAYS:
        for strike in STRIKES:
            for kind in (OptionType.CALL, OptionType.PUT):
                specs.append(InstrumentSpec(len(specs), "BTC", Kind.OPTION, tick_size=TICK, size_decimals=4,
                                            size_increment=1, min_size=1, maker_fee_ppm=0, taker_fee_ppm=300,
                                            strike=strike * USDC, expiry_ms=TS + days * DAY, option_type=kind))
    return GenesisConfig(instruments=specs, max_open_orders=1_000)


def _surface(ts: int, spot: float) -> list[ExpiryData]:
    out = []
    for days in EXPIRY_DAYS:
        t = days * DAY / MS_PER_YEAR
        forward = spot * (1 + 0.03 * t)
        out.append(ExpiryData(TS + days * DAY, round(forward * USDC), round(0.03 * FIXED_SCALE),
                              round(0.35 * t * FIXED_SCALE), round(0.08 * FIXED_SCALE), round(-0.3 * FIXED_SCALE),
                              round(0.01 * FIXED_SCALE), round(0.15 * FIXED_SCALE)))
    return out


def build(seed: int, accounts: int = ACCOUNTS):
    """The state after setup and the market-data update; returns (state, pm ids, std ids)."""
    rng = np.random.default_rng(seed)
    state = ExchangeState(_genesis())
    seq = 0

    def run(command_type, **fields):
        nonlocal seq
        seq += 1
        return apply(state, command_type(seq=seq, ts=TS, **fields))

    for i in range(accounts):
        run(Deposit, owner="0x" + f"{i + 0x10000:040x}", amount=10**12, deposit_id=i + 1)
    run(SetMarkPrices, index={"BTC": SPOT * USDC}, marks={0: SPOT * USDC})
    n_options = len(state.instruments) - 1
    per_expiry = len(STRIKES) * 2
    ids = sorted(a for a in state.accounts if a >= 2)
    n_pm = int(len(ids) * PM_SHARE)
    pm_ids, std_ids = ids[:n_pm], ids[n_pm:]
    for account_id in pm_ids:
        account = state.accounts[account_id]
        account.margin_mode = MarginMode.PORTFOLIO
        count = int(rng.integers(5, 31))
        chosen = rng.choice(n_options, size=count, replace=False) + 1
        for instrument in chosen:
            account.positions[int(instrument)] = Position(int(rng.integers(-20, 21) or 1) * 1_000)
        account.positions[0] = Position(int(rng.integers(-30, 31) or 1) * 1_000)
    for account_id in std_ids:
        account = state.accounts[account_id]
        account.cash = 10**11
        account.positions[0] = Position(int(rng.integers(-20, 21) or 1) * 500)
        expiry = int(rng.integers(0, len(EXPIRY_DAYS)))
        for _ in range(int(rng.integers(1, 4))):
            instrument = 1 + expiry * per_expiry + int(rng.integers(0, per_expiry))
            account.positions[instrument] = Position(int(rng.integers(-10, 11) or 1) * 1_000)
    run(SetMarketData, underlying="BTC", index=SPOT * USDC, stable_price=1_000_000, expiries=_surface(TS, SPOT))
    return state, pm_ids, std_ids, rng


def _checks(state, ids, rng, count, screen_hits: list[int] | None = None) -> list[tuple[float, float]]:
    n_options = len(state.instruments) - 1
    margin = state.margin
    out = []
    for _ in range(count):
        account = state.accounts[ids[int(rng.integers(0, len(ids)))]]
        spec = state.instruments[1 + int(rng.integers(0, n_options))]
        mark = state.marks[spec.instrument_id]
        side = 1 if rng.random() < 0.5 else -1
        price = max((mark + side * int(rng.integers(0, 50)) * TICK) // TICK * TICK, TICK)
        lots = int(rng.integers(1, 11)) * 1_000
        cpu = time.thread_time_ns()
        started = time.perf_counter_ns()
        margin.check_order(account, spec, side, price, lots)
        wall = time.perf_counter_ns() - started
        out.append((wall / 1e3, (time.thread_time_ns() - cpu) / 1e3))
        if screen_hits is not None and margin.screen is not None:  # after, untimed: did the screen decide?
            if account.margin_mode is MarginMode.PORTFOLIO:
                screen_hits[0] += margin._screen_accepts(account, spec, side, price, lots)
            else:
                screen_hits[1] += margin._standard_screen_accepts(account, spec, side, price, lots)
    return out


def _naive_ms(state, pm_ids, sample: int) -> float:
    """Per-account naive PM (scenario loop) on ``sample`` accounts, ms per account."""
    risk = state.margin.risk.get("BTC")
    market = to_pm_market(state.markets["BTC"], state.stable_price, state.index["BTC"], state.marks[0])
    portfolios = []
    for account_id in pm_ids[:sample]:
        account = state.accounts[account_id]
        options, perp = [], PerpPosition()
        for instrument, position in account.positions.items():
            if instrument == 0:
                perp = PerpPosition(position.size / LOT, position.size * state.marks[0] / LOT / USDC, 0.0)
            else:
                inst = risk.risk.instruments[risk.rows[instrument]]
                options.append(OptionPosition(inst.seconds_to_expiry, inst.strike, inst.is_call,
                                              position.size / LOT, inst.mark_vol))
        portfolios.append(PMPortfolio(cash=account.cash / USDC, perp=perp, options=tuple(options)))
    started = time.perf_counter()
    for portfolio in portfolios:
        evaluate_portfolio_margin_naive(market, portfolio, state.margin.risk.params)
    return (time.perf_counter() - started) * 1e3 / len(portfolios)


def run(args) -> dict:
    runs = max(1, getattr(args, "runs", 1) or 1)
    seed = getattr(args, "seed", 1)
    state, pm_ids, std_ids, rng = build(seed)
    cache = state.margin.risk
    risk_ms, gather_ms, revalue_ms, revalue_pm_ms, naive_ms, health_us = [], [], [], [], [], []
    screen_ms: list[float] = []
    checks_pm, checks_std, checks_pm_exact, checks_std_exact = [], [], [], []
    screen_hits = [0, 0]  # checks the screen decided: portfolio, standard
    pm_state_only = None
    for _ in range(runs):
        gc.collect()
        cache.entries.clear()
        started = time.perf_counter()
        cache.get("BTC")
        risk_ms.append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        matrix = PositionMatrix.from_state(state)
        gather_ms.append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        result = revalue_all(state, matrix)
        revalue_ms.append((time.perf_counter() - started) * 1e3)
        if pm_state_only is None:
            pm_rows = np.flatnonzero(matrix.portfolio)
            pm_state_only = PositionMatrix(matrix.accounts[pm_rows], matrix.portfolio[pm_rows], matrix.cash[pm_rows],
                                           matrix.sizes[pm_rows])
        started = time.perf_counter()
        revalue_all(state, pm_state_only)
        revalue_pm_ms.append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        state.margin.remember(matrix, result)
        screen_ms.append((time.perf_counter() - started) * 1e3)
        naive_ms.append(_naive_ms(state, pm_ids, NAIVE_SAMPLE) * len(pm_ids))
        started = time.perf_counter()
        for account_id in pm_ids[:200]:
            state.margin.health(state.accounts[account_id])
        health_us.append((time.perf_counter() - started) * 1e6 / 200)
        gc.collect()
        gc.disable()  # as bench/matching.py: a full collection over 100k accounts is not the check's cost
        try:
            checks_pm += _checks(state, pm_ids, rng, CHECKS // 2, screen_hits)
            checks_std += _checks(state, std_ids, rng, CHECKS // 2, screen_hits)
            saved, state.margin.screen = state.margin.screen, None
            checks_pm_exact += _checks(state, pm_ids, rng, EXACT_CHECKS)
            checks_std_exact += _checks(state, std_ids, rng, EXACT_CHECKS)
            state.margin.screen = saved
        finally:
            gc.enable()
    # agreement of the batch with the per-account authority (positions only: no open orders)
    row_of = {int(a): i for i, a in enumerate(result.accounts)}
    worst = 0
    for account_id in pm_ids[:300] + std_ids[:300]:
        h = state.margin.health(state.accounts[account_id])
        i = row_of[account_id]
        worst = max(worst, abs(h.equity - int(result.equity[i])), abs(h.initial_margin - int(result.initial_margin[i])),
                    abs(h.maintenance_margin - int(result.maintenance_margin[i])))
    revalue = statistics.median(revalue_ms)
    naive = statistics.median(naive_ms)
    revalue_pm = statistics.median(revalue_pm_ms)
    checks = checks_pm + checks_std
    wall = [w for w, _ in checks]
    wall_pm = [w for w, _ in checks_pm]
    wall_std = [w for w, _ in checks_std]
    cpu = [c for _, c in checks]
    cpu_pm = [c for _, c in checks_pm]
    return {
        "accounts": int(result.accounts.size),
        "portfolio_accounts": len(pm_ids),
        "option_instruments": len(state.instruments) - 1,
        "scenarios": len(cache.params.scenarios),
        "risk_arrays_ms": round(statistics.median(risk_ms), 2),
        "revalue_all_ms": round(revalue, 2),
        "revalue_all_pm_ms": round(revalue_pm, 2),
        "gather_ms": round(statistics.median(gather_ms), 2),
        "pretrade_check_p50_us": round(percentile(wall, 0.50), 1),
        "pretrade_check_p99_us": round(percentile(wall, 0.99), 1),
        "pretrade_check_pm_p50_us": round(percentile(wall_pm, 0.50), 1),
        "pretrade_check_pm_p99_us": round(percentile(wall_pm, 0.99), 1),
        "pretrade_check_standard_p50_us": round(percentile(wall_std, 0.50), 1),
        "pretrade_check_standard_p99_us": round(percentile(wall_std, 0.99), 1),
        "pretrade_check_cpu_p99_us": round(percentile(cpu, 0.99), 1),
        "pretrade_check_pm_cpu_p50_us": round(percentile(cpu_pm, 0.50), 1),
        "pretrade_check_pm_cpu_p99_us": round(percentile(cpu_pm, 0.99), 1),
        "pretrade_check_pm_exact_p50_us": round(percentile([w for w, _ in checks_pm_exact], 0.50), 1),
        "pretrade_check_pm_exact_p99_us": round(percentile([w for w, _ in checks_pm_exact], 0.99), 1),
        "pretrade_check_pm_exact_cpu_p99_us": round(percentile([c for _, c in checks_pm_exact], 0.99), 1),
        "pretrade_check_standard_exact_p50_us": round(percentile([w for w, _ in checks_std_exact], 0.50), 1),
        "pretrade_check_standard_exact_p99_us": round(percentile([w for w, _ in checks_std_exact], 0.99), 1),
        "screen_ms": round(statistics.median(screen_ms), 2),
        "pretrade_pm_screen_hits": screen_hits[0],
        "pretrade_pm_checks": len(checks_pm),
        "pretrade_standard_screen_hits": screen_hits[1],
        "pretrade_standard_checks": len(checks_std),
        "pretrade_checks_over_1ms_wall": sum(w > 1_000 for w in wall),
        "pretrade_checks": len(wall),
        "health_per_account_us": round(statistics.median(health_us), 1),
        "naive_revalue_all_ms": round(naive, 1),
        "naive_scaled_from_sample": True,
        "naive_sample": NAIVE_SAMPLE,
        "naive_over_revalue_pm": round(naive / revalue_pm, 1),
        "naive_over_revalue_all": round(naive / revalue, 1),
        "batch_vs_health_max_diff_micro": worst,
        "runs": runs,
        "seed": seed,
    }


def print_report(result: dict) -> None:
    print(f"margin benchmark: {result['accounts']:,} accounts ({result['portfolio_accounts']:,} portfolio), "
          f"{result['option_instruments']} options × {result['scenarios']} scenarios")
    print(f"  risk arrays            {result['risk_arrays_ms']:10.2f} ms")
    print(f"  revalue all            {result['revalue_all_ms']:10.2f} ms   (portfolio accounts only: "
          f"{result['revalue_all_pm_ms']:.2f} ms; position copy {result['gather_ms']:.2f} ms, not included)")
    print(f"  pre-trade check        p50 {result['pretrade_check_p50_us']:.1f} µs, p99 "
          f"{result['pretrade_check_p99_us']:.1f} µs (portfolio p99 {result['pretrade_check_pm_p99_us']:.1f}, "
          f"standard p99 {result['pretrade_check_standard_p99_us']:.1f})")
    print(f"  naive revalue (scaled) {result['naive_revalue_all_ms']:10.1f} ms   "
          f"({result['naive_over_revalue_pm']}× the batched portfolio revaluation; sample "
          f"{result['naive_sample']} accounts)")
    print(f"  batch vs per-account health: max difference {result['batch_vs_health_max_diff_micro']} micro-USDC")
