"""Signed oracle reports: every rejection has its code; quorum and median."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from clearway.domain.errors import ErrorCode
from clearway.domain.market import ExpiryData, FIXED_SCALE
from clearway.domain.oracle import OracleParams, OracleReport, aggregate, median, recover_signer, sign_report

KEYS = [bytes([i + 1]) * 32 for i in range(5)]
NOW = 1_678_406_400_000
BTC = 20_000_000_000  # 20,000 USDC


def _reporter(key: bytes) -> str:
    return sign_report(key, "BTC", NOW, 1, 0).reporter


PARAMS = OracleParams(reporters=tuple(_reporter(k) for k in KEYS[:4]), quorum=3)


def _expiry(forward: int = BTC) -> ExpiryData:
    return ExpiryData(1_678_435_200_000, forward, 0, FIXED_SCALE // 100, FIXED_SCALE // 10, -FIXED_SCALE // 5,
                      0, FIXED_SCALE // 10)


def _reports(prices, ts=NOW, keys=KEYS[:4], stable=1_000_000):
    return [sign_report(k, "BTC", ts, p, stable, (_expiry(p),)) for k, p in zip(keys, prices)]


def test_signature_recovers_the_reporter():
    report = sign_report(KEYS[0], "BTC", NOW, BTC, 1_000_000)
    assert recover_signer(report) == report.reporter == PARAMS.reporters[0]


def test_quorum_of_valid_reports_gives_the_median():
    agg, rejected = aggregate(_reports([BTC, BTC + 10, BTC + 30, BTC + 1_000]), "BTC", NOW, PARAMS, None, None)
    assert rejected == []
    assert agg.index == (BTC + 10 + BTC + 30) // 2
    assert agg.stable_price == 1_000_000
    assert agg.expiries[0].forward == agg.index
    assert len(agg.reporters) == 4


def _codes(reports, **kw):
    agg, rejected = aggregate(reports, "BTC", NOW, PARAMS, kw.get("last"), kw.get("last_ts"))
    return agg, [code for _, code in rejected]


def test_bad_signature_is_rejected_and_the_rest_still_counts():
    reports = _reports([BTC] * 4)
    forged = OracleReport(reports[0].reporter, "BTC", NOW, BTC * 2, 1_000_000, (), reports[0].signature)
    agg, codes = _codes([forged] + reports[1:])
    assert codes == [ErrorCode.ORACLE_BAD_SIGNATURE]
    assert agg is not None and agg.index == BTC


def test_a_forged_report_does_not_use_up_the_reporters_slot():
    reports = _reports([BTC] * 4)
    forged = OracleReport(reports[0].reporter, "BTC", NOW, BTC * 2, 1_000_000, (), bytes(65))
    agg, codes = _codes([forged] + reports)
    assert codes == [ErrorCode.ORACLE_BAD_SIGNATURE]
    assert len(agg.reporters) == 4


@pytest.mark.parametrize("make, code", [
    (lambda: sign_report(KEYS[4], "BTC", NOW, BTC, 1_000_000), ErrorCode.ORACLE_UNKNOWN_REPORTER),
    (lambda: sign_report(KEYS[0], "BTC", NOW - 60_001, BTC, 1_000_000), ErrorCode.ORACLE_STALE_REPORT),
    (lambda: sign_report(KEYS[0], "BTC", NOW + 60_000, BTC, 1_000_000), ErrorCode.ORACLE_FUTURE_REPORT),
    (lambda: sign_report(KEYS[0], "BTC", NOW, 0, 1_000_000), ErrorCode.ORACLE_INVALID_VALUE),
    (lambda: sign_report(KEYS[0], "BTC", NOW, -5, 1_000_000), ErrorCode.ORACLE_INVALID_VALUE),
    (lambda: sign_report(KEYS[0], "BTC", NOW, 10**19, 1_000_000), ErrorCode.ORACLE_INVALID_VALUE),
    (lambda: sign_report(KEYS[0], "BTC", NOW, BTC, 1_000_000, (_expiry(-1),)), ErrorCode.ORACLE_INVALID_VALUE),
    (lambda: sign_report(KEYS[0], "ETH", NOW, BTC, 1_000_000), ErrorCode.ORACLE_WRONG_UNDERLYING),
])
def test_each_kind_of_bad_report_has_its_code(make, code):
    agg, codes = _codes([make()] + _reports([BTC] * 3, keys=KEYS[1:4]))
    assert codes == [code]
    assert agg is not None  # three good reports still make the quorum


def test_overflowing_values_are_rejected_before_any_encoding():
    report = OracleReport(PARAMS.reporters[0], "BTC", NOW, 10**40, 1_000_000, (), bytes(65))
    agg, codes = _codes([report] + _reports([BTC] * 3, keys=KEYS[1:4]))
    assert codes == [ErrorCode.ORACLE_INVALID_VALUE] and agg is not None


def test_duplicate_reporter_counts_once():
    reports = _reports([BTC] * 2)
    agg, codes = _codes(reports + [reports[0]])
    assert codes == [ErrorCode.ORACLE_DUPLICATE_REPORTER]
    assert agg is None  # two distinct reporters are below the quorum of three


def test_jump_beyond_max_move_within_the_window_is_rejected_but_not_after_it():
    reports = _reports([BTC * 12 // 10] * 4)
    agg, codes = _codes(reports, last=BTC, last_ts=NOW - 30_000)
    assert agg is None and codes == [ErrorCode.ORACLE_MAX_MOVE] * 4
    agg, codes = _codes(reports, last=BTC, last_ts=NOW - 61_000)
    assert agg is not None and codes == []


def test_expiry_needs_quorum_of_reports_to_enter_the_surface():
    reports = _reports([BTC] * 2) + [sign_report(k, "BTC", NOW, BTC, 1_000_000) for k in KEYS[2:4]]
    agg, _ = _codes(reports)
    assert agg.expiries == ()


@given(st.lists(st.integers(-10**12, 10**12), min_size=1, max_size=9))
def test_median_is_between_the_middle_values(values):
    m = median(values)
    ordered = sorted(values)
    assert ordered[(len(values) - 1) // 2] <= m <= ordered[len(values) // 2]
