"""Crash test: a real ``clearway node`` child process under steady load, killed with
SIGKILL at random moments and restarted, then checked against its journal.

Used by ``bench/node.py`` (≥ 20 kills) and by a small test (a few kills). The harness
feeds commands of the synthetic mix (loadgen.py) as JSON lines to the child's standard
input and reads its acknowledgements (one line per command, in order, written only once
the command is durable — see cli.py). Checks:

- after every restart, the recovered journal ends at or after the last acknowledged
  command;
- at the end, every acknowledged command is in the journal under its acknowledged
  sequence number, unchanged (``acknowledged_lost`` counts those that are not);
- the final state hash of the node equals a clean replay of the whole journal from
  genesis.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec

from clearway.domain.commands import decode_command
from clearway.domain.state import ExchangeState, apply, state_hash
from clearway.engine.journal import iter_records, open_journal
from clearway.engine.loadgen import bench_genesis, command_stream

_WARMUP = 101  # deposits and the first mark price: acknowledged before the first kill


def crash_test(data_dir: Path, kills: int, *, seed: int = 1, journal_url: str | None = None,
               pg_schema: str = "clearway", snapshot_every: int = 2_000,
               delay_s: tuple[float, float] = (0.05, 0.4), timeout_s: float = 120.0) -> dict:
    """Run ``kills`` kill/restart cycles and a final clean shutdown; return the findings.

    Returns
    -------
    dict
        crash_cycles, acknowledged (distinct commands acknowledged), acknowledged_lost,
        state_hash_match, journal_records, recoveries_from_snapshot, journal_cuts,
        max_recovery_s.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    genesis = bench_genesis()
    genesis_file = data_dir.parent / (data_dir.name + "-genesis.json")
    genesis_file.write_bytes(msgspec.json.encode(genesis))
    argv = [sys.executable, "-m", "clearway.engine.cli", "node", "--data-dir", str(data_dir),
            "--genesis", str(genesis_file), "--snapshot-every", str(snapshot_every), "--pg-schema", pg_schema]
    if journal_url:
        argv += ["--journal", journal_url]
    rng = random.Random(seed)
    stream = command_stream(seed)
    acked: dict[int, bytes] = {}  # seq → the command as sent (JSON, without seq/ts)
    findings = {"crash_cycles": 0, "acknowledged_lost": 0, "recoveries_from_snapshot": 0, "journal_cuts": 0,
                "max_recovery_s": 0.0}
    final_hash = None
    for cycle in range(kills + 1):
        last_kill = cycle == kills
        with open(data_dir.parent / (data_dir.name + "-child.log"), "ab") as log:
            child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        report = msgspec.json.decode(child.stdout.readline())["recovered"]
        findings["max_recovery_s"] = max(findings["max_recovery_s"], report["seconds"])
        findings["recoveries_from_snapshot"] += report["snapshot_seq"] > 0
        findings["journal_cuts"] += report["cut_from"] is not None
        newest_ack = max(acked, default=0)
        if report["last_seq"] < newest_ack:
            findings["acknowledged_lost"] += sum(1 for seq in acked if seq > report["last_seq"])
        sent: list[bytes] = []
        stop = threading.Event()
        feeder = threading.Thread(target=_feed, args=(child, stream, sent, stop), daemon=True)
        reader_done: list[dict | None] = [None]
        reader = threading.Thread(target=_read_acks, args=(child, sent, acked, reader_done), daemon=True)
        feeder.start()
        reader.start()
        deadline = time.monotonic() + timeout_s
        while len(acked) < _WARMUP and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.005)
        time.sleep(rng.uniform(*delay_s))
        if last_kill:
            stop.set()  # the feeder closes the child's input: a clean shutdown
        else:
            child.send_signal(signal.SIGKILL)
            findings["crash_cycles"] += 1
        child.wait(timeout=timeout_s)
        reader.join(timeout_s)
        feeder.join(timeout_s)
        if last_kill:
            closed = reader_done[0]
            final_hash = closed["state_hash"] if closed else None

    journal = open_journal(data_dir, journal_url, schema=pg_schema)
    try:
        state = ExchangeState(genesis)
        stored: dict[int, bytes] = {}
        for seq, data, _ in iter_records(journal, 0):
            command = decode_command(bytes(data))
            apply(state, command)
            if seq in acked:
                stored[seq] = msgspec.json.encode(msgspec.structs.replace(command, seq=0, ts=0))
        findings["journal_records"] = state.last_seq
    finally:
        journal.close()
    findings["acknowledged"] = len(acked)
    findings["acknowledged_lost"] += sum(1 for seq, sent_json in acked.items() if stored.get(seq) != sent_json)
    findings["state_hash_match"] = final_hash is not None and final_hash == state_hash(state)
    return findings


def _feed(child: subprocess.Popen, stream, sent: list[bytes], stop: threading.Event) -> None:
    """Write commands until the pipe breaks (the child was killed) or ``stop`` is set
    (then close the child's input, which shuts it down cleanly)."""
    out = child.stdin
    try:
        while not stop.is_set():
            chunk = [msgspec.json.encode(next(stream)) for _ in range(64)]
            sent.extend(chunk)  # before writing: the reader may see their acks at once
            out.write(b"\n".join(chunk) + b"\n")
            out.flush()
        out.close()
    except (BrokenPipeError, OSError):  # killed
        pass


def _read_acks(child: subprocess.Popen, sent: list[bytes], acked: dict[int, bytes], done: list) -> None:
    i = 0
    for line in child.stdout:
        message = msgspec.json.decode(line)
        if "seq" in message:
            acked[message["seq"]] = sent[i]
            i += 1
        elif "error" in message:
            i += 1
        elif "closed" in message:
            done[0] = message["closed"]
