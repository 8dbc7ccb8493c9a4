"""The stress tool on a short window of the real March 2023 prices: invariants, determinism,
signatures the domain accepts."""

from __future__ import annotations

from pathlib import Path


from clearway.domain.oracle import recover_signer
from clearway.sim.marketdata import Reporters
from clearway.sim.stress import ORACLE_REPORTERS, ORACLE_SEED, run_stress

PRICES = Path(__file__).resolve().parents[3] / "shared" / "data" / "market" / "btc-2023-03"
KEYS = {"oracle_updates", "liquidations", "liquidated_notional", "adl_events", "insurance_fund_start",
        "insurance_fund_end", "funding_paid", "min_account_equity", "invariants_ok", "state_hash"}



def test_fast_reporter_signatures_recover_to_the_reporter():
    reporters = Reporters(ORACLE_SEED, ORACLE_REPORTERS)
    reports = reporters.reports(1_678_000_000_000, 20_000_000_000, 1_000_000, ())
    assert [recover_signer(r) for r in reports] == reporters.addresses


def test_a_crash_window_keeps_the_invariants_and_is_reproducible():
    # 9 March 2023 18:00–23:00: BTC 21,468 → 20,211 (−5.9 %), the start of the crisis
    args = (PRICES, "2023-03-09T18:00", "2023-03-09T23:00", 80, 3)
    first = run_stress(*args)
    assert KEYS <= set(first)
    assert first["invariants_ok"], first["problems"]
    assert first["oracle_updates"] >= 300
    assert first["liquidations"] > 0 and first["liquidated_notional"] > 0
    assert first["insurance_fund_start"] == 1_000_000
    again = run_stress(*args)
    assert again["state_hash"] == first["state_hash"]
    assert run_stress(PRICES, "2023-03-09T18:00", "2023-03-09T23:00", 80, 4)["state_hash"] != first["state_hash"]
