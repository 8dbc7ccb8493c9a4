"""Implied volatility: round trips across the wings and explicit refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearway.domain.risk.black76 import black76_price
from clearway.domain.risk.implied_vol import (
    IVStatus,
    ImpliedVolError,
    implied_vol,
    implied_vol_one,
    implied_vol_with_status,
)


def test_round_trip_recovers_the_vol_on_a_grid_of_strikes_vols_and_expiries():
    f = 100.0
    k = np.array([30.0, 60.0, 90.0, 100.0, 110.0, 150.0, 300.0])[:, None, None]
    t = np.array([1 / 365, 0.25, 2.0])[None, :, None]
    vol = np.array([0.2, 0.8, 2.5])[None, None, :]
    for is_call in (True, False):
        # invert the out-of-the-money side, as a market maker quotes it
        otm = (k >= f) if is_call else (k <= f)
        price = black76_price(f, k, t, vol, 0.05, is_call)
        result = implied_vol_with_status(price, f, k, t, 0.05, is_call)
        ok = result.status == IVStatus.OK
        assert np.all(ok | ~np.broadcast_to(otm, ok.shape) | (price < 1e-300))
        np.testing.assert_allclose(result.vol[ok], np.broadcast_to(vol, ok.shape)[ok], rtol=1e-9)


@settings(max_examples=80, deadline=None)
@given(
    log_m=st.floats(min_value=-1.5, max_value=1.5),
    t=st.floats(min_value=1e-3, max_value=5.0),
    vol=st.floats(min_value=0.05, max_value=3.0),
    r=st.floats(min_value=0.0, max_value=0.1),
)
def test_out_of_the_money_round_trip_is_exact_or_refused(log_m, t, vol, r):
    f = 30_000.0
    k = f * math.exp(log_m)
    is_call = k >= f
    price = float(black76_price(f, k, t, vol, r, is_call))
    result = implied_vol_with_status(price, f, k, t, r, is_call)
    status = IVStatus(int(result.status))
    if status is IVStatus.OK:
        assert float(result.vol) == pytest.approx(vol, rel=1e-8)
    else:  # only a price lost below double precision may be refused
        assert status in (IVStatus.NO_TIME_VALUE, IVStatus.ZERO_VEGA)
        assert price < 1e-250 * f


def test_price_below_intrinsic_is_refused():
    d = math.exp(-0.05)
    result = implied_vol_with_status(d * 20.0 - 1e-6, 120.0, 100.0, 1.0, 0.05, True)
    assert int(result.status) == IVStatus.BELOW_INTRINSIC and math.isnan(float(result.vol))


def test_price_at_or_above_the_maximum_is_refused():
    for price in (100.0, 150.0):
        result = implied_vol_with_status(price, 100.0, 90.0, 1.0, 0.0, True)
        assert int(result.status) == IVStatus.ABOVE_MAXIMUM and math.isnan(float(result.vol))
    assert int(implied_vol_with_status(90.0, 100.0, 90.0, 1.0, 0.0, False).status) == IVStatus.ABOVE_MAXIMUM


def test_price_equal_to_intrinsic_has_no_unique_vol():
    result = implied_vol_with_status([0.0, 20.0], 120.0, 100.0, 1.0, 0.0, [False, True])
    assert list(result.status) == [IVStatus.NO_TIME_VALUE] * 2
    assert np.all(np.isnan(result.vol))


def test_deep_in_the_money_price_whose_time_value_is_lost_in_rounding_is_refused_as_zero_vega():
    price = float(black76_price(100.0, 1.0, 0.5, 1.0, 0.0, True))  # time value ~1e-8 of 99
    result = implied_vol_with_status(price, 100.0, 1.0, 0.5, 0.0, True)
    assert int(result.status) == IVStatus.ZERO_VEGA and math.isnan(float(result.vol))
    # the out-of-the-money put of the same strike carries the information
    put = float(black76_price(100.0, 1.0, 0.5, 1.0, 0.0, False))
    assert implied_vol_one(put, 100.0, 1.0, 0.5, 0.0, False) == pytest.approx(1.0, rel=1e-10)


@pytest.mark.parametrize(
    "args",
    [
        (1.0, 100.0, 100.0, 0.0, 0.0, True),  # expired
        (1.0, -100.0, 100.0, 1.0, 0.0, True),  # negative forward
        (1.0, 100.0, 0.0, 1.0, 0.0, True),  # zero strike
        (-1.0, 100.0, 100.0, 1.0, 0.0, True),  # negative price
        (math.nan, 100.0, 100.0, 1.0, 0.0, True),
        (1.0, 100.0, 100.0, 1.0, math.inf, True),
    ],
)
def test_invalid_inputs_are_refused_with_invalid_input(args):
    result = implied_vol_with_status(*args)
    assert int(result.status) == IVStatus.INVALID_INPUT and math.isnan(float(result.vol))


def test_scalar_front_end_raises_with_the_reason():
    with pytest.raises(ImpliedVolError) as info:
        implied_vol_one(150.0, 100.0, 90.0, 1.0, 0.0, True)
    assert info.value.status is IVStatus.ABOVE_MAXIMUM


def test_vectorised_front_end_keeps_the_broadcast_shape_and_marks_refusals_nan():
    prices = np.array([[5.0, 500.0], [black76_price(100.0, 100.0, 1.0, 0.4), 0.0]])
    vols = implied_vol(prices, 100.0, 100.0, 1.0)
    assert vols.shape == (2, 2)
    assert math.isnan(vols[0, 1]) and math.isnan(vols[1, 1])
    assert vols[1, 0] == pytest.approx(0.4, rel=1e-12)
