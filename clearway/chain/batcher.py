"""The batcher: journal → batches on L1 → finalisation.

Every ``step()``:

1. **resume** (first step only): replays the batches it stored (inbox.py) into its own
   :class:`~clearway.commitment.replay.Replica` (checking each root) and reconciles them
   with the vault: a stored batch the vault already has must have the same root
   (ChainError BATCH_CONFLICT otherwise) and is marked submitted; finalised likewise.
2. **submits** stored batches the vault does not have yet, with exactly the stored bytes:
   a retry after a crash or a failed transaction is idempotent by batch number.
3. **builds** new batches from the journal once ``max_commands`` commands are pending or
   the oldest pending one has waited ``max_seconds`` (or ``force``): the commands after the
   last batch, cut so that the batch respects the vault's limits (≤ 64 withdrawal
   commands, ≤ 32 forced inclusions, data ≤ 64 KiB), with the authorisations from the
   inbox and the forced inclusions whose serving command falls in the batch. It replays
   them in the replica (root, effects), checks that the encoded data decodes to the same
   commands, stores the batch, then submits it.
4. **finalises** submitted batches in order when the attestation source returns at least
   the vault's threshold of signatures.

The journal is read through the :class:`CommandLog` protocol (``read_after(seq, limit)``
of ``clearway.engine.journal.Journal``), so this module never imports the engine.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from eth_account.signers.local import LocalAccount

from clearway.chain.contracts import MAX_BATCH_DATA, MAX_FORCED_PER_BATCH, MAX_WITHDRAWALS_PER_BATCH, Signature
from clearway.chain.errors import ChainError, ChainErrorCode
from clearway.chain.inbox import BUILT, FINALISED, SUBMITTED, Inbox, StoredBatch
from clearway.chain.vault import VaultClient
from clearway.commitment.authorisation import OPERATOR
from clearway.commitment.batch import Batch, ForcedInclusion, decode_batch, encode_batch
from clearway.commitment.replay import Replica, ReplayError
from clearway.domain.commands import Withdraw, decode_command
from clearway.domain.genesis import GenesisConfig

log = logging.getLogger("clearway.chain")


class CommandLog(Protocol):
    """Read access to the journal: records ``(seq, encode_command bytes, checksum)`` with
    sequence numbers above ``seq``, ascending, at most ``limit``."""

    def read_after(self, seq: int, limit: int) -> list[tuple[int, bytes, int]]: ...


class AttestationSource(Protocol):
    """Collects verifier signatures of a submitted batch's attestation (issue 7's
    verifiers; the selftest's local verifiers)."""

    def signatures(self, batch: StoredBatch) -> list[Signature]: ...


@dataclass
class StepReport:
    """What one step did: batch numbers built, submitted and finalised, and the gas (by
    batch number) of their submit and finalise transactions."""

    built: list[int] = field(default_factory=list)
    submitted: list[int] = field(default_factory=list)
    finalised: list[int] = field(default_factory=list)
    submit_gas: dict[int, int] = field(default_factory=dict)
    finalise_gas: dict[int, int] = field(default_factory=dict)


