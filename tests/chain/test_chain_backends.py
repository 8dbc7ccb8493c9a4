"""The vault through the Chain interface, on the embedded EVM and (when
CLEARWAY_TEST_RPC_URL is set, e.g. by ``source .ci/anvil.sh``) on a JSON-RPC node: the same
tests on both, covering deposits, batches, attestations, withdrawals, refusals, forced
withdrawal, freeze and escape; and the embedded gas figures against real receipts."""

from __future__ import annotations

import os

import pytest
from eth_account import Account

from clearway.chain.backend import EmbeddedChain, transaction_gas
from clearway.chain.contracts import Attestation, sign_attestation
from clearway.chain.errors import ChainError, ChainErrorCode
from clearway.chain.vault import VaultClient
from clearway.commitment import AccountLeaf, CommittedState, ForcedWithdrawalServed, InstrumentLeaf, Withdrawal
from clearway.commitment.replay import BatchEffects

RPC_URL = os.environ.get("CLEARWAY_TEST_RPC_URL")
GENESIS_HASH = bytes.fromhex("c1ea" * 16)
DEADLINE = 3_600
VERIFIERS = [Account.from_key(bytes([i]) * 32) for i in (11, 12, 13)]
USDC = 1_000_000


def _chain(kind: str):
    if kind == "embedded":
        return EmbeddedChain()
    if not RPC_URL:
        pytest.skip("CLEARWAY_TEST_RPC_URL is not set (source .ci/anvil.sh)")
    from clearway.chain.rpc import RpcChain

    return RpcChain(RPC_URL)


@pytest.fixture(params=["embedded", "rpc"])
def chain(request):
    return _chain(request.param)


class Setup:
    """A fresh 2-of-3 vault, its sequencer and the committed state next to it."""

    def __init__(self, chain) -> None:
        self.chain = chain
        self.deployer = chain.new_account("deployer")
        self.sequencer = chain.new_account("sequencer")
        self.client = VaultClient.deploy(chain, self.deployer, self.sequencer.address,
                                         [v.address for v in VERIFIERS], 2, GENESIS_HASH, DEADLINE)
        self.state = CommittedState(GENESIS_HASH)
        self.batch = 0
        self.attestations: dict[int, Attestation] = {}

    def user(self, label: str, amount: int = 0):
        account = self.chain.new_account(label)
        if amount:
            self.client.mint(self.deployer, account, amount)
        return account

    def submit(self, accounts=(), instruments=(), withdrawals=(), forced=(), data=b"batch"):
        number = self.batch + 1
        self.state.update(accounts, instruments)
        root = self.state.root(number, 10 * number)
        effects = BatchEffects(self.client.deposit_count(), tuple(withdrawals), tuple(forced))
        prev_root = self.client.latest_root()
        receipt = self.client.submit_batch(self.sequencer, number, prev_root, root, data, effects)
        self.attestations[number] = Attestation.for_batch(number, prev_root, root, data, effects.last_deposit_id,
                                                          effects.withdrawals, effects.forced_served)
        self.batch = number
        return receipt

    def signatures(self, number: int, keys=VERIFIERS[:2]):
        return [sign_attestation(k.key, self.chain.chain_id, self.client.address, self.attestations[number])
                for k in keys]

    def finalise(self, number: int | None = None, keys=VERIFIERS[:2]):
        number = number or self.batch
        return self.client.finalise_batch(self.deployer, number, self.signatures(number, keys))


def test_deposits_get_sequential_ids_and_their_events_are_read_by_block_range(chain):
    s = Setup(chain)
    alice, bob = s.user("alice", 50 * USDC), s.user("bob", 50 * USDC)
    start = chain.block_number()
    assert s.client.deposit(alice, 10 * USDC)[0] == 1
    assert s.client.deposit(bob, 20 * USDC, owner=alice.address)[0] == 2
    events = s.client.deposits(start, chain.block_number())
    assert [(e.deposit_id, e.owner, e.amount, e.depositor) for e in events] == [
        (1, alice.address.lower(), 10 * USDC, alice.address), (2, alice.address.lower(), 20 * USDC, bob.address)]
    assert s.client.deposits(events[1].block_number + 1, chain.block_number()) == []
    assert s.client.vault_balance() == 30 * USDC


def test_a_batch_attested_by_k_verifiers_finalises_and_pays_its_withdrawals(chain):
    s = Setup(chain)
    alice = s.user("alice", 50 * USDC)
    s.client.deposit(alice, 50 * USDC)
    s.submit(accounts=[AccountLeaf(2, alice.address, 30 * USDC)], withdrawals=[Withdrawal(alice.address, 20 * USDC)],
             data=b"\x01batch data")
    (submitted,) = s.client.submitted_batches(0, chain.block_number())
    assert s.client.batch_data(submitted) == b"\x01batch data"
    assert s.client.claimable(alice.address) == 0
    s.finalise()
    assert s.client.view("finalised_count") == 1
    assert s.client.withdraw(alice)[0] == 20 * USDC
    assert s.client.token_balance(alice.address) == 20 * USDC
    with pytest.raises(ChainError) as twice:
        s.client.withdraw(alice)
    assert (twice.value.code, twice.value.reason) == (ChainErrorCode.REVERTED, "nothing to withdraw")


