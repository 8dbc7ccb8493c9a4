"""Portfolio-margin conformance suite (../shared/conformance/portfolio-margin)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from clearway.cli import main
from clearway.domain.risk.portfolio import (
    PMMarket,
    PMParams,
    PMPortfolio,
    default_pm_params,
    evaluate_portfolio_margin,
    evaluate_portfolio_margin_naive,
)
from clearway.sim.riskcheck import conformance, pm_case

REPO = Path(__file__).resolve().parents[2]
CASES = REPO.parent / "shared" / "conformance" / "portfolio-margin"



def test_all_139_cases_pass():
    result = conformance(CASES)
    assert result["cases"] == 139
    assert result["failures"] == []
    assert result["passed"] == 139


def test_the_naive_reference_passes_all_cases_too():
    result = conformance(CASES, naive=True)
    assert (result["passed"], result["failures"]) == (139, [])


def test_fast_and_naive_agree_on_every_case_including_the_worst_loss():
    for file in sorted(CASES.glob("*.json")):
        case = json.loads(file.read_text())
        args = (PMMarket.from_dict(case["market"]), PMPortfolio.from_dict(case["portfolio"]),
                PMParams.from_dict(case["params"]))
        fast, naive = evaluate_portfolio_margin(*args), evaluate_portfolio_margin_naive(*args)
        # The worst loss must agree; its index may differ only between scenarios with the
        # same loss up to rounding (a long box loses the same static discount in each).
        assert fast.worst_loss == pytest.approx(naive.worst_loss, rel=1e-12, abs=1e-9), file.name
        for name in ("equity", "maintenance_margin", "initial_margin"):
            assert getattr(fast, name) == pytest.approx(getattr(naive, name), rel=1e-12, abs=1e-9), file.name


def test_pm_case_returns_the_five_outputs_and_the_worst_scenario():
    case = json.loads((CASES / "case_012_risk_cancelling_naked_short_call.json").read_text())
    out = pm_case(case)
    assert set(out) >= {"equity", "maintenance_margin", "initial_margin", "maintenance_surplus",
                        "initial_surplus", "worst_scenario"}
    for name, value in case["expected"].items():
        assert out[name] == pytest.approx(value, rel=1e-9)


def test_default_params_equal_the_common_case_params():
    case = json.loads((CASES / "case_012_risk_cancelling_naked_short_call.json").read_text())
    defaults, given = default_pm_params(), PMParams.from_dict(case["params"])
    assert given.vol_shock == defaults.vol_shock and given.margin == defaults.margin
    assert given.basis_contingency == defaults.basis_contingency and given.skew_shock == defaults.skew_shock
    for name, value in dataclasses.asdict(defaults.contingency).items():
        assert getattr(given.contingency, name) == pytest.approx(value, rel=1e-12), name
    for a, b in zip(given.scenarios, defaults.scenarios):
        assert a.vol_shock == b.vol_shock
        assert a.spot_shock == pytest.approx(b.spot_shock) and a.dampening == pytest.approx(b.dampening)
    assert len(given.scenarios) == len(defaults.scenarios)


def test_cli_conformance_exits_zero(capsys):
    assert main(["risk", "conformance", str(CASES), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] == 139


def test_a_wrong_expectation_is_reported_with_name_field_expected_and_got(tmp_path):
    case = json.loads((CASES / "case_029_perps_basic_perp.json").read_text())
    case["expected"]["initial_margin"] *= 1 + 2e-6  # just outside 1e-6 relative
    (tmp_path / "case.json").write_text(json.dumps(case))
    result = conformance(tmp_path)
    assert (result["cases"], result["passed"]) == (1, 0)
    (failure,) = result["failures"]
    assert failure["name"] == case["name"] and failure["field"] == "initial_margin"
    assert failure["got"] == pytest.approx(617.9999999999995)


def test_values_near_zero_use_the_absolute_floor(tmp_path):
    case = json.loads((CASES / "case_001_collateral_cash_only.json").read_text())
    case["expected"]["maintenance_margin"] = 5e-7  # got 0: within the 1e-6 USD floor
    (tmp_path / "case.json").write_text(json.dumps(case))
    assert conformance(tmp_path)["passed"] == 1
