"""Standard option margin (exchange-rules.md "Standard margin") with the max-loss cap."""

from __future__ import annotations

import pytest

from clearway.domain.risk.standard_options import (
    ExpiryPositions,
    expiry_max_loss,
    standard_option_margin,
    standard_option_margin_expiry,
)

S = 1500.0  # the spec's examples: S = F = 1500, vol 0 so mark = intrinsic


def intrinsic(strike: float, is_call: bool) -> float:
    return max(S - strike, 0.0) if is_call else max(strike - S, 0.0)


@pytest.mark.parametrize(
    ("strike", "is_call", "im", "mm"),
    [
        (1400.0, True, 325.0, 212.5),
        (400.0, True, 1325.0, 1212.5),
        (1600.0, True, 150.0, 112.5),
        (3000.0, False, 1725.0, 1612.5),
        (1400.0, False, 150.0, 112.5),
    ],
)
def test_single_short_option_matches_the_spec_worked_examples(strike, is_call, im, mm):
    result = standard_option_margin_expiry([strike], [is_call], [-1.0], [intrinsic(strike, is_call)], S)
    assert result.initial_margin == pytest.approx(im, abs=1e-9)
    assert result.maintenance_margin == pytest.approx(mm, abs=1e-9)


def test_requirement_scales_with_the_short_size():
    result = standard_option_margin_expiry([1400.0], [True], [-2.5], [100.0], S)
    assert result.initial_margin == pytest.approx(2.5 * 325.0)


def test_long_options_have_no_requirement():
    result = standard_option_margin_expiry([1400.0, 1600.0], [True, False], [3.0, 1.0], [100.0, 100.0], S)
    assert result.initial_margin == 0.0 and result.maintenance_margin == 0.0


def test_call_spread_is_capped_at_its_width():
    # short 1400 call, long 1500 call: worst settlement loss 100 per spread (above 1500)
    result = standard_option_margin_expiry([1400.0, 1500.0], [True, True], [-1.0, 1.0], [100.0, 0.0], S)
    assert result.isolated_im == pytest.approx(325.0)
    assert result.max_loss_im == pytest.approx(100.0)
    assert result.initial_margin == pytest.approx(100.0)
    assert result.maintenance_margin == pytest.approx(100.0)


def test_put_spread_is_capped_at_its_width():
    # short 1400 put, long 1300 put: worst loss 100 at settlement 0 .. 1300
    result = standard_option_margin_expiry([1400.0, 1300.0], [False, False], [-2.0, 2.0], [0.0, 0.0], S)
    assert result.isolated_im == pytest.approx(300.0)
    assert result.initial_margin == pytest.approx(200.0)


def test_iron_condor_loses_at_most_one_wing():
    strikes = [1200.0, 1300.0, 1700.0, 1800.0]
    kinds = [False, False, True, True]
    sizes = [1.0, -1.0, -1.0, 1.0]
    result = standard_option_margin_expiry(strikes, kinds, sizes, [0.0] * 4, S)
    assert result.max_loss_im == pytest.approx(100.0)
    assert result.initial_margin == pytest.approx(100.0)


def test_net_short_calls_are_charged_per_unpaired_call_in_the_cap():
    # 2 short 1600 calls against 1 long 1500 call: one call is unpaired
    result = standard_option_margin_expiry([1500.0, 1600.0], [True, True], [1.0, -2.0], [0.0, 0.0], S)
    # payoff at 1600: +100; min over {0, 1500, 1600} is 0 → settlement loss 0
    assert result.max_loss_im == pytest.approx(1.4 * S)
    assert result.max_loss_mm == pytest.approx(1.2 * S)
    assert result.initial_margin == pytest.approx(min(2 * 150.0, 1.4 * S))


def test_cap_does_not_apply_when_the_per_contract_sum_is_lower():
    result = standard_option_margin_expiry([3000.0], [False], [-1.0], [1500.0], S)
    assert result.max_loss_im == pytest.approx(3000.0)  # at settlement 0
    assert result.initial_margin == pytest.approx(1725.0)


def test_max_loss_ignores_marks_and_premiums():
    assert expiry_max_loss([1400.0, 1500.0], [True, True], [-1.0, 1.0], S, 1.4) == pytest.approx(100.0)
    one = standard_option_margin_expiry([1400.0, 1500.0], [True, True], [-1.0, 1.0], [100.0, 0.0], S)
    two = standard_option_margin_expiry([1400.0, 1500.0], [True, True], [-1.0, 1.0], [900.0, 700.0], S)
    assert one.max_loss_im == two.max_loss_im


def test_multi_expiry_wrapper_sums_expiries_without_netting_across_them():
    near = ExpiryPositions([1400.0], [True], [-1.0], [100.0])
    far = ExpiryPositions([1500.0], [True], [1.0], [0.0])
    total = standard_option_margin([near, far], S)
    assert total.initial_margin == pytest.approx(325.0)  # the far long does not cap the near short
    assert total.maintenance_margin == pytest.approx(212.5)


def test_empty_expiry_requires_nothing():
    assert standard_option_margin_expiry([], [], [], [], S).initial_margin == 0.0


@pytest.mark.parametrize(
    "args",
    [
        ([1400.0], [True], [-1.0, 1.0], [0.0]),
        ([1400.0], [True], [-1.0], [-5.0]),
        ([-1.0], [True], [-1.0], [0.0]),
        ([float("nan")], [True], [-1.0], [0.0]),
    ],
)
def test_malformed_positions_are_rejected(args):
    with pytest.raises(ValueError):
        standard_option_margin_expiry(*args, S)


def test_non_positive_spot_is_rejected():
    with pytest.raises(ValueError):
        standard_option_margin_expiry([1400.0], [True], [-1.0], [0.0], 0.0)
