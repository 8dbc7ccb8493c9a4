"""Market data of the simulations against the raw files: the March 2023 index and USDC depeg,
the Deribit SVI fit, arbitrage-free produced surfaces, the option schedule, the reporters."""

from __future__ import annotations

import csv
from datetime import datetime, timezone

import msgspec
import numpy as np
import pytest

from clearway.domain.commands import ListOptionSeries, encode_command
from clearway.domain.events import Rejected
from clearway.domain.genesis import GenesisConfig
from clearway.domain.instruments import Kind
from clearway.domain.market import MS_PER_YEAR, svi_params, validate_expiries
from clearway.domain.oracle import recover_signer
from clearway.domain.risk.svi import svi_implied_vol, svi_total_variance
from clearway.domain.state import ExchangeState, apply
from clearway.sim import marketdata
from clearway.sim.marketdata import (
    DEFAULT_DERIBIT, DEFAULT_PRICES, MarketData, OracleFeed, Reporters, Surface, calendar_shortfall, iso_ms,
    option_schedule, perp_spec, series_fields,
)
from clearway.sim.riskcheck import load_deribit_chain

WINDOW = (iso_ms("2023-03-09T00:00"), iso_ms("2023-03-14T00:00"))
GRID = np.linspace(-6.0, 6.0, 1201)


@pytest.fixture(scope="module")
def market() -> MarketData:
    return MarketData.load(DEFAULT_PRICES)


@pytest.fixture(scope="module")
def surface() -> Surface:
    return Surface.fit_deribit(DEFAULT_DERIBIT)


def _raw(name: str) -> dict[int, tuple[float, float]]:
    """Binance.US file → {bar close time ms: (close, low)} read independently of the module."""
    out = {}
    with (DEFAULT_PRICES / name).open(newline="") as handle:
        for row in csv.DictReader(handle):
            opened = datetime.fromisoformat(row["open_time"]).astimezone(timezone.utc)
            out[int(opened.timestamp()) * 1000 + 60_000] = (float(row["close"]), float(row["low"]))
    return out


@pytest.fixture(scope="module")
def raw_usd() -> dict[int, tuple[float, float]]:
    return _raw("binanceus_BTCUSD_1m.csv")


@pytest.fixture(scope="module")
def raw_usdc() -> dict[int, tuple[float, float]]:
    return _raw("binanceus_BTCUSDC_1m.csv")


# -- index -------------------------------------------------------------------------------------
def test_the_index_low_of_10_march_matches_the_raw_low_in_value_and_time(market, raw_usd):
    day = [t for t in raw_usd if iso_ms("2023-03-10T00:00") < t <= iso_ms("2023-03-11T00:00")]
    raw_low_ts = min(day, key=lambda t: raw_usd[t][0])
    rows = slice(market.row(day[0]), market.row(day[-1]) + 1)
    i = int(np.argmin(market.index[rows])) + rows.start
    low = market.index[i] / 1e6
    assert abs(low - raw_usd[raw_low_ts][0]) / raw_usd[raw_low_ts][0] < 0.002   # 19,594.56 on Binance.US
    assert 19_550 < low < 19_650
    assert abs(int(market.times[i]) - raw_low_ts) <= 15 * 60_000


def test_the_index_follows_the_13_march_rally_within_half_a_percent_of_binance_usd(market, raw_usd):
    for stamp in ("2023-03-13T00:00", "2023-03-13T12:00", "2023-03-13T18:00", "2023-03-14T00:00"):
        ts = iso_ms(stamp)
        close = raw_usd[ts][0]
        assert abs(market.index_at(ts) / 1e6 - close) / close < 0.005, stamp
    rally = market.index[market.row(iso_ms("2023-03-13T00:00")):market.row(iso_ms("2023-03-14T00:00"))]
    assert rally.max() / 1e6 > 24_000 and rally.max() / rally.min() > 1.08


