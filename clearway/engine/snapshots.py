"""Snapshot files: the exchange state at a sequence number, checksummed and anchored.

A snapshot lives in ``DATA_DIR/snapshots/snapshot-<seq, 20 digits>.bin`` (for both journal
back ends) and is written atomically (temporary file, fsync, rename, fsync of the
directory). Layout, big-endian::

    magic "CWSNAP\\x00\\x01" | seq u64 | ts u64 | anchor 32 B | state hash 32 B | length u64
    | payload (clearway.domain.snapshot.encode_snapshot) | BLAKE2b-256 of everything before

``anchor`` is the BLAKE2b-256 of the journal record ``seq``'s command bytes. Recovery uses a
snapshot only if the journal still holds that exact record: a snapshot taken of commands
that never became durable (the node died first), or of commands later cut from a damaged
journal, can never be mistaken for the state of the journal's commands.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import NamedTuple

from clearway.domain.snapshot import encode_snapshot
from clearway.domain.state import ExchangeState, state_hash

MAGIC = b"CWSNAP\x00\x01"
_HEADER = struct.Struct(">8sQQ32s32sQ")
_DIGEST = 32
SNAPSHOT_DIR = "snapshots"


class SnapshotCorrupt(ValueError):
    """The file is not a whole, intact snapshot."""


class SnapshotFile(NamedTuple):
    seq: int
    ts: int
    anchor: bytes
    state_hash: str
    payload: bytes


def anchor_of(command: bytes) -> bytes:
    """BLAKE2b-256 of a journal record's command bytes (32 bytes)."""
    return hashlib.blake2b(command, digest_size=_DIGEST).digest()


def build_snapshot(state: ExchangeState, anchor: bytes) -> bytes:
    """The file bytes of a snapshot of ``state`` (whose last command has ``anchor``).

    Costs an ``encode_snapshot`` and a ``state_hash`` of the whole state, which share one
    pass over the books (``ExchangeState.book_rows``): ~1 ms of CPU for the bench's ~1,400
    resting orders on the bench VM, tens of ms for tens of thousands of orders; the node
    builds it on the sequencer's thread while that is cheap, else in a forked child."""
    rows = state.book_rows()
    payload = encode_snapshot(state, rows)
    header = _HEADER.pack(MAGIC, state.last_seq, state.last_ts, anchor,
                          bytes.fromhex(state_hash(state, rows)), len(payload))
    body = header + payload
    return body + hashlib.blake2b(body, digest_size=_DIGEST).digest()


def parse_snapshot(data: bytes) -> SnapshotFile:
    """Check magic, length and checksum; return the fields. Raises SnapshotCorrupt."""
    if len(data) < _HEADER.size + _DIGEST:
        raise SnapshotCorrupt("shorter than a header")
    magic, seq, ts, anchor, raw_hash, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotCorrupt("bad magic")
    if len(data) != _HEADER.size + length + _DIGEST:
        raise SnapshotCorrupt(f"length {len(data)} does not match the header ({length}-byte payload)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.blake2b(body, digest_size=_DIGEST).digest() != digest:
        raise SnapshotCorrupt("checksum mismatch")
    return SnapshotFile(seq, ts, anchor, raw_hash.hex(), data[_HEADER.size:-_DIGEST])


class SnapshotStore:
    """The snapshot files of one data directory.

    Parameters
    ----------
    data_dir : Path
        Snapshots go to ``data_dir/snapshots`` (created if missing).
    """

    def __init__(self, data_dir: Path) -> None:
        self.directory = Path(data_dir) / SNAPSHOT_DIR
        self.directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, seq: int) -> Path:
        return self.directory / f"snapshot-{seq:020d}.bin"

    def write(self, seq: int, data: bytes) -> Path:
        """Atomically store ``data`` (``build_snapshot`` bytes) as the snapshot of ``seq``."""
        path = self.path_for(seq)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(self.directory)
        return path

    def sequences(self) -> list[int]:
        """Sequence numbers of the stored snapshots, newest first (names only, unchecked)."""
        seqs = []
        for path in self.directory.glob("snapshot-*.bin"):
            digits = path.name[len("snapshot-"):-len(".bin")]
            if digits.isdigit():
                seqs.append(int(digits))
        return sorted(seqs, reverse=True)

    def load(self, seq: int) -> SnapshotFile:
        """Read and check the snapshot of ``seq``. Raises SnapshotCorrupt (also when the
        header names another sequence number) or OSError."""
        snap = parse_snapshot(self.path_for(seq).read_bytes())
        if snap.seq != seq:
            raise SnapshotCorrupt(f"file of seq {seq} holds seq {snap.seq}")
        return snap

    def remove(self, seq: int) -> None:
        self.path_for(seq).unlink(missing_ok=True)

    def remove_temporaries(self) -> None:
        """Delete leftovers of interrupted writes (call only while no writer runs)."""
        for path in self.directory.glob("snapshot-*.bin.tmp*"):
            path.unlink(missing_ok=True)

    def prune(self, keep: int) -> None:
        """Keep the ``keep`` newest snapshots (by name), delete the rest."""
        for seq in self.sequences()[keep:]:
            self.remove(seq)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
