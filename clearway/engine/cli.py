"""``clearway node``: run a sequencer node in the foreground.

Until the network API exists, the node takes commands as JSON lines on standard input
(the array form of ``msgspec.json.encode(command)``, e.g.
``["dep",0,0,"0x…",1000000,1]``; seq and ts are assigned by the node) and writes one JSON
line per command to standard output, in input order, once the command is durable::

    {"seq": 7, "events": [...]}                          acknowledged
    {"error": 4001, "message": "..."}                    refused at the door, not journaled

The first output line is ``{"recovered": {...}}`` (recovery.RecoveryReport); at the end of
input (or on SIGTERM / SIGINT) the node shuts down cleanly and prints
``{"closed": {"last_seq": …, "state_hash": …}}``. ``python -m clearway.engine.cli node …``
runs the same command without the top-level CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import signal
import sys
import threading
from pathlib import Path

import msgspec

from clearway.domain.commands import Command
from clearway.domain.genesis import GenesisConfig
from clearway.engine.idlepoll import ADAPTIVE_WINDOW_S, IDLE_POLL_MODES, IdlePoller, start_default

_END = object()


def add_node_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``node`` subcommand (and its handler) on ``subparsers``; returns its
    parser so upper layers (the API) can add their options."""
    node = subparsers.add_parser("node", help="run a sequencer node (commands as JSON lines on stdin)")
    node.add_argument("--data-dir", required=True, help="lock file, snapshots and the SQLite journal")
    node.add_argument("--journal", default=None, metavar="URL",
                      help="postgresql://user:pass@host:port/db (default: SQLite in --data-dir)")
    node.add_argument("--pg-schema", default="clearway", help="schema of the PostgreSQL journal")
    node.add_argument("--sqlite-synchronous", choices=["full", "normal"], default="full",
                      help="SQLite journal: full (default) fsyncs every commit, an acknowledged command "
                           "survives power loss; normal survives a crash of the node process only")
    node.add_argument("--genesis", default=None, metavar="FILE",
                      help="genesis config as JSON (needed once, when the journal is new)")
    node.add_argument("--snapshot-every", type=int, default=100_000, metavar="N",
                      help="commands between snapshots (0: only at shutdown)")
    node.add_argument("--keep-snapshots", type=int, default=3)
    node.add_argument("--max-command-bytes", type=int, default=16_384)
    node.add_argument("--recover-only", action="store_true", help="recover, print the report and exit")
    node.add_argument("--no-final-snapshot", action="store_true", help="skip the snapshot at shutdown")
    node.add_argument("--idle-poll", choices=IDLE_POLL_MODES, nargs="?", const="always", default=None,
                      help="keep the CPUs polling instead of halting while they wait (a SCHED_IDLE spinner "
                           "per CPU, engine/idlepoll.py): lower latency on virtual machines. adaptive "
                           "(default): each CPU polls until it has been idle for --idle-poll-window-us, "
                           "so only around traffic; always (also the bare flag): polls all the idle "
                           "time; off. The default steps aside under a container CPU quota, which the "
                           "spinners would use up")
    node.add_argument("--idle-poll-window-us", type=float, default=ADAPTIVE_WINDOW_S * 1e6, metavar="US",
                      help="adaptive idle polling: idle time after which a CPU halts (default 300)")
    node.set_defaults(func=run_node)
    return node