def test_every_index_value_of_the_window_stays_near_binance_usd(market, raw_usd):
    rows = range(market.row(WINDOW[0]), market.row(WINDOW[1]) + 1)
    gaps = [abs(market.index[i] / 1e6 / raw_usd[int(market.times[i])][0] - 1) for i in rows]
    assert max(gaps) < 0.02 and float(np.median(gaps)) < 0.002


def test_index_at_uses_no_bar_that_has_not_closed(market, raw_usd):
    ts = iso_ms("2023-03-10T11:24")
    assert market.index_at(ts + 59_999) == market.index_at(ts)
    assert market.row(ts + 60_000) == market.row(ts) + 1
    with pytest.raises(KeyError):
        market.index_at(market.start_ms - 1)
    assert market.has(ts) and not market.has(ts + 1)


# -- USDC/USD -----------------------------------------------------------------------------------
def test_usdc_depegs_below_095_on_11_march_and_is_at_par_before_and_after(market, raw_usd, raw_usdc):
    day = slice(market.row(iso_ms("2023-03-11T00:00")), market.row(iso_ms("2023-03-12T00:00")))
    assert market.usdc_usd[day].min() < 950_000
    assert abs(market.usdc_usd_at(iso_ms("2023-03-09T12:00")) - 1_000_000) < 3_000
    assert abs(market.usdc_usd_at(iso_ms("2023-03-15T12:00")) - 1_000_000) < 5_000
    ts = iso_ms("2023-03-11T12:00")   # the raw BTC/USD ÷ BTC/USDC ratio at noon: ≈0.910
    ratio = raw_usd[ts][0] / raw_usdc[ts][0]
    assert abs(market.usdc_usd_at(ts) / 1e6 - ratio) < 0.01


# -- realised volatility -------------------------------------------------------------------------
def test_realised_vol_rises_in_the_crash(market):
    quiet = market.realised_vol(iso_ms("2023-03-07T12:00"))
    crash = market.realised_vol(iso_ms("2023-03-10T18:00"))
    assert 0.05 < quiet < 0.5 and crash > 1.5 * quiet


# -- the Deribit fit ------------------------------------------------------------------------------
def test_svi_fits_the_deribit_chains_within_two_vol_points_per_tenor(surface):
    assert len(surface.fits) == 10   # 5 expiries beyond 2 days in each chain
    for path in DEFAULT_DERIBIT:
        chain = load_deribit_chain(path)
        for node in surface.fits:
            rows = chain["expiry"] == node.expiry_ms
            if not rows.any() or abs(float(chain["time"][rows].mean()) - node.time) > 1e-9:
                continue
            k = np.log(chain["strike"][rows] / chain["forward"][rows])
            inner = np.abs(k) < 0.5   # Deribit flattens its marks in the far wings
            error = svi_implied_vol(k[inner], node.time, node.params) - chain["vol"][rows][inner]
            rmse = float(np.sqrt(np.mean(error * error))) * 100
            assert rmse <= 2.0, (path.name, node.time * 365, rmse)
            assert node.rmse_vol_points <= 2.0 and node.max_abs_vol_points <= 5.0


def test_nodes_are_increasing_in_tenor_and_total_variance(surface):
    nodes = surface.nodes
    assert len(nodes) >= 6
    for lo, hi in zip(nodes, nodes[1:]):
        assert hi.time > lo.time
        assert calendar_shortfall(lo.params, hi.params, GRID) <= 0
    assert 0.6 < surface.reference_vol < 1.0          # May 2020 BTC ATM vol ≈ 80 %
    assert 0 <= surface.carry < 0.05


# -- produced surfaces --------------------------------------------------------------------------
def _atm_vol(data, ts: int) -> float:
    t = (data.expiry_ms - ts) / MS_PER_YEAR
    return float(np.sqrt(svi_total_variance(0.0, svi_params(data)) / t))


