"""Bulk submission (Node.submit_many and its Tickets), the journal's one-statement group
commit at every group size, background checkpoints of the SQLite journal, and the choice
between inline and forked snapshots."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest

from clearway.domain.commands import Deposit
from clearway.domain.events import Deposited
from clearway.engine import CommandRejected, EngineErrorCode, Tickets
from clearway.engine import journal as journal_module
from clearway.engine.journal import SQLITE_FILE, SqliteJournal, iter_records, record_checksum
from clearway.engine.loadgen import owner_address
from clearway.engine.snapshots import SnapshotStore

from engine_support import GatedJournal, reference_hash, wait_until


def test_submit_many_sequences_the_commands_together_in_one_commit(backend, genesis, commands):
    journal = GatedJournal(backend.journal())
    with backend.node(genesis, journal=journal) as node:
        first = node.submit_many(commands[:150])
        second = node.submit_many(commands[150:])
        assert isinstance(first, Tickets) and len(first) == 150 and len(second) == len(commands) - 150
        assert first.wait(60) and second.wait(60)
        assert [t.seq for t in first] + [t.seq for t in second[:]] == list(range(1, len(commands) + 1))
        assert first[-1].seq == 150 and first[0].command.seq == 1
        assert first.results(60)[0] == first[0].result(0)
        assert isinstance(first.results(60)[0][-1], Deposited)
        assert node.state_hash() == reference_hash(genesis, commands)
    for group in (range(1, 151), range(151, len(commands) + 1)):  # never split across commits
        assert any(set(group) <= set(seqs) for seqs in journal.appends)


def test_held_submissions_wait_for_release_and_go_as_one_batch(backend, genesis, commands):
    journal = GatedJournal(backend.journal())
    with backend.node(genesis, journal=journal) as node:
        tickets = [node.submit(c, hold=True) for c in commands[:40]]
        assert node.stats()["last_seq"] == 0  # held: nobody sequenced them
        node.release()
        assert [t.result(60) for t in tickets][0][-1].amount == commands[0].amount
        assert [t.seq for t in tickets] == list(range(1, 41))
        node.release()  # nothing held: harmless
        later = node.submit(commands[40])  # not held: dispatched at once
        assert later.result(60) and later.seq == 41
        assert node.state_hash() == reference_hash(genesis, commands[:41])
    assert any(set(range(1, 41)) <= set(seqs) for seqs in journal.appends)  # one commit


def test_submit_many_refuses_all_if_one_is_bad_and_names_it(backend, genesis, commands):
    journal = GatedJournal(backend.journal())
    with backend.node(genesis, journal=journal, max_command_bytes=200) as node:
        cases = [
            (Deposit(0, 0, None, 5, 1), EngineErrorCode.MALFORMED_COMMAND),
            ("not a command", EngineErrorCode.UNKNOWN_COMMAND_TYPE),
            (Deposit(0, 0, "0x" + "ab" * 200, 5, 1), EngineErrorCode.OVERSIZED_COMMAND),
        ]
        for bad, code in cases:
            with pytest.raises(CommandRejected) as refused:
                node.submit_many([*commands[:3], bad, commands[3]])
            assert refused.value.code == code and refused.value.message.startswith("command 3:")
        assert len(node.submit_many([])) == 0
        assert node.last_seq == 0
        # a group larger than the size limit as a whole, every command within it
        assert node.submit_many(commands[:50]).wait(60)
    assert journal.appends == [list(range(1, 51))]


def test_submit_many_past_the_in_flight_limit_is_refused_as_overloaded(backend, genesis, commands):
    journal = GatedJournal(backend.journal())
    journal.gate.clear()
    node = backend.node(genesis, journal=journal, max_in_flight=10)
    held = node.submit_many(commands[:6])
    with pytest.raises(CommandRejected) as refused:
        node.submit_many(commands[6:11])
    assert refused.value.code == EngineErrorCode.OVERLOADED
    journal.gate.set()
    assert held.wait(60)
    node.close()
    assert backend.count() == 6


def test_tickets_of_a_group_can_be_awaited_together(backend, genesis, commands):
    with backend.node(genesis) as node:
        async def main():
            await node.submit_many(commands[:40])
            return await asyncio.gather(*node.submit_many(commands[40:60]))

        results = asyncio.run(main())
        assert len(results) == 20 and node.last_seq == 60


@pytest.mark.parametrize("sizes", [[1, 2, 3, 5, 8, 13, 64, 255], [8_192, 8_193, 20_001]],
                         ids=["small groups", "groups past one row"])
def test_every_group_size_is_stored_whole_and_in_order(backend, sizes):
    journal = backend.journal()
    try:
        journal.set_genesis(b"g")
        seq = 0
        for size in sizes:
            records = []
            for _ in range(size):
                seq += 1
                data = b"command %d" % seq
                records.append((seq, data, record_checksum(seq, data)))
            journal.append(records)
        stored = list(iter_records(journal, 0))
    finally:
        journal.close()
    assert [r[0] for r in stored] == list(range(1, seq + 1))
    assert all(bytes(data) == b"command %d" % s and checksum == record_checksum(s, bytes(data))
               for s, data, checksum in stored)


def test_the_sqlite_journal_is_checkpointed_in_the_background(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "_CHECKPOINT_EVERY_RECORDS", 100)
    monkeypatch.setattr(journal_module, "_RESTART_FRAMES", 1)  # restart after every pass
    path = tmp_path / SQLITE_FILE
    journal = SqliteJournal(path)
    payload = b"x" * 500
    seq = 0
    for _ in range(20):
        journal.append([(seq + i + 1, payload, record_checksum(seq + i + 1, payload)) for i in range(100)])
        seq += 100

    # Only a checkpoint moves pages into the database file (the writer's own automatic
    # one is far off at this size).
    wait_until(lambda: path.stat().st_size > seq * len(payload) * 0.9)
    journal.close()
    again = SqliteJournal(path)
    try:
        assert again.last_seq() == seq
    finally:
        again.close()


def test_the_node_journal_preallocates_its_wal_and_commits_reuse_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CLEARWAY_WAL_PREALLOCATE_MB", "4")
    # No background checkpoints here (their timing is the checkpointer test's business):
    # the WAL is restarted explicitly every 100 commits, as the checkpointer does.
    monkeypatch.setattr(journal_module, "_CHECKPOINT_EVERY_COMMITS", 10**9)
    journal = journal_module.open_journal(tmp_path, None)
    wal = tmp_path / (SQLITE_FILE + "-wal")
    try:
        assert wal.stat().st_size >= 4 << 20
        assert journal.last_seq() == 0  # the scratch table is gone, nothing else written
        grown = wal.stat().st_size
        payload = b"y" * 80
        for seq in range(1, 1_001):  # one record per commit: ~1 WAL frame each
            journal.append([(seq, payload, record_checksum(seq, payload))])
            if seq % 100 == 0:
                journal._db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        assert wal.stat().st_size == grown  # the commits overwrote the WAL, never extended it
        assert journal.preallocate_wal() is False  # already that large
    finally:
        journal.close()
    again = SqliteJournal(tmp_path / SQLITE_FILE)
    try:
        assert again.last_seq() == 1_000
        assert [r[0] for r in iter_records(again, 990)] == list(range(991, 1_001))
        assert again._db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'wal_preallocation'").fetchone()[0] == 0
    finally:
        again.close()


def test_the_checkpointer_also_runs_every_few_hundred_commits(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "_CHECKPOINT_EVERY_COMMITS", 20)
    monkeypatch.setattr(journal_module, "_RESTART_FRAMES", 1)
    path = tmp_path / SQLITE_FILE
    journal = SqliteJournal(path)
    payload = b"z" * 80
    try:
        for seq in range(1, 201):  # 200 small commits, far below the record threshold
            journal.append([(seq, payload, record_checksum(seq, payload))])
        # only a checkpoint moves pages into the database file (the writer's own automatic
        # one is far off at this size)
        wait_until(lambda: path.stat().st_size > 200 * len(payload) * 0.9)
    finally:
        journal.close()


class _RecordingLock:
    """A lock that notes the name of every thread that takes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.takers: list[str] = []

    def __enter__(self):
        self._lock.acquire()
        self.takers.append(threading.current_thread().name)
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


