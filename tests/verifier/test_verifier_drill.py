"""``clearway verifier drill --json``: honest batches attested, seven lies never finalised,
the ignored forced withdrawal ends in a freeze and every account escapes with its value."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from clearway.verifier.cli import add_verifier_parsers

RPC_URL = os.environ.get("CLEARWAY_TEST_RPC_URL")

KEYS = ["honest_batches", "honest_attested", "dishonest_attempts", "dishonest_finalised", "alarms",
        "escaped_accounts", "escape_shortfall"]


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="clearway")
    add_verifier_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("rpc", [False, True], ids=["embedded", "rpc"])
def test_drill_refuses_every_lie_and_escapes_everyone(rpc, capsys, tmp_path):
    if rpc and not RPC_URL:
        pytest.skip("CLEARWAY_TEST_RPC_URL is not set (source .ci/anvil.sh)")
    argv = ["verifier", "drill", "--json", "--data-dir", str(tmp_path)] + (["--rpc-url", RPC_URL] if rpc else [])
    assert run_cli(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report)[:len(KEYS)] == KEYS
    assert report["honest_batches"] == report["honest_attested"] == 15
    assert report["dishonest_attempts"] == 7 and report["dishonest_finalised"] == 0
    assert report["alarms"] == {
        "a_root_credits_sequencer": "ROOT_MISMATCH",
        "b_data_not_producing_root": "ROOT_MISMATCH",
        "c_undecodable_data": "UNDECODABLE",
        "d_forged_order_signature": "BAD_SIGNATURE",
        "e_oracle_below_quorum": "ORACLE_NO_QUORUM",
        "f_skipped_deposit": "DEPOSIT_SKIPPED",
        "g_ignored_forced_withdrawal": "FORCED_OVERDUE",
    }
    assert report["escape_shortfall"] == 0 and report["escaped_accounts"] >= 6
    details = report["details"]
    assert all(a["verifiers_alarmed"] == 3 for a in details["attempts"])
    escape = details["escape"]
    assert escape["reconciled"] is True and escape["same_root_as_verifier"] is True
    assert escape["paid"] == escape["expected"] > 0
    assert escape["deposited"] == escape["withdrawn"] + escape["paid"] + escape["refunded"] + escape["vault_balance_after"]
    g = details["attempts"][-1]
    assert g["frozen"] is True and g["restarted_verifier_height"] == 3
