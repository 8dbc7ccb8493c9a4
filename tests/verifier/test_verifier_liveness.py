"""Forced withdrawals and deposits must be included in time: an ignored forced withdrawal
ends in FORCED_OVERDUE and a freeze; an uncredited deposit past the window is refused."""

from __future__ import annotations

import pytest
from verifier_harness import first_alarms, scenario

from clearway.domain.commands import CancelAll
from clearway.verifier.alarms import AlarmCode
from clearway.verifier.drill import DEADLINE, USDC
from clearway.verifier.escape import EscapeError, EscapeTool


def test_an_ignored_forced_withdrawal_is_attested_until_its_deadline_then_freezes_the_vault(tmp_path):
    s = scenario(tmp_path)
    try:
        s.honest_prefix()
        s.deposit("dave", 2_000 * USDC)
        s.seq.credit_deposits()
        request_id, _ = s.client.request_forced_withdrawal(s.user("dave"), 1_000 * USDC)
        s.honest_batch()  # within the deadline: a correct batch is attested even without the request
        assert s.client.finalised_count() == 3 and not any(v.alarms for v in s.verifiers)
        s.drill.chain.time_travel(DEADLINE + 1)
        s.seq.submit(CancelAll(0, 0, s.account("maker")))
        number = s.seq.batch().batch_number
        s.sync()
        assert s.client.frozen() and s.client.finalised_count() == 3
        for verifier in s.verifiers:
            overdue = [a for a in verifier.alarms if a.code == AlarmCode.FORCED_OVERDUE]
            assert len(overdue) == 1 and [a.account for a in overdue[0].accounts] == [s.account("dave")]
            assert str(request_id) in overdue[0].first.message
            refused = [a.code for a in verifier.alarms if a.batch_number == number and a.new_root]
            assert refused == [AlarmCode.HALTED]
            assert verifier.height == 3
        s.sync()  # alarms are recorded once
        assert all(len(v.alarms) == 2 for v in s.verifiers)
    finally:
        s.close()


def test_the_escape_tool_pays_each_account_once_from_chain_data_and_refunds_deposits(tmp_path):
    s = scenario(tmp_path)
    try:
        s.honest_prefix()
        request_id, _ = s.client.request_forced_withdrawal(s.user("alice"), 100 * USDC)
        late = s.deposit("erin", 50 * USDC)
        tool = EscapeTool(s.client, s.drill.genesis, s.start_block)
        with pytest.raises(EscapeError, match="not frozen"):
            tool.rebuild()
        s.drill.chain.time_travel(DEADLINE + 1)
        s.client.freeze(s.user("erin"), request_id)
        anyone = s.drill.chain.new_account("anyone")
        alice = tool.account_of(s.user("alice").address)
        before = s.client.token_balance(s.user("alice").address)
        result = tool.escape(anyone, alice)
        assert result.paid == result.value == tool.value(alice) > 0 and result.gas > 0
        assert s.client.token_balance(s.user("alice").address) == before + result.paid
        with pytest.raises(EscapeError, match="already escaped"):
            tool.escape(anyone, alice)
        insurance = tool.escape(anyone, 1)  # nothing in it: no transaction
        assert (insurance.value, insurance.paid, insurance.gas) == (0, 0, 0)
        assert tool.refund(anyone, s.user("erin").address) == [(late, 50 * USDC)]
        assert tool.refund(anyone) == []
    finally:
        s.close()


def test_a_deposit_not_credited_within_the_window_is_refused(tmp_path):
    s = scenario(tmp_path, deposit_window_blocks=5)
    try:
        s.honest_prefix()
        deposit_id = s.deposit("dave", 1_000 * USDC)
        s.drill.chain.mine(5)
        s.seq.submit(CancelAll(0, 0, s.account("maker")))  # the sequencer never credits it
        number = s.seq.batch().batch_number
        s.sync()
        alarms = first_alarms(s, number)
        assert all(a is not None and a.code == AlarmCode.DEPOSIT_OVERDUE for a in alarms)
        assert [a.owner for a in alarms[0].accounts] == [s.user("dave").address.lower()]
        assert f"deposit {deposit_id}" in alarms[0].first.message
        assert s.client.finalised_count() == 2
    finally:
        s.close()