def test_refusals_carry_the_vaults_reason_and_change_nothing(chain):
    s = Setup(chain)
    outsider = s.user("outsider")
    effects = BatchEffects(0)
    with pytest.raises(ChainError) as wrong_caller:
        s.client.submit_batch(outsider, 1, s.client.latest_root(), b"\x01" * 32, b"x", effects)
    assert wrong_caller.value.reason == "only the sequencer may submit batches"
    s.submit()
    with pytest.raises(ChainError) as one_signature:
        s.finalise(keys=VERIFIERS[:1])
    assert one_signature.value.reason == "not enough valid verifier attestations"
    with pytest.raises(ChainError) as duplicate:
        s.client.finalise_batch(s.deployer, 1, s.signatures(1, VERIFIERS[:1]) * 2)
    assert duplicate.value.reason == "not enough valid verifier attestations"
    assert s.client.finalised_count() == 0


def test_an_ignored_forced_withdrawal_freezes_the_vault_and_every_account_escapes(chain):
    s = Setup(chain)
    alice, bob = s.user("alice", 100 * USDC), s.user("bob", 100 * USDC)
    s.client.deposit(alice, 60 * USDC)
    s.client.deposit(bob, 40 * USDC)
    instruments = [InstrumentLeaf(0, 25_000 * USDC, 0, 4)]
    accounts = [AccountLeaf(2, alice.address, 35 * USDC, [(0, 10, 0)]),  # long 0.001 at 25,000 = 25 USDC
                AccountLeaf(3, bob.address, 65 * USDC, [(0, -10, 0)])]
    s.submit(accounts=accounts, instruments=instruments)
    s.finalise()
    late_id, _ = s.client.deposit(bob, 5 * USDC)  # never included
    request_id, _ = s.client.request_forced_withdrawal(alice, 1 * USDC)
    with pytest.raises(ChainError) as early:
        s.client.freeze(bob, request_id)
    assert early.value.reason == "forced-withdrawal request is not overdue"
    chain.time_travel(DEADLINE + 1)
    s.client.freeze(bob, request_id)
    assert s.client.frozen()
    with pytest.raises(ChainError) as frozen:
        s.client.deposit(alice, 1 * USDC)
    assert frozen.value.reason == "vault is frozen"
    s.client.open_escape(bob, s.state.accounts.root, s.state.instruments.root, 10)
    s.client.post_instrument(bob, instruments[0], s.state.instrument_proof(0))
    paid = [s.client.escape(bob, s.state.account(i), s.state.account_proof(i))[0] for i in (2, 3)]
    assert paid == [60 * USDC, 40 * USDC]
    with pytest.raises(ChainError) as again:
        s.client.escape(bob, s.state.account(2), s.state.account_proof(2))
    assert again.value.reason == "account already escaped"
    assert s.client.refund_deposit(alice, late_id)[0] == 5 * USDC
    assert s.client.vault_balance() == 0
    assert s.client.token_balance(alice.address) == 100 * USDC
    assert s.client.token_balance(bob.address) == 100 * USDC


def test_time_travel_moves_the_chain_clock(chain):
    before = chain.timestamp()
    chain.time_travel(1_000)
    assert chain.timestamp() >= before + 1_000


def test_embedded_gas_is_the_gas_a_real_node_charges():
    """The same transactions on both chains: the embedded formula (calldata, Prague
    floor, cold access, refunds) must give the receipts' gasUsed."""
    if not RPC_URL:
        pytest.skip("CLEARWAY_TEST_RPC_URL is not set (source .ci/anvil.sh)")
    gas = {}
    for kind in ("embedded", "rpc"):
        s = Setup(_chain(kind))
        alice = s.user("alice", 100 * USDC)
        figures = {"deposit": s.client.deposit(alice, 60 * USDC)[1].gas_used}
        big = bytes(range(1, 256)) * 200  # 51,000 non-zero bytes: the calldata floor binds
        figures["submit"] = s.submit(accounts=[AccountLeaf(2, alice.address, 40 * USDC)],
                                     withdrawals=[Withdrawal(alice.address, 20 * USDC)], data=big).gas_used
        figures["finalise"] = s.finalise().gas_used
        figures["withdraw"] = s.client.withdraw(alice)[1].gas_used
        gas[kind] = figures
    for name, embedded in gas["embedded"].items():
        # equal but for the zero bytes of addresses and signatures, which differ per chain
        assert abs(embedded - gas["rpc"][name]) <= 200, (name, gas)


def test_transaction_gas_applies_the_calldata_floor_and_the_refund_cap():
    data = b"\x01" * 1_000
    assert transaction_gas(data, 10_000) == 21_000 + 10 * 4_000  # floor binds
    assert transaction_gas(b"\x00" * 10, 100_000, refund=60_000) == 21_000 + 40 + 100_000 - (121_040 // 5)
