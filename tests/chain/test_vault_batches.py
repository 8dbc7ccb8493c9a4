"""Batches: sequencer-only submission in order against the latest root, data hash check,
deposit watermark, k-of-n EIP-712 finalisation in order, claimable withdrawals."""

import boa
import pytest
from vault_harness import OUTSIDER_KEY, VERIFIER_KEYS

from clearway.chain.contracts import Attestation, Signature
from clearway.commitment import (
    AccountLeaf,
    ForcedWithdrawalServed,
    Withdrawal,
    batch_data_hash,
)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def submit_args(vault, number=1, prev=None, new=b"\x05" * 32, data=b"d", data_hash=None,
                last_deposit_id=0, withdrawals=(), forced=()):
    prev = vault.latest_root() if prev is None else prev
    data_hash = batch_data_hash(data) if data_hash is None else data_hash
    return (number, prev, new, data_hash, last_deposit_id, list(withdrawals), list(forced), data)


# ---------------------------------------------------------------- submission


def test_batches_chain_roots_and_record_digest_and_deposit_watermark(harness, vault, alice):
    harness.deposit(alice, 10)
    first = harness.submit(accounts=[AccountLeaf(0, alice, 10)])
    second = harness.submit(last_deposit_id=1)
    (event,) = [e for e in vault.get_logs() if type(e).__name__ == "BatchSubmitted"]
    assert event.data_hash == second.data_hash and event.effects_hash == second.effects_hash
    assert vault.batch_count() == 2 and vault.finalised_count() == 0
    assert second.prev_root == first.new_root == vault.batch_root(1)
    assert vault.latest_root() == second.new_root
    assert vault.batch_last_deposit_id(1) == vault.batch_last_deposit_id(2) == 1


def test_only_the_sequencer_submits(vault, alice):
    with boa.reverts("only the sequencer may submit batches"):
        vault.submit_batch(*submit_args(vault), sender=alice)


def test_batch_numbers_are_sequential(vault, sequencer):
    for wrong in (0, 2):
        with boa.reverts("batch number is not the next one"):
            vault.submit_batch(*submit_args(vault, number=wrong), sender=sequencer)


def test_prev_root_must_be_the_latest_submitted_root(harness, vault, sequencer):
    genesis = vault.latest_root()
    harness.submit()
    with boa.reverts("prev_root is not the latest submitted root"):
        vault.submit_batch(*submit_args(vault, number=2, prev=genesis), sender=sequencer)


def test_data_must_match_its_hash_and_root_must_not_be_empty(vault, sequencer):
    with boa.reverts("data_hash does not match the batch data"):
        vault.submit_batch(*submit_args(vault, data=b"x", data_hash=b"\x01" * 32), sender=sequencer)
    with boa.reverts("new_root is empty"):
        vault.submit_batch(*submit_args(vault, new=bytes(32)), sender=sequencer)


def test_batch_data_is_bounded(vault, sequencer):
    with boa.reverts():
        vault.submit_batch(*submit_args(vault, data=b"\x01" * (65536 + 1)), sender=sequencer)


def test_deposits_are_included_in_order_and_only_if_made(harness, vault, sequencer, alice):
    harness.deposit(alice, 1)
    harness.deposit(alice, 1)
    with boa.reverts("last_deposit_id is beyond the last deposit"):
        vault.submit_batch(*submit_args(vault, last_deposit_id=3), sender=sequencer)
    harness.submit(last_deposit_id=2)
    with boa.reverts("last_deposit_id goes backwards"):
        vault.submit_batch(*submit_args(vault, number=2, last_deposit_id=1), sender=sequencer)


def test_withdrawal_entries_are_validated(vault, sequencer, alice):
    for bad, reason in (
        ((alice, 0), "withdrawal amount out of range"),
        ((alice, 2**96), "withdrawal amount out of range"),
        (("0x" + "00" * 20, 1), "withdrawal to the zero address"),
    ):
        with boa.reverts(reason):
            vault.submit_batch(*submit_args(vault, withdrawals=[bad]), sender=sequencer)


# ---------------------------------------------------------------- finalisation


def test_k_of_n_signatures_finalise_and_credit_withdrawals(harness, vault, token, alice, bob):
    harness.deposit(alice, 100)
    attestation = harness.submit(
        accounts=[AccountLeaf(0, alice, 60)],
        withdrawals=[Withdrawal(alice, 30), Withdrawal(bob, 10)],
    )
    assert vault.claimable(alice) == 0  # not before finalisation
    with boa.reverts("nothing to withdraw"):
        vault.withdraw(sender=alice)
    vault.finalise_batch(1, harness.signatures(attestation, VERIFIER_KEYS[1:]))
    assert vault.finalised_count() == 1 and vault.finalised_root() == attestation.new_root
    assert (vault.claimable(alice), vault.claimable(bob), vault.total_claimable()) == (30, 10, 40)
    assert vault.finalised_last_deposit_id() == 1


