"""Recovery: restart after a clean shutdown, snapshots (newest valid one, damaged ones
skipped), the journal tail cut at the last whole record (torn or damaged records, gaps,
a torn SQLite WAL), single-writer locks and the genesis check."""

from __future__ import annotations

import shutil

import pytest

from clearway.domain.genesis import GenesisConfig
from clearway.engine import JournalError, JournalLocked
from clearway.engine.journal import SQLITE_FILE
from clearway.engine.node import Node
from clearway.engine.snapshots import SnapshotStore

from engine_support import PG_URL, T0, Backend, reference_hash


def run(node, commands) -> None:
    for ticket in [node.submit(c) for c in commands]:
        ticket.result(timeout=60)


def run_one_by_one(node, commands) -> None:
    """One command per batch, so periodic snapshots fall on predictable boundaries."""
    for command in commands:
        node.submit(command).result(timeout=60)


def test_restart_after_clean_shutdown_starts_from_the_final_snapshot(backend, genesis, commands):
    with backend.node(genesis) as node:
        run(node, commands)
    with backend.node(genesis) as node:
        report = node.recovery
        assert (report.snapshot_seq, report.replayed, report.cut_from) == (len(commands), 0, None)
        assert node.state_hash() == reference_hash(genesis, commands)


def test_restart_without_a_snapshot_replays_the_whole_journal(backend, genesis, commands):
    node = backend.node(genesis)
    run(node, commands)
    node.close(snapshot=False)
    with backend.node(genesis) as node:
        assert (node.recovery.snapshot_seq, node.recovery.replayed) == (0, len(commands))
        assert node.recovery.state_hash == reference_hash(genesis, commands)


def test_many_restarts_end_with_the_hash_of_an_uninterrupted_run(backend, genesis, commands):
    for i in range(4):
        node = backend.node(genesis)
        assert node.last_seq == i * 100
        run(node, commands[i * 100:(i + 1) * 100])
        node.close(snapshot=i % 2 == 0)
    with backend.node(genesis) as node:
        assert node.state_hash() == reference_hash(genesis, commands)


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "inline"])
def test_recovery_starts_from_the_newest_periodic_snapshot_and_replays_the_tail(backend, genesis, commands, fork):
    node = backend.node(genesis, snapshot_every=100, fork_snapshots=fork)
    run_one_by_one(node, commands[:350])
    node.close(snapshot=False)  # waits for a snapshot in progress
    newest = SnapshotStore(backend.data_dir).sequences()[0]
    assert newest >= 100
    with backend.node(genesis) as node:
        assert node.recovery.snapshot_seq == newest
        assert node.recovery.replayed == 350 - newest
        assert node.state_hash() == reference_hash(genesis, commands[:350])


def _two_snapshots(backend, genesis, commands) -> SnapshotStore:
    """Snapshots at 200 and 400 (clean shutdowns), journal of 400 commands."""
    for part in (commands[:200], commands[200:]):
        with backend.node(genesis) as node:
            run(node, part)
    store = SnapshotStore(backend.data_dir)
    assert store.sequences() == [400, 200]
    return store


def _flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1:]