def test_every_hourly_surface_of_the_window_is_free_of_static_arbitrage(market, surface):
    expiries = [e.expiry_ms for e in option_schedule(*WINDOW)]
    for ts in range(WINDOW[0], WINDOW[1] + 1, 3_600_000):
        data = surface.expiries(ts, market.index_at(ts), expiries, market.realised_vol(ts))
        assert [d.expiry_ms for d in data] == [e for e in expiries if e > ts]
        assert validate_expiries(data) is None
        for lo, hi in zip(data, data[1:]):
            assert calendar_shortfall(svi_params(lo), svi_params(hi), GRID) <= 1e-10, ts
        for d in data:
            assert d.rate == 0 and d.forward >= market.index_at(ts)
            t = (d.expiry_ms - ts) / MS_PER_YEAR   # the calendar repair moves the ATM vol < 1 point
            assert abs(_atm_vol(d, ts) - float(np.sqrt(svi_total_variance(0.0, surface.slice(
                t, market.realised_vol(ts))) / t))) < 0.01


def test_the_crash_raises_option_vols(market, surface):
    expiry = iso_ms("2023-03-17T08:00")
    before, during = iso_ms("2023-03-08T12:00"), iso_ms("2023-03-10T20:00")
    vol_before = _atm_vol(surface.expiries(before, market.index_at(before), [expiry],
                                          market.realised_vol(before))[0], before)
    vol_during = _atm_vol(surface.expiries(during, market.index_at(during), [expiry],
                                          market.realised_vol(during))[0], during)
    assert vol_during > 1.3 * vol_before
    assert 0.3 < vol_before < 0.9


def test_the_level_scale_is_clamped(surface):
    assert surface.level_scale(0.0) == marketdata.SCALE_FLOOR
    assert surface.level_scale(100.0) == marketdata.SCALE_CAP
    ref = surface.reference_vol
    assert surface.level_scale(ref) == pytest.approx(1.0)
    t = marketdata.REFERENCE_DAYS / 365
    atm = float(np.sqrt(svi_total_variance(0.0, surface.slice(t, ref)) / t))
    assert atm == pytest.approx(ref, rel=1e-9)


def test_bad_inputs_of_the_surface_raise(surface):
    with pytest.raises(ValueError):
        surface.expiries(WINDOW[0], 0, [WINDOW[1]], 0.5)
    with pytest.raises(ValueError):
        surface.expiries(WINDOW[0], 20_000_000_000, [WINDOW[1]], float("nan"))


# -- schedule ---------------------------------------------------------------------------------
def test_the_window_has_the_10_and_17_march_weeklies_and_the_31_march_monthly():
    schedule = option_schedule(*WINDOW)
    by_day = {datetime.fromtimestamp(e.expiry_ms / 1000, tz=timezone.utc).date().isoformat(): e for e in schedule}
    assert by_day["2023-03-10"].kind == "weekly" and by_day["2023-03-17"].kind == "weekly"
    assert by_day["2023-03-31"].kind == "monthly" and by_day["2023-04-28"].kind == "monthly"
    assert sorted(by_day) == ["2023-03-10", "2023-03-17", "2023-03-24", "2023-03-31", "2023-04-28"]
    assert by_day["2023-03-10"].name == "10MAR23"
    for e in schedule:
        moment = datetime.fromtimestamp(e.expiry_ms / 1000, tz=timezone.utc)
        assert moment.weekday() == 4 and (moment.hour, moment.minute) == (8, 0)
        assert e.expiry_ms > WINDOW[0] and e.listed_ms < WINDOW[1]
        ahead = marketdata.MONTHLY_LISTED_DAYS if e.kind == "monthly" else marketdata.WEEKLY_LISTED_DAYS
        assert e.expiry_ms - e.listed_ms == ahead * 86_400_000
    with pytest.raises(ValueError):
        option_schedule(WINDOW[1], WINDOW[0])
    short = option_schedule(*WINDOW, weekly_listed_days=7, monthly_listed_days=21)
    assert [e.name for e in short] == ["10MAR23", "17MAR23", "31MAR23"]   # 24 March is listed on the 17th


