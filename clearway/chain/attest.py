"""Local verifiers: replay each submitted batch from chain data alone, then sign its
attestation — what the selftest (and the demo) use until issue 7's verifier processes.

A :class:`LocalVerifier` holds its own :class:`~clearway.commitment.replay.Replica` built
from the genesis config (whose keccak must be the vault's ``genesis_config_hash``) and, for
each ``BatchSubmitted`` event in order:

1. reads the batch data from the transaction's calldata and checks its keccak against the
   event's data hash; decodes it (``decode_batch``);
2. checks every ``Deposit`` command against the vault's ``Deposit`` event of the same id
   (owner and amount);
3. replays it (``Replica.apply_batch``, with the forced requests read from the vault);
4. checks every SIGNED authorisation (EIP-712, authorisation.py) recovers to the account's
   owner, and counts operator-attested commands;
5. compares its root with the event's new root, its previous root with the event's, and
   its effects hash with the event's.

All pass → it signs the EIP-712 attestation. Any check fails → it records an alarm and
signs nothing, for this batch and every later one (its state no longer follows the
chain). This is a preview of the issue-7 verifier, not a replacement: no oracle checks,
no deadline checks, no persistence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount

from clearway.chain.contracts import Attestation, Signature, sign_attestation
from clearway.chain.inbox import StoredBatch
from clearway.chain.vault import VaultClient
from clearway.commitment import batch_data_hash
from clearway.commitment.authorisation import AuthKind, exchange_domain_separator, recover_signer
from clearway.commitment.batch import BatchDecodeError, decode_batch
from clearway.commitment.exchange_state import committed_genesis_hash
from clearway.commitment.replay import Replica, ReplayError
from clearway.domain.commands import Deposit
from clearway.domain.genesis import GenesisConfig


@dataclass
class VerifierStats:
    batches: int = 0
    commands: int = 0
    signed_commands: int = 0
    operator_attested: int = 0
    alarms: list[str] = field(default_factory=list)


class LocalVerifier:
    """One verifier key replaying the chain (module docstring)."""

    def __init__(self, key: LocalAccount, client: VaultClient, genesis: GenesisConfig) -> None:
        self.key = key
        self.client = client
        self.genesis = genesis
        self.replica = Replica(genesis)
        self.stats = VerifierStats()
        self.signatures: dict[int, Signature] = {}
        self._separator = exchange_domain_separator(client.chain.chain_id, client.address)
        self._scanned = -1
        self._deposits: dict[int, tuple[str, int]] = {}
        if client.view("genesis_config_hash") != committed_genesis_hash(genesis):
            self.stats.alarms.append("the vault's genesis hash is not this genesis config's")

    @property
    def halted(self) -> bool:
        return bool(self.stats.alarms)

    def sync(self) -> None:
        """Verify every submitted batch not yet verified, in order, until one fails."""
        if self.halted:
            return
        for submitted in self.client.submitted_batches(0):
            if submitted.batch_number <= self.replica.batch_number:
                continue
            reason = self._verify(submitted)
            if reason is not None:
                self.stats.alarms.append(f"batch {submitted.batch_number}: {reason}")
                return

    def _verify(self, submitted) -> str | None:
        data = self.client.batch_data(submitted)
        if batch_data_hash(data) != submitted.data_hash:
            return "the calldata does not hash to the data hash"
        try:
            batch = decode_batch(data)
        except BatchDecodeError as exc:
            return f"undecodable batch data: {exc}"
        if batch.batch_number != submitted.batch_number:
            return f"the data names batch {batch.batch_number}"
        if submitted.prev_root != self.replica.root:
            return "the previous root is not the one this verifier holds"
        deposit_error = self._check_deposits(batch)
        if deposit_error:
            return deposit_error
        requests = {}
        for inclusion in batch.forced:
            requests[inclusion.request_id] = self.client.forced_request(inclusion.request_id)[0]
        try:
            outcome = self.replica.apply_batch(batch, requests)
        except ReplayError as exc:
            return f"replay refused: {exc}"
        for command, auth in zip(batch.commands, batch.authorisations):
            if auth.kind == AuthKind.SIGNED:
                self.stats.signed_commands += 1
                account = self.replica.state.accounts.get(getattr(command, "account", -1))
                owner = account.owner if account is not None else "0x" + "00" * 20
                signer = recover_signer(self._separator, command, owner, auth)
                if signer is None or signer.lower() != owner:
                    return f"seq {command.seq}: signature is not the account owner's"
            elif hasattr(command, "account"):
                self.stats.operator_attested += 1
        if outcome.state_root != submitted.new_root:
            return "the replayed state root differs from the submitted one"
        if outcome.effects.hash() != submitted.effects_hash:
            return "the replayed effects differ from the submitted ones"
        attestation = Attestation(submitted.batch_number, submitted.prev_root, submitted.new_root,
                                  submitted.data_hash, submitted.effects_hash)
        self.signatures[submitted.batch_number] = sign_attestation(
            self.key.key, self.client.chain.chain_id, self.client.address, attestation)
        self.stats.batches += 1
        self.stats.commands += len(batch.commands)
        return None

    def _check_deposits(self, batch) -> str | None:
        deposits = [c for c in batch.commands if type(c) is Deposit]
        if not deposits:
            return None
        if max(c.deposit_id for c in deposits) not in self._deposits:
            head = self.client.chain.block_number()
            for event in self.client.deposits(self._scanned + 1, head):
                self._deposits[event.deposit_id] = (event.owner, event.amount)
            self._scanned = head
        for command in deposits:
            if self._deposits.get(command.deposit_id) != (command.owner, command.amount):
                return f"seq {command.seq}: deposit {command.deposit_id} is not the vault's"
        return None


class LocalVerifiers:
    """The batcher's attestation source over several local verifiers."""

    def __init__(self, verifiers: list[LocalVerifier]) -> None:
        self.verifiers = verifiers

    def signatures(self, batch: StoredBatch) -> list[Signature]:
        out = []
        for verifier in self.verifiers:
            verifier.sync()
            signature = verifier.signatures.get(batch.batch_number)
            if signature is not None:
                out.append(signature)
        return out

    @property
    def alarms(self) -> list[str]:
        return [alarm for v in self.verifiers for alarm in v.stats.alarms]
