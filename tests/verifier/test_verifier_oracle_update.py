"""Prices through the domain's signed oracle: ``apply()`` judges each ``OracleUpdate``; the
verifier counts them, refuses operator prices when told to, and names an update the domain
rejects when the sequencer posts a root as if it had applied it."""

from __future__ import annotations

from verifier_harness import first_alarms, scenario

from clearway.domain.commands import CancelAll, OracleUpdate, SetMarketData, SetMarkPrices
from clearway.domain.oracle import sign_report
from clearway.domain.state import ExchangeState
from clearway.verifier.alarms import AlarmCode
from clearway.verifier.drill import PRICES, USDC, drill_genesis
from clearway.verifier.prices import check_prices

BTC = PRICES["BTC"]


def _funded(tmp_path, **config):
    s = scenario(tmp_path, **config)
    for name in ("maker", "alice"):
        s.deposit(name, 10_000 * USDC)
    s.seq.credit_deposits()
    return s


def _update(s, index: int, signers=None) -> int:
    s.seq.submit(OracleUpdate(0, 0, "BTC", s.drill.reports("BTC", index, s.seq.next_ts(), signers)))
    return s.seq.live.last_seq


def test_oracle_updates_replayed_by_apply_are_attested_even_when_apply_rejects_one(tmp_path):
    s = _funded(tmp_path)
    try:
        _update(s, BTC)
        _update(s, BTC, s.drill.reporters[:2])  # below quorum: the domain rejects it, the root says so
        s.honest_batch()
        assert s.client.finalised_count() == 1
        for verifier in s.verifiers:
            assert verifier.alarms == []
            assert (verifier.stats.oracle_updates, verifier.stats.oracle_reports) == (2, 6)
    finally:
        s.close()


def test_a_root_that_applies_an_update_below_quorum_names_the_update(tmp_path):
    s = _funded(tmp_path)
    try:
        _update(s, BTC)
        s.honest_batch()
        lowered = BTC * 95 // 100
        seq = _update(s, lowered, s.drill.reporters[:2])
        s.seq.submit(CancelAll(0, 0, s.account("maker")))
        prepared = s.seq.build()

        def applied(state) -> None:  # what the sequencer's root says: the price moved
            state.marks[0] = lowered
        s.seq.post(s.seq.with_root(prepared, s.seq.root_with(prepared.batch_number, applied)))
        s.sync()
        for alarm in first_alarms(s, prepared.batch_number):
            assert alarm.code == AlarmCode.ORACLE_NO_QUORUM and alarm.seq == seq
            assert AlarmCode.ROOT_MISMATCH in {f.code for f in alarm.others}
        assert s.client.finalised_count() == 1
    finally:
        s.close()


def test_operator_prices_are_counted_or_refused_when_signed_prices_are_required(tmp_path):
    s = _funded(tmp_path, require_oracle=False)
    try:
        s.seq.submit(SetMarkPrices(0, 0, {"BTC": BTC}, {0: BTC}))
        s.honest_batch()
        assert s.client.finalised_count() == 1
        assert all(v.stats.operator_prices == 1 and v.alarms == [] for v in s.verifiers)
    finally:
        s.close()
    genesis = drill_genesis("0x" + "aa" * 20, "0x" + "bb" * 20)
    state = ExchangeState(genesis)
    report = sign_report(b"\x01" * 32, "BTC", 1, BTC, 0)
    commands = [SetMarkPrices(1, 2, {"BTC": BTC}, {0: BTC}), SetMarketData(2, 2, "ETH", 1, 0, []),
                OracleUpdate(3, 2, "BTC", (report,))]
    result = check_prices(commands, state, require_oracle=True)
    assert [(f.code, f.seq) for f in result.findings] == [(AlarmCode.ORACLE_MISSING, 1), (AlarmCode.ORACLE_MISSING, 2)]
    assert (result.operator_prices, result.oracle_updates, result.reports) == (2, 1, 1)
    assert check_prices(commands, state, require_oracle=False).findings == []
