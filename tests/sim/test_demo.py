"""The demo end to end on a short window across the 10 March 2023 crash (small population):
the summary has the issue's keys, the invariants hold, every account escapes in the halt
drill with exactly the expected total, the report is written, and the same seed gives the
same state roots (the vault's root of every batch)."""

from __future__ import annotations

import json

import pytest

from clearway.sim.agents import Population
from clearway.sim.demo import SUMMARY_KEYS, DemoConfig, run_demo, summary_text

WINDOW = ("2023-03-10T06:30", "2023-03-10T09:00")  # BTC sliding, the 10 March weekly expires at 08:00
SMALL = Population(market_makers=2, ccxt_market_makers=1, directional=6, option_buyers=2, option_writers=2,
                   funding_arbitrageurs=1, l1_savers=2)


def _config(out, seed: int = 11) -> DemoConfig:
    return DemoConfig(start=WINDOW[0], end=WINDOW[1], seed=seed, out=out, population=SMALL, burst_orders=300,
                      baseline_fills=20, progress=False, step_minutes=5, batch_minutes=30)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    first = run_demo(_config(tmp_path_factory.mktemp("first")))
    second = run_demo(_config(tmp_path_factory.mktemp("second")))
    return first, second


def test_summary_has_every_key_of_the_issue_and_the_invariants_hold(runs):
    summary, _ = runs
    assert [k for k in SUMMARY_KEYS if k not in summary] == []
    assert summary["invariants_ok"] is True, summary.get("problems")
    assert summary["orders"] > 0 and summary["trades"] > 0
    assert summary["batches"] >= 2 and summary["attestations"] >= 2 * summary["batches"]
    assert summary["gas_per_trade_clearway"] < summary["gas_per_trade_onchain"]
    assert 0 < summary["latency_p50_ms"] <= summary["latency_p99_ms"] < 1_000  # durable acks, not seconds
    assert summary["ccxt_orders"] > 0
    assert summary["expiries"] >= 1  # the 10 March weekly settled at 08:00
    assert summary["insurance_fund_start"] == 1_000_000


def test_halt_drill_escapes_exactly_the_expected_total(runs):
    summary, _ = runs
    drill = summary["halt_drill"]
    assert drill["frozen"] and drill["reconciled"]
    assert summary["escaped_total"] == summary["expected_total"] > 0
    assert drill["escaped_accounts"] >= summary["accounts"] // 2


def test_same_seed_gives_the_same_state_roots(runs):
    first, second = runs
    assert first["state_roots"] and first["state_roots"] == second["state_roots"]
    for key in ("orders", "trades", "liquidations", "escaped_total", "funding_paid"):
        assert first[key] == second[key]


def test_report_is_written_with_plots_and_summary(runs):
    summary, _ = runs
    from pathlib import Path

    index = Path(summary["report"])
    assert index.exists() and "Clearway" in index.read_text()
    folder = index.parent
    assert len(list(folder.glob("*.png"))) >= 9
    written = json.loads((folder / "summary.json").read_text())
    assert written["state_roots"] == summary["state_roots"]
    assert "on-chain baseline" in summary_text(summary)
