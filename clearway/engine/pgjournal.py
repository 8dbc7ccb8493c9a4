"""PostgreSQL journal back end (``--journal postgresql://…``), with psycopg 3.

Same records as the SQLite journal (journal.py), one row per record in ``journal`` (the
SQLite journal frames a group's records in one row instead), with the same
``journal_meta`` and ``journal_quarantine``, inside one schema (default ``clearway``; tests
use one schema each). Appends go through ``COPY … FROM STDIN`` inside
one transaction per batch, so a group of commands costs one round trip and one WAL flush;
the session forces ``synchronous_commit = on`` so a returned commit is on disk even if the
server default says otherwise. A session advisory lock keyed by the schema makes the node
the journal's only writer (a second node fails with JournalLocked) until its connection
closes.
"""

from __future__ import annotations

import time
from typing import Sequence

import psycopg
from psycopg import sql

from clearway.engine.errors import JournalError, JournalLocked
from clearway.engine.journal import Record


class PostgresJournal:
    """Journal in PostgreSQL.

    Parameters
    ----------
    url : str
        libpq connection URL, e.g. ``postgresql://user:pass@127.0.0.1:5432/db``.
    schema : str
        Schema holding the tables (created if missing).
    lock_wait_s : float
        How long to wait for the writer lock before giving up.

    Raises
    ------
    JournalError
        Cannot connect or create the tables.
    JournalLocked
        Another session held this schema's writer lock for ``lock_wait_s``.
    """

    def __init__(self, url: str, *, schema: str = "clearway", lock_wait_s: float = 10.0) -> None:
        self.url = url
        self.schema = schema
        try:
            self._conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise JournalError(f"cannot connect to the PostgreSQL journal: {exc}") from exc
        try:
            conn = self._conn
            conn.execute("SET synchronous_commit TO on")
            # Wait a little: the server drops the lock of a node that just closed (or died)
            # only once its backend has noticed, a moment after the client is gone.
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{max(1, int(lock_wait_s * 1000))}ms")))
            try:
                conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", ("clearway-journal:" + schema,))
            except psycopg.errors.LockNotAvailable:
                raise JournalLocked(f"another node is writing the journal in schema {schema!r}") from None
            conn.execute("SET lock_timeout = 0")
            ident = sql.Identifier(schema)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
            conn.execute(sql.SQL("SET search_path TO {}").format(ident))
            with conn.transaction():
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS journal ("
                    " seq bigint PRIMARY KEY, command bytea NOT NULL, checksum bigint NOT NULL)"
                )
                conn.execute("CREATE TABLE IF NOT EXISTS journal_meta (key text PRIMARY KEY, value bytea NOT NULL)")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS journal_quarantine ("
                    " cut_at_ms bigint NOT NULL, seq bigint NOT NULL, command bytea, checksum bigint)"
                )
        except JournalError:
            self._conn.close()
            raise
        except psycopg.Error as exc:
            self._conn.close()
            raise JournalError(f"cannot prepare the PostgreSQL journal: {exc}") from exc

    def genesis(self) -> bytes | None:
        row = self._conn.execute("SELECT value FROM journal_meta WHERE key = 'genesis'").fetchone()
        return None if row is None else bytes(row[0])

    def set_genesis(self, data: bytes) -> None:
        self._conn.execute("INSERT INTO journal_meta (key, value) VALUES ('genesis', %s)", (data,))

    def last_seq(self) -> int:
        return self._conn.execute("SELECT coalesce(max(seq), 0) FROM journal").fetchone()[0]

    def append(self, records: Sequence[Record]) -> None:
        """One transaction: the records as one COPY text payload (``seq TAB \\x<hex> TAB
        checksum`` lines, built in one join: cheaper per row than ``write_row``)."""
        payload = "".join([f"{seq}\t\\\\x{data.hex()}\t{checksum}\n" for seq, data, checksum in records])
        conn = self._conn
        with conn.transaction():
            with conn.cursor() as cur:
                with cur.copy("COPY journal (seq, command, checksum) FROM STDIN") as copy:
                    copy.write(payload.encode())

    def read_after(self, seq: int, limit: int) -> list[Record]:
        with self._conn.cursor(binary=True) as cur:
            cur.execute("SELECT seq, command, checksum FROM journal WHERE seq > %s ORDER BY seq LIMIT %s",
                        (seq, limit))
            return cur.fetchall()

    def read(self, seq: int) -> Record | None:
        with self._conn.cursor(binary=True) as cur:
            cur.execute("SELECT seq, command, checksum FROM journal WHERE seq = %s", (seq,))
            return cur.fetchone()

    def cut(self, from_seq: int) -> int:
        conn = self._conn
        with conn.transaction():
            conn.execute(
                "INSERT INTO journal_quarantine (cut_at_ms, seq, command, checksum) "
                "SELECT %s, seq, command, checksum FROM journal WHERE seq >= %s",
                (time.time_ns() // 1_000_000, from_seq),
            )
            return conn.execute("DELETE FROM journal WHERE seq >= %s", (from_seq,)).rowcount

    def describe(self) -> str:
        info = self._conn.info
        return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname} schema {self.schema}"

    def close(self) -> None:
        self._conn.close()
