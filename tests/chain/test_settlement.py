"""Deposit watcher and batcher against a real sequencer node: exactly-once deposits,
confirmations, batches that replay to the journal's state, idempotent retries, the vault's
limits, forced withdrawals, and verifiers that refuse a wrong root."""

from __future__ import annotations

import random

import pytest

from clearway.chain.errors import ChainError, ChainErrorCode
from clearway.chain.inbox import BUILT, FINALISED, SUBMITTED, Inbox
from clearway.commitment.batch import batch_of, decode_batch, encode_batch
from clearway.commitment.effects import ForcedWithdrawalServed, Withdrawal
from clearway.commitment.replay import BatchEffects, Replica
from clearway.domain.commands import PlaceOrder, SetMarkPrices, Withdraw, decode_command
from clearway.domain.orders import TimeInForce
from clearway.domain.state import state_hash
from settlement_harness import USDC, Stack


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    yield s
    s.close()


def test_each_deposit_becomes_exactly_one_command_across_rescans_and_restarts(stack, tmp_path):
    alice, bob = stack.user("alice", 100 * USDC), stack.user("bob", 50 * USDC)
    report = stack.watcher.poll()
    assert (report.deposits, report.skipped) == (2, 0)
    assert stack.watcher.poll().deposits == 0
    # a watcher with a fresh inbox rescans from the deployment block and skips by deposit id
    rescan = stack.new_watcher(Inbox(tmp_path / "fresh")).poll()
    assert (rescan.deposits, rescan.skipped) == (0, 2)
    stack.client.deposit(alice, 5 * USDC)
    assert stack.new_watcher().poll().deposits == 1  # a restarted watcher resumes
    state = stack.node.query(lambda s: (s.last_deposit_id, s.total_deposits)).result(10)
    assert state == (3, 155 * USDC)
    assert stack.account_of(bob) == 3


def test_a_deposit_waits_for_its_confirmations(tmp_path):
    stack = Stack(tmp_path, confirmations=3)
    try:
        stack.user("alice", 10 * USDC)
        assert stack.watcher.poll().deposits == 0
        stack.chain.mine(1)
        assert stack.watcher.poll().deposits == 0
        stack.chain.mine(1)
        assert stack.watcher.poll().deposits == 1
    finally:
        stack.close()


def _trade_flow(stack: Stack, rng: random.Random, orders: int) -> None:
    accounts = [stack.account_of(k) for k in stack.traders]
    commands = []
    for _ in range(orders):
        side = rng.choice((1, -1))
        commands.append(PlaceOrder(0, 0, rng.choice(accounts), rng.choice((0, 1)), side, rng.randint(1, 30) * 10,
                                   25_000 * USDC + rng.randint(-4, 4) * 100_000,
                                   tif=rng.choice((TimeInForce.GTC, TimeInForce.IOC))))
    stack.run(*commands)


def _traders(stack: Stack, n: int = 4) -> None:
    stack.traders = [stack.user(f"trader{i}", 1_000_000 * USDC) for i in range(n)]
    stack.watcher.poll()
    stack.run(SetMarkPrices(0, 0, {"BTC": 25_000 * USDC, "ETH": 25_000 * USDC}, {0: 25_000 * USDC, 1: 25_000 * USDC}))


def test_batches_replayed_from_chain_data_reach_the_journals_state_hash(stack):
    _traders(stack)
    rng = random.Random(3)
    for _ in range(3):
        _trade_flow(stack, rng, 150)
        report = stack.batcher.step(force=True)
        assert report.finalised == report.built
    replica = Replica(stack.genesis)
    for submitted in stack.client.submitted_batches(0):
        replica.apply_batch(decode_batch(stack.client.batch_data(submitted)))
        assert replica.root == submitted.new_root
    assert state_hash(replica.state) == stack.node.state_hash()
    assert stack.client.finalised_count() == 3


def test_batches_are_cut_by_command_count_and_by_age():
    clock = [0.0]
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), max_commands=100, max_seconds=5, clock=lambda: clock[0])
        try:
            _traders(stack)
            rng = random.Random(1)
            _trade_flow(stack, rng, 30)
            assert stack.batcher.step().built == []  # 35 commands, not old enough
            clock[0] = 6
            assert len(stack.batcher.step().built) == 1
            _trade_flow(stack, rng, 250)
            report = stack.batcher.step()
            assert len(report.built) == 2  # two full batches of 100; 50 wait
            assert all(b.last_seq - b.first_seq + 1 == 100 for b in stack.inbox.batches()[1:])
        finally:
            stack.close()


def test_more_than_64_withdrawals_are_split_over_batches(stack):
    _traders(stack)
    accounts = [stack.account_of(k) for k in stack.traders]
    stack.run(*[Withdraw(0, 0, accounts[i % 4], USDC) for i in range(100)])
    report = stack.batcher.step(force=True)
    assert len(report.built) == 2
    batches = stack.inbox.batches()
    withdraws = [sum(type(c) is Withdraw for c in decode_batch(b.data).commands) for b in batches]
    assert withdraws == [64, 36]
    for key in stack.traders:
        assert stack.client.claimable(key.address) == 25 * USDC


