"""``clearway node`` (clearway/engine/cli.py): JSON lines in, acknowledgements out."""

from __future__ import annotations

import argparse
import subprocess
import sys

import msgspec

from clearway.domain.commands import Deposit
from clearway.engine.cli import add_node_parser
from clearway.engine.loadgen import owner_address


def test_the_node_subcommand_registers_its_options_and_handler():
    parser = argparse.ArgumentParser()
    add_node_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["node", "--data-dir", "d", "--journal", "postgresql://x/y", "--snapshot-every", "7"])
    assert (args.data_dir, args.journal, args.snapshot_every, args.func.__name__) == ("d", "postgresql://x/y", 7, "run_node")


def test_commands_on_stdin_are_acknowledged_in_order_and_bad_lines_refused(tmp_path, genesis):
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_bytes(msgspec.json.encode(genesis))
    lines = [
        msgspec.json.encode(Deposit(0, 0, owner_address(0), 10, 1)),
        b'["launch_rocket", 0, 0]',
        b"{not json",
        msgspec.json.encode(Deposit(0, 0, owner_address(1), 10, 2)),
    ]
    argv = [sys.executable, "-m", "clearway.engine.cli", "node", "--data-dir", str(tmp_path / "node"),
            "--genesis", str(genesis_file)]
    done = subprocess.run(argv, input=b"\n".join(lines) + b"\n", capture_output=True, timeout=120, check=True)
    out = [msgspec.json.decode(line) for line in done.stdout.splitlines()]
    assert out[0]["recovered"]["last_seq"] == 0
    assert [o.get("seq", o.get("error")) for o in out[1:5]] == [1, 4003, 4001, 2]
    assert out[5]["closed"]["last_seq"] == 2
    again = subprocess.run(argv[:-2] + ["--recover-only"], capture_output=True, timeout=120, check=True)
    recovered = msgspec.json.decode(again.stdout.splitlines()[0])["recovered"]
    assert (recovered["last_seq"], recovered["state_hash"]) == (2, out[5]["closed"]["state_hash"])
