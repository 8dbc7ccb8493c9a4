"""Each lie of a dishonest sequencer is refused by every verifier, with an alarm naming the
first diverging command and the accounts affected, and is never finalised; every later
batch built on it is refused too."""

from __future__ import annotations

from verifier_harness import first_alarms

from clearway.domain.genesis import FEE_ACCOUNT
from clearway.verifier.alarms import AlarmCode


def test_honest_batches_are_attested_by_every_verifier_and_finalised(honest):
    assert honest.client.finalised_count() == 2
    for verifier in honest.verifiers:
        assert verifier.height == 2 and verifier.alarms == [] and not verifier.halted
        assert verifier.store.attestation(1) is not None and verifier.store.attestation(2) is not None
        stats = verifier.stats
        assert stats.signed_commands == 2 and stats.operator_attested == 4  # alice's order, carol's withdrawal
        assert stats.oracle_updates == 4 and stats.oracle_reports == 16 and stats.operator_prices == 0
        assert stats.deposits == 4 and stats.forced_served == 1 and stats.trades >= 2


def _lie(s, letter):
    s.first_seq = s.seq.replica.state.last_seq + 1  # of batch 3, the lie
    outcome = s.lie(letter)
    assert outcome["finalised"] is False and s.client.finalised_count() == 2
    alarms = first_alarms(s, 3)
    assert all(a is not None for a in alarms)
    assert len({(a.code, a.seq, a.accounts) for a in alarms}) == 1  # every verifier says the same
    for verifier in s.verifiers:
        assert verifier.height == 2 and verifier.refuse_from == 3
        later = [a for a in verifier.alarms if a.batch_number == 4]
        assert [a.code for a in later] == [AlarmCode.BUILT_ON_REFUSED]
    return alarms[0]


def test_a_root_that_credits_the_sequencers_account_is_refused(honest):
    alarm = _lie(honest, "a")
    assert alarm.code == AlarmCode.ROOT_MISMATCH and alarm.seq is None  # the root commits only the end
    assert FEE_ACCOUNT in [a.account for a in alarm.accounts]


def test_b_data_that_does_not_produce_the_posted_root_is_refused(honest):
    alarm = _lie(honest, "b")
    assert alarm.code == AlarmCode.ROOT_MISMATCH
    assert honest.account("bob") in [a.account for a in alarm.accounts]


def test_c_data_that_cannot_be_decoded_is_refused(honest):
    alarm = _lie(honest, "c")
    assert alarm.code == AlarmCode.UNDECODABLE and alarm.first.all_accounts


def test_d_a_forged_order_signature_is_refused_naming_the_order_and_the_victim(honest):
    alarm = _lie(honest, "d")
    assert alarm.code == AlarmCode.BAD_SIGNATURE
    assert alarm.seq == honest.first_seq  # the forged order, first command of batch 3
    assert [a.account for a in alarm.accounts] == [honest.account("alice")]
    assert honest.drill.sequencer.address.lower() in alarm.first.message


def test_e_a_root_that_applies_an_oracle_update_below_quorum_is_refused_naming_the_update(honest):
    alarm = _lie(honest, "e")
    assert alarm.code == AlarmCode.ORACLE_NO_QUORUM and alarm.seq == honest.first_seq  # the update
    assert "report 2" in alarm.first.message and "ORACLE_BAD_SIGNATURE" in alarm.first.message
    assert AlarmCode.ROOT_MISMATCH in {f.code for f in alarm.others}
    holders = {a.account for a in alarm.accounts}
    assert {honest.account("alice"), honest.account("bob"), honest.account("maker")} <= holders


def test_f_a_skipped_deposit_is_refused_naming_its_owner(honest):
    alarm = _lie(honest, "f")
    assert alarm.code == AlarmCode.DEPOSIT_SKIPPED and alarm.seq == honest.first_seq
    assert [a.owner for a in alarm.accounts] == [honest.user("dave").address.lower()]
    codes = {f.code for f in alarm.others}
    assert {AlarmCode.ROOT_MISMATCH, AlarmCode.EFFECTS_MISMATCH} <= codes


def _post_and_sync(s, prepared):
    s.seq.post(prepared)
    s.sync()
    s._try_finalise(prepared.batch_number)
    assert s.client.finalised_count() == prepared.batch_number - 1
    alarms = first_alarms(s, prepared.batch_number)
    assert all(a is not None for a in alarms)
    return alarms[0]


def test_effects_that_pay_the_sequencer_a_withdrawal_the_replay_does_not_make_are_refused(honest):
    from dataclasses import replace

    from clearway.commitment import Withdrawal

    honest.trades()
    prepared = honest.seq.build()
    stolen = Withdrawal(honest.drill.sequencer.address, 1_000 * 1_000_000)
    effects = replace(prepared.effects, withdrawals=(*prepared.effects.withdrawals, stolen))
    alarm = _post_and_sync(honest, replace(prepared, effects=effects))
    assert alarm.code == AlarmCode.EFFECTS_MISMATCH and alarm.seq is None
    assert [(a.account, a.owner) for a in alarm.accounts] == [(FEE_ACCOUNT, honest.drill.sequencer.address.lower())]


def test_a_forced_withdrawal_served_from_another_account_is_refused(honest):
    from clearway.commitment import ForcedWithdrawalServed
    from clearway.commitment.batch import Batch, ForcedInclusion, encode_batch
    from clearway.commitment.replay import BatchEffects
    from clearway.domain.commands import Withdraw
    from clearway.verifier.drill_sequencer import PreparedBatch

    seq = honest.seq
    request_id, _ = honest.client.request_forced_withdrawal(honest.user("alice"), 100 * 1_000_000)
    seq.submit(Withdraw(0, 0, honest.account("bob"), 100 * 1_000_000))  # bob's money pays alice's request
    number = seq.replica.batch_number + 1
    # the sequencer's own replica would refuse this batch: it is built and posted by hand
    batch = Batch(number, tuple(seq.pending), tuple(seq.auths), (ForcedInclusion(request_id, seq.live.last_seq),),
                  seq.pending[0].seq)
    effects = BatchEffects(seq.live.last_deposit_id, (), (ForcedWithdrawalServed(request_id, 100 * 1_000_000),))
    alarm = _post_and_sync(honest, PreparedBatch(number, seq.posted_root, b"\x11" * 32, encode_batch(batch), effects,
                                                 batch))
    assert alarm.code == AlarmCode.FORCED_INVALID and "FORCED_WRONG_ACCOUNT" in alarm.first.message
    assert all(v.replica.root == honest.client.batch_root(number - 1) for v in honest.verifiers)
