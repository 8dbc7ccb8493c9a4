"""``clearway node --api-port`` and ``clearway node --dev`` (through clearway.api.cli)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import ccxt

from clearway.api import cli


def test_dev_mode_writes_funded_accounts_with_api_keys_that_trade(tmp_path):
    path = tmp_path / "accounts.json"
    args = cli.build_parser().parse_args(["node", "--dev", "--api-port", "0", "--dev-accounts-file", str(path),
                                          "--dev-accounts", "3", "--dev-deposit", "50000"])
    seen = {}

    def use(document):
        account = document["accounts"][0]
        ex = ccxt.deribit({"apiKey": account["client_id"], "secret": account["client_secret"],
                           "enableRateLimit": False})
        ex.urls["api"] = {"rest": document["api"]["http"]}
        seen["balance"] = ex.fetch_balance()["USDC"]["total"]
        seen["order"] = ex.create_order("BTC/USDC:USDC", "limit", "buy", 0.01, 59_000)["status"]
        seen["file"] = json.loads(path.read_text())

    assert cli.run_dev(args, ready=use) == 0
    document = seen["file"]
    assert len(document["accounts"]) == 3 and oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert {a["address"] for a in document["accounts"]} == {a["address"] for a in document["accounts"]}
    assert all(a["private_key"].startswith("0x") and a["client_secret"] for a in document["accounts"])
    assert seen["balance"] == 50_000 and seen["order"] == "open"
    assert "Deposit" in document["funding"] or "vault" in document["funding"]


def test_node_with_api_port_serves_until_sigterm_then_closes_cleanly(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen([sys.executable, "-m", "clearway.api.cli", "node", "--data-dir", str(tmp_path),
                                "--api-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    try:
        assert "recovered" in json.loads(process.stdout.readline())
        api = json.loads(process.stdout.readline())["api"]
        ex = ccxt.deribit({"enableRateLimit": False})
        ex.urls["api"] = {"rest": api["http"]}
        assert "BTC/USDC:USDC" not in ex.load_markets()  # default genesis: no instruments
        assert ex.publicGetGetTime()["result"] > 0
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        assert "closed" in json.loads(out.strip().splitlines()[-1]), err
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
