"""``clearway node --api-port PORT`` and ``clearway node --dev --api-port PORT
--dev-accounts-file FILE``: the node with the trading API, and the development mode.

Hook (clearway/cli.py, which may import every layer)::

    node_parser = add_node_parser(sub)          # engine/cli.py returns the parser
    from clearway.api.cli import add_api_arguments
    add_api_arguments(node_parser)              # adds the options; takes over ``func``

Without ``--api-port`` / ``--dev`` the command runs exactly as before
(``clearway.engine.cli.run_node``: commands on stdin).

Development mode (``--dev``): a fresh node (in ``--data-dir`` or a temporary directory)
with BTC and ETH perpetuals, operator index and mark prices, ``--dev-accounts`` (10)
deterministic development accounts (private keys from ``keccak("clearway dev account
i")`` — public knowledge, never use them elsewhere), each funded with
``--dev-deposit`` USDC and given an API key created through the EIP-712 flow like any
user's. FILE receives their address, private key and API key (client_id,
client_secret) as JSON, with the API's URLs and a ccxt snippet. Funding goes through the
vault when a dev chain is plugged in (``dev_chain``: deploys the vault on the embedded
chain and deposits for each account; its watcher turns the Deposit events into
commands); until then the accounts are funded with direct ``Deposit`` commands and FILE
says so (``"funding"``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Protocol

DEV_ACCOUNTS = 10
DEV_DEPOSIT_USDC = 1_000_000


class DevChain(Protocol):
    """What the development mode needs from an embedded L1 (plugged in by the caller,
    because the API layer does not import ``clearway.chain``)."""

    settlement: Any  # service.Settlement

    def fund(self, private_key: bytes, amount: int) -> None:
        """Mint ``amount`` micro-USDC to the key's address and deposit it through the vault;
        return once the node has the Deposit command (the watcher's job)."""

    def close(self) -> None: ...


def add_api_arguments(node_parser: argparse.ArgumentParser, dev_chain: Callable[..., DevChain] | None = None,
                      signing_factory: Callable[..., Any] | None = None) -> None:
    """Add the API and development options to ``clearway node`` and take over its handler.

    ``dev_chain(genesis, node)`` builds the embedded L1 for ``--dev`` (optional);
    ``signing_factory(settlement)`` the EIP-712 command verifier (service.CommandSigning;
    optional: without it signed orders and withdrawal requests are refused)."""
    group = node_parser.add_argument_group("trading API")
    group.add_argument("--api-port", type=int, default=None, metavar="PORT",
                       help="serve the JSON-RPC API (HTTP and WebSocket) on this port (0: any free port)")
    group.add_argument("--api-host", default="127.0.0.1", help="address to bind (default loopback)")
    group.add_argument("--api-keys-file", default=None, metavar="FILE",
                       help="API keys (default: api_keys.json in the data directory)")
    group.add_argument("--dev", action="store_true", help="development mode: fresh node with funded accounts")
    group.add_argument("--dev-accounts-file", default=None, metavar="FILE",
                       help="--dev: write the development accounts (keys!) to FILE as JSON")
    group.add_argument("--dev-accounts", type=int, default=DEV_ACCOUNTS, metavar="N")
    group.add_argument("--dev-deposit", type=int, default=DEV_DEPOSIT_USDC, metavar="USDC")
    for action in node_parser._actions:  # --data-dir is optional with --dev (checked below)
        if "--data-dir" in action.option_strings:
            action.required = False
    previous = node_parser.get_default("func")

    def handler(args: argparse.Namespace) -> int:
        return run(args, previous, dev_chain, signing_factory)

    node_parser.set_defaults(func=handler)


def run(args: argparse.Namespace, run_node: Callable | None = None, dev_chain=None, signing_factory=None) -> int:
    """Handler of ``clearway node`` with the API options (module docstring)."""
    from clearway.engine.cli import idle_polling

    if args.api_port is None and not args.dev:
        if not getattr(args, "data_dir", None):
            sys.stderr.write("clearway node: --data-dir is required (or use --dev)\n")
            return 2
        if run_node is None:
            from clearway.engine.cli import run_node
        return run_node(args)
    if args.dev:
        with idle_polling(args):
            return run_dev(args, dev_chain, signing_factory)
    if not args.data_dir:
        sys.stderr.write("clearway node: --data-dir is required (or use --dev)\n")
        return 2
    with idle_polling(args):
        return run_api_node(args, signing_factory)


def _open_node(args, data_dir: Path, genesis=None):
    import msgspec

    from clearway.domain.genesis import GenesisConfig
    from clearway.engine.node import Node

    if genesis is None and getattr(args, "genesis", None):
        genesis = msgspec.json.decode(Path(args.genesis).read_bytes(), type=GenesisConfig)
    return Node(data_dir, genesis, journal=getattr(args, "journal", None),
                pg_schema=getattr(args, "pg_schema", "clearway"),
                snapshot_every=getattr(args, "snapshot_every", 100_000),
                keep_snapshots=getattr(args, "keep_snapshots", 3),
                max_command_bytes=getattr(args, "max_command_bytes", 16_384))


def _server(node, args, data_dir: Path, settlement=None, signing=None, on_authorised=None):
    """The ApiServer of ``node``; ``on_authorised(seq, command, owner, nonce, signature)``
    (ApiConfig) receives every command signed through the API, so that the settlement
    side carries its signature into the batch data (else it is operator-attested)."""
    from clearway.api.server import ApiServer
    from clearway.api.service import ApiConfig

    keys_path = Path(args.api_keys_file) if args.api_keys_file else data_dir / "api_keys.json"
    chain_id = 1
    if settlement is not None:
        try:
            chain_id = int(settlement.l1_info().get("chain_id", 1))
        except Exception:
            chain_id = 1
    config = ApiConfig(keys_path=keys_path, settlement=settlement, signing=signing, chain_id=chain_id,
                       on_authorised=on_authorised)
    return ApiServer(node, config, host=args.api_host, port=args.api_port or 0)


def _line(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run_api_node(args, signing_factory=None) -> int:
    """``clearway node --data-dir DIR --api-port PORT``: recover, serve until SIGINT/SIGTERM."""
    data_dir = Path(args.data_dir)
    node = _open_node(args, data_dir)
    _line({"recovered": node.recovery.to_dict()})
    try:
        if args.recover_only:
            return 0
        signing = signing_factory(None) if signing_factory is not None else None
        server = _server(node, args, data_dir, signing=signing)
        server.start()
        _line({"api": {"http": server.url, "ws": server.ws_url}})
        _wait_for_signal()
        server.stop()
    finally:
        node.close(snapshot=not args.no_final_snapshot)
    _line({"closed": {"last_seq": node.state.last_seq, "state_hash": node.state_hash()}})
    return 0


def dev_genesis():
    """BTC-PERP (id 0) and ETH-PERP (id 1): $0.10 / $0.01 ticks, 0.0001 / 0.001 lots."""
    from clearway.domain.genesis import GenesisConfig
    from clearway.domain.instruments import InstrumentSpec, Kind

    btc = InstrumentSpec(0, "BTC", Kind.PERPETUAL, tick_size=100_000, size_decimals=4, size_increment=1,
                         min_size=1, maker_fee_ppm=-100, taker_fee_ppm=500, imf_ppm=50_000, mmf_ppm=30_000)
    eth = InstrumentSpec(1, "ETH", Kind.PERPETUAL, tick_size=10_000, size_decimals=3, size_increment=1,
                         min_size=1, maker_fee_ppm=-100, taker_fee_ppm=500, imf_ppm=50_000, mmf_ppm=30_000)
    return GenesisConfig(instruments=[btc, eth])


def dev_private_key(i: int) -> bytes:
    """Deterministic development key number ``i`` (public knowledge: never fund it on a
    real chain)."""
    from eth_hash.auto import keccak

    return keccak(f"clearway dev account {i}".encode())


def run_dev(args, dev_chain=None, signing_factory=None, ready: Callable[[dict], None] | None = None) -> int:
    """``clearway node --dev``: see the module docstring. ``ready`` (tests) is called with
    the accounts document once serving."""
    from eth_account import Account

    from clearway.api.auth import api_key_typed_data, sign_api_key_message
    from clearway.domain.commands import Deposit, SetMarkPrices
    from clearway.domain.events import Rejected

    temporary = None
    if args.data_dir:
        data_dir = Path(args.data_dir)
    else:
        temporary = tempfile.TemporaryDirectory(prefix="clearway-dev-")
        data_dir = Path(temporary.name)
    genesis = dev_genesis()
    node = _open_node(args, data_dir, genesis)
    chain = None
    try:
        chain = dev_chain(genesis, node) if dev_chain is not None else None
        settlement = chain.settlement if chain is not None else None
        signing = signing_factory(settlement) if signing_factory is not None else None
        node.submit(SetMarkPrices(0, 0, {"BTC": 60_000_000_000, "ETH": 3_000_000_000},
                                  {0: 60_000_000_000, 1: 3_000_000_000})).result()
        server = _server(node, args, data_dir, settlement, signing, getattr(chain, "on_authorised", None))
        server.start()
        keys = server.api.keys
        amount = args.dev_deposit * 1_000_000
        accounts = []
        deposit_id = node.query(lambda s: s.last_deposit_id).result()
        for i in range(args.dev_accounts):
            private_key = dev_private_key(i)
            address = Account.from_key(private_key).address.lower()
            if chain is not None:
                chain.fund(private_key, amount)
            else:
                deposit_id += 1
                events = node.submit(Deposit(0, 0, address, amount, deposit_id)).result()
                if isinstance(events[0], Rejected):
                    raise RuntimeError(f"dev deposit refused: {events[0].message}")
            ts = int(time.time() * 1000)
            message = {"owner": address, "name": "dev", "scope": "trade", "timestamp": ts, "nonce": ts + i}
            typed = api_key_typed_data(keys.chain_id, "CreateApiKey", message)
            key = keys.create_signed({**message, "signature": sign_api_key_message(private_key, typed)})
            accounts.append({"address": address, "private_key": "0x" + private_key.hex(),
                             "client_id": key.client_id, "client_secret": key.client_secret,
                             "deposit_usdc": args.dev_deposit})
        document = {
            "api": {"http": server.url, "ws": server.ws_url},
            "chain": settlement.l1_info() if settlement is not None else None,
            "funding": "vault deposits on the embedded chain" if chain is not None
            else "direct Deposit commands (no L1 chain is wired to the dev mode yet)",
            "instruments": ["BTC_USDC-PERPETUAL", "ETH_USDC-PERPETUAL"],
            "accounts": accounts,
            "ccxt": ("ex = ccxt.deribit({'apiKey': CLIENT_ID, 'secret': CLIENT_SECRET}); "
                     f"ex.urls['api'] = {{'rest': '{server.url}', 'ws': '{server.ws_url}'}}"),
        }
        if args.dev_accounts_file:
            path = Path(args.dev_accounts_file)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(document, f, indent=2)
        _line({"dev": {"api": document["api"], "accounts": len(accounts),
                       "accounts_file": args.dev_accounts_file, "funding": document["funding"]}})
        if ready is not None:
            ready(document)
            server.stop()
        else:
            _wait_for_signal()
            server.stop()
    finally:
        if chain is not None:
            chain.close()
        node.close(snapshot=False)
        if temporary is not None:
            temporary.cleanup()
    return 0


def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM (the server runs in its own thread)."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def build_parser(dev_chain=None, signing_factory=None) -> argparse.ArgumentParser:
    """A ``clearway``-like parser with only the ``node`` subcommand, API options included."""
    from clearway.engine.cli import add_node_parser

    parser = argparse.ArgumentParser(prog="clearway")
    sub = parser.add_subparsers(dest="command", required=True)
    add_node_parser(sub)
    add_api_arguments(sub.choices["node"], dev_chain, signing_factory)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m clearway.api.cli node …``: the node command with the API, usable before
    (and besides) the top-level CLI's hook."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
