"""fdatasync latency of a directory's disk: the floor under every durable acknowledgement
(one SQLite WAL commit in ``synchronous=full`` = at least one such sync), measured by the
node and API benchmarks so their latency figures can be read against the disk's."""

from __future__ import annotations

import os
import tempfile
import time

from stats import percentile  # bench/ is on sys.path


def sync_latency(directory: str | None = None, seconds: float = 2.0) -> dict:
    """Overwrite one 8 KiB block of a preallocated 16 MiB file and fdatasync it, over and
    over for ``seconds``, as the node's WAL commits do
    once the WAL is preallocated (journal.SqliteJournal.preallocate_wal).

    Returns ``{"syncs", "p50_ms", "p99_ms", "p999_ms", "max_ms", "over_5ms", "over_5ms_per_s"}``:
    a stall of the disk delays every acknowledgement waiting for it, so ``over_5ms_per_s``
    bounds what a p99 ≤ 5 ms target can survive."""
    samples = []
    block = b"\0" * 8192
    with tempfile.NamedTemporaryFile(dir=directory) as probe:
        fd = probe.fileno()
        os.pwrite(fd, b"\0" * (16 << 20), 0)
        os.fsync(fd)
        slots = (16 << 20) // len(block)
        clock = time.perf_counter
        end = clock() + seconds
        i = 0
        while clock() < end:
            os.pwrite(fd, block, (i % slots) * len(block))
            i += 1
            start = clock()
            os.fdatasync(fd)
            samples.append(clock() - start)
    samples.sort()
    n = len(samples)
    over = sum(s > 0.005 for s in samples)
    return {"syncs": n, "p50_ms": round(1e3 * percentile(samples, 0.50, presorted=True), 3),
            "p99_ms": round(1e3 * percentile(samples, 0.99, presorted=True), 3),
            "p999_ms": round(1e3 * percentile(samples, 0.999, presorted=True), 3), "max_ms": round(1e3 * samples[-1], 3),
            "over_5ms": over, "over_5ms_per_s": round(over / seconds, 2)}