def test_series_fields_cover_the_spread_in_round_steps():
    expiry = option_schedule(*WINDOW)[0]
    fields = series_fields(expiry, 21_700_000_000)
    assert fields["strike_step"] == 1_000_000_000 and fields["strikes_each_side"] == 7   # 6,510 USD → 7 steps
    assert series_fields(expiry, 21_700_000_000, spread=0.1)["strikes_each_side"] == 3


def test_the_domain_lists_and_prices_the_schedule_from_the_signed_feed(market, surface):
    feed = OracleFeed(market, surface, Reporters(5, 4))
    state = ExchangeState(GenesisConfig(instruments=[perp_spec(0)], oracle_reporters=feed.reporters.addresses))
    ts = WINDOW[0]
    listed = [e for e in option_schedule(*WINDOW) if e.listed_ms <= ts]
    events = apply(state, feed.oracle_update(1, ts, []))
    assert not any(isinstance(e, Rejected) for e in events)
    seq = 1
    for e in listed:
        seq += 1
        command = ListOptionSeries(seq=seq, ts=ts, **series_fields(e, market.index_at(ts)))
        assert not isinstance(apply(state, command)[0], Rejected)
    seq += 1
    events = apply(state, feed.oracle_update(seq, ts + 60_000, [e.expiry_ms for e in listed]))
    assert not any(isinstance(e, Rejected) for e in events), events
    options = [s for s in state.instruments.values() if s.kind == Kind.OPTION]
    assert {s.expiry_ms for s in options} == {e.expiry_ms for e in listed}
    index = market.index_at(ts)
    strikes = sorted({s.strike for s in options})
    assert strikes[0] <= 0.7 * index and strikes[-1] >= 1.3 * index
    assert all(s.instrument_id in state.marks for s in options)


# -- reporters and determinism -------------------------------------------------------------------
def test_reporters_are_deterministic_per_seed_and_sign_what_the_domain_recovers():
    a, b, c = Reporters(7, 3), Reporters(7, 3), Reporters(8, 3)
    assert a.addresses == b.addresses and len(set(a.addresses)) == 3
    assert not set(a.addresses) & set(c.addresses)
    update = a.oracle_update(1, 1_678_000_000_000, 20_000_000_000, 999_000, ())
    assert [recover_signer(r) for r in update.reports] == a.addresses
    assert encode_command(update) == encode_command(b.oracle_update(1, 1_678_000_000_000, 20_000_000_000,
                                                                    999_000, ()))
    with pytest.raises(ValueError):
        Reporters(7, 0)


def test_loading_and_fitting_twice_gives_identical_data(market, surface):
    again = MarketData.load(DEFAULT_PRICES)
    for name in ("index", "usdc_usd", "vol", "times"):
        assert np.array_equal(getattr(market, name), getattr(again, name))
    refit = marketdata._fit_cached.__wrapped__(tuple(str(p.resolve()) for p in DEFAULT_DERIBIT))
    assert refit == surface
    ts = iso_ms("2023-03-10T12:00")
    expiries = [e.expiry_ms for e in option_schedule(*WINDOW)]
    one = surface.expiries(ts, market.index_at(ts), expiries, market.realised_vol(ts))
    two = refit.expiries(ts, again.index_at(ts), expiries, again.realised_vol(ts))
    assert msgspec.msgpack.encode(one) == msgspec.msgpack.encode(two)



