"""A verifier's durable memory: one SQLite file (``verifier.sqlite3``) in its data directory.

- ``identity``: the chain id, vault, genesis hash and verifier address the directory
  belongs to (a directory is never reused for another vault or key);
- ``snapshot``: the exchange state (``clearway.domain.snapshot``) after the last batch
  snapshotted, with the replica's served forced-request ids and the counters — what a
  restart resumes from;
- ``nonces``: every (owner, nonce) of a signed command of a verified batch (a signed
  command is valid once), with its batch number so that a restart from an older snapshot
  forgets the ones it will see again;
- ``attestations``: what the verifier signed, per batch;
- ``alarms``: every refusal, never deleted;
- ``meta``: progress for ``status`` (verified height, the vault's batch count at the last
  sync, the last block scanned).

Each verified batch is recorded in one transaction (nonces, attestation, height and, when
due, the snapshot): a crash leaves the store at the previous batch, and the batch is
verified again after the restart (signatures are deterministic, RFC 6979). WAL mode,
``synchronous=FULL``; one connection behind a lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from clearway.chain.contracts import Attestation, Signature
from clearway.verifier.alarms import Alarm, VerifierStats

STORE_FILE = "verifier.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), batch_number INTEGER NOT NULL,
    root BLOB NOT NULL, state BLOB NOT NULL, extra BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nonces (owner TEXT NOT NULL, nonce INTEGER NOT NULL, batch_number INTEGER NOT NULL,
    PRIMARY KEY (owner, nonce));
CREATE TABLE IF NOT EXISTS attestations (batch_number INTEGER PRIMARY KEY, prev_root BLOB NOT NULL,
    new_root BLOB NOT NULL, data_hash BLOB NOT NULL, effects_hash BLOB NOT NULL, v INTEGER NOT NULL,
    r BLOB NOT NULL, s BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS alarms (id INTEGER PRIMARY KEY AUTOINCREMENT, batch_number INTEGER NOT NULL,
    code TEXT NOT NULL, body TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a restart resumes from (see the module docstring)."""

    batch_number: int
    root: bytes
    state: bytes
    served: tuple[int, ...]
    stats: VerifierStats


class StoreMismatch(Exception):
    """The data directory belongs to another chain, vault, genesis or verifier key."""


class VerifierStore:
    """The SQLite store of one verifier (module docstring)."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / STORE_FILE
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, **values: Any) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            for key, value in values.items():
                self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))
            self._db.execute("COMMIT")

    def bind(self, identity: dict[str, Any]) -> None:
        """Record ``identity`` on a new store; raise StoreMismatch if it holds another."""
        held = self.get_meta("identity")
        if held is None:
            self.set_meta(identity=identity)
        elif held != identity:
            raise StoreMismatch(f"{self.data_dir} belongs to {held}, not {identity}")

    # ------------------------------------------------------------------ progress
    def record_batch(self, batch_number: int, nonces: Iterable[tuple[str, int]],
                     attestation: tuple[Attestation, Signature] | None, snapshot: Snapshot | None,
                     **meta: Any) -> None:
        """Record a verified batch in one transaction (module docstring)."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR REPLACE INTO nonces VALUES (?, ?, ?)",
                               [(owner, nonce, batch_number) for owner, nonce in nonces])
                if attestation is not None:
                    a, sig = attestation
                    db.execute("INSERT OR REPLACE INTO attestations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               (a.batch_number, a.prev_root, a.new_root, a.data_hash, a.effects_hash, sig.v, sig.r,
                                sig.s))
                if snapshot is not None:
                    extra = msgspec.msgpack.encode([list(snapshot.served), snapshot.stats.to_json()])
                    db.execute("INSERT OR REPLACE INTO snapshot VALUES (1, ?, ?, ?, ?)",
                               (snapshot.batch_number, snapshot.root, snapshot.state, extra))
                for key, value in {"height": batch_number, **meta}.items():
                    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def snapshot(self) -> Snapshot | None:
        """The latest snapshot, or None on a new store."""
        with self._lock:
            row = self._db.execute("SELECT batch_number, root, state, extra FROM snapshot WHERE id = 1").fetchone()
        if row is None:
            return None
        served, stats = msgspec.msgpack.decode(row[3])
        return Snapshot(row[0], bytes(row[1]), bytes(row[2]), tuple(served), VerifierStats.from_json(stats))

    def forget_after(self, batch_number: int) -> None:
        """Drop the nonces of batches after ``batch_number`` (a restart from that snapshot
        verifies them again)."""
        with self._lock:
            self._db.execute("DELETE FROM nonces WHERE batch_number > ?", (batch_number,))

    def nonce_used(self, owner: str, nonce: int) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM nonces WHERE owner = ? AND nonce = ?", (owner, nonce)).fetchone()
        return row is not None

    # ------------------------------------------------------------------ attestations
    def attestation(self, batch_number: int) -> tuple[Attestation, Signature] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM attestations WHERE batch_number = ?", (batch_number,)).fetchone()
        if row is None:
            return None
        return (Attestation(row[0], bytes(row[1]), bytes(row[2]), bytes(row[3]), bytes(row[4])),
                Signature(row[5], bytes(row[6]), bytes(row[7])))

    def attested_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM attestations").fetchone()[0]

    # ------------------------------------------------------------------ alarms
    def add_alarm(self, alarm: Alarm) -> None:
        with self._lock:
            self._db.execute("INSERT INTO alarms (batch_number, code, body) VALUES (?, ?, ?)",
                             (alarm.batch_number, alarm.code.name, json.dumps(alarm.to_json())))

    def alarms(self) -> list[Alarm]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM alarms ORDER BY id").fetchall()
        return [Alarm.from_json(json.loads(body)) for (body,) in rows]
