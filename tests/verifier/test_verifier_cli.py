"""``clearway verifier`` (run once against a chain), ``verifier status`` and ``clearway
escape``: the commands around the Python API. The embedded chain stands in for the
JSON-RPC node (``open_chain`` is patched)."""

from __future__ import annotations

import argparse
import json

import msgspec
import pytest
from eth_account import Account
from verifier_harness import scenario

from clearway.domain.commands import CancelAll
from clearway.verifier.cli import add_verifier_parsers
from clearway.verifier.connect import KEY_PASSWORD_ENV, load_key
from clearway.verifier.drill import DEADLINE, USDC


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="clearway")
    add_verifier_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """An honest scenario, its genesis as JSON, and ``open_chain`` answering its chain."""
    s = scenario(tmp_path)
    s.honest_prefix()
    monkeypatch.setattr("clearway.chain.backend.open_chain", lambda url=None, **kw: s.drill.chain)
    genesis = tmp_path / "genesis.json"
    genesis.write_bytes(msgspec.json.encode(s.drill.genesis))
    yield s, genesis
    s.close()


def _key_file(tmp_path, key, name: str):
    path = tmp_path / name
    path.write_text("0x" + bytes(key.key).hex() + "\n")
    return path


def test_verifier_once_replays_the_chain_and_status_reports_height_and_lag(deployment, tmp_path, capsys):
    s, genesis = deployment
    s.trades()
    s.seq.batch()  # batch 3: on chain, not yet attested
    key = _key_file(tmp_path, s.drill.verifier_keys[2], "verifier2.key")
    data_dir = tmp_path / "cli-verifier"
    argv = ["verifier", "--rpc-url", "http://node", "--vault", s.client.address, "--key", str(key),
            "--genesis", str(genesis), "--data-dir", str(data_dir), "--from-block", str(s.start_block),
            "--require-oracle", "--once"]
    assert run_cli(argv) == 0
    out = capsys.readouterr().out
    assert "attested batch 3" in out and "ALARM" not in out
    assert (data_dir / "board" / "3").is_dir()
    assert run_cli(["verifier", "status", "--data-dir", str(data_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["height"] == 3 and status["lag"] == 0 and status["alarms"] == []
    assert status["stats"]["oracle_updates"] == 4 and status["verifier"] == s.drill.verifier_keys[2].address
    s.seq.submit(CancelAll(0, 0, s.account("maker")))
    s.seq.batch()  # batch 4: the verifier has not seen it
    assert run_cli(["verifier", "status", "--data-dir", str(data_dir), "--rpc-url", "http://node", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["sequencer_batches"] == 4 and status["lag"] == 1


def test_separate_verifier_processes_meet_on_a_board_directory_and_finalise(tmp_path, monkeypatch, capsys):
    s = scenario(tmp_path)
    try:
        monkeypatch.setattr("clearway.chain.backend.open_chain", lambda url=None, **kw: s.drill.chain)
        genesis = tmp_path / "genesis.json"
        genesis.write_bytes(msgspec.json.encode(s.drill.genesis))
        s.deposit("alice", 1_000 * USDC)
        s.seq.credit_deposits()
        s.set_prices()
        s.seq.batch()  # the scenario's own verifiers never sync
        board = tmp_path / "shared-board"
        finalised = []
        for i in (0, 1):
            key = _key_file(tmp_path, s.drill.verifier_keys[i], f"v{i}.key")
            argv = ["verifier", "--rpc-url", "http://node", "--vault", s.client.address, "--key", str(key),
                    "--genesis", str(genesis), "--data-dir", str(tmp_path / f"process{i}"), "--board", str(board),
                    "--from-block", str(s.start_block), "--once"]
            assert run_cli(argv) == 0
            finalised.append(s.client.finalised_count())
        assert finalised == [0, 1]  # one signature is not enough; the second process finalises
        assert "finalised batch 1" in capsys.readouterr().out
    finally:
        s.close()


def test_verifier_without_its_arguments_or_state_says_so(tmp_path, capsys):
    assert run_cli(["verifier", "--once"]) == 2
    assert "missing --rpc-url" in capsys.readouterr().err
    assert run_cli(["verifier", "status", "--data-dir", str(tmp_path / "none")]) == 2
    assert "no verifier state" in capsys.readouterr().err


def test_escape_pays_the_account_its_value_and_refunds_its_deposits(deployment, tmp_path, capsys):
    s, genesis = deployment
    request_id, _ = s.client.request_forced_withdrawal(s.user("alice"), 100 * USDC)
    s.deposit("erin", 30 * USDC)  # never included
    s.drill.chain.time_travel(DEADLINE + 1)
    s.client.freeze(s.user("erin"), request_id)
    payer = _key_file(tmp_path, s.drill.chain.new_account("payer"), "payer.key")
    common = ["--rpc-url", "http://node", "--vault", s.client.address, "--genesis", str(genesis),
              "--key", str(payer), "--from-block", str(s.start_block), "--json"]
    alice = s.user("alice").address
    before = s.client.token_balance(alice)
    assert run_cli(["escape", "--account", alice, *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["paid"] == out["value"] > 0 and s.client.token_balance(alice) == before + out["paid"]
    assert out["account_index"] == s.account("alice") and out["refunded"] == []
    assert run_cli(["escape", "--account", s.user("erin").address, *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["paid"] == 0 and "no account" in out["note"]
    assert [r["amount"] for r in out["refunded"]] == [30 * USDC]
    assert run_cli(["escape", "--account", alice, *common]) == 0  # a second time: nothing more
    out = json.loads(capsys.readouterr().out)
    assert out["paid"] == 0 and "already escaped" in out["note"]


def test_a_key_loads_from_hex_or_from_a_keystore(tmp_path, monkeypatch):
    account = Account.from_key(b"\x05" * 32)
    hex_file = tmp_path / "k.hex"
    hex_file.write_text(bytes(account.key).hex())
    assert load_key(hex_file).address == account.address
    keystore = tmp_path / "k.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "secret", kdf="pbkdf2", iterations=2)))
    monkeypatch.delenv(KEY_PASSWORD_ENV, raising=False)
    with pytest.raises(ValueError, match=KEY_PASSWORD_ENV):
        load_key(keystore)
    monkeypatch.setenv(KEY_PASSWORD_ENV, "secret")
    assert load_key(keystore).address == account.address
    (tmp_path / "bad").write_text("0x1234")
    with pytest.raises(ValueError):
        load_key(tmp_path / "bad")
