"""The verifier: follows the vault on L1, replays every batch from chain data alone, and
attests the roots it reproduces — or refuses, with an alarm, and keeps refusing.

Trust: the chain (the vault's events, views and the calldata of ``submit_batch``) and the
genesis config whose keccak the vault holds. Nothing from the sequencer.

Each :meth:`Verifier.sync`:

1. **reads the chain** since the last block it scanned: ``BatchSubmitted``, ``Deposit``
   and ``ForcedWithdrawalRequested`` events;
2. **catches up** after a restart: batches already verified before it (up to its recorded
   height) are replayed again from the snapshot, silently;
3. **liveness**: a forced-withdrawal request past its deadline that no finalised batch
   served is an alarm (FORCED_OVERDUE, naming the requester); the verifier attests nothing
   more and freezes the vault (``freeze(request_id)``, anyone may) if configured;
4. **verifies** each new batch in order (``_verify``):

   a. the calldata hashes to the posted data hash and the posted previous root is the
      verifier's root;
   b. the data decodes (``decode_batch``), names this batch and the next sequence number;
   c. deposits are the vault's, in id order, none skipped, none overdue (checks.py);
   d. prices: the domain's oracle updates are counted (``apply()`` judges their reports);
      operator price commands are counted, or refused when ``require_oracle`` (prices.py);
   e. the replay — ``Replica.apply_batch``, i.e. the domain's ``apply()`` on every command,
      with the forced requests as the vault recorded them — succeeds;
   f. every SIGNED command recovers to its account's owner with a fresh nonce;
      operator-attested ones are counted;
   g. the replayed state root and effects hash equal the posted ones; when they do not,
      the batch is replayed again command by command to name an oracle update the domain
      rejects (``_diagnose``: a sequencer that applied it posts another root), else the
      mismatch is at the end of the batch (the root commits nothing in between).

   No finding: it signs the EIP-712 attestation, records it (store.py) and posts it on
   the attestation board (board.py). Any finding: it refuses the batch and records one
   alarm (alarms.py) naming the first diverging command and the accounts affected; every
   later batch is refused as BUILT_ON_REFUSED (they all chain onto the refused root);
5. **finalises** the next batches it attested once the board holds the vault's
   threshold of valid signatures (if configured: off when a batcher finalises).

A restarted verifier resumes from its snapshot (store.py; one per ``snapshot_every``
batches) and never signs anything different: signatures are deterministic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from clearway.chain.contracts import Attestation, sign_attestation
from clearway.chain.errors import ChainError
from clearway.chain.vault import DepositEvent, SubmittedBatch, VaultClient
from clearway.commitment import batch_data_hash
from clearway.commitment.authorisation import exchange_domain_separator
from clearway.commitment.batch import BatchDecodeError, decode_batch
from clearway.commitment.exchange_state import SYSTEM_ACCOUNTS, committed_genesis_hash
from clearway.commitment.replay import ForcedRequest, Replica, ReplayError
from clearway.domain.events import Rejected
from clearway.domain.genesis import GenesisConfig
from clearway.domain.snapshot import decode_snapshot, encode_snapshot
from clearway.domain.state import ExchangeState, apply
from clearway.verifier.alarms import Alarm, AlarmCode, Finding, VerifierStats
from clearway.verifier.board import AttestationBoard, finalisable_signatures
from clearway.verifier.checks import affected, check_authorisations, check_deposits, effects_difference, owner_account
from clearway.verifier.prices import check_prices, holders
from clearway.verifier.store import Snapshot, VerifierStore

log = logging.getLogger("clearway.verifier")

_ORACLE_CODES = (1500, 1600)  # ErrorCode's oracle group
_FORCED_CODES = {"FORCED_UNKNOWN_REQUEST", "FORCED_NOT_A_WITHDRAWAL", "FORCED_WRONG_ACCOUNT", "FORCED_TOO_MUCH",
                 "FORCED_DUPLICATE"}


class VerifierError(Exception):
    """The verifier cannot run: wrong genesis config, a key the vault does not list, a data
    directory of another vault."""


@dataclass(frozen=True)
class VerifierConfig:
    """How a verifier judges and acts.

    require_oracle : bool
        Refuse operator price commands (``SetMarkPrices``, ``SetMarketData``): every price
        must come from signed oracle reports (``OracleUpdate``).
    deposit_window_blocks : int | None
        A deposit mined this many blocks before a batch's submission must be in it or an
        earlier one (None: no deadline). Default ≈ one day of 12-second blocks.
    snapshot_every : int
        Persist the state every this many verified batches.
    finalise : bool
        Send ``finalise_batch`` when the board has enough signatures (the verifier's key
        pays the gas). Turn off when a batcher finalises from the same board.
    freeze_overdue : bool
        Send ``freeze`` when a forced withdrawal is overdue.
    start_block : int
        First block to read events from (the vault's deployment block).
    max_range : int
        Blocks per log query.
    """

    require_oracle: bool = False
    deposit_window_blocks: int | None = 7_200
    snapshot_every: int = 1
    finalise: bool = True
    freeze_overdue: bool = True
    start_block: int = 0
    max_range: int = 2_000


@dataclass
class SyncReport:
    """What one sync did: batches attested, refused, finalised (by this verifier), alarms
    recorded, and whether the vault is frozen at the end."""

    attested: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    finalised: list[int] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)
    frozen: bool = False


@dataclass
class _Verdict:
    findings: list[Finding]
    attestation: Attestation | None = None
    stats: VerifierStats = field(default_factory=VerifierStats)
    nonces: list[tuple[str, int]] = field(default_factory=list)
    dirty: bool = False


class Verifier:
    """One verifier key following one vault (module docstring).

    Parameters
    ----------
    client : VaultClient
        The vault on its chain (``attach_vault`` for an existing one).
    key : LocalAccount
        The verifier's signing key; must be one of the vault's verifiers.
    genesis : GenesisConfig
        Its keccak must be the vault's ``genesis_config_hash`` (VerifierError otherwise).
    data_dir : Path
        The verifier's own directory (store.py).
    board : AttestationBoard | None
        Where signatures are posted and collected (None: sign and record only).
    config : VerifierConfig
    name : str
        For logs and reports.
    """

    def __init__(self, client: VaultClient, key: LocalAccount, genesis: GenesisConfig, data_dir: Path | str,
                 board: AttestationBoard | None = None, config: VerifierConfig = VerifierConfig(),
                 name: str = "") -> None:
        self.client = client
        self.key = key
        self.genesis = genesis
        self.board = board
        self.config = config
        self.name = name or key.address
        self.chain_id = client.chain.chain_id
        genesis_hash = committed_genesis_hash(genesis)
        if client.view("genesis_config_hash") != genesis_hash:
            raise VerifierError("the vault's genesis_config_hash is not the keccak of this genesis config")
        if client.view("verifier_slot", key.address) == 0:
            raise VerifierError(f"{key.address} is not a verifier of the vault {client.address}")
        self.threshold = client.view("threshold")
        self.verifier_set = {client.view("verifiers", i) for i in range(client.view("verifier_count"))}
        self._separator = exchange_domain_separator(self.chain_id, client.address)
        self.store = VerifierStore(data_dir)
        self.store.bind({"chain_id": self.chain_id, "vault": client.address, "genesis": "0x" + genesis_hash.hex(),
                         "verifier": key.address})
        self._submitted: dict[int, SubmittedBatch] = {}
        self._deposits: dict[int, DepositEvent] = {}
        self._forced: dict[int, ForcedRequest] = {}
        self._scanned = config.start_block - 1
        self._alarmed = {a.batch_number for a in self.store.alarms() if a.new_root}
        self._overdue_alarmed = set(self.store.get_meta("overdue_alarmed", []))
        self._load()

    # ------------------------------------------------------------------ state
    def _load(self) -> None:
        """Resume from the snapshot (or genesis); batches after it up to the recorded
        height are verified again by the next sync."""
        snapshot = self.store.snapshot()
        if snapshot is None:
            self.replica = Replica(self.genesis)
            self.stats = VerifierStats()
        else:
            self.replica = Replica(self.genesis, decode_snapshot(snapshot.state), snapshot.batch_number)
            if self.replica.root != snapshot.root:
                raise VerifierError(f"the snapshot of batch {snapshot.batch_number} does not rebuild its root")
            self.replica.served = set(snapshot.served)
            self.stats = snapshot.stats
        self.height = self.replica.batch_number
        self.store.forget_after(self.height)
        self._recorded_height = self.store.get_meta("height", 0)

    @property
    def address(self) -> str:
        return self.key.address

    @property
    def refuse_from(self) -> int | None:
        """First batch number this verifier refuses (None while it has no alarm)."""
        return self.store.get_meta("refuse_from")

    @property
    def halted(self) -> bool:
        return self.refuse_from is not None

    @property
    def alarms(self) -> list[Alarm]:
        return self.store.alarms()

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ sync
    def sync(self) -> SyncReport:
        """One round (module docstring). Chain errors propagate (a later sync retries)."""
        report = SyncReport()
        head = self.client.chain.block_number()
        self._scan(head)
        finalised = self.client.finalised_count()
        frozen = self.client.frozen()
        for number in sorted(n for n in self._submitted if n <= self._recorded_height and n > self.height):
            if self.refuse_from is not None and number >= self.refuse_from:
                break
            self._verify_and_record(self._submitted[number], report, catch_up=True)
        frozen = self._check_overdue(finalised, frozen, head, report)
        for number in sorted(n for n in self._submitted if n > self.height):
            submitted = self._submitted[number]
            if self.refuse_from is not None and number >= self.refuse_from:
                self._refuse_later(submitted, head, report)
                continue
            if number != self.height + 1:
                break
            self._verify_and_record(submitted, report, catch_up=False, frozen=frozen, head=head)
        if not frozen:
            self._finalise(finalised, report)
        report.frozen = frozen or self.client.frozen()
        self.store.set_meta(vault_batches=max(self._submitted, default=0), vault_finalised=self.client.finalised_count(),
                            head_block=head, frozen=report.frozen)
        return report

    def _scan(self, head: int) -> None:
        start = self._scanned + 1
        while start <= head:
            end = min(head, start + self.config.max_range - 1)
            for submitted in self.client.submitted_batches(start, end):
                self._submitted[submitted.batch_number] = submitted
            for deposit in self.client.deposits(start, end):
                self._deposits[deposit.deposit_id] = deposit
            for request, _ in self.client.forced_requests(start, end):
                self._forced[request.request_id] = request
            self._scanned = end
            start = end + 1

    def _verify_and_record(self, submitted: SubmittedBatch, report: SyncReport, catch_up: bool,
                           frozen: bool = False, head: int = 0) -> None:
        verdict = self._verify(submitted)
        number = submitted.batch_number
        if verdict.findings:
            alarm = Alarm.from_findings(number, verdict.findings, submitted.new_root, head)
            if number not in self._alarmed:
                self.store.add_alarm(alarm)
                self._alarmed.add(number)
                report.alarms.append(alarm)
                log.warning("%s refuses %s", self.name, alarm.describe())
            self.store.set_meta(refuse_from=number)
            report.refused.append(number)
            if verdict.dirty:
                self._load()  # back to the last good batch (the state of the escape)
            return
        self.stats.add(verdict.stats)
        self.height = number
        attestation = verdict.attestation
        signed = None
        if not frozen:
            signature = sign_attestation(self.key.key, self.chain_id, self.client.address, attestation)
            signed = (attestation, signature)
        snapshot = None
        if self.config.snapshot_every <= 1 or number % self.config.snapshot_every == 0:
            snapshot = Snapshot(number, self.replica.root, encode_snapshot(self.replica.state),
                                tuple(sorted(self.replica.served)), self.stats)
        self.store.record_batch(number, verdict.nonces, signed, snapshot,
                                height=max(number, self._recorded_height))
        self._recorded_height = max(number, self._recorded_height)
        if signed is not None:
            if self.board is not None:
                self.board.post(self.address, *signed)
            if not catch_up:
                report.attested.append(number)

    def _refuse_later(self, submitted: SubmittedBatch, head: int, report: SyncReport) -> None:
        number = submitted.batch_number
        report.refused.append(number)
        if number in self._alarmed:
            return
        first = self.refuse_from
        if first in self._alarmed and number > first:
            finding = Finding(AlarmCode.BUILT_ON_REFUSED,
                              f"batch {number} builds on batch {first}, which this verifier refused", None, (), True)
        else:
            finding = Finding(AlarmCode.HALTED, f"this verifier attests nothing from batch {first} on (a forced "
                              "withdrawal is overdue)", None, (), True)
        alarm = Alarm(number, finding, (), submitted.new_root, head)
        self.store.add_alarm(alarm)
        self._alarmed.add(number)
        report.alarms.append(alarm)

    # ------------------------------------------------------------------ one batch
    def _verify(self, submitted: SubmittedBatch) -> _Verdict:
        """Every check of one batch (module docstring, step 4)."""
        replica = self.replica
        state = replica.state
        number = submitted.batch_number
        data = self.client.batch_data(submitted)
        if batch_data_hash(data) != submitted.data_hash:
            return _Verdict([Finding(AlarmCode.DATA_HASH_MISMATCH, "the calldata does not hash to the data hash",
                                     all_accounts=True)])
        if submitted.prev_root != replica.root:
            return _Verdict([Finding(AlarmCode.PREV_ROOT_MISMATCH, "the previous root is not the verified root of "
                                     f"batch {replica.batch_number}", all_accounts=True)])
        try:
            batch = decode_batch(data)
        except BatchDecodeError as exc:
            return _Verdict([Finding(AlarmCode.UNDECODABLE, f"{len(data)} bytes of batch data: {exc}",
                                     all_accounts=True)])
        if batch.batch_number != number:
            return _Verdict([Finding(AlarmCode.WRONG_BATCH_NUMBER, f"the data is batch {batch.batch_number}",
                                     all_accounts=True)])
        if batch.first_seq != state.last_seq + 1:
            return _Verdict([Finding(AlarmCode.SEQUENCE_GAP, f"the data starts at seq {batch.first_seq}, the "
                                     f"verified state is at {state.last_seq}", batch.first_seq, (), True)])
        findings: list[Finding] = []
        stats = VerifierStats(batches=1, commands=len(batch.commands), forced_served=len(batch.forced))
        deposit_findings, stats.deposits = check_deposits(batch, self._deposits, state.last_deposit_id,
                                                          submitted.block_number, self.config.deposit_window_blocks,
                                                          state)
        findings += deposit_findings
        prices = check_prices(batch.commands, state, self.config.require_oracle)
        findings += prices.findings
        stats.oracle_updates, stats.oracle_reports = prices.oracle_updates, prices.reports
        stats.operator_prices = prices.operator_prices
        touched_before = {a for a in state.accounts}
        requests = {i.request_id: self._forced[i.request_id] for i in batch.forced if i.request_id in self._forced}
        try:
            outcome = replica.apply_batch(batch, requests)
        except ReplayError as exc:
            code = AlarmCode.FORCED_INVALID if exc.code.name in _FORCED_CODES else AlarmCode.REPLAY_FAILED
            findings.append(Finding(code, str(exc), None, (), code == AlarmCode.REPLAY_FAILED))
            return _Verdict(findings, dirty=True)
        state = replica.state
        auth = check_authorisations(batch, state, self._separator, self.store.nonce_used)
        findings += auth.findings
        stats.signed_commands, stats.operator_attested = auth.signed, auth.operator_attested
        stats.trades = outcome.trades
        if outcome.state_root != submitted.new_root:
            touched = set(outcome.touched) | (set(state.accounts) - touched_before) | set(SYSTEM_ACCOUNTS)
            findings.append(Finding(AlarmCode.ROOT_MISMATCH,
                                    f"the replay of seq {batch.first_seq}..{batch.last_seq} gives root "
                                    f"0x{outcome.state_root.hex()[:16]}…, the sequencer posted "
                                    f"0x{submitted.new_root.hex()[:16]}… (accounts: those the batch touched and "
                                    "the system accounts)",
                                    None, affected(state, touched)))
        if outcome.effects.hash() != submitted.effects_hash:
            findings.append(self._effects_finding(submitted, outcome, requests))
        if findings and all(f.seq is None for f in findings):
            findings += self._diagnose(number, batch)
        if findings:
            return _Verdict(findings, dirty=True)
        attestation = Attestation(number, submitted.prev_root, submitted.new_root, submitted.data_hash,
                                  submitted.effects_hash)
        return _Verdict([], attestation, stats, auth.nonces)

    def _effects_finding(self, submitted: SubmittedBatch, outcome, requests) -> Finding:
        calldata = self.client.chain.transaction_input(submitted.tx_hash)
        args = self.client.vault.abi.decode_call("submit_batch", calldata)
        last_deposit_id, withdrawals, forced = args[4], args[5], args[6]
        effects = outcome.effects
        accounts = effects_difference(self.replica.state, withdrawals, effects.withdrawals, forced,
                                      effects.forced_served, requests)
        detail = []
        if last_deposit_id != effects.last_deposit_id:
            detail.append(f"last deposit id {last_deposit_id} posted, {effects.last_deposit_id} replayed")
        if accounts:
            detail.append("payments differ")
        return Finding(AlarmCode.EFFECTS_MISMATCH, "the posted L1 effects are not the replay's: "
                       + ("; ".join(detail) or "hash differs"), None, accounts)

    def _diagnose(self, number: int, batch) -> list[Finding]:
        """Name the first diverging command of a root or effects mismatch where the domain
        says why: replay the batch again, command by command, from the state before it
        (genesis, or the snapshot of batch ``number − 1``), and return a finding at the first
        command ``apply()`` rejects with an oracle code — ORACLE_NO_QUORUM for an update below
        quorum, ORACLE_REJECTED otherwise: a sequencer that applied it posts another root. Nothing when no
        such snapshot is kept (``snapshot_every`` > 1) or no command qualifies.

        (Only on a mismatch: ``Replica.apply_batch`` does not return each command's events,
        so an honest batch's rejected updates are not counted — see the package notes.)"""
        if number == 1:
            state = ExchangeState(self.genesis)
        else:
            snapshot = self.store.snapshot()
            if snapshot is None or snapshot.batch_number != number - 1:
                return []
            state = decode_snapshot(snapshot.state)
        for command in batch.commands:
            try:
                events = apply(state, command)
            except Exception:  # the replay itself failed on it: REPLAY_FAILED says so
                return []
            for event in events:
                if type(event) is Rejected and _ORACLE_CODES[0] <= int(event.code) < _ORACLE_CODES[1]:
                    underlying = getattr(command, "underlying", None)
                    code = AlarmCode.ORACLE_NO_QUORUM if event.code.name == "ORACLE_NO_QUORUM" else \
                        AlarmCode.ORACLE_REJECTED
                    reports = "".join(f"; report {e.position} ({e.reporter}): {e.code.name}" for e in events
                                      if hasattr(e, "position") and hasattr(e, "code"))
                    return [Finding(code,
                                    f"the domain rejects this {type(command).__name__} ({event.code.name}: "
                                    f"{event.message}{reports}); a sequencer that applied it posts another root",
                                    command.seq, holders(state, underlying) if underlying else ())]
        return []

    # ------------------------------------------------------------------ liveness
    def _check_overdue(self, finalised: int, frozen: bool, head: int, report: SyncReport) -> bool:
        """FORCED_OVERDUE alarms (and freeze, unless ``frozen`` already) for overdue
        unserved requests; returns whether the vault is frozen afterwards."""
        now = self.client.chain.timestamp()
        for request_id in sorted(self._forced):
            request = self._forced[request_id]
            if request.deadline >= now:
                continue
            _, served_in, _ = self.client.forced_request(request_id)
            if served_in and served_in <= finalised:
                continue
            if request_id not in self._overdue_alarmed:
                who = (owner_account(self.replica.state, request.owner),)
                finding = Finding(AlarmCode.FORCED_OVERDUE, f"forced withdrawal {request_id} of {request.amount} "
                                  f"for {request.owner} passed its deadline {request.deadline} unserved", None, who)
                alarm = Alarm(max(self._submitted, default=0), finding, (), b"", head)
                self.store.add_alarm(alarm)
                self._overdue_alarmed.add(request_id)
                self.store.set_meta(overdue_alarmed=sorted(self._overdue_alarmed))
                if self.refuse_from is None:
                    self.store.set_meta(refuse_from=self.height + 1)
                report.alarms.append(alarm)
                log.warning("%s: %s", self.name, alarm.describe())
            if self.config.freeze_overdue and not frozen:
                try:
                    self.client.freeze(self.key, request_id)
                    log.warning("%s froze the vault (request %d overdue)", self.name, request_id)
                except ChainError as exc:
                    log.info("%s: freeze(%d) refused: %s", self.name, request_id, exc)
                frozen = self.client.frozen()
        return frozen

    # ------------------------------------------------------------------ finalisation
    def _finalise(self, finalised: int, report: SyncReport) -> None:
        if not self.config.finalise or self.board is None:
            return
        number = finalised + 1
        while number <= self.height:
            held = self.store.attestation(number)
            if held is None:
                return
            signatures = finalisable_signatures(self.board, held[0], self.chain_id, self.client.address,
                                                self.verifier_set)
            if len(signatures) < self.threshold:
                return
            try:
                self.client.finalise_batch(self.key, number, signatures)
            except ChainError as exc:  # another finaliser was first, or the vault froze
                log.info("%s: finalise_batch(%d) refused: %s", self.name, number, exc)
                return
            report.finalised.append(number)
            number += 1

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        """Height, lag behind the sequencer, counters and alarms (what ``verifier status``
        prints); chain figures as of the last sync."""
        return status_from_store(self.store)


def status_from_store(store: VerifierStore, vault_batches: int | None = None,
                      vault_finalised: int | None = None) -> dict[str, Any]:
    """The status of the verifier whose store this is; live vault counts override the
    ones recorded at its last sync."""
    identity = store.get_meta("identity", {})
    snapshot = store.snapshot()
    height = store.get_meta("height", 0)
    batches = vault_batches if vault_batches is not None else store.get_meta("vault_batches", 0)
    finalised = vault_finalised if vault_finalised is not None else store.get_meta("vault_finalised", 0)
    alarms = store.alarms()
    return {
        "verifier": identity.get("verifier"),
        "vault": identity.get("vault"),
        "chain_id": identity.get("chain_id"),
        "height": height,
        "sequencer_batches": batches,
        "lag": max(0, batches - height),
        "finalised": finalised,
        "attested": store.attested_count(),
        "snapshot_batch": snapshot.batch_number if snapshot else 0,
        "refusing_from": store.get_meta("refuse_from"),
        "frozen": store.get_meta("frozen", False),
        "head_block": store.get_meta("head_block", 0),
        "stats": snapshot.stats.to_json() if snapshot else VerifierStats().to_json(),
        "alarms": [a.to_json() for a in alarms],
    }