def test_a_crash_before_submission_resubmits_the_same_batch(stack, monkeypatch):
    _traders(stack)
    _trade_flow(stack, random.Random(5), 50)

    def fail(*args, **kwargs):
        raise ChainError(ChainErrorCode.RPC_UNREACHABLE, "network down")

    monkeypatch.setattr(stack.client, "submit_batch", fail)
    with pytest.raises(ChainError):
        stack.batcher.step(force=True)
    monkeypatch.undo()
    (built,) = stack.inbox.batches(BUILT)
    restarted = stack.new_batcher()  # a new process: replays the inbox, then submits
    report = restarted.step()
    assert report.submitted == [1] and report.finalised == [1]
    (submitted,) = stack.client.submitted_batches(0)
    assert stack.client.batch_data(submitted) == built.data
    assert [b.status for b in stack.inbox.batches()] == [FINALISED]


def test_a_restart_after_submission_does_not_submit_twice(stack):
    _traders(stack)
    stack.batcher.attestations = None
    stack.batcher.step(force=True)
    assert [b.status for b in stack.inbox.batches()] == [SUBMITTED]
    restarted = stack.new_batcher()
    report = restarted.step(force=True)
    assert report.built == [] and report.finalised == [1]
    assert stack.client.batch_count() == 1


def test_a_vault_batch_with_another_root_is_a_conflict(stack):
    _traders(stack)
    stack.batcher.attestations = None
    stack.batcher.step(force=True)
    # someone with the sequencer key submitted batch 2 behind the batcher's back
    stack.client.submit_batch(stack.sequencer, 2, stack.client.latest_root(), b"\x07" * 32, b"rogue",
                              BatchEffects(stack.client.deposit_count()))
    stack.run(Withdraw(0, 0, stack.account_of(stack.traders[0]), USDC))
    with pytest.raises(ChainError) as err:
        stack.batcher.step(force=True)
    assert err.value.code == ChainErrorCode.BATCH_CONFLICT


def test_forced_withdrawals_are_served_and_paid_to_the_requester(stack):
    _traders(stack)
    alice = stack.traders[0]
    stranger = stack.user("stranger")  # has no account: served with 0
    served, _ = stack.client.request_forced_withdrawal(alice, 7 * USDC)
    nothing, _ = stack.client.request_forced_withdrawal(stranger, 5 * USDC)
    stack.watcher.poll()
    report = stack.batcher.step(force=True)
    (stored,) = [b for b in stack.inbox.batches() if b.batch_number == report.built[-1]]
    assert stored.effects.forced_served == (ForcedWithdrawalServed(served, 7 * USDC),
                                            ForcedWithdrawalServed(nothing, 0))
    assert stored.effects.withdrawals == ()
    assert stack.client.claimable(alice.address) == 7 * USDC
    assert stack.client.forced_request(nothing)[1:] == (report.built[-1], 0)
    # served requests cannot freeze the vault
    stack.chain.time_travel(3_601)
    with pytest.raises(ChainError) as err:
        stack.client.freeze(stranger, served)
    assert err.value.reason == "forced-withdrawal request was served"


def test_verifiers_refuse_a_root_the_data_does_not_produce(stack):
    _traders(stack)
    stack.batcher.step(force=True)
    good = stack.client.finalised_count()
    # a dishonest sequencer: the true data of the next commands, a root of its own
    stack.run(Withdraw(0, 0, stack.account_of(stack.traders[0]), USDC))
    records = stack.log.read_after(stack.batcher.replica.state.last_seq, 100)
    batch = batch_of(good + 1, [decode_command(bytes(r[1])) for r in records])
    stack.client.submit_batch(stack.sequencer, good + 1, stack.client.latest_root(), b"\x05" * 32,
                              encode_batch(batch), BatchEffects(stack.client.deposit_count()))
    for verifier in stack.verifiers.verifiers:
        verifier.sync()
        assert good + 1 not in verifier.signatures
        assert "state root" in verifier.stats.alarms[0]


def test_more_than_32_forced_inclusions_cut_the_batch_before_the_33rd_serving_command():
    from clearway.chain.batcher import Batcher
    from clearway.chain.inbox import ForcedRecord
    from clearway.commitment.replay import ForcedRequest

    records = [ForcedRecord(ForcedRequest(i, "0x" + "00" * 20, 1), seq, None)
               for i, seq in enumerate([0, 0] + list(range(100, 140)), 1)]
    # 2 without a command leave room for 30 serving commands: seq 100..129; cut before 130
    assert Batcher._limit_forced(1_000, 90, records) == 130 - 90
    assert Batcher._limit_forced(5, 90, records) == 5
    assert Batcher._limit_forced(1_000, 90, records[:10]) == 1_000
