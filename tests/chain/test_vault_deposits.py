"""Deposits: sequential ids, Deposit events, transferFrom into the vault, refusals."""

import boa


def test_deposits_get_sequential_ids_and_move_tokens(harness, token, vault, alice, bob):
    assert harness.deposit(alice, 5_000_000) == 1
    assert harness.deposit(bob, 7_000_000) == 2
    assert vault.deposit_count() == 2
    assert token.balanceOf(vault.address) == 12_000_000
    assert (vault.deposit_amount(1), vault.deposit_amount(2)) == (5_000_000, 7_000_000)
    assert vault.deposit_depositor(2) == bob


def test_deposit_event_names_id_owner_amount_and_depositor(harness, vault, alice, bob):
    harness.fund(alice, 3)
    vault.deposit(3, bob, sender=alice)
    (event,) = [e for e in vault.get_logs() if type(e).__name__ == "Deposit"]
    assert (event.deposit_id, event.owner, event.amount, event.depositor) == (1, bob, 3, alice)


def test_deposit_refusals(harness, vault, alice):
    with boa.reverts("amount is zero"):
        vault.deposit(0, sender=alice)
    with boa.reverts("owner is the zero address"):
        vault.deposit(1, "0x" + "00" * 20, sender=alice)
    with boa.reverts("insufficient allowance"):  # no approval given
        vault.deposit(1, sender=alice)
    harness.fund(alice, 1)
    with boa.reverts("insufficient balance"):
        vault.deposit(2, sender=alice)
    with boa.reverts("unknown deposit"):
        vault.deposit_amount(1)
