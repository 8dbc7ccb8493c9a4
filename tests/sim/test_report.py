"""Run recorder and HTML report: counts match the events fed, open interest matches the
domain's positions, series stay bounded, and the report holds every plot as a valid PNG."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import BTC, Exchange, option_spec, perp_spec, usd

from clearway.domain.accounts import MarginMode
from clearway.domain.commands import PlaceOrder, SetMarketData
from clearway.domain.errors import ErrorCode
from clearway.domain.events import (
    Deleveraged, FundingPaid, FundingTick, LiquidationEnded, LiquidationFill, LiquidationStarted, OptionsExpired,
    OracleUpdated, OrderAccepted, Rejected, Trade,
)
from clearway.domain.genesis import GenesisConfig
from clearway.domain.instruments import OptionType
from clearway.domain.market import FIXED_SCALE, MS_PER_YEAR, ExpiryData
from clearway.sim.recorder import (
    SUMMARY_KEYS, LatencyHistogram, RunRecorder, Series, margin_snapshot, summary_from,
)
from clearway.sim.report import PLOTS, write_report

T0 = 1_678_406_400_000  # 2023-03-10 00:00 UTC
HOUR = 3_600_000
PERP = perp_spec(0)
CALL = option_spec(1, 30_000)


def trade(trade_id, instrument=0, price=usd(20_000), size=BTC // 10, taker_side=1, maker=2, taker=3):
    return Trade(trade_id, instrument, price, size, taker_side, 100 + trade_id, 200 + trade_id, maker, taker, 0, 0)


def accepted(order_id, account=2):
    return OrderAccepted(order_id, account, 0, 1, usd(20_000), BTC, 1, False, False, "")


def synthetic_run(recorder: RunRecorder) -> dict[str, int]:
    """Feed a day of synthetic events (prices falling then recovering, trades, funding,
    liquidations, deleveraging, an option expiry) and the explicit inputs; returns what was
    fed, to compare with the recorder's counters."""
    rng = random.Random(3)
    fed = dict(orders=0, trades=0, liquidations=0, adl=0, funding_paid=0, oracle=0, batches=0, attestations=0,
               latencies=0)
    order_id = trade_id = 0
    for minute in range(24 * 60):
        ts = T0 + minute * 60_000
        price = usd(22_000 - 2_500 * math.sin(minute / 1440 * math.pi))
        events: list = [OracleUpdated("BTC", price, 1_000_000, 1, ["r1", "r2", "r3"], {0: price + usd(3), 1: usd(400)})]
        fed["oracle"] += 1
        if minute % 7 == 0:
            order_id += 1
            trade_id += 1
            events += [accepted(order_id), trade(trade_id, price=price, taker_side=rng.choice((1, -1)),
                                                 maker=2 + rng.randrange(5), taker=10 + rng.randrange(5))]
            fed["orders"] += 1
            fed["trades"] += 1
        if minute % 60 == 0 and minute:
            events.append(FundingTick(0, ts, rng.randrange(-10**8, 10**8), price, 0, 60))
            events.append(FundingPaid(3, 0, -usd(2), 0))
            events.append(FundingPaid(4, 0, usd(2), 0))
            fed["funding_paid"] += usd(2)
        if 600 <= minute < 720 and minute % 10 == 0:  # the crash hours: account 50+k liquidated
            account = 50 + minute // 30
            trade_id += 1
            events += [LiquidationStarted(account, usd(-5), usd(10)),
                       trade(trade_id, price=price, size=BTC // 100, taker_side=-1, maker=2, taker=account),
                       LiquidationFill(account, 0, trade_id, -1, BTC // 100, price, price, 0, 0, 0, 0),
                       LiquidationEnded(account, usd(-1), usd(1), minute % 30 != 20)]
            fed["trades"] += 1
            if minute % 30 == 0:
                fed["liquidations"] += 1  # later passes over the same account continue the episode
        if minute == 700:
            events.append(Deleveraged(0, 70, 2, 1, 5, price, -usd(100)))
            fed["adl"] += 1
        if minute == 8 * 60:
            trade_id += 1
            events.append(trade(trade_id, instrument=1, price=usd(400), size=BTC, maker=2, taker=3))
            fed["trades"] += 1
        if minute == 8 * 60 + 30:
            events.append(OptionsExpired("BTC", ts, price, [1], 0))
        recorder.on_events(ts, events)
        if minute % 60 == 0:
            recorder.on_insurance_fund(ts, usd(1_000_000) + minute * USD_PER_MINUTE)
            recorder.on_margin_snapshot(ts, [rng.random() * 1.5 for _ in range(50)] + [math.inf],
                                        [(usd(rng.randrange(100, 1000)), usd(rng.randrange(1000, 3000)))
                                         for _ in range(20)])
        if minute % 120 == 119:
            recorder.on_batch(minute // 120 + 1, 400_000 + minute, trades=150, data_bytes=20_000, ts_ms=ts,
                              attestations=2)
            fed["batches"] += 1
            fed["attestations"] += 2
    latencies = np.exp(np.random.default_rng(5).normal(np.log(800.0), 0.5, 5_000))
    recorder.on_latencies_us(latencies)
    for value in latencies[:100]:
        recorder.on_latency_us(float(value))
    fed["latencies"] = 5_100
    recorder.on_comparison({"gas_per_trade": 150_000.0, "gas_per_trade_p50": 140_000, "trades": 205,
                            "trades_settled": 205, "reverted": 0, "max_trades_per_s": 30e6 / 150_000 / 12,
                            "block_gas_limit": 30_000_000, "block_time_s": 12}, throughput_trades_per_s=1234.5)
    return fed


USD_PER_MINUTE = 7


@pytest.fixture(scope="module")
def recorded() -> tuple[RunRecorder, dict[str, int]]:
    recorder = RunRecorder([PERP, CALL], max_points=500)
    return recorder, synthetic_run(recorder)


# ------------------------------------------------------------------------------ recorder


def test_recorder_counts_match_the_events_fed(recorded):
    recorder, fed = recorded
    c = recorder.counters
    assert c.commands == 24 * 60
    assert (c.orders, c.trades, c.liquidations, c.adl_events) == (fed["orders"], fed["trades"], fed["liquidations"],
                                                                   fed["adl"])
    assert c.funding_paid == fed["funding_paid"] and c.funding_ticks == 23
    assert c.oracle_updates == fed["oracle"] and c.expiries == 1
    assert (c.batches, c.attestations) == (fed["batches"], fed["attestations"])
    assert recorder.latency.count == fed["latencies"]
    assert c.liquidation_fills == 12
    assert recorder.settlements and list(recorder.settlements) == [T0 + (8 * 60 + 30) * 60_000]
    assert len(recorder.fills.fills) == fed["trades"]


def test_liquidations_fall_in_their_hours(recorded):
    recorder, fed = recorded
    t, counts, notional = recorder.liquidation_buckets()
    assert counts.sum() == fed["liquidations"]
    hours = (t[counts > 0] - T0) // HOUR
    assert set(hours.tolist()) == {10, 11}
    assert notional[(t - T0) // HOUR == 11].sum() > 0  # the deleveraging at minute 700 counts too


def test_option_open_interest_returns_to_zero_at_expiry(recorded):
    recorder, _ = recorded
    t, v = recorder.open_interest_options.arrays()
    assert v.max() == 1.0 and v[-1] == 0.0
    assert recorder.open_interest(1) == 0


def test_every_series_is_bounded_and_keeps_its_last_sample(recorded):
    recorder, _ = recorded
    for series in [*recorder.index.values(), *recorder.perp_mark.values(), *recorder.open_interest_perp.values()]:
        t, v = series.arrays()
        assert len(t) <= 501 and np.all(np.diff(t) >= 0)
    t, v = recorder.index["BTC"].arrays()
    assert t[-1] == T0 + (24 * 60 - 1) * 60_000
    assert t[0] == T0


def test_series_halves_when_full_and_stays_evenly_spaced():
    series = Series(max_points=100)
    for i in range(10_001):
        series.add(i, float(i))
    t, v = series.arrays()
    assert len(t) <= 101
    assert t[0] == 0 and t[-1] == 10_000
    steps = np.diff(t[:-1])
    assert len(set(steps.tolist())) == 1 and steps[0] == series.stride


def test_open_interest_equals_the_domains_long_positions():
    ex = Exchange(GenesisConfig(instruments=[perp_spec(), option_spec(1, 30_000)]))
    recorder = RunRecorder(ex.state.instruments)
    accounts = [ex.deposit(0x10 + i, usd(1_000_000)) for i in range(4)]
    recorder.on_events(ex.ts, ex.marks(usd(25_000), marks={1: usd(500)}))
    rng = random.Random(11)
    for _ in range(120):
        account = rng.choice(accounts)
        instrument = rng.choice((0, 1))
        price = usd(25_000 + rng.randrange(-20, 21)) if instrument == 0 else usd(500 + rng.randrange(-20, 21))
        fields = dict(account=account, instrument=instrument, side=rng.choice((1, -1)),
                      size=rng.randrange(1, BTC // 10), price=price)
        events = ex.place(**fields)
        recorder.on_events(ex.ts, events, command=PlaceOrder(seq=0, ts=0, **fields))
    for instrument in (0, 1):
        longs = sum(max(ex.position(a, instrument), 0) for a in accounts)
        assert recorder.open_interest(instrument) == longs > 0
    assert recorder.counters.trades == ex.state.next_trade_id - 1
    assert recorder.counters.orders == ex.state.next_order_id - 1


def skewed_surface(ex: Exchange, forward_usd: float) -> list[ExpiryData]:
    """One expiry (option_spec's) with an SVI slice of about 60 % ATM vol and negative skew."""
    t = (option_spec(1, 1).expiry_ms - ex.ts) / MS_PER_YEAR
    f = FIXED_SCALE
    return [ExpiryData(option_spec(1, 1).expiry_ms, usd(forward_usd), round(0.03 * f), round(0.3 * t * f),
                       round(0.1 * f), round(-0.4 * f), round(0.02 * f), round(0.2 * f))]


def test_margin_snapshot_compares_the_same_portfolio_in_both_modes():
    ex = Exchange(GenesisConfig(instruments=[perp_spec(0), option_spec(1, 24_000, OptionType.CALL),
                                             option_spec(2, 24_000, OptionType.PUT)]))
    writer, maker, trader = (ex.deposit(i, usd(100_000 if i != 2 else 1_000_000)) for i in (1, 2, 3))
    ex.marks(usd(24_000))
    ex.run(SetMarketData, underlying="BTC", index=usd(24_000), stable_price=0, expiries=skewed_surface(ex, 24_050))

    def trade(seller, buyer, instrument, lots):
        price = max(ex.state.marks[instrument] // 100_000 * 100_000, 100_000)
        ex.place(seller, -1, lots, price, instrument=instrument)
        assert type(ex.place(buyer, 1, lots, price, instrument=instrument)[-1]) is Trade

    trade(writer, maker, 1, BTC)        # the writer sells a call ...
    trade(maker, writer, 0, BTC // 2)   # ... and hedges it with a long perp
    trade(maker, trader, 0, BTC // 4)   # a perp-only trader
    utilisation, pairs = margin_snapshot(ex.state)
    health = ex.state.margin.health
    accounts = [ex.state.accounts[a] for a in (writer, maker, trader)]
    assert utilisation == [health(a).initial_margin / health(a).equity for a in accounts]
    both = [(health(a, MarginMode.PORTFOLIO).initial_margin, health(a, MarginMode.STANDARD).initial_margin)
            for a in accounts[:2]]
    assert pairs == both  # only the accounts holding options
    assert pairs[0][0] < pairs[0][1]  # the hedged writer needs less under portfolio margin
    recorder = RunRecorder(ex.state.instruments)
    recorder.on_state(ex.ts, ex.state)
    assert recorder.pm_pairs == pairs and recorder.utilisation_counts.sum() == 3
    assert recorder.insurance_fund.last == ex.state.accounts[1].cash


def test_a_rejected_place_order_counts_as_a_rejected_order():
    recorder = RunRecorder([PERP])
    command = PlaceOrder(seq=1, ts=T0, account=2, instrument=0, side=1, size=1, price=usd(1))
    recorder.on_events(T0, [Rejected(ErrorCode.INSUFFICIENT_MARGIN, "no")], command=command)
    recorder.on_events(T0, [Rejected(ErrorCode.INSUFFICIENT_MARGIN, "no")])
    assert (recorder.counters.orders_rejected, recorder.counters.rejections) == (1, 2)


def test_latency_quantiles_are_within_the_bin_resolution():
    values = np.exp(np.random.default_rng(1).normal(np.log(500.0), 1.0, 20_000))
    histogram = LatencyHistogram()
    histogram.add_many(values)
    for q in (0.5, 0.99):
        exact = float(np.sort(values)[math.ceil(q * len(values)) - 1])
        assert histogram.quantile(q) == pytest.approx(exact, rel=0.012)
    assert histogram.min == values.min() and histogram.max == values.max()
    with pytest.raises(ValueError):
        histogram.add(float("nan"))


def test_bad_explicit_inputs_are_refused():
    recorder = RunRecorder()
    with pytest.raises(ValueError):
        recorder.on_batch(1, -1, 1, 1)
    with pytest.raises(ValueError):
        recorder.on_margin_snapshot(T0, [-0.1])
    assert recorder.counters.batches == 0 and recorder.utilisation_counts.sum() == 0


# ------------------------------------------------------------------------------ summary


def test_summary_has_every_key_and_takes_what_the_recorder_cannot_know(recorded):
    recorder, fed = recorded
    summary = summary_from(recorder, {"escaped_total": 123.0, "expected_total": 123.0, "funding_paid": 9.5})
    assert list(summary)[:len(SUMMARY_KEYS)] == list(SUMMARY_KEYS)
    assert summary["orders"] == fed["orders"] and summary["trades"] == fed["trades"]
    assert summary["insurance_fund_start"] == 1_000_000.0
    assert summary["insurance_fund_end"] == pytest.approx(1_000_000 + 23 * 60 * USD_PER_MINUTE / 1e6)
    assert summary["funding_paid"] == 9.5  # extra overrides
    assert summary["gas_per_trade_onchain"] == 150_000.0
    assert summary["gas_per_trade_clearway"] == pytest.approx(
        sum(b.gas_used for b in recorder.batches) / sum(b.trades for b in recorder.batches), abs=0.1)
    assert 0.5 < summary["latency_p50_ms"] < summary["latency_p99_ms"] < 5
    assert summary["invariants_ok"] is True
    assert summary_from(recorder, {"invariants_ok": False})["invariants_ok"] is False


def test_a_failed_invariant_check_makes_the_summary_say_so():
    recorder = RunRecorder()
    recorder.on_invariant_check(True)
    recorder.on_invariant_check(False, "sum of cash drifted by 1")
    summary = summary_from(recorder)
    assert summary["invariants_ok"] is False and summary["problems"] == ["sum of cash drifted by 1"]
    assert summary["escaped_total"] is None


# ------------------------------------------------------------------------------ report


def assert_valid_report(index: Path) -> None:
    assert index.name == "index.html" and index.is_file()
    text = index.read_text()
    assert text.startswith("<!DOCTYPE html>")
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert sorted(sources) == sorted(PLOTS)
    for name in PLOTS:
        path = index.parent / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.size[0] > 300 and image.size[1] > 200


def test_report_references_every_plot_and_each_is_a_valid_png(recorded, tmp_path):
    recorder, fed = recorded
    summary = summary_from(recorder, {"escaped_total": 1.0, "expected_total": 1.0})
    index = write_report(tmp_path / "run", summary, recorder)
    assert_valid_report(index)
    text = index.read_text()
    for key in SUMMARY_KEYS:
        assert f"<td>{key}</td>" in text
    assert "on-chain baseline" in text and "150,000" in text and "1,234.5" in text
    assert json.loads((index.parent / "summary.json").read_text())["trades"] == fed["trades"]


def test_report_of_an_empty_run_still_has_every_plot(tmp_path):
    recorder = RunRecorder()
    assert_valid_report(write_report(tmp_path, summary_from(recorder), recorder))
