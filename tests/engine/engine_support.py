"""Helpers for the engine tests: a fixed clock, the journal back ends (SQLite always,
PostgreSQL when CLEARWAY_TEST_PG_URL is set — CI starts one with .ci/postgres.sh), and a
journal wrapper that lets a test hold or break a commit."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import msgspec

from clearway.domain.state import ExchangeState, apply, state_hash
from clearway.engine.journal import SQLITE_FILE, pack_records, unpack_records
from clearway.engine.node import Node

PG_URL = os.environ.get("CLEARWAY_TEST_PG_URL")
T0 = 1_700_000_000_000


def fixed_clock() -> int:
    return T0


def reference_hash(genesis, commands, ts: int = T0) -> str:
    """State hash after applying ``commands`` numbered 1.. with timestamp ``ts``."""
    state = ExchangeState(genesis)
    for seq, command in enumerate(commands, 1):
        apply(state, msgspec.structs.replace(command, seq=seq, ts=ts))
    return state_hash(state)


class Backend:
    """One journal back end for a test: opens nodes and reaches into the stored records."""

    def __init__(self, kind: str, data_dir: Path, schema: str | None = None) -> None:
        self.kind = kind
        self.data_dir = data_dir
        self.schema = schema

    def journal(self):
        """A new journal object on this back end (a fresh connection each time)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.kind == "sqlite":
            from clearway.engine.journal import SqliteJournal

            return SqliteJournal(self.data_dir / SQLITE_FILE)
        from clearway.engine.pgjournal import PostgresJournal

        return PostgresJournal(PG_URL, schema=self.schema)

    def node(self, genesis, journal=None, **kwargs) -> Node:
        """A node on this back end with the fixed clock and no periodic snapshots unless
        asked; ``journal`` overrides the journal object (e.g. a GatedJournal)."""
        kwargs.setdefault("clock", fixed_clock)
        kwargs.setdefault("snapshot_every", 0)
        kwargs.setdefault("freeze_gc", False)  # a test process makes many nodes: keep GC whole
        return Node(self.data_dir, genesis, journal=journal or self.journal(), **kwargs)

    def execute(self, sql: str, params: tuple = ()) -> list:
        """Run SQL (``?`` placeholders) directly on the stored journal; return the rows."""
        if self.kind == "sqlite":
            db = sqlite3.connect(self.data_dir / SQLITE_FILE, isolation_level=None)
            try:
                return db.execute(sql, params).fetchall()
            finally:
                db.close()
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.schema}"')
            cur = conn.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []

    def count(self) -> int:
        """Records stored (SQLite: the numbers its group rows claim)."""
        if self.kind == "sqlite":
            return self.execute("SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM journal_group")[0][0]
        return self.execute("SELECT count(*) FROM journal")[0][0]

    def command(self, seq: int) -> bytes:
        """The stored bytes of record ``seq``."""
        journal = self.journal()
        try:
            return bytes(journal.read(seq)[1])
        finally:
            journal.close()

    def damage(self, seq: int, kind: str, command: bytes | None = None) -> None:
        """Damage record ``seq`` in place: ``kind`` "command" (store ``command`` instead
        of its bytes, checksum kept), "checksum" (checksum + 1) or "missing" (remove the
        record; on SQLite its frame leaves its group row, which still claims the number)."""
        if self.kind != "sqlite":
            if kind == "command":
                self.execute("UPDATE journal SET command = ? WHERE seq = ?", (command, seq))
            elif kind == "checksum":
                self.execute("UPDATE journal SET checksum = checksum + 1 WHERE seq = ?", (seq,))
            else:
                self.execute("DELETE FROM journal WHERE seq = ?", (seq,))
            return
        ((first, last, packed),) = self.execute(
            "SELECT first_seq, last_seq, records FROM journal_group WHERE first_seq <= ? AND last_seq >= ?", (seq, seq))
        records = unpack_records(first, last, packed)
        i = seq - first
        s, data, checksum = records[i]
        if kind == "command":
            records[i] = (s, command, checksum)
        elif kind == "checksum":
            records[i] = (s, data, (checksum + 1) & 0xFFFFFFFF)
        else:
            del records[i]
        self.execute("UPDATE journal_group SET records = ? WHERE first_seq = ?", (pack_records(records), first))


class GatedJournal:
    """Wraps a journal: records every append, can hold appends at a gate, or fail them."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.appends: list[list[int]] = []  # sequence numbers of each committed append
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set when an append reaches the gate
        self.fail_with: BaseException | None = None

    def append(self, records) -> None:
        self.entered.set()
        self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        self.inner.append(records)
        self.appends.append([r[0] for r in records])

    def __getattr__(self, name):
        return getattr(self.inner, name)


def wait_until(predicate, timeout: float = 30.0) -> None:
    """Wait for a condition another thread will make true (fails the test on timeout;
    the timeout is a safety net, not part of what is tested)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.001)