def idle_polling(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """``--idle-poll``: a started IdlePoller (engine/idlepoll.py) to run the node under, or
    a no-op context for ``off``. The default (adaptive) steps aside, with a line on
    standard error, where it would hurt or cannot run (``start_default``: under a CPU
    quota smaller than the CPUs, or where the spinners cannot start); an explicit mode
    is started whatever the quota, and one that cannot start ends the command
    (SystemExit with the reason), as does an adaptive window ≤ 0."""
    asked = getattr(args, "idle_poll", None)
    mode = asked or "adaptive"
    if mode == "off":
        return contextlib.nullcontext()
    window_s = None
    if mode == "adaptive":
        window_us = getattr(args, "idle_poll_window_us", ADAPTIVE_WINDOW_S * 1e6)
        if not window_us > 0:
            raise SystemExit(f"clearway node: --idle-poll-window-us must be positive, not {window_us}")
        window_s = window_us / 1e6
    if asked is not None:
        try:
            return IdlePoller(window_s=window_s).start()
        except OSError as exc:
            raise SystemExit(f"clearway node: --idle-poll {mode}: {exc}") from exc
    poller, why_not = start_default(window_s)
    if poller is None:
        sys.stderr.write(f"clearway node: no idle polling: {why_not} (--idle-poll adaptive or always to insist)\n")
        return contextlib.nullcontext()
    return poller


def run_node(args: argparse.Namespace) -> int:
    """Handler of ``clearway node``; returns the exit status."""
    with idle_polling(args):
        return _run_node(args)


def _run_node(args: argparse.Namespace) -> int:
    from clearway.engine.errors import CommandRejected
    from clearway.engine.node import Node

    genesis = None
    if args.genesis:
        genesis = msgspec.json.decode(Path(args.genesis).read_bytes(), type=GenesisConfig)
    out = sys.stdout.buffer
    node = Node(Path(args.data_dir), genesis, journal=args.journal, pg_schema=args.pg_schema,
                sqlite_synchronous=args.sqlite_synchronous,
                snapshot_every=args.snapshot_every, keep_snapshots=args.keep_snapshots,
                max_command_bytes=args.max_command_bytes)
    _write_line(out, {"recovered": node.recovery.to_dict()})
    out.flush()
    if args.recover_only:
        node.close(snapshot=not args.no_final_snapshot)
        return 0

    stopping = threading.Event()

    def _stop(signum, frame):  # leave the input loop, then shut down cleanly
        stopping.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    pending: queue.SimpleQueue = queue.SimpleQueue()
    printer = threading.Thread(target=_print_acks, args=(pending, out), name="clearway-acks", daemon=True)
    printer.start()
    decoder = msgspec.json.Decoder(Command)
    try:
        for line in sys.stdin.buffer:
            if not line.strip():
                continue
            try:
                pending.put(node.submit(decoder.decode(line)))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                pending.put({"error": int(_json_error_code(line)), "message": str(exc)})
            except CommandRejected as exc:
                pending.put({"error": int(exc.code), "message": exc.message})
                if stopping.is_set():
                    break
    except KeyboardInterrupt:
        pass
    node.close(snapshot=not args.no_final_snapshot)
    pending.put(_END)
    printer.join()
    _write_line(out, {"closed": {"last_seq": node.state.last_seq, "state_hash": node.state_hash()}})
    out.flush()
    return 0


def _print_acks(pending: queue.SimpleQueue, out) -> None:
    """Write one line per submission, in order, as each becomes durable (or fails)."""
    from clearway.engine.errors import NodeFailed

    while True:
        try:
            item = pending.get_nowait()
        except queue.Empty:
            out.flush()
            item = pending.get()
        if item is _END:
            out.flush()
            return
        if isinstance(item, dict):
            _write_line(out, item)
            continue
        try:
            _write_line(out, {"seq": _seq_after(item), "events": item.result()})
        except NodeFailed as exc:
            _write_line(out, {"error": 5002, "message": str(exc)})


def _json_error_code(line: bytes):
    """UNKNOWN_COMMAND_TYPE for a JSON array tagged with no command's name, else MALFORMED."""
    from clearway.engine.errors import EngineErrorCode
    from clearway.engine.node import COMMAND_TAGS

    try:
        value = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return EngineErrorCode.MALFORMED_COMMAND
    if isinstance(value, list) and value and isinstance(value[0], str) and value[0] not in COMMAND_TAGS:
        return EngineErrorCode.UNKNOWN_COMMAND_TYPE
    return EngineErrorCode.MALFORMED_COMMAND


def _seq_after(ticket) -> int:
    ticket.wait()
    return ticket.seq


def _write_line(out, obj) -> None:
    out.write(msgspec.json.encode(obj) + b"\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clearway")
    add_node_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