def test_one_signature_is_not_enough(harness, vault):
    attestation = harness.submit()
    with boa.reverts("not enough valid verifier attestations"):
        vault.finalise_batch(1, harness.signatures(attestation, VERIFIER_KEYS[:1]))


def test_a_duplicate_signer_counts_once(harness, vault):
    attestation = harness.submit()
    signature = harness.sign(attestation, VERIFIER_KEYS[0]).as_tuple()
    with boa.reverts("not enough valid verifier attestations"):
        vault.finalise_batch(1, [signature, signature])


def test_a_malleated_high_s_copy_does_not_count_as_a_second_signer(harness, vault):
    attestation = harness.submit()
    sig = harness.sign(attestation, VERIFIER_KEYS[0])
    high_s = (SECP256K1_N - int.from_bytes(sig.s, "big")).to_bytes(32, "big")
    twin = Signature(55 - sig.v, sig.r, high_s)  # same signer, other encoding
    with boa.reverts("not enough valid verifier attestations"):
        vault.finalise_batch(1, [sig.as_tuple(), twin.as_tuple()])


def test_an_unknown_signer_does_not_count(harness, vault):
    attestation = harness.submit()
    signatures = harness.signatures(attestation, [VERIFIER_KEYS[0], OUTSIDER_KEY])
    with boa.reverts("not enough valid verifier attestations"):
        vault.finalise_batch(1, signatures)
    garbage = (27, b"\x01" * 32, b"\x02" * 32)
    with boa.reverts("not enough valid verifier attestations"):
        vault.finalise_batch(1, [signatures[0], garbage, (29, b"\x01" * 32, b"\x02" * 32)])


def test_a_signature_for_batch_n_is_not_accepted_for_batch_n_plus_1(harness, vault):
    first = harness.submit()
    harness.finalise(1)
    harness.submit()
    replayed = harness.signatures(first)  # two valid verifier signatures, of batch 1
    with boa.reverts("not enough valid verifier attestations"):
        vault.finalise_batch(2, replayed)


def test_a_signature_over_different_effects_does_not_count(harness, vault, alice):
    attestation = harness.submit(withdrawals=[Withdrawal(alice, 5)])
    forged = Attestation(
        1, attestation.prev_root, attestation.new_root, attestation.data_hash, b"\x00" * 32
    )
    with boa.reverts("not enough valid verifier attestations"):
        vault.finalise_batch(1, harness.signatures(forged))


def test_batches_finalise_in_order_and_only_once_submitted(harness, vault):
    harness.submit()
    harness.submit()
    with boa.reverts("batch is not the next to finalise"):
        harness.finalise(2)
    harness.finalise(1)
    with boa.reverts("batch is not the next to finalise"):
        harness.finalise(1)
    harness.finalise(2)
    with boa.reverts("batch is not submitted"):
        vault.finalise_batch(3, [])


def test_extra_and_out_of_order_signatures_are_fine(harness, vault):
    attestation = harness.submit()
    signatures = harness.signatures(attestation, VERIFIER_KEYS[::-1])
    vault.finalise_batch(1, signatures)
    (event,) = [e for e in vault.get_logs() if type(e).__name__ == "BatchFinalised"]
    assert event.signer_bitmap == 0b111


# ---------------------------------------------------------------- withdrawal


def test_withdraw_pays_once_with_checks_effects_interactions(harness, vault, token, alice):
    harness.deposit(alice, 100)
    harness.submit_and_finalise(withdrawals=[Withdrawal(alice, 30)])
    harness.submit_and_finalise(withdrawals=[Withdrawal(alice, 12)])
    assert vault.withdraw(sender=alice) == 42
    assert token.balanceOf(alice) == 42 and token.balanceOf(vault.address) == 58
    assert vault.claimable(alice) == 0 and vault.total_claimable() == 0
    with boa.reverts("nothing to withdraw"):
        vault.withdraw(sender=alice)


@pytest.mark.parametrize("count", [64])
def test_a_batch_can_carry_the_maximum_number_of_withdrawals(harness, vault, count):
    owners = [boa.env.generate_address() for _ in range(count)]
    harness.deposit(owners[0], 10 * count)
    harness.submit_and_finalise(withdrawals=[Withdrawal(o, 10) for o in owners])
    assert all(vault.claimable(o) == 10 for o in owners)
    with boa.reverts():
        harness.submit(withdrawals=[Withdrawal(owners[0], 1)] * (count + 1))


def test_forced_served_entries_are_validated(harness, vault, sequencer, alice):
    request = vault.request_forced_withdrawal(50, sender=alice)
    with boa.reverts("unknown forced-withdrawal request"):
        harness.submit(forced=[ForcedWithdrawalServed(request + 1, 0)])
    with boa.reverts("served amount exceeds the request"):
        harness.submit(forced=[ForcedWithdrawalServed(request, 51)])
    harness.submit(forced=[ForcedWithdrawalServed(request, 50)])
    with boa.reverts("forced-withdrawal request already served"):
        harness.submit(forced=[ForcedWithdrawalServed(request, 50)])
