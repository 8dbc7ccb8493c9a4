"""With the domain's own oracle-update command (issue 4), ``apply()`` judges the reports: a
verifier attests batches whose updates it replays, and names an update the domain rejects
when the sequencer posts a root as if it had applied it. Skipped until the domain has it."""

from __future__ import annotations

import msgspec
import pytest
from verifier_harness import first_alarms

import clearway.domain.commands as commands
from clearway.domain.commands import CancelAll
from clearway.verifier.alarms import AlarmCode
from clearway.verifier.drill import PRICES, USDC, Drill, Scenario

OracleUpdate = getattr(commands, "OracleUpdate", None)
pytestmark = pytest.mark.skipif(OracleUpdate is None, reason="the domain has no OracleUpdate command yet")


def _scenario(tmp_path) -> Scenario:
    drill = Drill(tmp_path)
    reporters = [r.address.lower() for r in drill.reporters]
    drill.genesis = msgspec.structs.replace(drill.genesis, oracle_reporters=reporters, oracle_quorum=3)
    s = Scenario(drill, "oracle")
    for name in ("maker", "alice"):
        s.deposit(name, 10_000 * USDC)
    s.seq.credit_deposits()
    return s


def _update(s: Scenario, index: int, signers) -> None:
    reports = tuple(s.drill.reports({"BTC": index}, s.seq.next_ts(), signers))
    s.seq.submit(OracleUpdate(0, 0, "BTC", reports))


def test_oracle_updates_replayed_by_apply_are_attested(tmp_path):
    s = _scenario(tmp_path)
    try:
        _update(s, PRICES["BTC"], s.drill.reporters)
        s.honest_batch()
        assert s.client.finalised_count() == 1
        for verifier in s.verifiers:
            assert verifier.alarms == [] and verifier.stats.oracle_updates == 1 and verifier.stats.oracle_reports == 4
    finally:
        s.close()


def test_a_root_that_applies_an_update_below_quorum_names_the_update(tmp_path):
    s = _scenario(tmp_path)
    try:
        _update(s, PRICES["BTC"], s.drill.reporters)
        s.honest_batch()
        lowered = PRICES["BTC"] * 95 // 100
        _update(s, lowered, s.drill.reporters[:2])  # two reports: the domain rejects it
        seq = s.seq.live.last_seq
        s.seq.submit(CancelAll(0, 0, s.account("maker")))
        prepared = s.seq.build()

        def applied(state) -> None:  # what the sequencer's root says: the price moved
            state.marks[0] = lowered
        s.seq.post(s.seq.with_root(prepared, s.seq.root_with(prepared.batch_number, applied)))
        s.sync()
        for alarm in first_alarms(s, prepared.batch_number):
            assert alarm.code == AlarmCode.ORACLE_REJECTED and alarm.seq == seq
            assert "ORACLE_NO_QUORUM" in alarm.first.message
            assert AlarmCode.ROOT_MISMATCH in {f.code for f in alarm.others}
        assert s.client.finalised_count() == 1
    finally:
        s.close()
