"""Replaying batches: the state, state root and L1 effects a batch produces.

One :class:`Replica` is what both sides run: the sequencer's batcher (to build what it
submits) and each verifier (to check it, issue 7). It holds an ``ExchangeState`` and its
:class:`~clearway.commitment.exchange_state.StateCommitter`; ``apply_batch`` applies every
command with the domain's ``apply()`` and derives the batch's effects:

- ``withdrawals``: the ``Withdrawn`` events of ``Withdraw`` commands that serve no forced
  request, summed per owner address in order of first appearance (micro-USDC; the vault
  credits each owner once per batch);
- ``forced_served``: for each forced inclusion, in batch order, ``(request_id, amount)``
  with the amount the serving command actually withdrew (0 when it was rejected or when
  no command serves it) — paid by the vault to the requester;
- ``last_deposit_id``: the state's last applied deposit id after the batch.

Forced withdrawals (interim, until the domain has its own command): a request is served by
a domain ``Withdraw`` of the requester's account (forced.py builds it), named by the
batch's :class:`~clearway.commitment.batch.ForcedInclusion`. When the requests are known
(``requests``), the replay checks that the serving command is a ``Withdraw`` of the
requester's account for no more than the requested amount.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from clearway.commitment.batch import Batch
from clearway.commitment.effects import ForcedWithdrawalServed, Withdrawal, batch_effects_hash
from clearway.commitment.exchange_state import StateCommitter, touched_accounts
from clearway.domain.commands import Withdraw
from clearway.domain.events import Trade, Withdrawn
from clearway.domain.genesis import GenesisConfig
from clearway.domain.state import ExchangeState, apply


class ReplayErrorCode(IntEnum):
    """Why a batch cannot be replayed (commitment range 62xx)."""

    WRONG_BATCH_NUMBER = 6201
    SEQUENCE_GAP = 6202
    FORCED_UNKNOWN_REQUEST = 6203
    FORCED_NOT_A_WITHDRAWAL = 6204
    FORCED_WRONG_ACCOUNT = 6205
    FORCED_TOO_MUCH = 6206
    FORCED_DUPLICATE = 6207
    APPLY_FAILED = 6208


class ReplayError(Exception):
    """The batch cannot follow the replica's state. Raised before any command is applied
    for the structural checks (batch number, sequence, forced inclusions); an
    APPLY_FAILED error leaves the replica unusable (a domain bug: rebuild it)."""

    def __init__(self, code: ReplayErrorCode, message: str) -> None:
        super().__init__(f"{code.name} ({int(code)}): {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ForcedRequest:
    """A forced-withdrawal request as the vault recorded it (``ForcedWithdrawalRequested``).

    owner : lower-case 0x address; amount : micro-USDC; deadline : L1 timestamp (s).
    """

    request_id: int
    owner: str
    amount: int
    deadline: int = 0


@dataclass(frozen=True, slots=True)
class BatchEffects:
    """What a finalised batch makes the vault pay (effects.py has the hash formula)."""

    last_deposit_id: int
    withdrawals: tuple[Withdrawal, ...] = ()
    forced_served: tuple[ForcedWithdrawalServed, ...] = ()

    def hash(self) -> bytes:
        return batch_effects_hash(self.last_deposit_id, self.withdrawals, self.forced_served)

    @property
    def total_paid(self) -> int:
        """micro-USDC the batch makes claimable."""
        return sum(w.amount for w in self.withdrawals) + sum(f.amount for f in self.forced_served)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """Result of replaying one batch: its root (state root after it), effects, the
    accounts it touched and how many trades it made."""

    batch_number: int
    first_seq: int
    last_seq: int
    state_root: bytes
    effects: BatchEffects
    trades: int = 0
    touched: frozenset[int] = field(default_factory=frozenset)


class Replica:
    """An exchange state advanced batch by batch, with its commitment.

    Parameters
    ----------
    genesis : GenesisConfig
    state : ExchangeState | None
        Start from this state (e.g. a snapshot at a batch boundary) instead of genesis; its
        commitment is rebuilt in full.
    batch_number : int
        Number of the last batch ``state`` includes (0 for genesis).
    """

    def __init__(self, genesis: GenesisConfig, state: ExchangeState | None = None, batch_number: int = 0) -> None:
        self.genesis = genesis
        self.state = state if state is not None else ExchangeState(genesis)
        self.committer = StateCommitter(genesis)
        self.batch_number = batch_number
        self.root = self.committer.commit(self.state, None, batch_number) if batch_number else \
            self.committer.root(0, 0)
        self.served: set[int] = set()
        self._late_owner_checks: list = []

    def apply_batch(self, batch: Batch, requests: Mapping[int, ForcedRequest] | None = None) -> BatchOutcome:
        """Apply ``batch`` (the next one) and return its outcome; see the module docstring.

        Raises
        ------
        ReplayError
            WRONG_BATCH_NUMBER, SEQUENCE_GAP (its first command is not the next sequence
            number), FORCED_* (an inclusion that names no known request, a command that is
            not a Withdraw of the requester's account for at most the requested amount, or
            a request served twice) — before anything is applied, except FORCED_WRONG_ACCOUNT
            for an account the batch itself creates, checked after; APPLY_FAILED if
            ``apply`` raises. After an error raised once commands were applied the replica
            must be rebuilt.
        """
        state = self.state
        if batch.batch_number != self.batch_number + 1:
            raise ReplayError(ReplayErrorCode.WRONG_BATCH_NUMBER,
                              f"expected batch {self.batch_number + 1}, got {batch.batch_number}")
        if batch.first_seq != state.last_seq + 1:
            raise ReplayError(ReplayErrorCode.SEQUENCE_GAP,
                              f"batch starts at seq {batch.first_seq}, the state is at {state.last_seq}")
        forced_by_seq = self._check_forced(batch, requests)

        touched: set[int] | None = set()
        withdrawn: dict[str, int] = {}
        served: dict[int, int] = {}
        trades = 0
        for command in batch.commands:
            try:
                events = apply(state, command)
            except Exception as exc:
                raise ReplayError(ReplayErrorCode.APPLY_FAILED, f"seq {command.seq}: {exc!r}") from exc
            if touched is not None:
                more = touched_accounts(events)
                touched = None if more is None else touched | more
            for event in events:
                if type(event) is Trade:
                    trades += 1
                elif type(event) is Withdrawn and type(command) is Withdraw:
                    request_id = forced_by_seq.get(command.seq)
                    if request_id is not None:
                        served[request_id] = served.get(request_id, 0) + event.amount
                    else:
                        owner = state.accounts[event.account].owner
                        withdrawn[owner] = withdrawn.get(owner, 0) + event.amount
        for request, account_id in self._late_owner_checks:  # accounts created by this batch
            account = state.accounts.get(account_id)
            if account is None or account.owner != request.owner.lower():
                raise ReplayError(ReplayErrorCode.FORCED_WRONG_ACCOUNT,
                                  f"request {request.request_id} of {request.owner} is served from account {account_id}")
        root = self.committer.commit(state, touched, batch.batch_number)
        effects = BatchEffects(
            state.last_deposit_id,
            tuple(Withdrawal(owner, amount) for owner, amount in withdrawn.items()),
            tuple(ForcedWithdrawalServed(i.request_id, served.get(i.request_id, 0)) for i in batch.forced),
        )
        self.served.update(i.request_id for i in batch.forced)
        self.batch_number = batch.batch_number
        self.root = root
        return BatchOutcome(batch.batch_number, batch.first_seq, batch.last_seq, root, effects, trades,
                            frozenset(touched) if touched is not None else frozenset(state.accounts))

    def _check_forced(self, batch: Batch, requests: Mapping[int, ForcedRequest] | None) -> dict[int, int]:
        by_seq: dict[int, int] = {}
        seen: set[int] = set()
        late = self._late_owner_checks = []
        commands = batch.commands
        for inclusion in batch.forced:
            request_id = inclusion.request_id
            if request_id in seen or request_id in self.served:
                raise ReplayError(ReplayErrorCode.FORCED_DUPLICATE, f"request {request_id} served twice")
            seen.add(request_id)
            request = None
            if requests is not None:
                request = requests.get(request_id)
                if request is None:
                    raise ReplayError(ReplayErrorCode.FORCED_UNKNOWN_REQUEST, f"no forced request {request_id}")
            if not inclusion.seq:
                continue
            if inclusion.seq in by_seq:
                raise ReplayError(ReplayErrorCode.FORCED_DUPLICATE, f"seq {inclusion.seq} serves two requests")
            command = commands[inclusion.seq - batch.first_seq]
            if type(command) is not Withdraw:
                raise ReplayError(ReplayErrorCode.FORCED_NOT_A_WITHDRAWAL,
                                  f"request {request_id} is served by a {type(command).__name__}")
            if request is not None:
                if command.amount > request.amount:
                    raise ReplayError(ReplayErrorCode.FORCED_TOO_MUCH,
                                      f"request {request_id} asked {request.amount}, the batch withdraws {command.amount}")
                account = self.state.accounts.get(command.account)
                if account is not None and account.owner != request.owner.lower():
                    raise ReplayError(ReplayErrorCode.FORCED_WRONG_ACCOUNT,
                                      f"request {request_id} of {request.owner} is served from account {command.account}")
                if account is None:
                    late.append((request, command.account))
            by_seq[inclusion.seq] = request_id
        return by_seq

    def outcome_effects_hash(self, outcome: BatchOutcome) -> bytes:
        """Shortcut: the effects hash of an outcome (what verifiers sign)."""
        return outcome.effects.hash()



def serving_withdraw(state: ExchangeState, request: ForcedRequest) -> Withdraw | None:
    """The command the sequencer submits to serve ``request`` (seq and ts 0: the node
    assigns them): a ``Withdraw`` of the requester's account for min(requested, free
    collateral), micro-USDC. None when the requester has no (user) account or nothing is
    free: the request is then served with 0 by an inclusion without a command.

    Interim rule until the domain has a ``ForcedWithdrawal`` command: the amount is fixed
    when this is called; if the account's free collateral falls before the command is
    applied, the domain rejects it and the request is served with 0.
    """
    account_id = state.owners.get(request.owner.lower())
    if account_id is None or account_id < 2:
        return None
    account = state.accounts[account_id]
    try:
        free = state.margin.free_collateral(account)
    except KeyError:  # the account cannot be priced: nothing can be withdrawn
        return None
    amount = min(request.amount, free)
    return Withdraw(0, 0, account_id, amount) if amount > 0 else None
