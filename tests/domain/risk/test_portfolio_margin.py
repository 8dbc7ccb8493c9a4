"""Portfolio margin: spec worked examples, fast (risk arrays) vs naive agreement, and the
non-linear per-expiry steps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearway.domain.risk.portfolio import (
    CollateralPosition,
    ExpiryMarket,
    OptionPosition,
    PerpPosition,
    PMMarket,
    PMParams,
    PMPortfolio,
    Scenario,
    VolShock,
    build_risk_arrays,
    default_pm_params,
    evaluate_portfolio_margin,
    evaluate_portfolio_margin_naive,
    margin_from_risk_arrays,
)

PARAMS = default_pm_params()
DAY = 86_400


def assert_results_close(a, b, rel=1e-9):
    for name in ("equity", "maintenance_margin", "initial_margin", "maintenance_surplus", "initial_surplus"):
        x, y = getattr(a, name), getattr(b, name)
        assert x == pytest.approx(y, rel=rel, abs=1e-9), name
    assert a.worst_scenario == b.worst_scenario


def test_spec_example_case_012_naked_short_call():
    market = PMMarket(
        spot=95663.50604855, stable_price=1.00019088635, perp_price=0.0, perp_confidence=0.0,
        expiries=(ExpiryMarket(794852, 95776.67392708939, 0.15000000000000002, 1.0, 1.0, 0.95),),
    )
    portfolio = PMPortfolio(options=(OptionPosition(794852, 100000.0, True, -1.0, 0.453803924321583),))
    result = evaluate_portfolio_margin(market, portfolio, PARAMS)
    assert result.equity == pytest.approx(-1186.4185694587657, rel=1e-9)
    assert result.maintenance_surplus == pytest.approx(-11824.858703959073, rel=1e-9)
    assert result.initial_surplus == pytest.approx(-14604.048120144837, rel=1e-9)
    assert_results_close(result, evaluate_portfolio_margin_naive(market, portfolio, PARAMS))


def test_spec_example_case_029_perp():
    market = PMMarket(spot=3000.0, stable_price=1.00019088635, perp_price=3100.0, expiries=())
    portfolio = PMPortfolio(perp=PerpPosition(1.0, 0.0, 10.0))
    result = evaluate_portfolio_margin(market, portfolio, PARAMS)
    # worst scenario: spot x0.82 → 1 · (−0.18) · 3100 = −558; MM = 0.8·558 + 0.015·3000
    assert result.worst_loss == pytest.approx(-558.0)
    assert result.maintenance_surplus == pytest.approx(-481.4)
    assert result.initial_surplus == pytest.approx(-608.0)
    assert result.worst_scenario == 22
    assert PARAMS.scenarios[22] == Scenario(0.82, VolShock.UP, 1.0)


def test_default_params_have_31_scenarios_ending_with_the_skews():
    assert len(PARAMS.scenarios) == 31
    assert [s.vol_shock for s in PARAMS.scenarios[-2:]] == [VolShock.SKEW_LINEAR, VolShock.SKEW_ABS]


def test_params_from_dict_round_trips_the_default_set():
    as_dict = {
        "scenarios": [{"spot_shock": s.spot_shock, "vol_shock": s.vol_shock.value, "dampening": s.dampening}
                      for s in PARAMS.scenarios],
        **{name: dataclasses.asdict(getattr(PARAMS, name))
           for name in ("vol_shock", "margin", "basis_contingency", "contingency", "skew_shock")},
    }
    assert PMParams.from_dict(as_dict) == PARAMS


def test_params_from_dict_rejects_missing_fields_and_unknown_shocks():
    with pytest.raises(ValueError):
        PMParams.from_dict({"scenarios": [{"spot_shock": 1.0, "vol_shock": "sideways"}]})


def test_empty_account_has_no_requirement_and_the_basis_contingency_as_worst():
    result = evaluate_portfolio_margin(PMMarket(2000.0, 1.0, 0.0, ()), PMPortfolio(cash=1000.0), PARAMS)
    assert (result.equity, result.maintenance_margin, result.initial_margin) == (1000.0, 0.0, 0.0)
    assert result.worst_scenario == len(PARAMS.scenarios)
    assert result.worst_scenario_description == "basis contingency"


def test_an_option_on_an_expiry_without_market_data_is_an_error():
    portfolio = PMPortfolio(options=(OptionPosition(3600, 2000.0, True, 1.0, 0.5),))
    with pytest.raises(KeyError):
        evaluate_portfolio_margin(PMMarket(2000.0, 1.0, 0.0, ()), portfolio, PARAMS)


def _market(spot=2000.0, taus=(2 * DAY, 20 * DAY, 120 * DAY), **kw):
    expiries = tuple(ExpiryMarket(t, spot * (1 + 0.01 * i), 0.05 * i, 1.0, 1.0, 1.0) for i, t in enumerate(taus))
    return PMMarket(spot=spot, stable_price=1.0, perp_price=spot * 1.001, expiries=expiries, **kw)


def test_a_call_and_a_put_at_one_strike_net_their_naked_shorts():
    market = _market()
    tau = market.expiries[1].seconds_to_expiry
    short_call = OptionPosition(tau, 2100.0, True, -1.0, 0.6)
    long_put = OptionPosition(tau, 2100.0, False, 1.0, 0.6)
    alone = evaluate_portfolio_margin(market, PMPortfolio(options=(short_call,)), PARAMS)
    paired = evaluate_portfolio_margin(market, PMPortfolio(options=(short_call, long_put)), PARAMS)
    assert alone.mm_contingency == pytest.approx(2000.0 * 0.003)
    assert paired.mm_contingency == pytest.approx(0.0)


def test_naked_shorts_do_not_net_across_expiries():
    market = _market()
    near, far = market.expiries[0].seconds_to_expiry, market.expiries[2].seconds_to_expiry
    options = (OptionPosition(near, 2100.0, True, -1.0, 0.6), OptionPosition(far, 2100.0, True, 1.0, 0.6))
    result = evaluate_portfolio_margin(market, PMPortfolio(options=options), PARAMS)
    assert result.mm_contingency == pytest.approx(2000.0 * 0.003)
    assert_results_close(result, evaluate_portfolio_margin_naive(market, PMPortfolio(options=options), PARAMS))


def test_skew_scenarios_count_each_expiry_as_a_loss():
    # Without static discounts or basis contingency a long OTM call gains when the linear skew raises its vol;
    # the skew scenario still books that expiry as a loss of the same size (−|…|).
    market = _market()
    options = (OptionPosition(market.expiries[2].seconds_to_expiry, 2600.0, True, 5.0, 0.7),)
    no_discount = dataclasses.replace(PARAMS.margin, long_static_discount=1.0, long_rate_mult=0.0, long_rate_add=0.0)
    no_basis = dataclasses.replace(PARAMS.basis_contingency, add_factor=0.0, mult_factor=0.0)
    base = dataclasses.replace(PARAMS, margin=no_discount, basis_contingency=no_basis)
    skew_only = dataclasses.replace(base, scenarios=(Scenario(1.0, VolShock.SKEW_LINEAR),))
    vol_up = dataclasses.replace(base, scenarios=(Scenario(1.0, VolShock.UP),))
    skew = evaluate_portfolio_margin(market, PMPortfolio(options=options), skew_only)
    up = evaluate_portfolio_margin(market, PMPortfolio(options=options), vol_up)
    assert up.worst_scenario == 1  # the vol-up scenario is a gain: the basis contingency stays the worst
    assert skew.worst_scenario == 0 and skew.worst_loss < 0.0
    risk = build_risk_arrays(market, [options[0].instrument], skew_only)
    gain = 5.0 * (risk.values[0, 0] - risk.base[0])
    assert gain > 0.0
    assert skew.worst_loss == pytest.approx(-gain)


def test_risk_arrays_are_shared_by_accounts():
    market = _market()
    taus = [e.seconds_to_expiry for e in market.expiries]
    positions_a = (OptionPosition(taus[0], 1900.0, False, -2.0, 0.8), OptionPosition(taus[2], 2400.0, True, 1.0, 0.7))
    positions_b = (OptionPosition(taus[2], 2400.0, True, -3.0, 0.7),)
    instruments = sorted({p.instrument for p in positions_a + positions_b}, key=repr)
    risk = build_risk_arrays(market, instruments, PARAMS)
    row = risk.index()
    for positions in (positions_a, positions_b):
        sizes = np.zeros(len(instruments))
        for p in positions:
            sizes[row[p.instrument]] += p.size
        shared = margin_from_risk_arrays(risk, sizes, market, PARAMS, cash=100.0)
        alone = evaluate_portfolio_margin_naive(market, PMPortfolio(cash=100.0, options=positions), PARAMS)
        assert_results_close(shared, alone)


def test_sizes_must_match_the_instruments():
    market = _market()
    risk = build_risk_arrays(market, [], PARAMS)
    with pytest.raises(ValueError):
        margin_from_risk_arrays(risk, [1.0], market, PARAMS)


option_strategy = st.builds(
    lambda e, m, call, size, vol: (e, m, call, size, vol),
    st.integers(0, 3),
    st.floats(0.5, 1.6),
    st.booleans(),
    st.floats(-5.0, 5.0).filter(lambda x: abs(x) > 1e-3),
    st.floats(0.2, 1.5),
)


@settings(max_examples=40, deadline=None)
@given(
    options=st.lists(option_strategy, max_size=8),
    perp=st.floats(-3.0, 3.0),
    collateral=st.floats(0.0, 5.0),
    risk_cancelling=st.booleans(),
    spot_confidence=st.floats(0.3, 1.0),
    stable=st.floats(0.9, 1.05),
)
def test_fast_path_agrees_with_the_naive_scenario_loop(options, perp, collateral, risk_cancelling,
                                                      spot_confidence, stable):
    taus = (900, 3 * DAY, 30 * DAY, 200 * DAY)  # includes one inside the settlement window
    market = dataclasses.replace(_market(taus=taus, spot_confidence=spot_confidence, perp_confidence=0.4),
                                 stable_price=stable)
    positions = tuple(
        OptionPosition(taus[e], round(2000.0 * m, -1), call, size, vol) for e, m, call, size, vol in options
    )
    portfolio = PMPortfolio(
        cash=5000.0,
        perp=PerpPosition(perp, 12.0, -3.0),
        options=positions,
        collaterals=(CollateralPosition("ETH", collateral, 2000.0, 0.5, risk_cancelling, 0.02, 0.01),),
    )
    fast = evaluate_portfolio_margin(market, portfolio, PARAMS)
    naive = evaluate_portfolio_margin_naive(market, portfolio, PARAMS)
    assert_results_close(fast, naive)
    assert fast.maintenance_margin <= fast.initial_margin + 1e-9