class Batcher:
    """Builds, submits and finalises batches (module docstring).

    Parameters
    ----------
    client : VaultClient
    sequencer : LocalAccount
        The vault's sequencer key (the only one allowed to submit).
    genesis : GenesisConfig
        Must be the one whose keccak the vault holds.
    journal : CommandLog
    inbox : Inbox
    attestations : AttestationSource | None
        Without one, batches are submitted but never finalised here.
    max_commands : int
        Cut a batch once this many commands are pending (and never put more in one).
    max_seconds : float
        … or once the oldest pending command has waited this long.
    data_limit : int
        Largest batch data in bytes (the vault's 64 KiB).
    clock : callable → float
        Seconds (monotonic), injectable for tests.
    """

    def __init__(self, client: VaultClient, sequencer: LocalAccount, genesis: GenesisConfig, journal: CommandLog,
                 inbox: Inbox, attestations: AttestationSource | None = None, max_commands: int = 5_000,
                 max_seconds: float = 10.0, data_limit: int = MAX_BATCH_DATA,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.sequencer = sequencer
        self.genesis = genesis
        self.journal = journal
        self.inbox = inbox
        self.attestations = attestations
        self.max_commands = max_commands
        self.max_seconds = max_seconds
        self.data_limit = data_limit
        self.clock = clock
        self.replica = Replica(genesis)
        self._resumed = False
        self._pending_since: float | None = None
        self._threshold: int | None = None

    # ------------------------------------------------------------------ the step
    def step(self, force: bool = False) -> StepReport:
        """One round of resume / submit / build / finalise (module docstring).

        Raises ChainError (BATCH_CONFLICT, REPLAY_MISMATCH, or a failed transaction: a
        later step retries it) and ReplayError if the journal holds a batch the replica
        cannot apply (a bug: the sequencer and the replica disagree)."""
        report = StepReport()
        if not self._resumed:
            self._resume()
        for stored in self.inbox.batches(BUILT):
            self._submit(stored, report)
        while True:
            pending = self.journal.read_after(self.replica.state.last_seq, self.max_commands)
            forced_waiting = [r for r in self.inbox.forced(unserved_only=True) if r.seq is not None]
            if not pending and not forced_waiting:
                self._pending_since = None
                break
            now = self.clock()
            if self._pending_since is None:
                self._pending_since = now
            due = force or len(pending) >= self.max_commands or now - self._pending_since >= self.max_seconds
            if not due:
                break
            stored = self._build(pending)
            if stored is None:
                break
            report.built.append(stored.batch_number)
            if not pending or stored.last_seq >= pending[-1][0]:
                self._pending_since = None  # else the rest was cut by a limit and is due too
            self._submit(stored, report)
        self._finalise(report)
        return report

    # ------------------------------------------------------------------ building
    def _build(self, records: Sequence[tuple[int, bytes, int]]) -> StoredBatch | None:
        replica = self.replica
        first_seq = replica.state.last_seq + 1
        commands = [decode_command(bytes(data)) for _, data, _ in records]
        for i, command in enumerate(commands):
            if command.seq != first_seq + i:
                raise ChainError(ChainErrorCode.REPLAY_MISMATCH,
                                 f"journal record {records[i][0]} holds seq {command.seq}, expected {first_seq + i}")
        forced_records = [r for r in self.inbox.forced(unserved_only=True) if r.seq is not None]
        requests = {r.request.request_id: r.request for r in forced_records}
        count = self._limit_withdrawals(commands, {r.seq for r in forced_records if r.seq})
        count = self._limit_forced(count, first_seq, forced_records)
        number = replica.batch_number + 1
        while True:
            batch = self._batch(number, first_seq, commands[:count], forced_records)
            if not batch.commands and not batch.forced:
                return None
            data = encode_batch(batch)
            if len(data) <= self.data_limit:
                break
            if count <= 1:
                raise ChainError(ChainErrorCode.BATCH_TOO_LARGE, f"one command encodes to {len(data)} bytes")
            count = count * 3 // 4
        if decode_batch(data) != batch:
            raise ChainError(ChainErrorCode.REPLAY_MISMATCH, f"batch {number} does not decode to its commands")
        prev_root = replica.root
        outcome = replica.apply_batch(batch, requests)
        stored = StoredBatch(number, batch.first_seq, batch.last_seq, prev_root, outcome.state_root, data,
                             outcome.effects, outcome.trades, BUILT)
        self.inbox.store_batch(stored)
        self.inbox.set_forced_batch([i.request_id for i in batch.forced], number)
        log.info("built batch %d: seq %d..%d, %d bytes, %d trades", number, batch.first_seq, batch.last_seq,
                 len(data), outcome.trades)
        return stored

    @staticmethod
    def _limit_withdrawals(commands: list, forced_seqs: set[int]) -> int:
        """Largest prefix with at most MAX_WITHDRAWALS_PER_BATCH ordinary Withdraw commands
        (each yields at most one withdrawal effect)."""
        seen = 0
        for i, command in enumerate(commands):
            if type(command) is Withdraw and command.seq not in forced_seqs:
                seen += 1
                if seen > MAX_WITHDRAWALS_PER_BATCH:
                    return i
        return len(commands)

    @staticmethod
    def _limit_forced(count: int, first_seq: int, forced_records: list) -> int:
        """Cut before the serving command of the first forced request that would exceed
        MAX_FORCED_PER_BATCH inclusions, so that no serving command lands in a batch
        without its inclusion (it would be paid as an ordinary withdrawal)."""
        budget = MAX_FORCED_PER_BATCH - sum(1 for r in forced_records if not r.seq or r.seq < first_seq)
        seqs = sorted(r.seq for r in forced_records if r.seq and r.seq >= first_seq)
        if budget < 0:
            return 0
        if len(seqs) > budget:
            count = min(count, seqs[budget] - first_seq)
        return count

    def _batch(self, number: int, first_seq: int, commands: list, forced_records: list) -> Batch:
        last_seq = first_seq + len(commands) - 1
        auths = self.inbox.authorisations(first_seq, last_seq) if commands else {}
        inclusions = []
        for record in forced_records:  # by request id
            seq = record.seq
            if seq and seq > last_seq:
                continue
            if seq and seq < first_seq:
                # journaled before an earlier batch but not included (lost inbox write):
                # its Withdraw was paid as an ordinary withdrawal; serve the request with 0
                log.warning("forced request %d: serving command %d is in an earlier batch", record.request.request_id,
                            seq)
                seq = 0
            inclusions.append(ForcedInclusion(record.request.request_id, seq))
            if len(inclusions) == MAX_FORCED_PER_BATCH:
                break
        return Batch(number, tuple(commands), tuple(auths.get(c.seq, OPERATOR) for c in commands),
                     tuple(inclusions), first_seq)

    # ------------------------------------------------------------------ chain
    def _submit(self, stored: StoredBatch, report: StepReport) -> None:
        on_chain = self.client.batch_count()
        if on_chain >= stored.batch_number:
            self._check_same(stored)
        else:
            if on_chain != stored.batch_number - 1:
                return  # an earlier stored batch is not on chain yet: it goes first
            receipt = self.client.submit_batch(self.sequencer, stored.batch_number, stored.prev_root,
                                               stored.new_root, stored.data, stored.effects)
            report.submit_gas[stored.batch_number] = receipt.gas_used
        self.inbox.set_status(stored.batch_number, SUBMITTED)
        report.submitted.append(stored.batch_number)

    def _check_same(self, stored: StoredBatch) -> None:
        root = self.client.batch_root(stored.batch_number)
        if root != stored.new_root:
            raise ChainError(ChainErrorCode.BATCH_CONFLICT,
                             f"the vault's batch {stored.batch_number} has root {root.hex()}, ours {stored.new_root.hex()}")

    def _finalise(self, report: StepReport) -> None:
        if self.attestations is None:
            return
        if self._threshold is None:
            self._threshold = self.client.view("threshold")
        finalised = self.client.finalised_count()
        for stored in self.inbox.batches(SUBMITTED):
            if stored.batch_number <= finalised:
                self.inbox.set_status(stored.batch_number, FINALISED)
                continue
            if stored.batch_number != finalised + 1:
                break
            signatures = self.attestations.signatures(stored)
            if len(signatures) < self._threshold:
                log.info("batch %d: %d of %d attestations", stored.batch_number, len(signatures), self._threshold)
                break
            receipt = self.client.finalise_batch(self.sequencer, stored.batch_number, signatures)
            report.finalise_gas[stored.batch_number] = receipt.gas_used
            self.inbox.set_status(stored.batch_number, FINALISED)
            report.finalised.append(stored.batch_number)
            finalised = stored.batch_number

    def _resume(self) -> None:
        """Replay stored batches into the replica and reconcile with the vault."""
        for stored in self.inbox.batches():
            try:
                outcome = self.replica.apply_batch(decode_batch(stored.data))
            except ReplayError as exc:
                raise ChainError(ChainErrorCode.REPLAY_MISMATCH, f"stored batch {stored.batch_number}: {exc}") from exc
            if outcome.state_root != stored.new_root:
                raise ChainError(ChainErrorCode.REPLAY_MISMATCH,
                                 f"stored batch {stored.batch_number} replays to another root")
        on_chain = self.client.batch_count()
        finalised = self.client.finalised_count()
        for stored in self.inbox.batches():
            if stored.batch_number <= on_chain:
                self._check_same(stored)
                status = FINALISED if stored.batch_number <= finalised else SUBMITTED
                if stored.status != status:
                    self.inbox.set_status(stored.batch_number, status)
        self._resumed = True
