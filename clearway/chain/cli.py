"""``clearway chain …``: settlement commands.

``clearway chain selftest [--rpc-url URL] [--json]`` runs the whole settlement lifecycle
(selftest.py) on a fresh embedded chain, or on the EVM node at URL (a dev node such as
anvil: the test needs ``evm_increaseTime`` to pass the forced-withdrawal deadline), and
prints its report; the exit status is 0 only if conservation holds.

The selftest needs a sequencer node. The chain layer does not import the engine (DESIGN.md
"Layers"), so the top-level CLI passes the engine in: ``add_chain_parser(sub,
engine=…)`` with an object that has ``open_node(data_dir, genesis)`` and
``open_log(data_dir)`` (see :class:`EngineHooks`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Protocol


class EngineHooks(Protocol):
    """How the selftest reaches the engine: a running node (``submit``, ``query``,
    ``close``) and a reader of its journal (``read_after``, ``close``)."""

    def open_node(self, data_dir: Path, genesis: Any) -> Any: ...

    def open_log(self, data_dir: Path) -> Any: ...


def add_chain_parser(subparsers, engine: EngineHooks | None = None) -> None:
    """Register ``chain`` (and ``chain selftest``) on ``subparsers``.

    ``engine`` provides the sequencer node to the selftest (module docstring); without it
    ``chain selftest`` exits with status 2 and says so.
    """
    chain = subparsers.add_parser("chain", help="L1 settlement: vault, batches, escape")
    chain_sub = chain.add_subparsers(dest="chain_command", required=True)
    selftest = chain_sub.add_parser("selftest", help="run the settlement lifecycle on a fresh chain")
    selftest.add_argument("--rpc-url", default=None, metavar="URL",
                          help="EVM JSON-RPC node (default: the embedded in-process EVM)")
    selftest.add_argument("--json", action="store_true", help="print the report as JSON")
    selftest.add_argument("--api-trades", type=int, default=1_000, help="trades in the API-key batch")
    selftest.add_argument("--signed-trades", type=int, default=800, help="trades in the signed batch")
    selftest.set_defaults(func=lambda args: run_selftest_command(args, engine))


def run_selftest_command(args: argparse.Namespace, engine: EngineHooks | None) -> int:
    """Handler of ``clearway chain selftest``; returns the exit status."""
    if engine is None:
        sys.stderr.write("clearway chain selftest: no engine wired (add_chain_parser(..., engine=...))\n")
        return 2
    from clearway.chain.errors import ChainError
    from clearway.chain.selftest import run_selftest

    try:
        report = run_selftest(engine.open_node, engine.open_log, args.rpc_url, args.api_trades, args.signed_trades)
    except ChainError as exc:
        sys.stderr.write(f"clearway chain selftest: {exc}\n")
        return 1
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        for key, value in report.items():
            if key != "details":
                sys.stdout.write(f"{key:>22}: {value}\n")
    return 0 if report["conservation_ok"] else 1
