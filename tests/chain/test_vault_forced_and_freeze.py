"""Forced withdrawals, their deadline, freeze, and what a frozen vault refuses."""

import boa
from vault_harness import DEADLINE

from clearway.commitment import AccountLeaf, ForcedWithdrawalServed


def test_a_forced_request_records_owner_amount_and_deadline(vault, alice):
    request = vault.request_forced_withdrawal(25, sender=alice)
    (event,) = [e for e in vault.get_logs() if type(e).__name__ == "ForcedWithdrawalRequested"]
    assert request == 1 and vault.forced_request_count() == 1
    assert (event.owner, event.amount) == (alice, 25)
    assert event.deadline == boa.env.timestamp + DEADLINE
    owner, amount, deadline, served_in, paid = vault.forced_requests(request)
    assert (owner, amount, deadline, served_in, paid) == (alice, 25, event.deadline, 0, 0)


def test_forced_request_refusals(vault, alice):
    with boa.reverts("amount is zero"):
        vault.request_forced_withdrawal(0, sender=alice)
    with boa.reverts("amount too large"):
        vault.request_forced_withdrawal(2**96, sender=alice)


def test_a_served_forced_withdrawal_becomes_claimable_on_finalisation(harness, vault, token, alice):
    harness.deposit(alice, 100)
    harness.submit_and_finalise(accounts=[AccountLeaf(0, alice, 100)])
    request = vault.request_forced_withdrawal(40, sender=alice)
    harness.submit(accounts=[AccountLeaf(0, alice, 60)], forced=[ForcedWithdrawalServed(request, 40)])
    assert vault.claimable(alice) == 0
    harness.finalise()
    assert vault.claimable(alice) == 40
    boa.env.time_travel(seconds=DEADLINE + 1)
    with boa.reverts("forced-withdrawal request was served"):
        vault.freeze(request)
    assert vault.withdraw(sender=alice) == 40 and token.balanceOf(alice) == 40


def test_a_request_served_with_zero_counts_as_served(harness, vault, alice):
    request = vault.request_forced_withdrawal(40, sender=alice)  # alice has no account
    harness.submit_and_finalise(forced=[ForcedWithdrawalServed(request, 0)])
    boa.env.time_travel(seconds=DEADLINE + 1)
    with boa.reverts("forced-withdrawal request was served"):
        vault.freeze(request)
    assert vault.claimable(alice) == 0


def test_freeze_before_the_deadline_is_refused(vault, alice):
    request = vault.request_forced_withdrawal(1, sender=alice)
    boa.env.time_travel(seconds=DEADLINE)  # exactly at the deadline: not yet overdue
    with boa.reverts("forced-withdrawal request is not overdue"):
        vault.freeze(request)
    with boa.reverts("unknown forced-withdrawal request"):
        vault.freeze(request + 1)


def test_an_overdue_request_lets_anyone_freeze(harness, vault, alice, bob):
    request = vault.request_forced_withdrawal(1, sender=alice)
    boa.env.time_travel(seconds=DEADLINE + 1)
    vault.freeze(request, sender=bob)
    assert vault.frozen() and vault.frozen_at() == boa.env.timestamp
    assert vault.escape_state_root() == vault.finalised_root()
    with boa.reverts("vault is already frozen"):
        vault.freeze(request)


def test_serving_in_a_batch_that_is_not_finalised_does_not_prevent_freeze(harness, vault, alice):
    request = vault.request_forced_withdrawal(1, sender=alice)
    harness.submit(forced=[ForcedWithdrawalServed(request, 0)])  # verifiers never sign
    boa.env.time_travel(seconds=DEADLINE + 1)
    vault.freeze(request)
    assert vault.escape_batch() == 0


def test_a_frozen_vault_refuses_batches_finalisation_deposits_and_requests(harness, vault, sequencer, alice):
    harness.deposit(alice, 10)
    pending = harness.submit()
    harness.freeze_with_overdue_request()
    with boa.reverts("vault is frozen"):
        harness.submit()
    with boa.reverts("vault is frozen"):
        vault.finalise_batch(1, harness.signatures(pending))
    harness.fund(alice, 10)
    with boa.reverts("vault is frozen"):
        vault.deposit(10, sender=alice)
    with boa.reverts("vault is frozen"):
        vault.request_forced_withdrawal(10, sender=alice)


def test_claimable_withdrawals_stay_withdrawable_after_freeze(harness, vault, token, alice):
    from clearway.commitment import Withdrawal

    harness.deposit(alice, 10)
    harness.submit_and_finalise(withdrawals=[Withdrawal(alice, 4)])
    harness.freeze_with_overdue_request()
    assert vault.withdraw(sender=alice) == 4
