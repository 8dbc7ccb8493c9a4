"""The ``clearway`` command.

Each subcommand is a thin shell: it parses arguments, calls one function of a lower layer,
and prints text or JSON. Implementations are imported lazily so ``clearway --help`` is fast
and a subcommand's heavy dependencies (numpy, an EVM) load only when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

DEFAULT_SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _cmd_lobster_replay(args: argparse.Namespace) -> int:
    from clearway.sim.lobster import replay_directory, format_report

    result = replay_directory(Path(args.directory))
    if args.json:
        _print_json(result.summary())
    else:
        sys.stdout.write(format_report(result))
    return 0 if result.ok else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from clearway.sim.demo import DemoConfig, run_demo, summary_text

    config = DemoConfig(start=args.start, end=args.end, seed=args.seed, out=Path(args.out), data=Path(args.data),
                        progress=True)
    summary = run_demo(config)
    if args.json:
        _print_json(summary)
    else:
        sys.stdout.write(summary_text(summary))
    return 0 if summary["invariants_ok"] else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    import runpy

    bench_dir = Path(__file__).resolve().parent.parent / "bench"
    script = bench_dir / f"{args.which}.py"
    if not script.exists():
        sys.stderr.write(f"benchmark {args.which!r} not found at {script} (run from a checkout)\n")
        return 2
    sys.path.insert(0, str(bench_dir))
    module = runpy.run_path(str(script), run_name="clearway_bench")
    result = module["run"](args)
    if args.json:
        _print_json(result)
    else:
        module["print_report"](result)
    return 0


def _cmd_risk(args: argparse.Namespace) -> int:
    from clearway.sim import riskcheck

    if args.risk_command == "deribit-check":
        result = riskcheck.deribit_check(Path(args.csv))
        if args.json:
            _print_json(result)
        else:
            for key, value in result.items():
                sys.stdout.write(f"{key:>18}: {value}\n")
        return 0
    if args.risk_command == "pm":
        text = sys.stdin.read() if args.case == "-" else Path(args.case).read_text()
        _print_json(riskcheck.pm_case(json.loads(text)))
        return 0
    if args.risk_command == "conformance":
        result = riskcheck.conformance(Path(args.directory))
        if args.json:
            _print_json(result)
        else:
            sys.stdout.write(f"{result['passed']}/{result['cases']} cases passed\n")
            for failure in result["failures"]:
                sys.stdout.write(f"  FAIL {failure}\n")
        return 0 if not result["failures"] else 1
    raise AssertionError(args.risk_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clearway", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the main job: the settlement layer on real March 2023 market data")
    demo.add_argument("--from", dest="start", default="2023-03-09T00:00", help="UTC start, ISO 8601")
    demo.add_argument("--to", dest="end", default="2023-03-14T00:00", help="UTC end, ISO 8601")
    demo.add_argument("--seed", type=int, default=7, help="seed of the agents and keys (same seed, same roots)")
    demo.add_argument("--out", default="reports", help="reports go to OUT/<run-id>/")
    demo.add_argument("--data", default=str(DEFAULT_SHARED / "data"), help="shared data directory")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.set_defaults(func=_cmd_demo)

    lob = sub.add_parser("lobster-replay", help="replay LOBSTER order flow through the book")
    lob.add_argument("directory")
    lob.add_argument("--json", action="store_true")
    lob.set_defaults(func=_cmd_lobster_replay)

    bench = sub.add_parser("bench", help="run a benchmark from bench/")
    bench.add_argument("which", help="matching | margin | node | api | stack | signatures")
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--runs", type=int, default=3, help="runs; the median is reported")
    bench.add_argument("--orders", type=int, default=200_000, help="commands per flow")
    bench.add_argument("--seed", type=int, default=1)
    bench.set_defaults(func=_cmd_bench)

    risk = sub.add_parser("risk", help="pricing and margin checks")
    risk_sub = risk.add_subparsers(dest="risk_command", required=True)
    dc = risk_sub.add_parser("deribit-check", help="price a real Deribit chain, print max differences")
    dc.add_argument("csv")
    dc.add_argument("--json", action="store_true")
    pm = risk_sub.add_parser("pm", help="evaluate one portfolio-margin case (file or -)")
    pm.add_argument("case")
    conf = risk_sub.add_parser("conformance", help="run the portfolio-margin conformance suite")
    conf.add_argument("directory")
    conf.add_argument("--json", action="store_true")
    risk.set_defaults(func=_cmd_risk)

    from clearway.api.cli import add_api_arguments
    from clearway.chain.cli import add_chain_parser
    from clearway.engine.cli import add_node_parser
    from clearway.sim.stress import add_stress_parser
    from clearway.verifier.cli import add_verifier_parsers

    add_api_arguments(add_node_parser(sub), dev_chain=_dev_chain, signing_factory=_command_signing)
    add_chain_parser(sub, engine=_Engine())
    add_verifier_parsers(sub)
    add_stress_parser(sub)
    return parser


class _CommandSigning:
    """EIP-712 order/withdrawal signatures for the API (clearway.commitment.authorisation),
    bound to the vault's chain id and address when an L1 is plugged in; the API layer may
    not import commitment (DESIGN.md), so the CLI connects them."""

    def __init__(self, chain_id: int, vault: str) -> None:
        from clearway.commitment.authorisation import exchange_domain_separator

        self.chain_id, self.vault = chain_id, vault
        self.separator = exchange_domain_separator(chain_id, vault)

    def recover(self, command, owner, nonce, signature):
        from clearway.commitment.authorisation import Authorisation, AuthKind, recover_signer

        return recover_signer(self.separator, command, owner, Authorisation(AuthKind.SIGNED, nonce, signature))

    def typed_data(self, command, owner, nonce):
        from clearway.commitment.authorisation import typed_data

        return typed_data(self.chain_id, self.vault, command, owner, nonce)


def _dev_chain(genesis, node):
    """The embedded L1 of ``clearway node --dev``: vault, watcher, batcher and three verifiers
    (clearway.sim.stack), imported lazily because it compiles the contracts."""
    from clearway.sim.stack import dev_chain

    return dev_chain(genesis, node)


def _command_signing(settlement) -> _CommandSigning:
    info = {}
    if settlement is not None:
        try:
            info = settlement.l1_info()
        except Exception:  # an unavailable L1 leaves the development defaults
            info = {}
    return _CommandSigning(int(info.get("chain_id", 31337)), str(info.get("vault", "0x" + "00" * 20)))


class _Engine:
    """The engine as the chain layer sees it (chain may not import engine: DESIGN.md)."""

    def open_node(self, data_dir, genesis):
        from clearway.engine.node import Node

        return Node(data_dir, genesis, snapshot_every=0)

    def open_log(self, data_dir):
        from clearway.engine.journal import SQLITE_FILE, SqliteJournal

        return SqliteJournal(Path(data_dir) / SQLITE_FILE)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    raise SystemExit(main())
