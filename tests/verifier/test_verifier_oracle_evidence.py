"""Interim oracle evidence: the annex format, and price commands checked against their
signed reports with the domain's oracle rules (quorum, signatures, median)."""

from __future__ import annotations

import msgspec
import pytest
from eth_account import Account

from clearway.commitment.batch import Batch, encode_batch
from clearway.domain.commands import CancelAll, SetMarketData, SetMarkPrices
from clearway.domain.oracle import OracleParams, sign_report
from clearway.domain.state import ExchangeState
from clearway.verifier.alarms import AlarmCode
from clearway.verifier.drill import drill_genesis
from clearway.verifier.oracle_evidence import AnnexError, check_prices, encode_with_evidence, split_evidence

KEYS = [Account.from_key(bytes([i + 1]) * 32) for i in range(4)]
PARAMS = OracleParams(tuple(k.address.lower() for k in KEYS), quorum=3)
STATE = ExchangeState(drill_genesis("0x" + "aa" * 20, "0x" + "bb" * 20))
TS = 1_700_000_000_000
BTC = 25_000_000_000


def _reports(index: int, keys=KEYS, underlying: str = "BTC", ts: int = TS - 500):
    return [sign_report(k.key, underlying, ts, index, 0) for k in keys]


def _marks(index: int, seq: int = 1) -> SetMarkPrices:
    return SetMarkPrices(seq, TS, {"BTC": index}, {0: index})


def _check(commands, evidence, require=False, last=None):
    return check_prices(commands, evidence, STATE, PARAMS, require, last or {})


def test_the_annex_round_trips_and_plain_batch_data_passes_through():
    data = encode_batch(Batch(1, (CancelAll(1, TS, 2),)))
    evidence = {1: tuple(_reports(BTC))}
    batch, carried = split_evidence(encode_with_evidence(data, evidence))
    assert batch == data and carried == evidence
    assert split_evidence(data) == (data, {})
    assert encode_with_evidence(data, {}) == data


@pytest.mark.parametrize("mangle", [
    lambda d: d[:5],
    lambda d: d[:3] + b"\x09" + d[4:],
    lambda d: d[:4] + (10**6).to_bytes(4, "big") + d[8:],
    lambda d: d + b"\xc1",
    lambda d: d[:-40],
])
def test_a_malformed_annex_is_an_error(mangle):
    data = encode_with_evidence(encode_batch(Batch(1, (CancelAll(1, TS, 2),))), {1: tuple(_reports(BTC))})
    with pytest.raises(AnnexError):
        split_evidence(mangle(data))


def test_evidence_rows_must_ascend():
    body = msgspec.msgpack.encode([[2, []], [1, []]])
    data = b"CWA\x01" + (0).to_bytes(4, "big") + body
    with pytest.raises(AnnexError, match="NOT_ASCENDING"):
        split_evidence(data)


def test_a_price_backed_by_a_quorum_passes_and_is_remembered():
    result = _check([_marks(BTC)], {1: tuple(_reports(BTC))})
    assert result.findings == [] and result.oracle_backed == 1 and result.reports == 4
    assert result.accepted == {"BTC": (BTC, TS)}


def test_a_price_below_quorum_is_refused_with_the_reasons():
    forged = msgspec.structs.replace(_reports(BTC, [Account.from_key(b"\x09" * 32)])[0],
                                     reporter=KEYS[2].address.lower())
    result = _check([_marks(BTC)], {1: (*_reports(BTC, KEYS[:2]), forged)})
    (finding,) = result.findings
    assert finding.code == AlarmCode.ORACLE_NO_QUORUM and finding.seq == 1
    assert "ORACLE_BAD_SIGNATURE" in finding.message and result.reports_rejected == 1


def test_stale_or_duplicate_reports_do_not_count_towards_the_quorum():
    stale = _reports(BTC, KEYS[2:3], ts=TS - 120_000)
    duplicate = _reports(BTC, KEYS[:1])
    (finding,) = _check([_marks(BTC)], {1: (*_reports(BTC, KEYS[:2]), *stale, *duplicate)}).findings
    assert finding.code == AlarmCode.ORACLE_NO_QUORUM
    assert "ORACLE_STALE_REPORT" in finding.message and "ORACLE_DUPLICATE_REPORTER" in finding.message


def test_an_index_or_perp_mark_other_than_the_median_is_refused():
    (finding,) = _check([_marks(BTC + 100_000)], {1: tuple(_reports(BTC))}).findings
    assert finding.code == AlarmCode.ORACLE_MISMATCH
    command = SetMarkPrices(1, TS, {"BTC": BTC}, {0: BTC + 100_000})
    (finding,) = _check([command], {1: tuple(_reports(BTC))}).findings
    assert finding.code == AlarmCode.ORACLE_MISMATCH and "BTC-PERP" in finding.message


def test_a_mark_of_an_underlying_without_reports_is_refused():
    command = SetMarkPrices(1, TS, {"BTC": BTC}, {0: BTC, 1: 1_600_000_000})
    (finding,) = _check([command], {1: tuple(_reports(BTC))}).findings
    assert finding.code == AlarmCode.ORACLE_MISSING and "ETH" in finding.message


def test_max_move_uses_the_last_accepted_index():
    moved = BTC * 12 // 10
    (finding,) = _check([_marks(moved)], {1: tuple(_reports(moved))}, last={"BTC": (BTC, TS - 1_000)}).findings
    assert finding.code == AlarmCode.ORACLE_NO_QUORUM and "ORACLE_MAX_MOVE" in finding.message
    assert _check([_marks(moved)], {1: tuple(_reports(moved))}, last={"BTC": (BTC, TS - 120_000)}).findings == []


def test_prices_without_evidence_are_operator_prices_unless_evidence_is_required():
    result = _check([_marks(BTC)], {})
    assert result.findings == [] and result.operator_prices == 1
    (finding,) = _check([_marks(BTC)], {}, require=True).findings
    assert finding.code == AlarmCode.ORACLE_MISSING and finding.seq == 1


def test_evidence_on_another_command_or_outside_the_batch_is_refused():
    findings = _check([CancelAll(1, TS, 2)], {1: tuple(_reports(BTC)), 5: ()}).findings
    assert sorted(f.seq for f in findings) == [1, 5]
    assert all(f.code == AlarmCode.ORACLE_MISMATCH for f in findings)


def test_market_data_must_be_exactly_the_aggregate():
    reports = tuple(_reports(BTC))
    assert _check([SetMarketData(1, TS, "BTC", BTC, 0, [])], {1: reports}).findings == []
    (finding,) = _check([SetMarketData(1, TS, "BTC", BTC + 1, 0, [])], {1: reports}).findings
    assert finding.code == AlarmCode.ORACLE_MISMATCH
