"""Gas of the user-facing calls, measured as a transaction would pay it: 21,000 + calldata
(4 per zero byte, 16 per non-zero byte) + execution, with cold storage and accounts
(access counters reset before the call), SSTORE refunds ignored. Run with ``-s`` to see
the figures; the escape target (<= 150,000 for 10 positions) is asserted."""

import boa
import pytest
from eth.db.backends.memory import MemoryDB
from eth.db.journal import JournalDB
from vault_harness import escape_args

from clearway.commitment import AccountLeaf, InstrumentLeaf, Withdrawal

ESCAPE_TARGET = 150_000


def transaction_gas(contract, function: str, *args, **kwargs) -> dict[str, int]:
    """Call ``contract.function(*args)`` and return its gas as a transaction."""
    calldata = getattr(contract, function).prepare_calldata(*args)
    # Cold accounts and slots, as at the start of a transaction: swap in an empty
    # access journal for the call (boa's own reset would drop the anchors' checkpoints).
    account_db = boa.env.evm.vm.state._account_db
    saved = account_db._journal_accessed_state
    account_db._journal_accessed_state = JournalDB(MemoryDB())
    try:
        getattr(contract, function)(*args, **kwargs)
    finally:
        account_db._journal_accessed_state = saved
    execution = contract._computation.get_gas_used()
    zero = calldata.count(0)
    nonzero = len(calldata) - zero
    total = 21_000 + 4 * zero + 16 * nonzero + execution
    floor = 21_000 + 10 * (zero + 4 * nonzero)  # EIP-7623 (Prague) calldata floor
    return {
        "execution": execution,
        "calldata_bytes": len(calldata),
        "total": total,  # Cancun pricing
        "total_prague": max(total, floor),
    }


def ten_position_account(index: int, owner: str) -> AccountLeaf:
    # alternating long/short, each with unsettled funding
    return AccountLeaf(
        index,
        owner,
        5_000_000_000,
        [(i, (-1) ** i * 1_000 * i, 10**9 * i) for i in range(1, 11)],
    )


INSTRUMENTS = [InstrumentLeaf(i, 1_000_000_000 * i, 2 * 10**9 * i, 4) for i in range(1, 11)]


@pytest.mark.parametrize("siblings", [10, 20, 32])
def test_escape_with_ten_positions_is_within_150k_gas(harness, vault, siblings, capsys):
    # Accounts at index 2**level for level < siblings give account 0 exactly `siblings`
    # non-empty proof siblings. With sequential account indices a tree of N accounts gives
    # about log2(N): 10 ≈ a thousand accounts, 20 ≈ a million. 32 (over 2**31 accounts)
    # is the theoretical maximum and is reported, not held to the target: it costs
    # ~154.6k, the extra 12 siblings being 12 * 32 calldata bytes.
    owner = boa.env.generate_address("escaper")  # holds no token yet: fresh balance slot
    accounts = [ten_position_account(0, owner)]
    accounts += [AccountLeaf(1 << level, owner, 1) for level in range(siblings)]
    harness.deposit(boa.env.generate_address(), 10**12)
    harness.submit_and_finalise(accounts=accounts, instruments=INSTRUMENTS)
    harness.freeze_with_overdue_request()
    harness.open_escape()
    harness.post_instruments()
    leaf = harness.state.account(0)
    proof = harness.state.account_proof(0)
    assert len(proof.siblings) == siblings
    gas = transaction_gas(vault, "escape", *escape_args(leaf, proof))
    with capsys.disabled():
        print(f"\nescape, 10 positions, {siblings} proof siblings: {gas}")
    assert gas["total_prague"] == gas["total"]  # execution-heavy: no calldata floor
    if siblings <= 20:
        assert gas["total"] <= ESCAPE_TARGET
    else:
        assert gas["total"] <= ESCAPE_TARGET + 6_000


def test_withdraw_gas(harness, vault, alice, capsys):
    harness.deposit(alice, 100)
    harness.submit_and_finalise(withdrawals=[Withdrawal(alice, 60)])
    gas = transaction_gas(vault, "withdraw", sender=alice)
    with capsys.disabled():
        print(f"\nwithdraw (first token receipt): {gas}")


def test_submit_batch_gas(harness, vault, sequencer, capsys):
    from clearway.commitment import batch_data_hash, batch_effects_hash

    for size in (1_000, 20_000, 65_536):
        data = bytes((i * 7 + 1) % 256 or 1 for i in range(size))
        args = (1, vault.latest_root(), b"\x05" * 32, batch_data_hash(data), 0, [], [], data)
        with boa.env.anchor():
            gas = transaction_gas(vault, "submit_batch", *args, sender=sequencer)
        with capsys.disabled():
            print(f"\nsubmit_batch, {size} bytes of data: {gas}")
        assert batch_effects_hash(0) is not None


def test_deposit_finalise_and_forced_request_gas(harness, vault, token, alice, capsys):
    harness.deposit(alice, 10)  # first deposit pays for fresh counters; measure the second
    harness.fund(alice, 1_000_000)
    deposit = transaction_gas(vault, "deposit", 1_000_000, sender=alice)
    attestation = harness.submit(withdrawals=[Withdrawal(alice, 5)])
    finalise = transaction_gas(vault, "finalise_batch", 1, harness.signatures(attestation))
    forced = transaction_gas(vault, "request_forced_withdrawal", 5, sender=alice)
    with capsys.disabled():
        print(f"\ndeposit: {deposit}\nfinalise_batch (2 of 3, 1 withdrawal): {finalise}"
              f"\nrequest_forced_withdrawal: {forced}")
    assert vault.claimable(alice) == 5
