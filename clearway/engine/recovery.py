"""Recovery: the newest valid snapshot plus a replay of the journal tail.

Steps (``recover``):

1. Check the journal's genesis against the node's (store it if the journal is new).
2. Snapshots, newest first: skip one whose sequence number is past the journal's end,
   whose file is damaged (length, checksum), which does not decode, whose restored state
   has another hash or genesis than recorded, or whose anchor does not match the journal
   record at its sequence number. Skipped files are renamed ``*.bad``; the first valid
   one is the starting state (else the genesis state).
3. Replay every journal record after it through ``apply``. The first record that is
   missing (a gap), fails its checksum, does not decode, or is refused by the state
   machine's sequence check ends the journal: it and everything after it are cut (moved
   to the quarantine table), since nothing after a hole can be applied.
4. Snapshots past the recovered end are set aside like damaged ones.

The result has the state hash of an uninterrupted run over the same records.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from clearway.domain.commands import decode_command
from clearway.domain.errors import SequenceError
from clearway.domain.genesis import GenesisConfig
from clearway.domain.snapshot import SnapshotError, decode_snapshot
from clearway.domain.state import ExchangeState, apply, state_hash
from clearway.engine.errors import JournalError, RecoveryError
from clearway.engine.journal import Journal, iter_records, record_checksum
from clearway.engine.snapshots import SnapshotCorrupt, SnapshotStore, anchor_of

log = logging.getLogger("clearway.engine")


@dataclass
class RecoveryReport:
    """What recovery found and did.

    snapshot_seq : sequence number of the snapshot used (0: started from genesis)
    snapshots_skipped : (seq, reason) of every snapshot set aside
    replayed : journal records applied after the snapshot
    cut_from : first sequence number cut from the journal, or None
    cut_records : how many records were cut
    cut_reason : why the first cut record was refused
    last_seq, state_hash : of the recovered state
    seconds : wall time of the whole recovery
    """

    snapshot_seq: int = 0
    snapshots_skipped: list[tuple[int, str]] = field(default_factory=list)
    replayed: int = 0
    cut_from: int | None = None
    cut_records: int = 0
    cut_reason: str = ""
    last_seq: int = 0
    state_hash: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "snapshot_seq": self.snapshot_seq,
            "snapshots_skipped": [list(s) for s in self.snapshots_skipped],
            "replayed": self.replayed,
            "cut_from": self.cut_from,
            "cut_records": self.cut_records,
            "cut_reason": self.cut_reason,
            "last_seq": self.last_seq,
            "state_hash": self.state_hash,
            "seconds": round(self.seconds, 3),
        }


def resolve_genesis(journal: Journal, genesis: GenesisConfig | None) -> GenesisConfig:
    """The genesis to run with: the journal's, checked against ``genesis`` if both exist;
    ``genesis`` (stored now) for a new journal; the default GenesisConfig if neither.

    Raises JournalError if the journal was started with a different genesis."""
    stored = journal.genesis()
    if stored is None:
        genesis = genesis if genesis is not None else GenesisConfig()
        if journal.last_seq() != 0:
            raise JournalError("journal has records but no genesis")
        journal.set_genesis(genesis.encode())
        return genesis
    try:
        stored_genesis = GenesisConfig.decode(stored)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise JournalError(f"stored genesis is unreadable: {exc}") from exc
    if genesis is not None and genesis.config_hash() != stored_genesis.config_hash():
        raise JournalError("the journal was started with a different genesis config")
    return stored_genesis


def recover(journal: Journal, store: SnapshotStore, genesis: GenesisConfig) -> tuple[ExchangeState, RecoveryReport]:
    """Rebuild the state from ``store`` and ``journal`` (see the module docstring).

    Returns the state, whose ``last_seq`` is the journal's last whole record, and a report.
    Mutates the journal (cut) and the snapshot directory (``*.bad`` renames).

    Raises
    ------
    RecoveryError
        ``apply`` raised something other than SequenceError on a journaled command.
    """
    started = time.perf_counter()
    report = RecoveryReport()
    end = journal.last_seq()
    store.remove_temporaries()
    state: ExchangeState | None = None
    for seq in store.sequences():
        reason = _check_snapshot(journal, store, genesis, seq, end)
        if isinstance(reason, ExchangeState):
            state = reason
            break
        _set_aside(store, seq, reason, report)
    if state is None:
        state = ExchangeState(genesis)
    report.snapshot_seq = state.last_seq

    expected = state.last_seq + 1
    for seq, data, checksum in iter_records(journal, state.last_seq):
        problem = None
        if seq != expected:
            problem = f"gap: expected seq {expected}, found {seq}"
        elif record_checksum(seq, bytes(data)) != checksum:
            problem = "checksum mismatch"
        else:
            try:
                command = decode_command(bytes(data))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                problem = f"undecodable: {exc}"
            else:
                if command.seq != seq:
                    problem = f"record {seq} holds command seq {command.seq}"
                else:
                    try:
                        apply(state, command)
                    except SequenceError as exc:
                        problem = f"refused by the state machine: {exc}"
                    except Exception as exc:  # a domain bug: do not cut, stop loudly
                        raise RecoveryError(f"apply raised on journaled command {seq}: {exc!r}") from exc
        if problem is not None:
            report.cut_from = expected
            report.cut_reason = problem
            report.cut_records = journal.cut(expected)
            log.error("journal cut at seq %d (%d records quarantined): %s", expected, report.cut_records, problem)
            break
        report.replayed += 1
        expected += 1

    for seq in store.sequences():
        if seq > state.last_seq:
            _set_aside(store, seq, f"past the recovered end {state.last_seq}", report)
    report.last_seq = state.last_seq
    report.state_hash = state_hash(state)
    report.seconds = time.perf_counter() - started
    return state, report


def _check_snapshot(journal: Journal, store: SnapshotStore, genesis: GenesisConfig, seq: int,
                    end: int) -> ExchangeState | str:
    """The restored state if snapshot ``seq`` is usable, else the reason it is not."""
    if seq > end:
        return f"past the journal end {end}"
    try:
        snap = store.load(seq)
    except (SnapshotCorrupt, OSError) as exc:
        return f"damaged: {exc}"
    record = journal.read(seq)
    if record is None or anchor_of(bytes(record[1])) != snap.anchor:
        return "anchor does not match the journal record"
    try:
        state = decode_snapshot(snap.payload)
    except SnapshotError as exc:
        return f"undecodable: {exc}"
    if state.last_seq != seq:
        return f"restored state is at seq {state.last_seq}"
    if state.genesis.config_hash() != genesis.config_hash():
        return "snapshot of another genesis"
    if state_hash(state) != snap.state_hash:
        return "restored state hash differs from the recorded one"
    return state


def _set_aside(store: SnapshotStore, seq: int, reason: str, report: RecoveryReport) -> None:
    report.snapshots_skipped.append((seq, reason))
    log.warning("snapshot %d set aside: %s", seq, reason)
    path: Path = store.path_for(seq)
    try:
        path.replace(path.with_name(path.name + ".bad"))
    except OSError:
        pass
