"""``clearway chain selftest``: the whole lifecycle conserves money to the micro-USDC and
meets the gas targets, on the embedded chain and (CLEARWAY_TEST_RPC_URL) on anvil."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from clearway.chain.cli import add_chain_parser
from settlement_harness import Engine

RPC_URL = os.environ.get("CLEARWAY_TEST_RPC_URL")
KEYS = ["chain", "batches", "trades", "gas_per_batch", "gas_per_trade", "gas_per_signed_trade", "escape_gas",
        "withdraw_gas", "escaped_total", "expected_total", "vault_balance_after", "conservation_ok"]


def run_cli(argv: list[str], engine=Engine()) -> int:
    parser = argparse.ArgumentParser(prog="clearway")
    add_chain_parser(parser.add_subparsers(dest="command", required=True), engine=engine)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("rpc", [False, True], ids=["embedded", "rpc"])
def test_selftest_conserves_every_micro_usdc_and_meets_the_gas_targets(rpc, capsys):
    if rpc and not RPC_URL:
        pytest.skip("CLEARWAY_TEST_RPC_URL is not set (source .ci/anvil.sh)")
    argv = ["chain", "selftest", "--json"] + (["--rpc-url", RPC_URL] if rpc else [])
    assert run_cli(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report)[:len(KEYS)] == KEYS
    assert report["conservation_ok"] is True
    assert report["escaped_total"] == report["expected_total"] > 0
    details = report["details"]
    assert details["deposited"] == (details["withdrawn"] + report["escaped_total"] + details["refunded"]
                                    + report["vault_balance_after"])
    assert details["api_key_flow"]["trades"] >= 1_000
    assert report["gas_per_trade"] <= 500
    assert report["gas_per_signed_trade"] <= 500 + 65 * 40
    assert report["escape_gas"] <= 150_000 and details["escape_positions"] == 10
    assert details["verifier_alarms"] == []
    assert report["batches"] == 4 and details["escapes"] >= 10


def test_selftest_without_an_engine_says_so(capsys):
    assert run_cli(["chain", "selftest"], engine=None) == 2
    assert "no engine wired" in capsys.readouterr().err
