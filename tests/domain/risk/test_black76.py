"""Black-76 prices and Greeks: textbook values, parity, finite differences, limits."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearway.domain.risk.black76 import black76_greeks, black76_price, discount_factor, intrinsic_value

# Hull, "Options, Futures and Other Derivatives", example 19.1/19.4-19.6 (spot Black-Scholes):
# S 49, K 50, r 5 %, T 0.3846, sigma 20 %.  On the forward: F = S·e^{rT}, D = e^{-rT}.
S, K, R, T, VOL = 49.0, 50.0, 0.05, 0.3846, 0.2
F = S * math.exp(R * T)
GROWTH = math.exp(R * T)


def test_hull_call_price_delta_gamma_vega_match_the_textbook():
    g = black76_greeks(F, K, T, VOL, R, True)
    assert float(g.price) == pytest.approx(2.400461, abs=5e-7)
    # spot delta = forward delta · dF/dS = forward delta · e^{rT}
    assert float(g.delta) * GROWTH == pytest.approx(0.5216016, abs=5e-8)
    assert float(g.gamma) * GROWTH**2 == pytest.approx(0.0655454, abs=5e-8)
    assert float(g.vega) == pytest.approx(12.105243, abs=5e-7)


def test_put_call_parity_holds_on_a_grid():
    f = np.array([50.0, 100.0, 150.0])[:, None, None]
    k = np.array([40.0, 100.0, 300.0])[None, :, None]
    t = np.array([0.01, 0.5, 3.0])[None, None, :]
    call = black76_price(f, k, t, 0.7, 0.03, True)
    put = black76_price(f, k, t, 0.7, 0.03, False)
    np.testing.assert_allclose(call - put, discount_factor(0.03, t) * (f - k), rtol=0, atol=1e-11)


def test_prices_broadcast_to_the_input_shape():
    out = black76_price(np.full((2, 3), 100.0), np.array([90.0, 100.0, 110.0]), 0.25, 0.5, 0.0, [[True], [False]])
    assert out.shape == (2, 3)


def test_expired_or_zero_vol_option_is_worth_discounted_intrinsic_without_warnings():
    f = np.array([120.0, 80.0, 100.0, 120.0, 80.0])
    k = np.array([100.0, 100.0, 100.0, 100.0, 100.0])
    t = np.array([0.0, -1.0, 0.5, 0.5, 0.5])
    vol = np.array([0.5, 0.5, 0.0, 0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = black76_greeks(f, k, t, vol, 0.1, [True, False, True, True, False])
    disc = np.exp(-0.1 * np.maximum(t, 0.0))
    np.testing.assert_allclose(g.price, disc * np.array([20.0, 20.0, 0.0, 20.0, 20.0]))
    np.testing.assert_allclose(g.delta, [1.0, -1.0, 0.5 * disc[2], disc[3], -disc[4]])
    assert np.all(g.gamma == 0.0)
    assert g.vega[0] == 0.0 and g.vega[2] > 0.0  # at the money vega survives σ → 0
    np.testing.assert_allclose(g.theta, [0.0, 0.0, 0.0, 0.1 * g.price[3], 0.1 * g.price[4]])


def test_zero_strike_or_forward_does_not_produce_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = black76_greeks([100.0, 0.0], [0.0, 100.0], 1.0, 0.5, 0.0, [True, False])
    np.testing.assert_allclose(g.price, [100.0, 100.0])
    assert np.all(np.isfinite(np.stack(g)))


def test_nan_inputs_give_nan_outputs():
    g = black76_greeks(np.nan, 100.0, 1.0, 0.5)
    assert all(math.isnan(float(x)) for x in g)
    assert math.isnan(float(black76_price(100.0, 100.0, 1.0, np.nan)))


def test_price_stays_within_no_arbitrage_bounds_far_in_the_wings():
    k = np.geomspace(1e-3, 1e4, 200)
    for is_call in (True, False):
        p = black76_price(1.0, k, 2.0, 1.5, 0.02, is_call)
        d = math.exp(-0.04)
        lower = d * intrinsic_value(1.0, k, is_call)
        upper = d * (1.0 if is_call else k)
        assert np.all(p >= lower) and np.all(p <= upper + 1e-15)


forwards = st.floats(min_value=10.0, max_value=1e5)
moneyness = st.floats(min_value=0.5, max_value=2.0)
times = st.floats(min_value=0.02, max_value=3.0)
vols = st.floats(min_value=0.1, max_value=2.0)
rates = st.floats(min_value=-0.02, max_value=0.2)


@settings(max_examples=60, deadline=None)
@given(f=forwards, m=moneyness, t=times, v=vols, r=rates, is_call=st.booleans())
def test_every_greek_matches_a_central_finite_difference(f, m, t, v, r, is_call):
    k = f * m
    g = black76_greeks(f, k, t, v, r, is_call)

    def price(ff=f, tt=t, vv=v, rr=r):
        return float(black76_price(ff, k, tt, vv, rr, is_call))

    hd = 1e-5 * f
    assert float(g.delta) == pytest.approx((price(ff=f + hd) - price(ff=f - hd)) / (2 * hd), abs=1e-6)
    hf = 1e-4 * f
    scale = max(float(g.price), 1e-3 * f)
    gamma_fd = (price(ff=f + hf) - 2 * price() + price(ff=f - hf)) / hf**2
    assert float(g.gamma) * f == pytest.approx(gamma_fd * f, abs=1e-4 * max(1.0, float(g.gamma) * f))
    hv = 1e-5
    assert float(g.vega) == pytest.approx((price(vv=v + hv) - price(vv=v - hv)) / (2 * hv), abs=1e-6 * scale + 1e-7 * f)
    ht = 1e-6
    theta_fd = -(price(tt=t + ht) - price(tt=t - ht)) / (2 * ht)
    assert float(g.theta) == pytest.approx(theta_fd, abs=1e-5 * scale + 1e-6 * f)
    hr = 1e-6
    assert float(g.rho) == pytest.approx((price(rr=r + hr) - price(rr=r - hr)) / (2 * hr), abs=1e-5 * scale)


@settings(max_examples=60, deadline=None)
@given(f=forwards, m=moneyness, t=times, v=vols, r=rates)
def test_call_minus_put_equals_discounted_forward_minus_strike(f, m, t, v, r):
    k = f * m
    call = float(black76_price(f, k, t, v, r, True))
    put = float(black76_price(f, k, t, v, r, False))
    assert call - put == pytest.approx(math.exp(-r * t) * (f - k), abs=1e-12 * f)
