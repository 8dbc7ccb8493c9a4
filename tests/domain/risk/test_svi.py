"""SVI raw slices: evaluation, arbitrage checks (Gatheral & Jacquier 2014), calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clearway.domain.risk.svi import (
    SVIArbitrageError,
    SVIParams,
    fit_svi,
    svi_density,
    svi_implied_vol,
    svi_total_variance,
    validate_svi,
)

GOOD = SVIParams(a=0.04, b=0.4, rho=-0.4, m=0.05, sigma=0.1)


def test_total_variance_follows_the_raw_formula():
    k = np.array([-1.0, 0.0, 0.05, 0.7])
    x = k - GOOD.m
    expected = GOOD.a + GOOD.b * (GOOD.rho * x + np.sqrt(x * x + GOOD.sigma**2))
    np.testing.assert_allclose(svi_total_variance(k, GOOD), expected, rtol=1e-15)
    np.testing.assert_allclose(svi_implied_vol(k, 0.5, GOOD), np.sqrt(expected / 0.5), rtol=1e-15)


def test_implied_vol_needs_a_positive_time():
    with pytest.raises(ValueError):
        svi_implied_vol(0.0, 0.0, GOOD)


def test_density_matches_finite_differences_of_w():
    k = np.linspace(-1.5, 1.5, 31)
    h = 1e-4
    w = svi_total_variance(k, GOOD)
    w1 = (svi_total_variance(k + h, GOOD) - svi_total_variance(k - h, GOOD)) / (2 * h)
    w2 = (svi_total_variance(k + h, GOOD) - 2 * w + svi_total_variance(k - h, GOOD)) / h**2
    g = (1 - k * w1 / (2 * w)) ** 2 - w1**2 / 4 * (1 / w + 0.25) + w2 / 2
    np.testing.assert_allclose(svi_density(k, GOOD), g, atol=1e-5)


def test_a_reasonable_slice_validates():
    validate_svi(GOOD)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        (SVIParams(0.04, -0.1, 0.0, 0.0, 0.1), "b must be >= 0"),
        (SVIParams(0.04, 0.4, 1.0, 0.0, 0.1), "|rho| < 1"),
        (SVIParams(0.04, 0.4, 0.0, 0.0, 0.0), "sigma must be > 0"),
        (SVIParams(-0.05, 0.4, 0.0, 0.0, 0.1), "minimum total variance"),
        (SVIParams(0.04, 3.0, 0.5, 0.0, 0.1), "Lee bound"),
        (SVIParams(math.nan, 0.4, 0.0, 0.0, 0.1), "finite"),
    ],
)
def test_parameter_sets_outside_the_svi_domain_are_rejected_with_the_reason(params, fragment):
    with pytest.raises(SVIArbitrageError, match=fragment.replace("|", r"\|")):
        validate_svi(params)


def test_butterfly_arbitrage_is_rejected_even_when_the_simple_bounds_hold():
    # Axel Vogt's example in Gatheral & Jacquier (2014): a = -0.0410, b = 0.1331, rho = 0.3060,
    # m = 0.3586, sigma = 0.4153 (T = 1) respects the simple bounds but has g(k) < 0.
    params = SVIParams(-0.0410, 0.1331, 0.3060, 0.3586, 0.4153)
    assert params.b * (1 + abs(params.rho)) <= 4
    assert params.a + params.b * params.sigma * math.sqrt(1 - params.rho**2) >= 0
    assert float(svi_density(np.linspace(-1.5, 1.5, 301), params).min()) < 0
    with pytest.raises(SVIArbitrageError, match="butterfly"):
        validate_svi(params)


def test_wing_slope_above_two_fails_the_butterfly_check_in_the_far_wing():
    params = SVIParams(0.04, 1.8, 0.5, 0.0, 0.1)  # slope b(1+rho) = 2.7 <= 4
    with pytest.raises(SVIArbitrageError, match="butterfly"):
        validate_svi(params)


def test_fit_recovers_known_parameters_from_exact_total_variance():
    k = np.linspace(-1.0, 1.0, 25)
    fit = fit_svi(k, svi_total_variance(k, GOOD), 0.5)
    np.testing.assert_allclose(fit.params.as_array(), GOOD.as_array(), rtol=1e-5, atol=1e-7)
    assert fit.rmse_vol < 1e-7


def test_fit_recovers_known_parameters_from_vols_with_weights():
    truth = SVIParams(a=0.01, b=0.12, rho=-0.6, m=-0.1, sigma=0.25)
    t = 0.2
    k = np.linspace(-1.2, 0.8, 30)
    vols = svi_implied_vol(k, t, truth)
    fit = fit_svi(k, vols=vols, time=t, weights=np.linspace(1.0, 2.0, 30))
    np.testing.assert_allclose(fit.params.as_array(), truth.as_array(), rtol=1e-4, atol=1e-6)
    assert fit.max_abs_vol_error < 1e-6


def test_fit_on_noisy_smile_is_close_and_arbitrage_free():
    rng = np.random.default_rng(5)
    k = np.linspace(-0.8, 0.8, 40)
    w = svi_total_variance(k, GOOD) * (1 + 0.01 * rng.standard_normal(k.size))
    fit = fit_svi(k, w, 1.0)
    validate_svi(fit.params)
    assert fit.rmse_total_variance < 0.01 * float(w.mean())


def test_fit_of_an_arbitrageable_smile_returns_the_best_arbitrage_free_slice():
    bad = SVIParams(-0.0410, 0.1331, 0.3060, 0.3586, 0.4153)
    k = np.linspace(-1.5, 1.5, 41)
    fit = fit_svi(k, svi_total_variance(k, bad), 1.0)
    validate_svi(fit.params)  # the fit never returns an arbitrageable set
    assert fit.rmse_vol < 0.02


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": [0.0, 0.1, 0.2, 0.3], "total_variance": [0.1] * 4},  # too few points
        {"k": np.linspace(-1, 1, 5), "total_variance": [0.1] * 4},  # lengths differ
        {"k": np.linspace(-1, 1, 5), "total_variance": [0.1] * 5, "vols": [0.3] * 5, "time": 1.0},  # both
        {"k": np.linspace(-1, 1, 5), "vols": [0.3] * 5},  # vols without time
        {"k": np.linspace(-1, 1, 5), "total_variance": [0.1, 0.1, -0.1, 0.1, 0.1]},
        {"k": np.linspace(-1, 1, 5), "total_variance": [0.1] * 5, "weights": [1, 1, -1, 1, 1]},
    ],
)
def test_fit_rejects_bad_inputs(kwargs):
    with pytest.raises(ValueError):
        fit_svi(**kwargs)