@pytest.mark.parametrize("damage", ["flipped payload byte", "flipped header byte", "truncated", "empty"])
def test_a_damaged_snapshot_is_skipped_for_an_older_one(backend, genesis, commands, damage):
    store = _two_snapshots(backend, genesis, commands)
    path = store.path_for(400)
    data = path.read_bytes()
    path.write_bytes({
        "flipped payload byte": lambda: _flip_byte(data, len(data) // 2),
        "flipped header byte": lambda: _flip_byte(data, 10),
        "truncated": lambda: data[: len(data) - 100],
        "empty": lambda: b"",
    }[damage]())
    with backend.node(genesis) as node:
        report = node.recovery
        assert report.snapshot_seq == 200 and report.replayed == 200
        assert [seq for seq, _ in report.snapshots_skipped] == [400]
        assert node.state_hash() == reference_hash(genesis, commands)
    assert path.with_name(path.name + ".bad").exists()


def test_a_snapshot_of_commands_that_never_became_durable_is_skipped(backend, tmp_path, genesis, commands):
    """A snapshot may be written before its commands commit; if they never did and other
    commands took their numbers, the anchor tells them apart."""
    store = _two_snapshots(backend, genesis, commands)
    other = Backend("sqlite", tmp_path / "other")
    with other.node(genesis, clock=lambda: T0 + 1) as node:  # same numbers, other commands
        run(node, commands)
    shutil.copy(SnapshotStore(other.data_dir).path_for(400), store.path_for(400))
    with backend.node(genesis) as node:
        assert node.recovery.snapshot_seq == 200
        assert node.recovery.snapshots_skipped == [(400, "anchor does not match the journal record")]
        assert node.state_hash() == reference_hash(genesis, commands)


def test_a_snapshot_past_the_end_of_the_journal_is_ignored(backend, tmp_path, genesis, commands):
    with backend.node(genesis) as node:
        run(node, commands[:300])
    other = Backend("sqlite", tmp_path / "other")
    with other.node(genesis) as node:
        run(node, commands)
    shutil.copy(SnapshotStore(other.data_dir).path_for(400), SnapshotStore(backend.data_dir).path_for(400))
    with backend.node(genesis) as node:
        assert node.recovery.snapshot_seq == 300
        assert node.recovery.snapshots_skipped[0][0] == 400
        run(node, commands[300:])
        assert node.state_hash() == reference_hash(genesis, commands)


DAMAGE = ("flipped byte", "torn record", "wrong checksum", "missing record")


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_record_cuts_the_journal_at_the_last_whole_record(backend, genesis, commands, damage):
    node = backend.node(genesis)
    run(node, commands)
    node.close(snapshot=False)
    command = backend.command(250)
    if damage == "flipped byte":
        backend.damage(250, "command", _flip_byte(command, len(command) - 1))
    elif damage == "torn record":
        backend.damage(250, "command", command[: len(command) // 2])
    else:
        backend.damage(250, "checksum" if damage == "wrong checksum" else "missing")
    with backend.node(genesis) as node:
        report = node.recovery
        # A missing PostgreSQL row leaves 150 records after the hole; SQLite's group row
        # still claims number 250, its later frames each move up one number (failing
        # their seeded checksums) and its last number comes out empty: 151 quarantined.
        cut = 150 if damage == "missing record" and backend.kind == "postgresql" else 151
        assert (report.last_seq, report.cut_from, report.cut_records) == (249, 250, cut)
        assert node.state_hash() == reference_hash(genesis, commands[:249])
        run(node, commands[249:])  # the node goes on from the cut with new records
        assert node.state_hash() == reference_hash(genesis, commands)
    assert backend.execute("SELECT count(*) FROM journal_quarantine")[0][0] == report.cut_records


def test_a_torn_sqlite_wal_tail_loses_only_the_unfinished_transaction(tmp_path, genesis, commands):
    """A crash in the middle of a commit leaves a partial last transaction in the WAL:
    SQLite's frame checksums drop it whole and recovery ends at the previous commit."""
    live = Backend("sqlite", tmp_path / "live")
    node = live.node(genesis)
    run(node, commands[:300])
    run(node, commands[300:301])  # the last commit: one command, its own transaction
    copies = {}
    for name in ("intact", "torn"):  # the files as a crash would leave them (no checkpoint)
        copies[name] = tmp_path / name
        copies[name].mkdir()
        for suffix in ("", "-wal"):
            shutil.copy(live.data_dir / (SQLITE_FILE + suffix), copies[name] / (SQLITE_FILE + suffix))
    node.close()
    wal = copies["torn"] / (SQLITE_FILE + "-wal")
    wal.write_bytes(wal.read_bytes()[:-200])  # tear the last frame
    with Backend("sqlite", copies["intact"]).node(genesis) as recovered:
        assert recovered.recovery.last_seq == 301
    with Backend("sqlite", copies["torn"]).node(genesis) as recovered:
        assert recovered.recovery.last_seq == 300
        assert recovered.state_hash() == reference_hash(genesis, commands[:300])


def test_a_second_node_on_the_same_data_directory_is_refused(backend, genesis):
    with backend.node(genesis):
        with pytest.raises(JournalLocked):
            Node(backend.data_dir, genesis)  # the directory lock comes before any journal


def test_a_second_node_on_the_same_postgresql_journal_is_refused(backend, tmp_path, genesis):
    if backend.kind != "postgresql":
        pytest.skip("PostgreSQL only")
    from clearway.engine.pgjournal import PostgresJournal

    with backend.node(genesis):
        with pytest.raises(JournalLocked):
            PostgresJournal(PG_URL, schema=backend.schema, lock_wait_s=0.2)


def test_a_journal_started_with_another_genesis_is_refused(backend, genesis, commands):
    with backend.node(genesis) as node:
        run(node, commands[:5])
    with pytest.raises(JournalError):
        backend.node(GenesisConfig())
    with backend.node(None) as node:  # no genesis given: the journal's is used
        assert node.genesis == genesis and node.last_seq == 5
