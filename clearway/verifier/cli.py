"""``clearway verifier …`` and ``clearway escape``.

::

    clearway verifier --rpc-url URL --vault ADDRESS --key KEYFILE --genesis FILE
                      [--data-dir DIR] [--board DIR] [--require-oracle]
                      [--from-block N] [--deposit-window BLOCKS] [--interval S] [--once]
                      [--no-finalise] [--no-freeze]
    clearway verifier status [--data-dir DIR] [--rpc-url URL --vault ADDRESS] [--json]
    clearway verifier drill [--json] [--data-dir DIR] [--seed N] [--rpc-url URL]
    clearway escape --account ADDRESS --rpc-url URL --vault ADDRESS --genesis FILE
                    [--key KEYFILE] [--from-block N] [--no-refund] [--json]

The verifier runs until interrupted (``--once``: one sync), printing one line per
attested, refused or finalised batch; exit status 0, or 1 if it holds an alarm. The
embedded chain exists only inside a process, so the embedded mode is the Python API
(``clearway.verifier.VerifierSet``, used by the drill and the demo); ``verifier drill``
runs it end to end.

``escape`` needs a key that pays gas (``--key``; on a dev node without one, a fresh funded
account); the vault pays the account's owner. It also refunds the address's deposits no
finalised batch included (unless ``--no-refund``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = "clearway-verifier"


def add_verifier_parsers(subparsers) -> None:
    """Register ``verifier`` (run, ``status``, ``drill``) and ``escape`` on ``subparsers``."""
    verifier = subparsers.add_parser("verifier", help="replay the chain's batches and attest their roots")
    verifier.add_argument("--rpc-url", metavar="URL", help="EVM JSON-RPC node")
    verifier.add_argument("--vault", metavar="ADDRESS", help="the vault contract")
    verifier.add_argument("--key", metavar="KEYFILE", help="the verifier's key (hex, or a JSON keystore with "
                          "CLEARWAY_KEY_PASSWORD)")
    verifier.add_argument("--genesis", metavar="FILE", help="genesis config (JSON or MessagePack); its keccak "
                          "must be the vault's")
    verifier.add_argument("--data-dir", default=DEFAULT_DATA_DIR, metavar="DIR", help="the verifier's own state")
    verifier.add_argument("--board", metavar="DIR", help="attestation board directory, shared by the vault's "
                          "verifiers (and the batcher) so that k signatures meet (default: DATA_DIR/board)")
    verifier.add_argument("--require-oracle", action="store_true",
                          help="refuse operator prices: every price must come from signed oracle reports")
    verifier.add_argument("--from-block", type=int, default=0, metavar="N", help="the vault's deployment block")
    verifier.add_argument("--deposit-window", type=int, default=7_200, metavar="BLOCKS",
                          help="blocks within which a deposit must be included (0: no deadline)")
    verifier.add_argument("--interval", type=float, default=5.0, metavar="S", help="seconds between syncs")
    verifier.add_argument("--once", action="store_true", help="sync once and exit")
    verifier.add_argument("--no-finalise", action="store_true", help="never send finalise_batch")
    verifier.add_argument("--no-freeze", action="store_true", help="never send freeze")
    verifier.add_argument("--json", action="store_true", help="print sync reports as JSON lines")
    verifier.set_defaults(func=run_verifier_command)
    sub = verifier.add_subparsers(dest="verifier_command")

    status = sub.add_parser("status", help="height, lag behind the sequencer, alarms")
    status.add_argument("--data-dir", default=DEFAULT_DATA_DIR, metavar="DIR")
    status.add_argument("--rpc-url", metavar="URL", help="read the vault's live batch counts")
    status.add_argument("--vault", metavar="ADDRESS")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=run_status_command)

    drill = sub.add_parser("drill", help="honest batches attested, seven lies refused, freeze and escape")
    drill.add_argument("--json", action="store_true")
    drill.add_argument("--data-dir", default=None, metavar="DIR", help="keep the verifiers' directories here")
    drill.add_argument("--seed", type=int, default=7)
    drill.add_argument("--rpc-url", default=None, metavar="URL",
                       help="run on this dev node (anvil) instead of the embedded chain")
    drill.set_defaults(func=run_drill_command)

    escape = subparsers.add_parser("escape", help="escape an account from a frozen vault, from chain data only")
    escape.add_argument("--account", required=True, metavar="ADDRESS", help="the account's owner address")
    escape.add_argument("--rpc-url", required=True, metavar="URL")
    escape.add_argument("--vault", required=True, metavar="ADDRESS")
    escape.add_argument("--genesis", required=True, metavar="FILE")
    escape.add_argument("--key", metavar="KEYFILE", help="pays the gas (default: a fresh account, dev nodes only)")
    escape.add_argument("--from-block", type=int, default=0, metavar="N")
    escape.add_argument("--no-refund", action="store_true", help="do not refund never-included deposits")
    escape.add_argument("--json", action="store_true")
    escape.set_defaults(func=run_escape_command)


def _out(obj: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(obj, indent=2) + "\n")
    else:
        for key, value in obj.items():
            if key not in ("details", "alarms", "stats"):
                sys.stdout.write(f"{key:>22}: {value}\n")
        for key in ("alarms",):
            value = obj.get(key)
            if isinstance(value, dict):
                for name, code in value.items():
                    sys.stdout.write(f"{'alarm':>22}: {name}: {code}\n")
            elif isinstance(value, list):
                for alarm in value:
                    where = f" at seq {alarm['seq']}" if alarm["seq"] is not None else ""
                    sys.stdout.write(f"{'alarm':>22}: batch {alarm['batch_number']} {alarm['code']}{where}: "
                                     f"{alarm['message']}\n")


def _fail(command: str, message: str, status: int = 2) -> int:
    sys.stderr.write(f"clearway {command}: {message}\n")
    return status


# ============================================================================ run


def run_verifier_command(args: argparse.Namespace) -> int:
    """``clearway verifier --rpc-url …``: follow the vault until interrupted."""
    missing = [flag for flag, value in (("--rpc-url", args.rpc_url), ("--vault", args.vault), ("--key", args.key),
                                        ("--genesis", args.genesis)) if not value]
    if missing:
        return _fail("verifier", "missing " + ", ".join(missing) + " (or use 'verifier drill' / 'verifier status')")
    from clearway.chain.backend import open_chain
    from clearway.chain.errors import ChainError
    from clearway.verifier.board import DirectoryBoard
    from clearway.verifier.connect import attach_vault, load_genesis, load_key
    from clearway.verifier.verifier import Verifier, VerifierConfig, VerifierError

    try:
        key = load_key(args.key)
        genesis = load_genesis(args.genesis)
        client = attach_vault(open_chain(args.rpc_url), args.vault)
        config = VerifierConfig(require_oracle=args.require_oracle,
                                deposit_window_blocks=args.deposit_window or None, finalise=not args.no_finalise,
                                freeze_overdue=not args.no_freeze, start_block=args.from_block)
        board = DirectoryBoard(Path(args.board) if args.board else Path(args.data_dir) / "board")
        verifier = Verifier(client, key, genesis, Path(args.data_dir), board, config)
    except (OSError, ValueError, ChainError, VerifierError) as exc:
        return _fail("verifier", str(exc))
    try:
        while True:
            try:
                report = verifier.sync()
            except ChainError as exc:
                sys.stderr.write(f"clearway verifier: {exc} (retrying)\n")
                report = None
            if report is not None:
                _print_sync(report, args.json)
            if args.once:
                break
            time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        halted = verifier.halted
        verifier.close()
    return 1 if halted else 0


def _print_sync(report, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"attested": report.attested, "refused": report.refused,
                                     "finalised": report.finalised, "frozen": report.frozen,
                                     "alarms": [a.to_json() for a in report.alarms]}) + "\n")
        return
    for number in report.attested:
        sys.stdout.write(f"attested batch {number}\n")
    for number in report.finalised:
        sys.stdout.write(f"finalised batch {number}\n")
    for alarm in report.alarms:
        sys.stdout.write(f"ALARM {alarm.describe()}\n")
    sys.stdout.flush()


# ============================================================================ status


def run_status_command(args: argparse.Namespace) -> int:
    """``clearway verifier status``: from the data directory, live counts with --rpc-url."""
    from clearway.verifier.store import STORE_FILE, VerifierStore
    from clearway.verifier.verifier import status_from_store

    data_dir = Path(args.data_dir)
    if not (data_dir / STORE_FILE).is_file():
        return _fail("verifier status", f"no verifier state in {data_dir}")
    store = VerifierStore(data_dir)
    try:
        live: dict[str, int] = {}
        if args.rpc_url:
            from clearway.chain.backend import open_chain
            from clearway.chain.errors import ChainError
            from clearway.verifier.connect import attach_vault

            vault = args.vault or store.get_meta("identity", {}).get("vault")
            try:
                client = attach_vault(open_chain(args.rpc_url), vault)
                live = {"vault_batches": client.batch_count(), "vault_finalised": client.finalised_count()}
            except ChainError as exc:
                return _fail("verifier status", str(exc), 1)
        status = status_from_store(store, **live)
    finally:
        store.close()
    _out(status, args.json)
    return 0


# ============================================================================ drill


def run_drill_command(args: argparse.Namespace) -> int:
    """``clearway verifier drill``: exit 0 only if no lie finalised, every honest batch was
    attested and the escape paid everything owed."""
    from clearway.verifier.drill import run_drill

    from clearway.chain.errors import ChainError

    try:
        report = run_drill(Path(args.data_dir) if args.data_dir else None, args.seed, args.rpc_url)
    except ChainError as exc:
        return _fail("verifier drill", str(exc), 1)
    _out(report, args.json)
    ok = (report["dishonest_finalised"] == 0 and report["honest_attested"] == report["honest_batches"]
          and report["escape_shortfall"] == 0 and report["details"]["escape"].get("reconciled") is True)
    return 0 if ok else 1


# ============================================================================ escape


def run_escape_command(args: argparse.Namespace) -> int:
    """``clearway escape``: escape one account (and refund its never-included deposits)."""
    from clearway.chain.backend import open_chain
    from clearway.chain.errors import ChainError
    from clearway.verifier.connect import attach_vault, load_genesis, load_key
    from clearway.verifier.escape import EscapeError, EscapeTool

    try:
        chain = open_chain(args.rpc_url)
        client = attach_vault(chain, args.vault)
        sender = load_key(args.key) if args.key else chain.new_account("escape")
        tool = EscapeTool(client, load_genesis(args.genesis), args.from_block)
        tool.rebuild()
        out: dict[str, Any] = {"account": args.account.lower()}
        try:
            result = tool.escape(sender, tool.account_of(args.account))
            out.update(account_index=result.account, value=result.value, paid=result.paid, gas=result.gas)
        except EscapeError as exc:
            out.update(value=0, paid=0, note=str(exc))
        if not args.no_refund:
            out["refunded"] = [{"deposit_id": i, "amount": a} for i, a in tool.refund(sender, args.account)]
    except (OSError, ValueError, ChainError, EscapeError) as exc:
        return _fail("escape", str(exc), 1)
    _out(out, args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m clearway.verifier.cli verifier drill --json`` etc., before (or without)
    the top-level ``clearway`` command."""
    parser = argparse.ArgumentParser(prog="clearway")
    add_verifier_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
