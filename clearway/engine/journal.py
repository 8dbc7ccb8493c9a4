"""The journal: the append-only, durable log of sequenced commands.

A record is ``(seq, command, checksum)``: the sequence number, the command's MessagePack
bytes (``encode_command``, with seq and ts inside) and ``record_checksum(seq, command)``, a
CRC-32 of the bytes seeded with the sequence number, so a damaged record, or a sound record
under the wrong number, is detected on recovery (recovery.py cuts the journal there).

Back ends: ``SqliteJournal`` (this module; the embedded default, one file in the data
directory, WAL mode with ``synchronous=FULL`` by default so every commit is fsynced;
``"normal"`` on request, see SqliteJournal) and
``PostgresJournal`` (pgjournal.py). Both keep the genesis in ``journal_meta`` and records
cut on recovery in ``journal_quarantine`` (one row per record, kept for forensics, never
replayed). PostgreSQL keeps one row per record in ``journal``; SQLite keeps the records of
a group commit together, framed in one row of ``journal_group`` (``pack_records``; see
SqliteJournal for why). The ``Journal`` protocol hides the difference: both hand out
records.

Threading: a journal object is used by one thread at a time (recovery, then the node's
committer thread, then close). The SQLite journal's background checkpointer has its own
connection and shares one lock with ``append``: the write lock it holds around a RESTART.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
import time
import traceback
import zlib
from pathlib import Path
from typing import Iterator, Protocol, Sequence

from clearway.engine.errors import JournalError

log = logging.getLogger("clearway.engine")

Record = tuple[int, bytes, int]
"""(seq, encoded command, checksum)."""

SQLITE_FILE = "journal.sqlite3"
SYNCHRONOUS_MODES = ("full", "normal")
ROW_RECORDS = 4_096
"""Most records framed in one ``journal_group`` row: a larger group commit (a backlog
after a stall) is written as several rows of one transaction."""
_FRAME = struct.Struct("<II")  # a record's frame header: command length, checksum
_INSERT_SQL: dict[int, str] = {}
_CHECKPOINT_EVERY_RECORDS = 20_000  # about 2 MB of records at the bench's ~80 bytes each
_CHECKPOINT_EVERY_COMMITS = 500  # a small commit still adds ~4 WAL frames (its row, a parent page, page 1, the freelist)
_RESTART_FRAMES = 1_024  # WAL frames (4 KiB pages): restart the WAL past ~4 MiB
_WAL_PREALLOCATE_MB = 16
_BACKSTOP_PAGES = 16_384  # the writer's own automatic checkpoint, if ours falls behind
_BUSY_TIMEOUT_MS = 60_000
_RESTART_BUSY_TIMEOUT_MS = 0  # the checkpointer never waits: a RESTART that finds a reader in its way gives up
_LEGACY_MIGRATION_ROWS = 20_000  # per read while converting a per-record journal (SqliteJournal)


def wal_preallocate_mb() -> int:
    """Size the node's WAL file is grown to before the first command (SqliteJournal.
    preallocate_wal): 16 MiB, or ``CLEARWAY_WAL_PREALLOCATE_MB`` (0: not at all; the test
    suite sets it, opening hundreds of short-lived journals)."""
    return int(os.environ.get("CLEARWAY_WAL_PREALLOCATE_MB", _WAL_PREALLOCATE_MB))


def _insert_sql(rows: int) -> str:
    """One INSERT of ``rows`` ``journal_group`` rows (one statement, so one implicit
    transaction in autocommit mode)."""
    sql = _INSERT_SQL.get(rows)
    if sql is None:
        sql = _INSERT_SQL[rows] = ("INSERT INTO journal_group (first_seq, last_seq, records) VALUES "
                                   + ", ".join(["(?, ?, ?)"] * rows))
    return sql


def pack_records(records: Sequence[Record]) -> bytes:
    """The records' frames, concatenated: per record an 8-byte header (command length and
    checksum, unsigned 32-bit little-endian) and the command bytes. The sequence numbers
    are not stored: a ``journal_group`` row holds consecutive ones from its ``first_seq``.

    Raises struct.error for a command of 4 GiB or more or a checksum outside 32 bits."""
    pack = _FRAME.pack
    parts: list[bytes] = []
    add = parts.append
    for _, command, checksum in records:
        add(pack(len(command), checksum))
        add(command)
    return b"".join(parts)


def unpack_records(first_seq: int, last_seq: int, records: bytes) -> list[Record]:
    """The records of one ``journal_group`` row (the inverse of ``pack_records``),
    numbered from ``first_seq``.

    A damaged row never raises: where its framing breaks (a header or command running
    past the end of the bytes) or its frames do not number exactly ``first_seq`` to
    ``last_seq``, the list ends with a record whose checksum is -1 (never a CRC-32) at
    the first sequence number it cannot vouch for, holding the bytes left over, so
    recovery cuts the journal there (a missing record makes every later frame fail its
    seeded checksum, which cuts it too). A value that is not bytes at all (a damaged
    file's other storage class) is one such record at ``first_seq``."""
    if not isinstance(records, (bytes, bytearray, memoryview)):
        return [(first_seq, b"", -1)]
    records = bytes(records)
    out: list[Record] = []
    add = out.append
    unpack = _FRAME.unpack_from
    end = len(records)
    pos = 0
    seq = first_seq
    while pos < end:
        start = pos + 8
        if start > end or seq > last_seq:
            add((seq, records[pos:], -1))
            return out
        length, checksum = unpack(records, pos)
        pos = start + length
        if pos > end:
            add((seq, records[start:], -1))
            return out
        add((seq, records[start:pos], checksum))
        seq += 1
    if seq <= last_seq:
        add((seq, b"", -1))
    return out


def record_checksum(seq: int, command: bytes) -> int:
    """CRC-32 (zlib) of ``command`` with the running value seeded by ``seq mod 2**32``.

    Unsigned 32-bit integer. Catches torn or flipped bytes and a record stored under
    another sequence number; it is an integrity check, not an authenticator."""
    return zlib.crc32(command, seq & 0xFFFFFFFF)


class Journal(Protocol):
    """What the node needs from a journal back end."""

    def genesis(self) -> bytes | None:
        """The genesis config bytes stored when the journal was created, or None if new."""

    def set_genesis(self, data: bytes) -> None:
        """Store the genesis config bytes (once, before the first record), durably."""

    def last_seq(self) -> int:
        """Highest stored sequence number, 0 if empty (damaged records count)."""

    def append(self, records: Sequence[Record]) -> None:
        """Write ``records`` (consecutive, ascending) in one transaction; durable on return.

        Raises on any failure; then nothing or everything may have been written."""

    def read_after(self, seq: int, limit: int) -> list[Record]:
        """Up to ``limit`` records with sequence number > ``seq``, ascending."""

    def read(self, seq: int) -> Record | None:
        """The record ``seq``, or None."""

    def cut(self, from_seq: int) -> int:
        """Move every record with sequence number ≥ ``from_seq`` to the quarantine table,
        durably; return how many were cut."""

    def describe(self) -> str:
        """Human-readable location (no password)."""

    def close(self) -> None:
        """Release the connection (and the single-writer lock of the back end)."""


def iter_records(journal: Journal, after: int, chunk: int = 20_000) -> Iterator[Record]:
    """Every record with sequence number > ``after``, ascending, read ``chunk`` at a time."""
    while True:
        rows = journal.read_after(after, chunk)
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


class SqliteJournal:
    """Journal in one SQLite file in WAL mode.

    Durability of a returned ``append`` (the node acknowledges only then) depends on
    ``synchronous``:

    - ``"full"`` (default): SQLite fsyncs the WAL at every commit, so an acknowledged
      command survives a process crash, a kernel crash and a power loss (as far as the
      disk honours flushes).
    - ``"normal"``: the commit writes the WAL without an fsync (SQLite syncs only at
      checkpoints), so an acknowledged command survives a crash of the node process
      (SIGKILL included: the data is in the kernel's page cache) but the last commits
      before a power loss or kernel crash may be lost. Faster commits; never the
      default, only when asked for.

    SQLite's own WAL frame checksums make a torn transaction disappear as a whole on the
    next open; the record checksums catch damage inside committed pages.

    Storage: one row of ``journal_group (first_seq, last_seq, records)`` per group commit
    (per ``ROW_RECORDS`` records of a larger one), the records framed by
    ``pack_records``, not a row per record. SQLite's cost of a commit grows by about
    3.5 µs of CPU per row inserted (B-tree insert, binding, the statement's row loop),
    measured on the bench VM: commits of 25 and 100 records cost 185-210 and 460-495 µs of
    CPU one row per record, against 156 and 217 µs as one framed row; both formats in one
    script on a preallocated WAL, 25-record commits: 230 against 186 µs. That work holds
    every acknowledgement of the group, and a backlog after a stall (a commit of hundreds
    of records) took milliseconds to write; in 4 alternating pairs of paced runs at 50,000
    commands/s in a slow phase of the machine the p99 acknowledgement was 10-27 ms framed
    against 42-58 ms per record (README, "Sequencer node"). A journal written one row per
    record (the format before; table ``journal``) is converted when first opened, in one
    transaction.

    Checkpoints (copying the WAL into the database file) run on a background thread with
    its own connection (_Checkpointer), started by the first ``append``: SQLite's
    automatic checkpoint would otherwise run inside the commit that crosses 1,000 WAL
    pages and hold that commit, and every acknowledgement waiting for it, for the copy
    and an fsync of the database file. The writer's automatic checkpoint stays on, at
    ``_BACKSTOP_PAGES``, in case the background one cannot keep up.

    Parameters
    ----------
    path : Path
        The database file (created with its tables if missing).
    synchronous : str
        ``"full"`` or ``"normal"`` (above). Raises ValueError for anything else.
    """

    def __init__(self, path: Path, synchronous: str = "full") -> None:
        self.path = Path(path)
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        self.synchronous = synchronous
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise JournalError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.execute(f"PRAGMA wal_autocheckpoint={_BACKSTOP_PAGES}")
            self._db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")  # other connections (readers, tools)
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS journal_group (
                    first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, records BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS journal_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS journal_quarantine (
                    cut_at_ms INTEGER NOT NULL, seq INTEGER NOT NULL, command BLOB, checksum INTEGER);
                """
            )
            self._convert_legacy()
            self._cursor = self._db.cursor()
            # Held by ``append`` around its write and by the checkpointer around a RESTART,
            # so that the writer waits on it while the RESTART runs (_Checkpointer).
            self._write_lock = threading.Lock()
            self._checkpointer: _Checkpointer | None = None
            self._since_checkpoint = 0
            self._commits_since_checkpoint = 0
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path}: {exc}") from exc

    def genesis(self) -> bytes | None:
        row = self._db.execute("SELECT value FROM journal_meta WHERE key = 'genesis'").fetchone()
        return None if row is None else bytes(row[0])

    def set_genesis(self, data: bytes) -> None:
        self._db.execute("INSERT INTO journal_meta (key, value) VALUES ('genesis', ?)", (data,))

    def last_seq(self) -> int:
        row = self._db.execute("SELECT last_seq FROM journal_group ORDER BY first_seq DESC LIMIT 1").fetchone()
        return 0 if row is None else row[0]

    def append(self, records: Sequence[Record]) -> None:
        """One INSERT statement in autocommit mode: one implicit transaction whose commit
        (and WAL fsync) happens inside that statement's single ``sqlite3_step``. The Python
        sqlite3 module releases the GIL around the step, so the whole write and fsync cost
        one GIL hand-off instead of one per statement (BEGIN, inserts, COMMIT), each of
        which waits for the busy sequencer thread to yield the GIL (up to the switch
        interval). One ``journal_group`` row per ``ROW_RECORDS`` records."""
        n = len(records)
        if not n:
            return
        params: list = []
        for start in range(0, n, ROW_RECORDS):
            chunk = records[start:start + ROW_RECORDS] if n > ROW_RECORDS else records
            params += (chunk[0][0], chunk[-1][0], pack_records(chunk))
        with self._write_lock:
            self._cursor.execute(_insert_sql(len(params) // 3), params)
        self._written(n)

    def preallocate_wal(self, megabytes: int | None = None) -> bool:
        """Grow the WAL file to ``megabytes`` (if smaller) and restart it, so that commits
        overwrite blocks the file already has instead of extending it. True if it grew.

        Why: an fdatasync after a write that extends a file also commits the file's new
        size and blocks to the filesystem journal; one that overwrites does not. Measured
        on the bench VM (ext4), one-record FULL commits: p50 0.48 ms while the WAL grows,
        0.19-0.21 ms once it is reused. SQLite reuses the WAL from its start after a
        checkpoint restart (the background checkpointer keeps it under a few MiB,
        _RESTART_FRAMES), so only a new or recently truncated WAL grows; this grows it
        once, through SQLite: one transaction that writes and drops a scratch table of
        zero blobs (its pages return to the database's free list, which the journal
        table then reuses), then ``wal_checkpoint(RESTART)``. Costs ~0.2 s for 16 MiB.
        Call it on the writer's connection before the first append (``open_journal``
        does for the node); a reader must not. Raises JournalError."""
        if megabytes is None:
            megabytes = wal_preallocate_mb()
        wal = Path(str(self.path) + "-wal")
        if megabytes <= 0 or (wal.exists() and wal.stat().st_size >= megabytes << 20):
            return False
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("CREATE TABLE wal_preallocation (pad BLOB)")
                db.execute("INSERT INTO wal_preallocation SELECT zeroblob(4000) FROM (WITH RECURSIVE n(i) AS "
                           "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) SELECT i FROM n)",
                           (megabytes * 256,))
                db.execute("DROP TABLE wal_preallocation")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path}: preallocating the WAL: {exc}") from exc
        return True

    def _written(self, records: int) -> None:
        self._since_checkpoint += records
        self._commits_since_checkpoint += 1
        if (self._since_checkpoint >= _CHECKPOINT_EVERY_RECORDS
                or self._commits_since_checkpoint >= _CHECKPOINT_EVERY_COMMITS):
            self._since_checkpoint = 0
            self._commits_since_checkpoint = 0
            if self._checkpointer is None:
                self._checkpointer = _Checkpointer(self.path, self._write_lock)
            self._checkpointer.wake.set()

    def read_after(self, seq: int, limit: int) -> list[Record]:
        """Whole rows from the one holding ``seq + 1``, unpacked, cut to ``limit``."""
        db = self._db
        row = db.execute("SELECT max(first_seq) FROM journal_group WHERE first_seq <= ?", (seq + 1,)).fetchone()
        start = row[0] if row[0] is not None else seq + 1
        out: list[Record] = []
        for first, last, packed in db.execute(
                "SELECT first_seq, last_seq, records FROM journal_group WHERE first_seq >= ? ORDER BY first_seq",
                (start,)):
            records = unpack_records(first, last, packed)
            if first <= seq:
                records = [r for r in records if r[0] > seq]
            out += records
            if len(out) >= limit:
                break
        return out[:limit]

    def read(self, seq: int) -> Record | None:
        row = self._db.execute(
            "SELECT first_seq, last_seq, records FROM journal_group WHERE first_seq <= ? "
            "ORDER BY first_seq DESC LIMIT 1", (seq,)).fetchone()
        if row is None or row[1] < seq:
            return None
        for record in unpack_records(*row):
            if record[0] == seq:
                return record
        return None

    def cut(self, from_seq: int) -> int:
        """Quarantine every record from ``from_seq`` on (one quarantine row per record, a
        damaged one with its checksum NULL); the row holding ``from_seq`` keeps the
        records before it."""
        db = self._db
        now_ms = time.time_ns() // 1_000_000
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute(
                "SELECT first_seq, last_seq, records FROM journal_group WHERE first_seq >= "
                "coalesce((SELECT max(first_seq) FROM journal_group WHERE first_seq <= ?), ?) ORDER BY first_seq",
                (from_seq, from_seq)).fetchall()
            count = 0
            for first, last, packed in rows:
                records = unpack_records(first, last, packed)
                kept = [r for r in records if r[0] < from_seq]
                cut = records[len(kept):]
                if not cut:
                    continue
                db.executemany(
                    "INSERT INTO journal_quarantine (cut_at_ms, seq, command, checksum) VALUES (?, ?, ?, ?)",
                    [(now_ms, seq, command, None if checksum < 0 else checksum) for seq, command, checksum in cut])
                count += len(cut)
                if kept:
                    db.execute("UPDATE journal_group SET last_seq = ?, records = ? WHERE first_seq = ?",
                               (kept[-1][0], pack_records(kept), first))
                else:
                    db.execute("DELETE FROM journal_group WHERE first_seq = ?", (first,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return count

    def _convert_legacy(self) -> None:
        """Convert a journal written one row per record (table ``journal``: seq, command,
        checksum; Clearway before the framed rows) into ``journal_group`` rows of
        ``ROW_RECORDS`` consecutive records, in one transaction, and drop the old table.
        A gap in the old numbering starts a new row, so recovery still finds it.
        Nothing to do for a journal without the old table."""
        db = self._db
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal'").fetchone() is None:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal'").fetchone():
                after = 0
                group: list[Record] = []
                while True:
                    rows = db.execute("SELECT seq, command, checksum FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
                                      (after, _LEGACY_MIGRATION_ROWS)).fetchall()
                    for seq, command, checksum in rows:
                        if group and (seq != group[-1][0] + 1 or len(group) == ROW_RECORDS):
                            self._insert_group(group)
                            group = []
                        command = bytes(command)
                        if not 0 <= checksum <= 0xFFFFFFFF:  # damaged (no CRC-32 is): keep it failing
                            checksum = (record_checksum(seq, command) + 1) & 0xFFFFFFFF
                        group.append((seq, command, checksum))
                    if len(rows) < _LEGACY_MIGRATION_ROWS:
                        break
                    after = rows[-1][0]
                if group:
                    self._insert_group(group)
                db.execute("DROP TABLE journal")
                log.warning("%s: converted the per-record journal to framed group rows", self.path)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _insert_group(self, group: Sequence[Record]) -> None:
        self._db.execute(_insert_sql(1), (group[0][0], group[-1][0], pack_records(group)))

    def describe(self) -> str:
        return f"sqlite:{self.path} (synchronous={self.synchronous})"

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._db.close()


class _Checkpointer:
    """A thread with its own connection to the journal that runs ``PRAGMA
    wal_checkpoint(PASSIVE)`` when woken (every ``_CHECKPOINT_EVERY_RECORDS`` appended
    records or ``_CHECKPOINT_EVERY_COMMITS`` commits): it copies committed WAL frames into
    the database file without ever blocking the writer. SQLite starts the WAL over from its beginning only when a
    write transaction begins after everything was copied, which a writer that never
    pauses may not allow; once the WAL holds ``_RESTART_FRAMES`` frames the thread
    follows up with ``wal_checkpoint(RESTART)``, which briefly holds the writer (it copies
    what the passive run left, a few frames) so that the next commit reuses the file.

    The RESTART runs under the journal's write lock, which ``append`` holds around its
    write, so the writer waits on that lock while the RESTART runs and is woken when it
    ends (plus the time either thread needs to get the GIL back, up to the switch
    interval while the sequencer is busy). Without it the writer ran into SQLite's lock
    and its busy handler, which sleeps 1, 2, 5, 10, … ms between retries: a 3-ms RESTART
    could hold a commit for 8 ms. Measured on the bench VM at 50,000 commands/s
    (throwaway scripts, alternating paced runs): in 6
    pairs toggling the lock in one process, the slowest commit of a run was 4.1–7.6 ms
    (median 6.1) with it against 5.4–15.2 ms (median 7.8) without, and the p99 of the
    acknowledgements 8.1 against 11.1 ms (median; lower in 4 of 6 pairs); in 6 pairs
    against the code before, in separate processes, the p99s were a wash (median 5.2
    against 5.3 ms, lower in 4 of 6). The RESTART does not wait under the lock
    (``_RESTART_BUSY_TIMEOUT_MS`` = 0): if another connection still reads an old snapshot
    it gives up at once, and the next wake tries again; the writer is never held for
    longer than the RESTART's own copy and sync.

    Its connection uses ``synchronous=FULL`` too: the WAL is fsynced before the copy and
    the database file after it, so a checkpoint never makes a durable record less so.
    A failed checkpoint loses nothing (the records stay in the WAL); it is logged and the
    writer's own automatic checkpoint remains as the backstop."""

    def __init__(self, path: Path, write_lock: threading.Lock) -> None:
        self.path = path
        self.write_lock = write_lock
        self.wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._main, name="clearway-checkpoint", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            db = sqlite3.connect(str(self.path), isolation_level=None)
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA busy_timeout={_RESTART_BUSY_TIMEOUT_MS}")  # (PASSIVE never waits)
        except sqlite3.Error:
            log.warning("journal checkpointer cannot open %s:\n%s", self.path, traceback.format_exc())
            return
        try:
            while True:
                self.wake.wait()
                self.wake.clear()
                if self._stopping:
                    return
                try:
                    _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames >= _RESTART_FRAMES:
                        with self.write_lock:  # the writer waits here, not in SQLite's busy handler
                            db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                except sqlite3.Error:
                    log.warning("journal checkpoint failed:\n%s", traceback.format_exc())
        finally:
            db.close()

    def close(self) -> None:
        self._stopping = True
        self.wake.set()
        self._thread.join()


def open_journal(data_dir: Path, url: str | None = None, *, schema: str = "clearway",
                 sqlite_synchronous: str = "full") -> Journal:
    """The journal for ``url``: None or ``sqlite`` → ``DATA_DIR/journal.sqlite3`` (with
    ``sqlite_synchronous``, see SqliteJournal); ``postgresql://…`` (or ``postgres://…``) →
    PostgresJournal in ``schema``.

    Raises JournalError for an unknown scheme, ValueError for an unknown synchronous mode."""
    if url is None or url in ("sqlite", "sqlite:"):
        journal = SqliteJournal(Path(data_dir) / SQLITE_FILE, synchronous=sqlite_synchronous)
        try:
            journal.preallocate_wal()
        except JournalError:  # an optimisation only: recovery decides what is wrong
            log.warning("could not preallocate the WAL:\n%s", traceback.format_exc())
        return journal
    if url.startswith(("postgresql://", "postgres://")):
        from clearway.engine.pgjournal import PostgresJournal

        return PostgresJournal(url, schema=schema)
    raise JournalError(f"unknown journal {url!r}: use postgresql://… or leave it out for SQLite")