def test_the_checkpointer_restarts_the_wal_under_the_writers_lock(tmp_path, monkeypatch):
    """The RESTART (which holds SQLite's writer lock) runs under the journal's write lock,
    so an append waits on that lock rather than in SQLite's busy handler."""
    monkeypatch.setattr(journal_module, "_CHECKPOINT_EVERY_COMMITS", 5)
    monkeypatch.setattr(journal_module, "_RESTART_FRAMES", 1)
    journal = SqliteJournal(tmp_path / SQLITE_FILE)
    lock = journal._write_lock = _RecordingLock()
    payload = b"w" * 80
    try:
        for seq in range(1, 201):
            journal.append([(seq, payload, record_checksum(seq, payload))])
        assert journal._checkpointer.write_lock is lock
        wait_until(lambda: "clearway-checkpoint" in lock.takers)
        assert lock.takers.count(threading.current_thread().name) == 200  # every append took it
    finally:
        journal.close()


def test_a_reader_holding_an_old_snapshot_does_not_stall_the_writer(tmp_path, monkeypatch):
    """A RESTART cannot finish while another connection reads an old snapshot. Under the
    write lock it must give up at once (``_RESTART_BUSY_TIMEOUT_MS`` = 0), not wait for
    the reader while the writer waits for it: with a 20 ms timeout, about one append in
    five took over 15 ms here (a RESTART attempt every 5 commits); without the wait they
    take well under a millisecond (the bound leaves room for slow fsyncs of a busy machine)."""
    monkeypatch.setattr(journal_module, "_CHECKPOINT_EVERY_COMMITS", 5)
    monkeypatch.setattr(journal_module, "_RESTART_FRAMES", 1)
    path = tmp_path / SQLITE_FILE
    journal = SqliteJournal(path)
    lock = journal._write_lock = _RecordingLock()
    payload = b"r" * 80
    journal.append([(1, payload, record_checksum(1, payload))])
    reader = sqlite3.connect(str(path), isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM journal_group").fetchone()[0] == 1  # holds this snapshot
    slow = 0
    try:
        for seq in range(2, 302):
            started = time.perf_counter()
            journal.append([(seq, payload, record_checksum(seq, payload))])
            slow += time.perf_counter() - started > 0.015
        wait_until(lambda: "clearway-checkpoint" in lock.takers)  # a RESTART was tried under the lock
        assert journal.last_seq() == 301
        assert reader.execute("SELECT count(*) FROM journal_group").fetchone()[0] == 1  # still its snapshot
        assert slow <= 15
    finally:
        reader.execute("COMMIT")
        reader.close()
        journal.close()


def test_wal_preallocation_is_off_with_zero_megabytes(tmp_path, monkeypatch):
    monkeypatch.setenv("CLEARWAY_WAL_PREALLOCATE_MB", "0")
    journal = journal_module.open_journal(tmp_path, None)
    try:
        wal = tmp_path / (SQLITE_FILE + "-wal")
        assert not wal.exists() or wal.stat().st_size < 1 << 20
    finally:
        journal.close()


def test_snapshots_are_built_inline_until_one_is_slow_then_forked(backend, genesis, commands):
    fast = backend.node(genesis, snapshot_every=100, inline_snapshot_ms=60_000)
    for command in commands[:250]:
        fast.submit(command).result(timeout=60)
    assert fast._fork is False
    fast.close(snapshot=False)
    assert SnapshotStore(backend.data_dir).sequences()[0] >= 100

    slow = backend.node(genesis, snapshot_every=100, inline_snapshot_ms=0)
    for command in commands[250:]:
        slow.submit(command).result(timeout=60)
    assert slow._fork is True  # the first inline build took more than 0 ms
    slow.close()
    with backend.node(genesis) as node:
        assert node.state_hash() == reference_hash(genesis, commands)


def test_the_sqlite_synchronous_mode_is_full_unless_normal_is_asked_for(tmp_path, genesis, commands):
    from clearway.engine.node import Node

    def mode(node) -> int:  # the node is idle: its committer is not using the connection
        return node._journal._db.execute("PRAGMA synchronous").fetchone()[0]

    with Node(tmp_path / "full", genesis, snapshot_every=0, freeze_gc=False) as node:
        assert mode(node) == 2 and "synchronous=full" in node._journal.describe()
    with Node(tmp_path / "normal", genesis, snapshot_every=0, freeze_gc=False, sqlite_synchronous="normal") as node:
        assert mode(node) == 1
        assert node.submit_many(commands[:20]).wait(60)
    with Node(tmp_path / "normal", genesis, snapshot_every=0, freeze_gc=False) as node:
        assert node.last_seq == 20
    with pytest.raises(ValueError):
        Node(tmp_path / "off", genesis, sqlite_synchronous="off")
    with Node(tmp_path / "off", genesis, snapshot_every=0, freeze_gc=False) as node:  # the lock was released
        assert node.last_seq == 0
