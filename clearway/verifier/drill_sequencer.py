"""A small in-process sequencer for the drill: honest by default, dishonest on request.

The verifier package may not import the engine (DESIGN.md "Layers"), and the drill needs a
sequencer it can make lie, so this one is minimal: it stamps commands with sequence numbers
and timestamps, applies them to a live ``ExchangeState`` (so it knows account ids and
rejections), and cuts batches exactly as the batcher does — ``Batch`` → ``encode_batch``
→ ``Replica.apply_batch`` → ``Vault.submit_batch``. Between building and posting a batch the drill may tamper with
what is posted (:class:`PreparedBatch` is a plain record).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import msgspec
from eth_account.signers.local import LocalAccount

from clearway.chain.vault import VaultClient
from clearway.commitment.authorisation import OPERATOR, Authorisation, exchange_domain_separator, sign_command
from clearway.commitment.batch import Batch, ForcedInclusion, encode_batch
from clearway.commitment.exchange_state import full_state_root
from clearway.commitment.replay import BatchEffects, ForcedRequest, Replica, serving_withdraw
from clearway.domain.commands import Deposit
from clearway.domain.genesis import GenesisConfig
from clearway.domain.snapshot import decode_snapshot, encode_snapshot
from clearway.domain.state import ExchangeState, apply


@dataclass(frozen=True)
class PreparedBatch:
    """A batch ready to post: what ``submit_batch`` receives, and the decoded batch."""

    batch_number: int
    prev_root: bytes
    new_root: bytes
    data: bytes
    effects: BatchEffects
    batch: Batch


class DrillSequencer:
    """Sequencer for one vault (module docstring).

    ``ts_ms``: the timestamp of the first command (ms); each command is one second later.
    """

    def __init__(self, client: VaultClient, key: LocalAccount, genesis: GenesisConfig,
                 ts_ms: int = 1_700_000_000_000) -> None:
        self.client = client
        self.key = key
        self.genesis = genesis
        self.live = ExchangeState(genesis)
        self.replica = Replica(genesis)
        self.separator = exchange_domain_separator(client.chain.chain_id, client.address)
        self.ts = ts_ms
        self.pending: list = []
        self.auths: list[Authorisation] = []
        self.forced: list[ForcedInclusion] = []
        self.requests: dict[int, ForcedRequest] = {}
        self.posted_root = self.replica.root
        self.posted_count = 0
        self._nonce = 0

    # ------------------------------------------------------------------ commands
    def next_ts(self) -> int:
        return self.ts + 1_000

    def submit(self, command, signer: LocalAccount | None = None, auth: Authorisation | None = None) -> list:
        """Sequence ``command`` (its seq and ts are replaced) and sign it as its account's
        owner with ``signer`` (or carry ``auth`` as given); returns the live state's events."""
        self.ts += 1_000
        command = msgspec.structs.replace(command, seq=self.live.last_seq + 1, ts=self.ts)
        if auth is None:
            auth = OPERATOR
            if signer is not None:
                auth = self.sign(command, signer, self.live.accounts[command.account].owner)
        events = apply(self.live, command)
        self.pending.append(command)
        self.auths.append(auth)
        return events

    def sign(self, command, signer: LocalAccount, owner: str) -> Authorisation:
        """An EIP-712 authorisation of ``command`` as ``owner``'s, by ``signer``'s key
        (the owner's own key for a genuine one)."""
        self._nonce += 1
        return sign_command(signer.key, self.separator, command, owner, self.ts + self._nonce)

    def credit_deposits(self) -> int:
        """Sequence a Deposit for every vault deposit not credited yet; returns how many."""
        count = 0
        head = self.client.chain.block_number()
        for event in self.client.deposits(0, head):
            if event.deposit_id > self.live.last_deposit_id:
                self.submit(Deposit(0, 0, event.owner, event.amount, event.deposit_id))
                count += 1
        return count

    def serve_forced(self, request_id: int) -> None:
        """Serve a vault forced-withdrawal request: the Withdraw the watcher would send,
        and its inclusion in the next batch."""
        request = self.client.forced_request(request_id)[0]
        self.requests[request_id] = request
        command = serving_withdraw(self.live, request)
        seq = 0
        if command is not None:
            self.submit(command)
            seq = self.live.last_seq
        self.forced.append(ForcedInclusion(request_id, seq))

    def account(self, owner: str) -> int:
        return self.live.owners[owner.lower()]

    # ------------------------------------------------------------------ batches
    def build(self) -> PreparedBatch:
        """Cut the pending commands into the next batch and replay it (honest root)."""
        number = self.replica.batch_number + 1
        batch = Batch(number, tuple(self.pending), tuple(self.auths), tuple(self.forced),
                      self.replica.state.last_seq + 1)
        data = encode_batch(batch)
        prev_root = self.posted_root
        outcome = self.replica.apply_batch(batch, self.requests)
        self.pending, self.auths, self.forced = [], [], []
        return PreparedBatch(number, prev_root, outcome.state_root, data, outcome.effects, batch)

    def post(self, prepared: PreparedBatch) -> PreparedBatch:
        """``submit_batch`` exactly what ``prepared`` says (tampered or not)."""
        self.client.submit_batch(self.key, prepared.batch_number, prepared.prev_root, prepared.new_root,
                                 prepared.data, prepared.effects)
        self.posted_root = prepared.new_root
        self.posted_count = prepared.batch_number
        return prepared

    def batch(self) -> PreparedBatch:
        """Build and post an honest batch."""
        return self.post(self.build())

    # ------------------------------------------------------------------ lies
    def root_with(self, batch_number: int, change: Callable[[ExchangeState], None]) -> bytes:
        """The state root of the replica's current state after ``change`` (applied to a
        copy): what a sequencer posts when it alters the state outside ``apply()``."""
        copy = decode_snapshot(encode_snapshot(self.replica.state))
        change(copy)
        return full_state_root(copy, batch_number)

    @staticmethod
    def with_root(prepared: PreparedBatch, root: bytes) -> PreparedBatch:
        return replace(prepared, new_root=root)
