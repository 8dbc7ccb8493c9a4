"""The journal: the append-only, durable log of sequenced commands.

A record is ``(seq, command, checksum)``: the sequence number, the command's MessagePack
bytes (``encode_command``, with seq and ts inside) and ``record_checksum(seq, command)``, a
CRC-32 of the bytes seeded with the sequence number, so a damaged record, or a sound record
under the wrong number, is detected on recovery (recovery.py cuts the journal there).

Back ends: ``SqliteJournal`` (this module; the embedded default, one file in the data
directory, WAL mode with ``synchronous=FULL`` so every commit is fsynced) and
``PostgresJournal`` (pgjournal.py). Both keep the records in ``journal``, the genesis in
``journal_meta`` and records cut on recovery in ``journal_quarantine`` (kept for forensics,
never replayed).

Threading: a journal object is used by one thread at a time (recovery, then the node's
committer thread, then close); it does no locking of its own.
"""

from __future__ import annotations

import sqlite3
import time
import zlib
from pathlib import Path
from typing import Iterator, Protocol, Sequence

from clearway.engine.errors import JournalError

Record = tuple[int, bytes, int]
"""(seq, encoded command, checksum)."""

SQLITE_FILE = "journal.sqlite3"
_INSERT_CHUNK = 256  # rows per INSERT statement; 768 parameters, under SQLite's 32,766
_INSERT_SQL: dict[int, str] = {}


def _insert_sql(rows: int) -> str:
    sql = _INSERT_SQL.get(rows)
    if sql is None:
        sql = _INSERT_SQL[rows] = ("INSERT INTO journal (seq, command, checksum) VALUES "
                                   + ", ".join(["(?, ?, ?)"] * rows))
    return sql


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
    """Journal in one SQLite file, WAL mode, ``synchronous=FULL`` (a commit returns after
    the WAL is fsynced, so an acknowledged command survives a crash or power loss).

    SQLite's own WAL frame checksums make a torn transaction disappear as a whole on the
    next open; the record checksums catch damage inside committed pages.

    Parameters
    ----------
    path : Path
        The database file (created with its tables if missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise JournalError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS journal (
                    seq INTEGER PRIMARY KEY, command BLOB NOT NULL, checksum INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS journal_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS journal_quarantine (
                    cut_at_ms INTEGER NOT NULL, seq INTEGER NOT NULL, command BLOB, checksum INTEGER);
                """
            )
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path}: {exc}") from exc

    def genesis(self) -> bytes | None:
        row = self._db.execute("SELECT value FROM journal_meta WHERE key = 'genesis'").fetchone()
        return None if row is None else bytes(row[0])

    def set_genesis(self, data: bytes) -> None:
        self._db.execute("INSERT INTO journal_meta (key, value) VALUES ('genesis', ?)", (data,))

    def last_seq(self) -> int:
        return self._db.execute("SELECT coalesce(max(seq), 0) FROM journal").fetchone()[0]

    def append(self, records: Sequence[Record]) -> None:
        """One transaction of multi-row INSERTs (chunks of 256, 128, …, 1 rows: few cached
        statements). Each statement is one ``sqlite3_step``, during which the GIL is
        free; ``executemany`` would release and re-take it per row, which under a busy
        sequencer thread costs a GIL hand-off per record."""
        db = self._db
        db.execute("BEGIN")
        try:
            start, n = 0, len(records)
            while start < n:
                size = _INSERT_CHUNK
                while size > n - start:
                    size >>= 1
                chunk = records[start:start + size]
                db.execute(_insert_sql(size), [value for record in chunk for value in record])
                start += size
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def read_after(self, seq: int, limit: int) -> list[Record]:
        return self._db.execute(
            "SELECT seq, command, checksum FROM journal WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        ).fetchall()

    def read(self, seq: int) -> Record | None:
        return self._db.execute("SELECT seq, command, checksum FROM journal WHERE seq = ?", (seq,)).fetchone()

    def cut(self, from_seq: int) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO journal_quarantine (cut_at_ms, seq, command, checksum) "
                "SELECT ?, seq, command, checksum FROM journal WHERE seq >= ?",
                (time.time_ns() // 1_000_000, from_seq),
            )
            count = db.execute("DELETE FROM journal WHERE seq >= ?", (from_seq,)).rowcount
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return count

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def close(self) -> None:
        self._db.close()


def open_journal(data_dir: Path, url: str | None = None, *, schema: str = "clearway") -> Journal:
    """The journal for ``url``: None or ``sqlite`` → ``DATA_DIR/journal.sqlite3``;
    ``postgresql://…`` (or ``postgres://…``) → PostgresJournal in ``schema``.

    Raises JournalError for an unknown scheme."""
    if url is None or url in ("sqlite", "sqlite:"):
        return SqliteJournal(Path(data_dir) / SQLITE_FILE)
    if url.startswith(("postgresql://", "postgres://")):
        from clearway.engine.pgjournal import PostgresJournal

        return PostgresJournal(url, schema=schema)
    raise JournalError(f"unknown journal {url!r}: use postgresql://… or leave it out for SQLite")
