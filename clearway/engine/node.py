"""The sequencer node: the single writer that turns submissions into a durable, ordered
command log and applies it (DESIGN.md, ``clearway/engine/``).

Pipeline (three threads, every hand-off is per batch, not per command)::

    submit() ──► open batch ──► sequencer thread ──► commit queue ──► committer thread
    submit_many() (list under   seq, ts, apply(),      (batches)      one INSERT for all
    (validate:     a lock)      encode, checksum                      queued batches,
     type, size,                                                      then acks + events
     decode)

- ``submit`` validates in the caller's thread (type, encoded size, a decode round trip
  that type-checks every field) and appends to the open batch; refusals raise
  CommandRejected and never reach the journal. ``submit_many`` does the same for a group
  with one encode and one typed decode of the whole list and one lock, and returns lazy
  Tickets (no object per command): the cheap door for callers that hold several commands.
- The sequencer thread takes the whole open batch, stamps consecutive sequence numbers
  and one timestamp (the injected clock, never behind the previous one) into the node's
  own decoded copies, applies each command with ``apply`` and encodes it as a journal
  record. A submitter that finds nobody sequencing does this itself, on its own thread
  (``_dispatch``), and an event loop can hold its submissions
  and release them once per turn (``submit(hold=True)``, ``release``): either way only
  the holder of the sequencing lock touches the state. A command is applied before it is journaled, so one on which ``apply`` raises
  (a domain bug) never reaches the journal, where it would stop every recovery.
- The committer thread writes every batch waiting in its queue in one transaction (group
  commit: one fsync for all of them; on SQLite one INSERT statement, so the GIL is handed
  back and forth once per commit, see journal.py). Only when the commit has returned are
  the tickets completed and the events published to subscribers, so an acknowledgement
  always means "durable". While it commits, the sequencer is already applying the next
  batches.
- Every ``snapshot_every`` commands the sequencer snapshots the state (snapshots.py): on
  its own thread while that is cheap, else from a forked child while the parent goes on
  (``fork_snapshots``). A snapshot may be written before its commands are durable; its
  anchor makes recovery ignore it if they never were.

The GIL is the budget: everything above except SQLite's own work and the fsync runs on
one core, so the hot path avoids per-command locks, events, futures and Python calls
where a bulk operation does. Measured per command at saturation on the 2-core bench
machine (bench/node.py, whose speed varies by up to 2x from one minute to the next): the
whole process 9.4–12 µs of CPU with the domain's hot path compiled
(clearway/native.py); 3.8–4.7 µs of it with ``apply`` replaced by a stub, i.e.
validation, stamping, encoding, checksumming, the committer (mostly SQLite's work and the
fsync, outside the GIL) and the benchmark's client; ``apply`` of the benchmark's mix alone,
outside the node, 3.8–5 µs.

Tickets (the acknowledgements) and subscriptions live in delivery.py; the journal back
ends in journal.py and pgjournal.py; snapshots and recovery in snapshots.py and
recovery.py.

Failure: if the journal write fails, or ``apply`` raises (a domain bug), the node stops
taking commands (fail-stop); pending tickets raise NodeFailed and a restart recovers from
the journal. State read through ``query`` includes sequenced commands whose commit is
still in flight.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import gc
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence, get_args

import msgspec

from clearway.domain.commands import Command, decode_command, encode_command
from clearway.domain.genesis import GenesisConfig
from clearway.domain.state import ExchangeState, apply, state_hash
from clearway.engine.delivery import END, Batch, LoopSubscription, Subscription, Ticket, Tickets
from clearway.engine.errors import CommandRejected, EngineErrorCode, JournalLocked, NodeFailed
from clearway.engine.idlepoll import wake_parked
from clearway.engine.journal import Journal, open_journal
from clearway.engine.recovery import recover, resolve_genesis
from clearway.engine.snapshots import SnapshotStore, anchor_of, build_snapshot

log = logging.getLogger("clearway.engine")

COMMAND_TYPES = frozenset(get_args(Command))
"""Every member of the domain's ``Command`` union (new command types are accepted as
soon as the domain adds them)."""
COMMAND_TAGS = frozenset(t.__struct_config__.tag for t in COMMAND_TYPES)
_LIST_ENCODER = msgspec.msgpack.Encoder()
_LIST_DECODER = msgspec.msgpack.Decoder(list[Command])
_RAW_LIST_DECODER = msgspec.msgpack.Decoder(list[msgspec.Raw])  # the element spans, unparsed
_MASK32 = 0xFFFFFFFF
_SNAPSHOT_CHILD_TIMEOUT_S = 600
_STOP = object()
_DONE = Batch()  # the batch of an empty submit_many: done at once
_DONE.complete()

_RUNNING, _CLOSING, _FAILED, _CLOSED = "running", "closing", "failed", "closed"


def wall_clock_ms() -> int:
    """Milliseconds since the epoch (UTC), the default clock."""
    return time.time_ns() // 1_000_000


class Node:
    """A running sequencer over one data directory (see the module docstring).

    Opening recovers the state (recovery.py) and starts the threads; use as a context
    manager or call ``close``.

    Parameters
    ----------
    data_dir : Path
        Holds the lock file, the snapshots and (default back end) ``journal.sqlite3``.
    genesis : GenesisConfig | None
        Required to be equal to the journal's if it has one; stored if the journal is new
        (the default GenesisConfig if None).
    journal : str | Journal | None
        None for SQLite in ``data_dir``, a ``postgresql://`` URL, or a journal object.
    pg_schema : str
        Schema of the PostgreSQL journal.
    sqlite_synchronous : str
        ``"full"`` (default: an acknowledgement survives power loss) or ``"normal"`` (it
        survives a crash of the process only), for the default SQLite journal; see
        journal.SqliteJournal.
    snapshot_every : int
        Commands between snapshots (0: only at clean shutdown).
    keep_snapshots : int
        Snapshot files kept.
    clock : callable → int
        Milliseconds since the epoch, read once per batch (inject a fixed one in tests).
    max_command_bytes : int
        Largest accepted encoded command (as submitted).
    max_in_flight : int
        Submitted but not yet acknowledged commands beyond which ``submit`` refuses with
        OVERLOADED.
    fork_snapshots : bool | None
        True: build every periodic snapshot in a forked child; False: on the sequencer
        thread. None (default): on the sequencer thread while the last one built there
        took at most ``inline_snapshot_ms`` of CPU time, in a forked child from then on (where
        ``os.fork`` exists). A fork holds the GIL for milliseconds (page tables: measured
        3-17 ms for a 130 MB process on the 2-core bench machine) and makes the parent
        pay a page fault per page it writes while the child lives, so for a small state an
        inline build (about 2 ms for the bench's) stalls the node less.
    inline_snapshot_ms : float
        See ``fork_snapshots``.
    switch_interval : float | None
        If set, ``sys.setswitchinterval`` while the node runs: the committer and waiting
        clients get the GIL back promptly while the sequencer applies (5 ms default of
        CPython would show in every acknowledgement).
    freeze_gc : bool
        ``gc.freeze()`` after recovery and after every periodic snapshot, so the cyclic
        collector's full passes skip the long-lived state (measured: they otherwise add
        tens of ms to the p99 acknowledgement at 40,000 commands/s). Process-wide, like
        ``switch_interval``.
    gc_young_threshold : int | None
        If set (default 10,000), the cyclic collector's youngest-generation threshold
        while the node runs (CPython's default is 700; the older generations' thresholds
        are kept). A batch keeps its commands' events and records alive until it is
        acknowledged, so at 700 the collector ran every few hundred commands and scanned
        them: measured with ``gc.callbacks`` at saturation on the bench VM, 1.4–1.5 µs
        per command (about a tenth of the sequencing cost) and ~830 collections per
        200,000 commands, against 0.03 µs and one at 10,000. Process-wide: like
        ``switch_interval``, the process's own value comes back when the last open node
        closes (``_ProcessTuning``), whatever order nodes close in.

    Raises
    ------
    JournalLocked
        Another node holds the data directory (or the PostgreSQL schema).
    JournalError, RecoveryError
        See journal.py and recovery.py.
    """

    def __init__(
        self,
        data_dir: str | Path,
        genesis: GenesisConfig | None = None,
        *,
        journal: str | Journal | None = None,
        pg_schema: str = "clearway",
        sqlite_synchronous: str = "full",
        snapshot_every: int = 100_000,
        keep_snapshots: int = 3,
        clock: Callable[[], int] = wall_clock_ms,
        max_command_bytes: int = 16_384,
        max_in_flight: int = 200_000,
        max_commit_records: int = 50_000,
        fork_snapshots: bool | None = None,
        inline_snapshot_ms: float = 5.0,
        switch_interval: float | None = 0.0005,
        freeze_gc: bool = True,
        gc_young_threshold: int | None = 10_000,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.snapshot_every = snapshot_every
        self.keep_snapshots = max(1, keep_snapshots)
        self.max_command_bytes = max_command_bytes
        self.max_in_flight = max_in_flight
        self.max_commit_records = max_commit_records
        self._clock = clock
        self._fork = False if fork_snapshots is None else fork_snapshots
        self._fork_when_slow = fork_snapshots is None and hasattr(os, "fork")
        self._inline_snapshot_s = inline_snapshot_ms / 1e3
        self._lock_fd = _lock_data_dir(self.data_dir)
        self._journal: Journal | None = None
        try:
            self._journal = journal if journal is not None and not isinstance(journal, str) else \
                open_journal(self.data_dir, journal, schema=pg_schema, sqlite_synchronous=sqlite_synchronous)
            self.genesis = resolve_genesis(self._journal, genesis)
            self._store = SnapshotStore(self.data_dir)
            self._state, self.recovery = recover(self._journal, self._store, self.genesis)
        except BaseException:
            if self._journal is not None:
                self._journal.close()
            os.close(self._lock_fd)
            raise
        state = self._state
        last = self._journal.read(state.last_seq) if state.last_seq else None
        self._last_data: bytes | None = bytes(last[1]) if last is not None else None
        self._snapshot_started_seq = self.recovery.snapshot_seq
        self._snapshot_written_seq = self.recovery.snapshot_seq
        self._snapshot_busy = False
        self.durable_seq = state.last_seq
        self.queued_seq = state.last_seq  # last command handed to the committer
        self.commits = 0
        self.committed_records = 0
        self.largest_commit = 0

        # The open batch, queries, run state and in-flight count are guarded by a bare
        # lock; the sequencer sleeps on a doorbell queue (a token per wake-up) instead of
        # a Condition, whose wait allocates a lock in Python on every call.
        self._lock = threading.Lock()
        # Held by whoever sequences (the sequencer thread, or a submitter sequencing
        # inline): the only licence to take the open batch, run queries or touch the state.
        self._sequencing = threading.Lock()
        self._doorbell: queue.SimpleQueue = queue.SimpleQueue()
        self._open = Batch()
        self._queries: list[tuple[Callable, concurrent.futures.Future]] = []
        self._in_flight = 0
        self._run_state = _RUNNING
        self._failure: NodeFailed | None = None
        self._subs: tuple[Subscription, ...] = ()
        self._commit_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._snapshot_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._freeze_gc = freeze_gc
        if freeze_gc:
            gc.collect()
            gc.freeze()
        self._tunings: list[_ProcessTuning] = []
        if gc_young_threshold is not None:
            _GC_YOUNG_THRESHOLD.enter(gc_young_threshold)
            self._tunings.append(_GC_YOUNG_THRESHOLD)
        if switch_interval is not None:
            _SWITCH_INTERVAL.enter(switch_interval)
            self._tunings.append(_SWITCH_INTERVAL)
        self._threads = [
            threading.Thread(target=self._sequencer_main, name="clearway-sequencer", daemon=True),
            threading.Thread(target=self._committer_main, name="clearway-committer", daemon=True),
            threading.Thread(target=self._snapshot_main, name="clearway-snapshots", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # -- the public API ----------------------------------------------------------------
    def submit(self, command: Command, *, hold: bool = False) -> Ticket:
        """Queue ``command`` (its seq and ts are ignored and assigned here).

        ``hold=True``: leave it in the open batch for a ``release()`` that the caller
        promises to make soon (an event loop: once per loop iteration), so that the
        requests of one iteration make one batch (one sequencing pass, one completion,
        one wake-up of the caller) instead of a batch per request. A held command may
        also leave earlier with someone else's batch.

        Raises CommandRejected: UNKNOWN_COMMAND_TYPE (not a command Struct),
        MALFORMED_COMMAND (a field of the wrong type or range), OVERSIZED_COMMAND
        (encoded larger than ``max_command_bytes``), OVERLOADED, NODE_CLOSED, NODE_FAILED.
        """
        return self._enqueue(self._validated(command), hold)

    def release(self) -> None:
        """Dispatch the open batch after held submissions (``submit(hold=True)``), as its
        opener would have (``_dispatch``): sequenced here if nobody else is sequencing,
        else by the sequencer thread, then committed by the committer thread. Harmless
        when nothing is held.

        The batch is not committed on the caller's thread: tried, with an event loop
        as the caller, at 2,000 orders/s the loop then waited for one fsync per
        iteration (0.3–0.5 ms on the bench VM, close to the 0.5 ms between orders) and
        the median acknowledgement rose from ~1.2 to ~2.6 ms."""
        if self._open.commands:
            self._dispatch(group=True)

    def submit_many(self, commands: Sequence[Command]) -> Tickets:
        """Queue ``commands`` together: they get consecutive sequence numbers in one batch
        (so one commit) and are acknowledged at the same moment. Returns their Tickets
        (a sequence of Ticket, in order, that can also be waited on or awaited as a
        whole). Much cheaper per command than ``submit`` (one bulk type check, one lock,
        one sequencing pass for the group: on the caller's thread if the node is idle,
        else after one wake-up of the sequencer; no per-command object), e.g. for a
        network reader that drained several requests at once.

        All or nothing: every command is checked first; if one is refused, CommandRejected
        (the codes of ``submit``, the message naming its index) is raised and none is
        queued. OVERLOADED if they would take the commands in flight past ``max_in_flight``.
        """
        checked = self._validated_many(commands)
        if not checked:
            return Tickets(_DONE, 0, 0)
        n = len(checked)
        with self._lock:
            self._check_running()
            if self._in_flight + n > self.max_in_flight:
                raise CommandRejected(EngineErrorCode.OVERLOADED,
                                      f"{self._in_flight} commands in flight, {n} more submitted")
            batch = self._open
            queued = batch.commands
            start = len(queued)
            queued.extend(checked)
            self._in_flight += n
        if not start:
            self._dispatch(group=True)
        return Tickets(batch, start, start + n)

    def submit_bytes(self, data: bytes) -> Ticket:
        """Queue an encoded command (``encode_command`` bytes, e.g. from the network).
        Raises CommandRejected like ``submit``."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise CommandRejected(EngineErrorCode.MALFORMED_COMMAND, "not bytes")
        return self._enqueue(self._checked(bytes(data)))

    def subscribe(self, max_backlog: int = 100_000) -> Subscription:
        """A new Subscription to every command made durable from now on."""
        return self._register(Subscription(self, max_backlog))

    def subscribe_loop(self, loop, callback: Callable[[list, bool], None],
                       max_backlog: int = 100_000) -> LoopSubscription:
        """Deliver every command made durable from now on to ``callback(items, ended)``
        on the asyncio ``loop`` (delivery.LoopSubscription): no reader thread between
        the committer and the loop."""
        return self._register(LoopSubscription(self, loop, callback, max_backlog))

    def _register(self, sub):
        """Add ``sub`` to the subscribers (ended at once if the node is closed)."""
        with self._lock:
            if self._run_state == _CLOSED:
                sub._push(END)
            else:
                self._subs = (*self._subs, sub)
        return sub

    def query(self, fn: Callable[[ExchangeState], Any]) -> concurrent.futures.Future:
        """Run ``fn(state)`` on the sequencer thread between two batches; a Future of its
        result. ``fn`` must not mutate the state. Raises CommandRejected if not running."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._check_running()
            self._queries.append((fn, future))
            self._doorbell.put(None)
        return future

    def state_hash(self) -> str:
        """Hash of the current state (all sequenced commands)."""
        if self._run_state == _CLOSED:
            return state_hash(self._state)
        return self.query(state_hash).result()

    @property
    def state(self) -> ExchangeState:
        """The state; only safe to read once the node is closed (use ``query`` before)."""
        return self._state

    @property
    def last_seq(self) -> int:
        """Last sequenced command (durable or not)."""
        return self._state.last_seq

    @property
    def failure(self) -> NodeFailed | None:
        return self._failure

    def stats(self) -> dict:
        """Counters: last sequenced, handed to the committer (queued) and durable sequence
        numbers, commits, records committed, largest commit, last snapshot written."""
        return {"last_seq": self._state.last_seq, "queued_seq": self.queued_seq,
                "durable_seq": self.durable_seq, "commits": self.commits,
                "committed_records": self.committed_records, "largest_commit": self.largest_commit,
                "snapshot_seq": self._snapshot_written_seq}

    def close(self, snapshot: bool = True) -> None:
        """Stop taking commands, make every accepted one durable and acknowledge it, wait
        for a running snapshot, write a final snapshot (if ``snapshot`` and the node did
        not fail) and release the journal and the data directory. Idempotent."""
        with self._lock:
            if self._run_state == _CLOSED:
                return
            if self._run_state == _RUNNING:
                self._run_state = _CLOSING
            self._doorbell.put(None)
        for thread in self._threads[:2]:
            thread.join()
        self._snapshot_queue.put(None)
        self._threads[2].join()
        try:
            state = self._state
            if snapshot and self._failure is None and state.last_seq > self._snapshot_written_seq:
                self._store.write(state.last_seq, build_snapshot(state, anchor_of(self._last_data or b"")))
                self._snapshot_written_seq = state.last_seq
                self._store.prune(self.keep_snapshots)
        finally:
            with self._lock:
                self._run_state = _CLOSED
                subs, self._subs = self._subs, ()
            for sub in subs:
                sub._push(END)
            self._journal.close()
            os.close(self._lock_fd)
            for tuning in self._tunings:
                tuning.exit()
            self._tunings = []

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ingress -------------------------------------------------------------------------
    def _validated(self, command: Command) -> Command:
        """A type-checked copy of ``command`` (the node's own, stamped later) or raise
        CommandRejected. The encode/decode round trip is the type check: msgspec Structs
        do not check field types when built, decoding does."""
        if type(command) not in COMMAND_TYPES:
            raise CommandRejected(EngineErrorCode.UNKNOWN_COMMAND_TYPE,
                                  f"{type(command).__name__} is not a command")
        try:
            data = encode_command(command)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
            raise CommandRejected(EngineErrorCode.MALFORMED_COMMAND, str(exc)) from None
        return self._checked(data)

    def _validated_many(self, commands: Sequence[Command]) -> list[Command]:
        """``_validated`` of each command, in bulk: one encode of the whole list and one
        typed decode (MessagePack arrays encode their elements exactly as alone, so the
        decode checks every command as ``decode_command`` would), a fraction of the cost
        of a call pair per command. The sizes: if the whole list fits in
        ``max_command_bytes`` every command does, else each element's span in the list's
        encoding is measured (a ``msgspec.Raw`` decode: no re-encoding). Anything
        refused goes through ``_validated`` one by one for its precise error, raised as
        CommandRejected naming the command's index."""
        commands = list(commands)
        if set(map(type, commands)) <= COMMAND_TYPES:
            try:
                data = _LIST_ENCODER.encode(commands)
                if len(data) <= self.max_command_bytes or \
                        max(map(len, _RAW_LIST_DECODER.decode(data)), default=0) <= self.max_command_bytes:
                    return _LIST_DECODER.decode(data)
            except (TypeError, ValueError, OverflowError, msgspec.EncodeError,
                    msgspec.DecodeError, msgspec.ValidationError):
                pass
        checked = []
        for i, command in enumerate(commands):
            try:
                checked.append(self._validated(command))
            except CommandRejected as exc:
                raise CommandRejected(exc.code, f"command {i}: {exc.message}") from None
        return checked

    def _checked(self, data: bytes) -> Command:
        """Decode ``data`` into a type-checked command or raise CommandRejected."""
        if len(data) > self.max_command_bytes:
            raise CommandRejected(EngineErrorCode.OVERSIZED_COMMAND,
                                  f"{len(data)} bytes > limit {self.max_command_bytes}")
        try:
            return decode_command(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            code = EngineErrorCode.UNKNOWN_COMMAND_TYPE if _has_unknown_tag(data) else EngineErrorCode.MALFORMED_COMMAND
            raise CommandRejected(code, str(exc)) from None

    def _check_running(self) -> None:
        if self._run_state != _RUNNING:
            if self._run_state == _FAILED:
                raise CommandRejected(EngineErrorCode.NODE_FAILED, f"node failed: {self._failure}")
            raise CommandRejected(EngineErrorCode.NODE_CLOSED, "node is shutting down or closed")

    def _enqueue(self, command: Command, hold: bool = False) -> Ticket:
        with self._lock:
            self._check_running()
            if self._in_flight >= self.max_in_flight:
                raise CommandRejected(EngineErrorCode.OVERLOADED, f"{self._in_flight} commands in flight")
            batch = self._open
            commands = batch.commands
            commands.append(command)
            self._in_flight += 1
            index = len(commands) - 1
        if not index and not hold:
            self._dispatch(group=False)
        return Ticket(batch, index)

    def _dispatch(self, group: bool) -> None:
        """Called by the submitter that opened a batch (its first command): sequence it
        here if the node is idle, else wake the sequencer thread. Whoever opens a batch
        does one of the two, so no batch is left waiting; later submitters to the same
        batch rely on it.

        Sequencing inline saves the hand-off to a waiting thread, which costs tens to
        hundreds of microseconds on a virtual machine (measured 130 µs median on the
        2-core bench VM, where a cross-CPU wake-up goes through the hypervisor): more
        than applying one order. Under load the sequencer thread holds ``_sequencing``,
        the try-lock fails and submissions queue for it. The state is only ever touched
        by the holder of ``_sequencing``, so commands are still applied one at a time
        and in sequence order.

        A single command is sequenced inline only while no commit is in flight: then it
        is committed at once, and the hand-off saved is latency saved. While a commit
        runs, it would wait for that commit anyway, and a caller submitting a burst one
        command at a time (a network reader) would otherwise make a batch, a wake-up
        and a completion per command; the sequencer thread takes the burst as one batch
        instead. A group (``submit_many``) is a batch already.

        A snapshot that falls due is never built here (an event loop must not stall for
        a build or a fork): the sequencer thread is woken to take it.

        First, parked spinners of adaptive idle polling are woken (idlepoll.wake_parked),
        so that the CPUs poll through this batch's hand-offs and fsync."""
        wake_parked()
        if (not self._queries and (group or self.queued_seq == self.durable_seq)
                and self._sequencing.acquire(False)):
            try:
                self._sequence_open()
                if self._snapshot_due():
                    self._doorbell.put(None)
            finally:
                self._sequencing.release()
        else:
            self._doorbell.put(None)

    def _sequence_open(self) -> bool:
        """Sequence the open batch, if any, and queue it for the committer; whether there
        was one. The caller holds ``_sequencing``."""
        with self._lock:
            batch = self._open
            if not batch.commands:
                return False
            self._open = Batch()
        self._sequence(batch)
        self._commit_queue.put(batch)
        if batch.ok:
            self.queued_seq = batch.first_seq + batch.ok - 1
        return True

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)

    def _fail(self, failure: NodeFailed) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = failure
            if self._run_state in (_RUNNING, _CLOSING):
                self._run_state = _FAILED
            self._doorbell.put(None)

    # -- the sequencer thread ----------------------------------------------------------
    def _sequencer_main(self) -> None:
        """Each pass: run the queries, sequence the open batch, then take a snapshot if
        one has fallen due, after a batch sequenced here or inline (``_dispatch`` rings
        for it); this is the only place snapshots are taken. Sleeps when a pass found
        nothing to do, and ends once the node has stopped running and nothing is left."""
        lock, doorbell, sequencing = self._lock, self._doorbell, self._sequencing
        try:
            while True:
                with sequencing:
                    with lock:
                        queries, self._queries = self._queries, []
                        running = self._run_state == _RUNNING
                    for fn, future in queries:
                        if future.set_running_or_notify_cancel():
                            try:
                                future.set_result(fn(self._state))
                            except BaseException as exc:
                                future.set_exception(exc)
                    handed = self._sequence_open()
                    if self._failure is None:
                        self._maybe_snapshot()
                    if handed or queries:
                        continue
                if not running:
                    break
                doorbell.get()  # a token is put after every change worth waking for
        finally:
            with sequencing:
                for fn, future in self._queries:
                    future.cancel()
                self._commit_queue.put(_STOP)

    def _sequence(self, batch: Batch) -> None:
        """Stamp, apply and encode ``batch`` (or fail it whole if the node has failed)."""
        commands = batch.commands
        batch.size = len(commands)
        if self._failure is not None:
            batch.error = self._failure
            return
        state = self._state
        first = state.last_seq + 1
        ts = self._clock()
        if ts < state.last_ts:
            ts = state.last_ts
        set_field = msgspec.structs.force_setattr  # the node decoded these copies itself
        encode = encode_command
        crc32 = zlib.crc32
        events = batch.events
        records = batch.records
        seq = first - 1
        try:
            for command in commands:
                seq += 1
                set_field(command, "seq", seq)
                set_field(command, "ts", ts)
                data = encode(command)
                events.append(apply(state, command))
                records.append((seq, data, crc32(data, seq & _MASK32)))
        except Exception as exc:
            log.error("apply raised on command %d; the node stops:\n%s", seq, traceback.format_exc())
            failure = NodeFailed(f"apply raised on command {seq} ({type(command).__name__}): {exc!r}")
            batch.error = failure
            self._fail(failure)
        batch.first_seq = first
        batch.ok = len(records)
        if records:
            self._last_data = records[-1][1]

    def _snapshot_due(self) -> bool:
        return bool(self.snapshot_every) and not self._snapshot_busy \
            and self._state.last_seq - self._snapshot_started_seq >= self.snapshot_every

    def _maybe_snapshot(self) -> None:
        """Snapshot now if one is due (only the sequencer thread calls this, holding
        ``_sequencing``: never a submitter's thread, which may be an event loop)."""
        if not self._snapshot_due():
            return
        state = self._state
        seq = state.last_seq
        anchor = anchor_of(self._last_data or b"")
        self._snapshot_busy = True
        self._snapshot_started_seq = seq
        if self._fork:
            pid = os.fork()
            if pid == 0:  # the child: a frozen copy of the state; write it and leave
                code = 1
                try:
                    # A lock another thread held at the fork (e.g. inside OpenSSL under a
                    # PostgreSQL TLS connection) could hang the child: never for long.
                    signal.alarm(_SNAPSHOT_CHILD_TIMEOUT_S)
                    os.close(self._lock_fd)  # never keep the data directory locked after the parent
                    self._store.write(seq, build_snapshot(state, anchor))
                    code = 0
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(code)
            self._snapshot_queue.put((seq, pid, None))
        else:
            started = time.thread_time()  # CPU time: being preempted is not the build's cost
            self._snapshot_queue.put((seq, None, build_snapshot(state, anchor)))
            if self._fork_when_slow and time.thread_time() - started > self._inline_snapshot_s:
                self._fork = True
        if self._freeze_gc:
            gc.freeze()

    # -- the committer thread ----------------------------------------------------------
    def _committer_main(self) -> None:
        """Write every batch waiting in the queue (in sequence order) in one transaction,
        then acknowledge them and publish them to subscribers. After a failed write the
        node has failed: nothing more is written, and the batches still arriving are
        completed with the failure so that no ticket waits forever."""
        commit_queue = self._commit_queue
        journal_failed = stop = False
        while not stop:
            item = commit_queue.get()
            if item is _STOP:
                break
            batches = [item]
            count = len(item.records)
            while count < self.max_commit_records:
                try:
                    item = commit_queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batches.append(item)
                count += len(item.records)
            if count and not journal_failed:
                records = batches[0].records if len(batches) == 1 else [r for b in batches for r in b.records]
                try:
                    self._journal.append(records)
                except BaseException as exc:
                    journal_failed = True
                    log.error("journal write failed; the node stops:\n%s", traceback.format_exc())
                    self._fail(NodeFailed(f"journal write failed: {exc!r}"))
                else:
                    self.durable_seq = records[-1][0]
                    self.commits += 1
                    self.committed_records += count
                    if count > self.largest_commit:
                        self.largest_commit = count
            size = 0
            for batch in batches:
                if journal_failed:
                    batch.ok = 0
                    batch.error = self._failure
                size += batch.size
                batch.complete()
            with self._lock:
                self._in_flight -= size
            subs = self._subs
            if subs and not journal_failed:
                for sub in subs:
                    for batch in batches:
                        if batch.ok and not sub._push(batch):
                            self._unsubscribe(sub)
                            break

    # -- the snapshot thread -----------------------------------------------------------
    def _snapshot_main(self) -> None:
        while (job := self._snapshot_queue.get()) is not None:
            seq, pid, data = job
            try:
                if pid is not None:
                    _, status = os.waitpid(pid, 0)
                    ok = os.waitstatus_to_exitcode(status) == 0
                else:
                    self._store.write(seq, data)
                    ok = True
            except OSError:
                log.error("snapshot %d failed:\n%s", seq, traceback.format_exc())
                ok = False
            if ok:
                self._snapshot_written_seq = seq
                self._store.prune(self.keep_snapshots)
            else:
                log.error("snapshot %d was not written", seq)
            self._snapshot_busy = False


class _ProcessTuning:
    """A process-wide setting that open nodes change while they run (the GIL switch
    interval, the GC's young threshold): the first node to open saves the process's value,
    each node sets its own, and the last one to close restores the saved value, whatever
    order they close in."""

    def __init__(self, read: Callable[[], Any], write: Callable[[Any], None]) -> None:
        self._read, self._write = read, write
        self._lock = threading.Lock()
        self._users = 0
        self._saved: Any = None

    def enter(self, value: Any) -> None:
        with self._lock:
            if not self._users:
                self._saved = self._read()
            self._users += 1
            self._write(value)

    def exit(self) -> None:
        with self._lock:
            self._users -= 1
            if not self._users:
                self._write(self._saved)
                self._saved = None


_SWITCH_INTERVAL = _ProcessTuning(sys.getswitchinterval, sys.setswitchinterval)
_GC_YOUNG_THRESHOLD = _ProcessTuning(lambda: gc.get_threshold()[0],
                                     lambda young: gc.set_threshold(young, *gc.get_threshold()[1:]))


def _has_unknown_tag(data: bytes) -> bool:
    """True if ``data`` is a MessagePack array whose first element is a string that names
    no command type (told apart from other malformed input for a precise error code)."""
    try:
        value = msgspec.msgpack.decode(data)
    except msgspec.DecodeError:
        return False
    return isinstance(value, list) and bool(value) and isinstance(value[0], str) and value[0] not in COMMAND_TAGS


def _lock_data_dir(data_dir: Path) -> int:
    """Take the exclusive lock of ``data_dir/LOCK`` (flock); return its descriptor.
    Raises JournalLocked if another process holds it."""
    fd = os.open(data_dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JournalLocked(f"{data_dir} is in use by another node") from None
    return fd
