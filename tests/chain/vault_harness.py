"""Test harness for the vault: keeps the off-chain committed state (``CommittedState``)
next to the contract so that roots, proofs and escape values come from the real
commitment code. Imported by ``conftest.py`` and the tests (unique module name)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import boa
from eth_account import Account

from clearway.chain.contracts import (
    Attestation,
    Signature,
    boa_chain_id,
    deploy_stablecoin,
    deploy_vault,
    sign_attestation,
)
from clearway.commitment import (
    AccountLeaf,
    CommittedState,
    ForcedWithdrawalServed,
    InstrumentLeaf,
    Withdrawal,
)

GENESIS_CONFIG_HASH = bytes.fromhex("c1ea" * 16)
DEADLINE = 7 * 24 * 3600
MAX_UINT = 2**256 - 1

# Fixed keys so failures are reproducible.
VERIFIER_KEYS = [Account.from_key(bytes([i]) * 32) for i in (1, 2, 3)]
OUTSIDER_KEY = Account.from_key(bytes([9]) * 32)


@dataclass
class Harness:
    """The vault plus the sequencer's view of the committed state."""

    token: object
    vault: object
    sequencer: str
    state: CommittedState
    batch_number: int = 0
    last_sequence: int = 0
    attestations: dict[int, Attestation] = field(default_factory=dict)

    # ------------------------------------------------------------------ money

    def fund(self, user: str, amount: int) -> None:
        self.token.mint(user, amount)
        self.token.approve(self.vault.address, MAX_UINT, sender=user)

    def deposit(self, user: str, amount: int, owner: str | None = None) -> int:
        if self.token.balanceOf(user) < amount:
            self.fund(user, amount)
        if owner is None:
            return self.vault.deposit(amount, sender=user)
        return self.vault.deposit(amount, owner, sender=user)

    # ------------------------------------------------------------------ batches

    def submit(
        self,
        accounts: Iterable[AccountLeaf] = (),
        instruments: Iterable[InstrumentLeaf] = (),
        last_deposit_id: int | None = None,
        withdrawals: Sequence[Withdrawal] = (),
        forced: Sequence[ForcedWithdrawalServed] = (),
        data: bytes | None = None,
    ) -> Attestation:
        """Commit the given leaf changes as the next batch and submit it."""
        if last_deposit_id is None:
            last_deposit_id = self.vault.deposit_count()
        number = self.batch_number + 1
        self.last_sequence += 10
        self.state.update(accounts, instruments)
        new_root = self.state.root(number, self.last_sequence)
        if data is None:
            data = b"batch %d" % number
        attestation = Attestation.for_batch(
            number, self.vault.latest_root(), new_root, data, last_deposit_id, withdrawals, forced
        )
        self.vault.submit_batch(
            number,
            attestation.prev_root,
            new_root,
            attestation.data_hash,
            last_deposit_id,
            [w.as_tuple() for w in withdrawals],
            [f.as_tuple() for f in forced],
            data,
            sender=self.sequencer,
        )
        self.batch_number = number
        self.attestations[number] = attestation
        return attestation

    def signatures(
        self, attestation: Attestation, keys: Sequence[Account] | None = None
    ) -> list[tuple[int, bytes, bytes]]:
        keys = VERIFIER_KEYS[:2] if keys is None else keys
        return [self.sign(attestation, key).as_tuple() for key in keys]

    def sign(self, attestation: Attestation, key: Account) -> Signature:
        return sign_attestation(key.key, boa_chain_id(), self.vault.address, attestation)

    def finalise(self, number: int | None = None, keys: Sequence[Account] | None = None) -> None:
        number = self.batch_number if number is None else number
        self.vault.finalise_batch(number, self.signatures(self.attestations[number], keys))

    def submit_and_finalise(self, **kwargs) -> Attestation:
        attestation = self.submit(**kwargs)
        self.finalise(attestation.batch_number)
        return attestation

    # ------------------------------------------------------------------ freeze and escape

    def freeze_with_overdue_request(self, user: str | None = None) -> int:
        user = user or boa.env.generate_address("forcer")
        request_id = self.vault.request_forced_withdrawal(1, sender=user)
        boa.env.time_travel(seconds=DEADLINE + 1)
        self.vault.freeze(request_id)
        return request_id

    def open_escape(self) -> None:
        """Reveal the roots of the last *finalised* batch (the harness must not have
        submitted unfinalised batches with different trees)."""
        self.vault.open_escape(
            self.state.accounts.root, self.state.instruments.root, self.finalised_sequence()
        )

    def finalised_sequence(self) -> int:
        return 10 * self.vault.finalised_count()

    def post_instruments(self) -> None:
        for instrument in self.state.instrument_leaves().values():
            proof = self.state.instrument_proof(instrument.instrument_id)
            self.vault.post_instrument(
                instrument.instrument_id,
                instrument.settlement_price,
                instrument.funding_index,
                instrument.size_decimals,
                proof.bitmap,
                list(proof.siblings),
            )

    def escape(self, account_index: int, sender: str | None = None) -> int:
        leaf = self.state.account(account_index)
        proof = self.state.account_proof(account_index)
        kwargs = {"sender": sender} if sender else {}
        return self.vault.escape(*escape_args(leaf, proof), **kwargs)


def escape_args(leaf: AccountLeaf, proof) -> tuple:
    return (
        leaf.account_index,
        leaf.owner,
        leaf.cash,
        [p.as_tuple() for p in leaf.positions],
        proof.bitmap,
        list(proof.siblings),
    )