def test_a_stale_venue_leaves_the_index_and_usdc_usd_is_the_usd_over_usdc_ratio():
    # 30 minutes: BTC/USD 20,000, BTC/USDT 20,010, Kraken BTC/USDC 20,000/0.9 every minute;
    # Binance BTC/USDC prints a wild 30,000 once at minute 0 and then never trades again
    n = 30
    opens = np.arange(n, dtype=np.int64) * 60_000 + iso_ms("2023-03-11T00:00")
    ones = np.ones(n)
    silent = np.zeros(n)
    silent[0] = 1.0
    market = MarketData.from_bars(opens, {
        "binanceus_btcusd": (np.full(n, 20_000.0), ones),
        "binanceus_btcusdt": (np.full(n, 20_010.0), ones),
        "binanceus_btcusdc": (np.full(n, 30_000.0), silent),
    }, (opens.copy(), np.full(n, 20_000.0 / 0.9)))
    late = int(market.times[-1])
    assert not market.fresh["binanceus_btcusdc"][-1] and market.fresh["binanceus_btcusdc"][5]
    assert market.usdc_usd_at(late) == 900_000
    assert market.index_at(late) == 20_000_000_000          # median of 20,000, 20,010, 20,000
    # while the wild print was fresh, the median of four kept it out of the index
    assert market.index_at(int(market.times[0])) <= 20_010_000_000


# -- on-disk cache of the Deribit fit -----------------------------------------------------------
ONE_CHAIN = (str(DEFAULT_DERIBIT[0].resolve()),)


def _fit_entry():
    from clearway.chain.contracts import cache_dir

    return cache_dir() / "surface" / f"{marketdata.surface_fit_cache_key(ONE_CHAIN)}.json"


def test_surface_fit_cache_hit_miss_and_corruption(tmp_path, monkeypatch):
    monkeypatch.setenv("CLEARWAY_CACHE_DIR", str(tmp_path))
    fresh = marketdata._fit_cached.__wrapped__(ONE_CHAIN)  # miss: fits and stores
    assert _fit_entry().is_file()

    def no_fit(*args, **kwargs):
        raise AssertionError("the fit ran on a cache hit")

    with monkeypatch.context() as patch:
        patch.setattr(marketdata, "fit_svi", no_fit)
        assert marketdata._fit_cached.__wrapped__(ONE_CHAIN) == fresh  # hit: same floats
        _fit_entry().write_text('{"key": "' + marketdata.surface_fit_cache_key(ONE_CHAIN) + '", "value": {')
        with pytest.raises(AssertionError, match="the fit ran"):
            marketdata._fit_cached.__wrapped__(ONE_CHAIN)  # corrupt: ignored, refitted
    assert marketdata._fit_cached.__wrapped__(ONE_CHAIN) == fresh  # rebuilt entry
    monkeypatch.setattr(marketdata, "fit_svi", no_fit)
    assert marketdata._fit_cached.__wrapped__(ONE_CHAIN) == fresh


def test_surface_fit_cache_key_covers_data_code_and_parameters(tmp_path, monkeypatch):
    copy = tmp_path / "chain.csv"
    copy.write_bytes(DEFAULT_DERIBIT[0].read_bytes())
    key = marketdata.surface_fit_cache_key((str(copy),))
    assert key == marketdata.surface_fit_cache_key(ONE_CHAIN)  # by content, not by path
    copy.write_bytes(copy.read_bytes() + b"\n")
    assert marketdata.surface_fit_cache_key((str(copy),)) != key
    for name, value in (("MIN_FIT_DAYS", marketdata.MIN_FIT_DAYS + 1),
                        ("SURFACE_FIT_VERSION", marketdata.SURFACE_FIT_VERSION + 1)):
        with monkeypatch.context() as patch:
            patch.setattr(marketdata, name, value)
            assert marketdata.surface_fit_cache_key(ONE_CHAIN) != key
    code = tmp_path / "svi.py"
    code.write_text("# another fit\n")
    monkeypatch.setattr(marketdata, "_FIT_CODE", marketdata._FIT_CODE[:2] + (code,))
    assert marketdata.surface_fit_cache_key(ONE_CHAIN) != key
