"""The settlement side's durable memory (one SQLite file, ``settlement.sqlite3``):

- ``forced``: forced-withdrawal requests seen on L1, the sequence number of the command
  that serves each (0: served by no command) and the batch that included it;
- ``auth``: the authorisation envelope of every signed command, by sequence number (a
  command without an entry is operator-attested: it came through an API-key session);
- ``batches``: every batch built, with its data, root and effects, and whether it was
  submitted and finalised — so a restarted batcher resubmits exactly the same bytes
  (idempotent by batch number);
- ``meta``: the watcher's last scanned block.

The journal (engine) remains the record of the commands themselves; this store only adds
what the journal does not carry. Thread-safe (one connection, one lock); WAL mode,
``synchronous=FULL``.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import msgspec

from clearway.commitment.authorisation import Authorisation, AuthKind
from clearway.commitment.effects import ForcedWithdrawalServed, Withdrawal
from clearway.commitment.replay import BatchEffects, ForcedRequest

INBOX_FILE = "settlement.sqlite3"

BUILT, SUBMITTED, FINALISED = "built", "submitted", "finalised"


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batch as the batcher built it (``status``: built, submitted or finalised)."""

    batch_number: int
    first_seq: int
    last_seq: int
    prev_root: bytes
    new_root: bytes
    data: bytes
    effects: BatchEffects
    trades: int
    status: str


@dataclass(frozen=True, slots=True)
class ForcedRecord:
    """A forced request and how it is being served (``seq`` None: not yet handled)."""

    request: ForcedRequest
    seq: int | None
    batch_number: int | None


def _encode_effects(effects: BatchEffects) -> bytes:
    return msgspec.msgpack.encode([effects.last_deposit_id, [w.as_tuple() for w in effects.withdrawals],
                                   [f.as_tuple() for f in effects.forced_served]])


def _decode_effects(data: bytes) -> BatchEffects:
    last, withdrawals, forced = msgspec.msgpack.decode(data)
    return BatchEffects(last, tuple(Withdrawal(o, a) for o, a in withdrawals),
                        tuple(ForcedWithdrawalServed(r, a) for r, a in forced))


class Inbox:
    """See the module docstring. ``path`` is a directory (the file is created in it)."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.path = path / INBOX_FILE
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS forced (
                request_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, amount INTEGER NOT NULL,
                deadline INTEGER NOT NULL, seq INTEGER, batch_number INTEGER);
            CREATE TABLE IF NOT EXISTS auth (
                seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, nonce INTEGER NOT NULL, signature BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS batches (
                batch_number INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
                prev_root BLOB NOT NULL, new_root BLOB NOT NULL, data BLOB NOT NULL, effects BLOB NOT NULL,
                trades INTEGER NOT NULL, status TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            """
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str, default: int = 0) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: int) -> None:
        with self._lock:
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                             "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    # ------------------------------------------------------------------ authorisations
    def record_authorisation(self, seq: int, auth: Authorisation) -> None:
        """Remember the envelope of the command sequenced as ``seq`` (signed ones only)."""
        if auth.kind == AuthKind.OPERATOR:
            return
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO auth (seq, kind, nonce, signature) VALUES (?, ?, ?, ?)",
                             (seq, int(auth.kind), auth.nonce, auth.signature))

    def authorisations(self, first_seq: int, last_seq: int) -> dict[int, Authorisation]:
        with self._lock:
            rows = self._db.execute("SELECT seq, kind, nonce, signature FROM auth WHERE seq BETWEEN ? AND ?",
                                    (first_seq, last_seq)).fetchall()
        return {seq: Authorisation(AuthKind(kind), nonce, bytes(sig)) for seq, kind, nonce, sig in rows}

    # ------------------------------------------------------------------ forced withdrawals
    def add_forced(self, request: ForcedRequest) -> bool:
        """Record a request seen on L1; False if it was known already."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO forced (request_id, owner, amount, deadline) VALUES (?, ?, ?, ?)",
                (request.request_id, request.owner.lower(), request.amount, request.deadline))
        return cursor.rowcount == 1

    def set_forced_seq(self, request_id: int, seq: int) -> None:
        """``seq`` of the command serving the request (0: none)."""
        with self._lock:
            self._db.execute("UPDATE forced SET seq = ? WHERE request_id = ?", (seq, request_id))

    def set_forced_batch(self, request_ids: list[int], batch_number: int) -> None:
        with self._lock:
            self._db.executemany("UPDATE forced SET batch_number = ? WHERE request_id = ?",
                                 [(batch_number, r) for r in request_ids])

    def forced(self, unserved_only: bool = False) -> list[ForcedRecord]:
        """All requests (or those no batch included yet), by request id."""
        sql = "SELECT request_id, owner, amount, deadline, seq, batch_number FROM forced"
        if unserved_only:
            sql += " WHERE batch_number IS NULL"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY request_id").fetchall()
        return [ForcedRecord(ForcedRequest(r, o, a, d), s, b) for r, o, a, d, s, b in rows]

    # ------------------------------------------------------------------ batches
    def store_batch(self, batch: StoredBatch) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO batches (batch_number, first_seq, last_seq, prev_root, new_root, data, effects, trades, "
                "status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (batch.batch_number, batch.first_seq, batch.last_seq, batch.prev_root, batch.new_root, batch.data,
                 _encode_effects(batch.effects), batch.trades, batch.status))

    def set_status(self, batch_number: int, status: str) -> None:
        with self._lock:
            self._db.execute("UPDATE batches SET status = ? WHERE batch_number = ?", (status, batch_number))

    def batches(self, status: str | None = None) -> list[StoredBatch]:
        sql = ("SELECT batch_number, first_seq, last_seq, prev_root, new_root, data, effects, trades, status "
               "FROM batches")
        params: tuple = ()
        if status is not None:
            sql += " WHERE status = ?"
            params = (status,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY batch_number", params).fetchall()
        return [StoredBatch(n, f, l, bytes(p), bytes(r), bytes(d), _decode_effects(bytes(e)), t, s)
                for n, f, l, p, r, d, e, t, s in rows]

    def batch(self, batch_number: int) -> StoredBatch | None:
        """One stored batch by number (None if never built)."""
        with self._lock:
            row = self._db.execute(
                "SELECT batch_number, first_seq, last_seq, prev_root, new_root, data, effects, trades, status "
                "FROM batches WHERE batch_number = ?", (batch_number,)).fetchone()
        if row is None:
            return None
        n, f, l, p, r, d, e, t, st = row
        return StoredBatch(n, f, l, bytes(p), bytes(r), bytes(d), _decode_effects(bytes(e)), t, st)

    def last_batch(self) -> StoredBatch | None:
        stored = self.batches()
        return stored[-1] if stored else None
