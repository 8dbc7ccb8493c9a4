"""The SQLite journal's storage: records framed in one ``journal_group`` row per group
commit (journal.pack_records), damage inside a row, cuts inside a row, and the
conversion of a journal written one row per record."""

from __future__ import annotations

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from clearway.engine.journal import (ROW_RECORDS, SQLITE_FILE, SqliteJournal, iter_records, pack_records,
                                     record_checksum, unpack_records)

from engine_support import Backend, reference_hash


def run(node, commands) -> None:
    for ticket in [node.submit(c) for c in commands]:
        ticket.result(timeout=60)


def _records(first: int, count: int, size: int = 40) -> list[tuple[int, bytes, int]]:
    out = []
    for seq in range(first, first + count):
        data = (b"%d:" % seq).ljust(size, b"x")
        out.append((seq, data, record_checksum(seq, data)))
    return out


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 2**40), st.lists(st.binary(max_size=300), max_size=40))
def test_frames_round_trip(first, commands):
    records = [(first + i, data, record_checksum(first + i, data)) for i, data in enumerate(commands)]
    assert unpack_records(first, first + len(records) - 1, pack_records(records)) == records


def test_broken_framing_ends_in_a_record_that_fails_its_checksum():
    records = _records(10, 3)
    packed = pack_records(records)
    # the last frame's command torn off in the middle
    assert unpack_records(10, 12, packed[:-5]) == records[:2] + [(12, records[2][1][:-5], -1)]
    # a frame header torn in two
    cut = len(pack_records(records[:2])) + 3
    assert unpack_records(10, 12, packed[:cut]) == records[:2] + [(12, packed[cut - 3:cut], -1)]
    # the row claims a record it does not hold
    assert unpack_records(10, 13, packed) == records + [(13, b"", -1)]
    # the row holds a frame past the number it claims
    assert unpack_records(10, 11, packed) == records[:2] + [(12, packed[len(pack_records(records[:2])):], -1)]
    # a frame length running past the end
    bad = bytearray(packed)
    bad[0] = 0xFF
    assert unpack_records(10, 12, bytes(bad))[0][2] == -1
    # not bytes at all
    assert unpack_records(10, 12, "text") == [(10, b"", -1)]


def test_a_large_group_is_stored_as_several_rows_of_one_transaction(tmp_path):
    journal = SqliteJournal(tmp_path / SQLITE_FILE)
    try:
        journal.append(_records(1, 2 * ROW_RECORDS + 7))
        rows = journal._db.execute("SELECT first_seq, last_seq FROM journal_group ORDER BY first_seq").fetchall()
        assert rows == [(1, ROW_RECORDS), (ROW_RECORDS + 1, 2 * ROW_RECORDS), (2 * ROW_RECORDS + 1, 2 * ROW_RECORDS + 7)]
        assert journal.last_seq() == 2 * ROW_RECORDS + 7
        assert journal.read(ROW_RECORDS + 1) == _records(ROW_RECORDS + 1, 1)[0]
        assert journal.read(2 * ROW_RECORDS + 8) is None
        assert journal.read_after(ROW_RECORDS - 2, 4) == _records(ROW_RECORDS - 1, 4)  # across two rows
    finally:
        journal.close()


def test_a_cut_inside_a_group_row_keeps_the_records_before_it(tmp_path):
    journal = SqliteJournal(tmp_path / SQLITE_FILE)
    try:
        journal.append(_records(1, 10))
        journal.append(_records(11, 10))
        journal.append(_records(21, 10))
        assert journal.cut(15) == 16
        assert journal.last_seq() == 14
        assert list(iter_records(journal, 0)) == _records(1, 14)
        quarantined = journal._db.execute("SELECT seq, command, checksum FROM journal_quarantine ORDER BY seq").fetchall()
        assert quarantined == _records(15, 16)
        journal.append(_records(15, 3))  # the journal goes on from the cut
        assert list(iter_records(journal, 0)) == _records(1, 17)
        assert journal.cut(100) == 0  # nothing there: nothing changes
        assert journal.last_seq() == 17
    finally:
        journal.close()


def test_a_group_row_torn_inside_a_record_is_cut_at_that_record(tmp_path, genesis, commands):
    backend = Backend("sqlite", tmp_path / "node")
    node = backend.node(genesis)
    run(node, commands)
    node.close(snapshot=False)
    ((first, last, packed),) = backend.execute(
        "SELECT first_seq, last_seq, records FROM journal_group WHERE first_seq <= 250 AND last_seq >= 250")
    before = len(pack_records(unpack_records(first, last, packed)[:250 - first]))
    backend.execute("UPDATE journal_group SET records = ? WHERE first_seq = ?", (packed[:before + 20], first))
    with backend.node(genesis) as node:
        report = node.recovery
        assert (report.last_seq, report.cut_from) == (249, 250)
        assert report.cut_reason == "checksum mismatch"
        # the torn record (its checksum unknown) and every record of the later rows
        assert report.cut_records == 1 + len(commands) - last
        run(node, commands[249:])
        assert node.state_hash() == reference_hash(genesis, commands)
    torn = backend.execute("SELECT seq, length(command), checksum FROM journal_quarantine ORDER BY seq LIMIT 1")
    assert torn == [(250, 12, None)]


def _store_per_record(backend: Backend, keep) -> list[tuple[int, bytes, int]]:
    """Rewrite the node's journal as the per-record format stored it (table ``journal``, a
    row per record), keeping the records whose number ``keep`` accepts; return them."""
    journal = SqliteJournal(backend.data_dir / SQLITE_FILE)
    records = [r for r in iter_records(journal, 0) if keep(r[0])]
    journal.close()
    db = sqlite3.connect(backend.data_dir / SQLITE_FILE, isolation_level=None)
    db.executescript("DROP TABLE journal_group; CREATE TABLE journal (seq INTEGER PRIMARY KEY, "
                     "command BLOB NOT NULL, checksum INTEGER NOT NULL);")
    db.executemany("INSERT INTO journal VALUES (?, ?, ?)", records)
    db.close()
    return records


def test_a_journal_written_one_row_per_record_is_converted_when_opened(tmp_path, genesis, commands):
    backend = Backend("sqlite", tmp_path / "node")
    node = backend.node(genesis)
    run(node, commands)
    expected = node.state_hash()
    node.close(snapshot=False)
    records = _store_per_record(backend, lambda seq: True)
    with backend.node(genesis) as node:
        assert node.recovery.last_seq == len(commands)
        assert node.recovery.cut_from is None
        assert node.state_hash() == expected
    tables = {name for (name,) in backend.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "journal" not in tables
    journal = SqliteJournal(backend.data_dir / SQLITE_FILE)
    try:
        assert list(iter_records(journal, 0)) == [(s, bytes(d), c) for s, d, c in records]
    finally:
        journal.close()


def test_a_gap_in_a_converted_journal_is_still_found_by_recovery(tmp_path, genesis, commands):
    backend = Backend("sqlite", tmp_path / "node")
    node = backend.node(genesis)
    run(node, commands)
    node.close(snapshot=False)
    _store_per_record(backend, lambda seq: seq != 250)
    with backend.node(genesis) as node:
        report = node.recovery
        assert (report.last_seq, report.cut_from, report.cut_records) == (249, 250, len(commands) - 250)
        assert report.cut_reason.startswith("gap")
