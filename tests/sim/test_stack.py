"""The embedded settlement layer (clearway/sim/stack.py): deposits through the vault are
credited by the watcher, batches are replayed and attested by three real verifiers and
finalised, withdrawals are claimed on L1, the same clock gives the same roots, the halt
drill escapes every account and reconciles the vault, and ``clearway node --dev`` funds its
accounts through the vault."""

from __future__ import annotations

import json

import httpx
import pytest

from clearway.api import cli as api_cli
from clearway.chain.selftest import selftest_genesis
from clearway.domain.commands import PlaceOrder, SetMarkPrices
from clearway.domain.events import Rejected, Trade
from clearway.domain.orders import TimeInForce
from clearway.sim.stack import USDC, EmbeddedStack, StackConfig, StackError, StackErrorCode, dev_chain

START_MS = 1_678_320_000_000  # 2023-03-09 00:00 UTC
BTC = 25_000 * USDC


class SimClock:
    def __init__(self, ms: int = START_MS) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def trading_session(stack: EmbeddedStack, clock: SimClock, mark: int = BTC) -> dict:
    """Four depositors; a maker quotes, one taker buys with an EIP-712-signed IOC order and
    one sells through an API key; the mark moves; one user withdraws (signed)."""
    keys = [stack.new_key(f"user{i}") for i in range(4)]
    maker, buyer, seller, leaver = stack.deposit_many([(k, 100_000 * USDC) for k in keys])
    stack.submit(SetMarkPrices(0, 0, {"BTC": BTC}, {0: BTC}))
    clock.ms += 1_000
    stack.submit(PlaceOrder(0, 0, maker, 0, -1, 10_000, BTC))
    stack.submit(PlaceOrder(0, 0, maker, 0, 1, 10_000, BTC - 10 * 100_000))
    bought = stack.submit(PlaceOrder(0, 0, buyer, 0, 1, 5_000, BTC, tif=TimeInForce.IOC), signer=keys[1])
    sold = stack.submit(PlaceOrder(0, 0, seller, 0, -1, 3_000, BTC - 10 * 100_000, tif=TimeInForce.IOC))
    assert any(isinstance(e, Trade) for e in bought) and any(isinstance(e, Trade) for e in sold)
    clock.ms += 60_000
    stack.submit(SetMarkPrices(0, 0, {"BTC": mark}, {0: mark}))
    withdrawal = stack.withdraw(keys[3], 1_234 * USDC)
    assert not any(isinstance(e, Rejected) for e in withdrawal)
    return {"keys": keys, "accounts": (maker, buyer, seller, leaver)}


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def stack(tmp_path, clock):
    with EmbeddedStack(tmp_path, genesis_factory=selftest_genesis, clock=clock) as s:
        yield s


def test_given_deposits_trades_and_a_withdrawal_when_settled_then_three_verifiers_attest_and_the_claim_pays(
        stack, clock):
    session = trading_session(stack, clock)
    clock.ms += 60_000
    report = stack.settle()
    assert report.finalised == report.built and report.built
    assert all(report.gas[n] > 0 for n in report.built)
    status = stack.status()
    assert status["finalised"] == status["submitted"] == len(report.built)
    assert status["last_seq_batched"] == stack.node.last_seq
    assert [v["height"] for v in status["verifiers"]] == [status["finalised"]] * 3
    assert stack.alarms() == []
    stats = stack.verifiers.verifiers[0].stats
    assert stats.signed_commands == 2 and stats.deposits == 4 and stats.trades == 2  # signed order and withdrawal
    leaver = session["keys"][3]
    assert stack.client.claimable(leaver.address) == 1_234 * USDC
    assert stack.claim(leaver) == 1_234 * USDC
    assert stack.client.token_balance(leaver.address) == 1_234 * USDC
    with pytest.raises(StackError) as refused:
        stack.claim(leaver)
    assert refused.value.code == StackErrorCode.NOTHING_TO_CLAIM
    assert stack.chain.timestamp() == clock.ms // 1000  # L1 time follows the stack's clock


def test_a_deposit_is_credited_by_the_watcher_only_once(stack):
    key = stack.new_key("once")
    deposit_id = stack.deposit_on_l1(key, 7 * USDC)
    assert stack.account_of(key) is None
    assert stack.step().deposits == 1 and stack.step().deposits == 0
    balance = stack.node.query(lambda s: s.accounts[s.owners[key.address.lower()]].cash).result(10)
    assert balance == 7 * USDC and stack.node.query(lambda s: s.last_deposit_id).result(10) == deposit_id


def test_the_same_seed_clock_and_commands_give_the_same_state_roots_and_another_seed_does_not(tmp_path):
    roots = []
    for run, seed in (("a", b"one"), ("b", b"one"), ("c", b"two")):
        clock = SimClock()
        with EmbeddedStack(tmp_path / run, genesis_factory=selftest_genesis, clock=clock,
                           config=StackConfig(chain_seed=seed)) as stack:
            trading_session(stack, clock)
            stack.settle()
            roots.append(stack.status()["latest_root"])
    assert roots[0] == roots[1] != roots[2]


def test_halt_drill_escapes_every_account_from_the_last_finalised_root_and_reconciles(stack, clock):
    session = trading_session(stack, clock, mark=BTC + 1_234_567)  # open positions worth an odd mark
    stack.settle()
    late = stack.new_key("late")
    stack.deposit_on_l1(late, 777 * USDC)  # never included: refunded after the freeze
    stack.submit(PlaceOrder(0, 0, session["accounts"][0], 0, 1, 1_000, BTC - 20 * 100_000))  # lost with the sequencer
    clock.ms += 3_600_000
    drill = stack.halt_drill(settle_first=False)
    assert drill["frozen"] and drill["frozen_by"] == "verifiers"
    assert drill["forced_requests_unanswered"] == 3 and drill["forced_overdue_alarms"] == 9
    assert drill["reconciled"] and drill["same_root_as_verifier"]
    assert drill["escaped_total"] == drill["expected_total"] > 0
    assert drill["refunded"] == 777 * USDC
    assert drill["claimed_after_halt"] == 1_234 * USDC and drill["still_claimable"] == 0
    assert drill["deposited"] == (drill["withdrawn"] + drill["escaped_total"] + drill["refunded"]
                                  + drill["vault_balance_after"])
    assert drill["remainder"] == drill["included_net"] - drill["escaped_total"] >= 0
    assert drill["escaped_accounts"] >= 4
    assert stack.client.vault_balance() == drill["vault_balance_after"] == drill["remainder"]
    with pytest.raises(StackError) as refused:
        stack.step()
    assert refused.value.code == StackErrorCode.HALTED


def test_the_api_reports_the_stacks_l1_side(stack, clock):
    trading_session(stack, clock)
    stack.settle()
    url = stack.serve_api(port=0)
    info = httpx.get(url + "/api/v2/public/get_l1_info").json()["result"]
    assert info["available"] and info["vault"] == stack.client.address and info["threshold"] == 2
    batches = httpx.get(url + "/api/v2/public/get_batch_status").json()["result"]
    assert batches["available"] and batches["finalised"] == stack.client.finalised_count() >= 1
    root = httpx.get(url + "/api/v2/public/get_state_root").json()["result"]
    assert root["available"] and root["state_root"].startswith("0x")


def test_node_dev_funds_its_accounts_through_the_vault_with_verifiers_running(tmp_path):
    path = tmp_path / "accounts.json"
    made = []

    def hook(genesis, node):
        made.append(dev_chain(genesis, node))
        return made[-1]

    args = api_cli.build_parser(dev_chain=hook).parse_args(
        ["node", "--dev", "--data-dir", str(tmp_path / "dev"), "--api-port", "0", "--dev-accounts-file", str(path),
         "--dev-accounts", "3", "--dev-deposit", "50000"])
    seen = {}

    def ready(document):
        stack = made[0].stack
        stack.settle()
        seen["status"] = stack.status()
        seen["deposits"] = stack.client.deposits(stack.start_block, stack.chain.block_number())
        seen["batch_status"] = httpx.get(document["api"]["http"] + "/api/v2/public/get_batch_status").json()

    assert api_cli.run_dev(args, hook, ready=ready) == 0
    document = json.loads(path.read_text())
    assert document["funding"] == "vault deposits on the embedded chain"
    assert document["chain"]["vault"] == made[0].stack.client.address and document["chain"]["threshold"] == 2
    owners = sorted(a["address"] for a in document["accounts"])
    assert sorted(d.owner for d in seen["deposits"]) == owners
    assert all(d.amount == 50_000 * USDC for d in seen["deposits"])
    status = seen["status"]
    assert status["vault_balance"] == 3 * 50_000 * USDC and status["finalised"] >= 1
    assert all(v["height"] == status["finalised"] and v["alarms"] == 0 for v in status["verifiers"])
    assert seen["batch_status"]["result"]["available"] is True


def test_node_dev_refuses_a_data_dir_holding_deposits_of_another_chain(tmp_path):
    from clearway.domain.commands import Deposit
    from clearway.engine.node import Node

    genesis = api_cli.dev_genesis()
    with Node(tmp_path, genesis, snapshot_every=0, freeze_gc=False) as node:
        node.submit(Deposit(0, 0, "0x" + "11" * 20, USDC, 1)).result(10)
        with pytest.raises(StackError) as refused:
            dev_chain(genesis, node)
    assert refused.value.code == StackErrorCode.USED_NODE


def test_batch_summaries_count_commands_trades_gas_and_attestations(stack, clock):
    trading_session(stack, clock)
    stack.settle()
    (summary,) = stack.batch_summaries()
    assert summary["commands"] == stack.node.last_seq and summary["trades"] == 2
    assert summary["status"] == "finalised" and summary["attestations"] == 3
    assert summary["gas"] == stack.batch_gas[1] > 0 and summary["data_bytes"] > 0
    assert stack.batch_summaries([1]) == [summary] and stack.batch_summaries([2]) == []


def test_a_command_the_api_received_signed_reaches_the_batch_signed(stack, clock):
    from clearway.commitment.authorisation import sign_command

    key = stack.new_key("signer")
    account = stack.deposit(key, 50_000 * USDC)
    stack.submit(SetMarkPrices(0, 0, {"BTC": BTC}, {0: BTC}))
    order = PlaceOrder(0, 0, account, 0, 1, 1_000, BTC - 100_000)
    ticket = stack.node.submit(order)
    ticket.result(10)
    auth = sign_command(key.key, stack.separator, order, key.address.lower(), 42)
    stack.on_authorised(ticket.seq, order, key.address.lower(), auth.nonce, auth.signature)  # as the API calls it
    stack.settle()
    assert stack.alarms() == []
    assert [v.stats.signed_commands for v in stack.verifiers.verifiers] == [1, 1, 1]


def test_a_forced_withdrawal_is_served_by_the_next_step_and_claimable_once_final(stack, clock):
    key = stack.new_key("forcer")
    stack.deposit(key, 5_000 * USDC)
    stack.force_withdrawal(key, 2_000 * USDC)
    assert stack.step().forced == 1
    stack.settle()
    assert stack.verifiers.verifiers[0].stats.forced_served == 1
    assert stack.claim(key) == 2_000 * USDC


def test_a_data_dir_of_an_earlier_run_is_refused_and_released(tmp_path, clock):
    with EmbeddedStack(tmp_path, genesis_factory=selftest_genesis, clock=clock) as stack:
        stack.deposit(stack.new_key("first"), USDC)
    with pytest.raises(StackError) as refused:
        EmbeddedStack(tmp_path, genesis_factory=selftest_genesis, clock=clock)
    assert refused.value.code == StackErrorCode.USED_NODE
    from clearway.engine.node import Node

    Node(tmp_path / "node", snapshot_every=0, freeze_gc=False).close()  # the data directory was released


def test_an_escape_the_vault_refuses_is_reported_and_the_others_go_on(stack, clock, monkeypatch):
    from clearway.chain.errors import ChainError, ChainErrorCode
    from clearway.verifier.escape import EscapeTool

    session = trading_session(stack, clock)
    refused_account = session["accounts"][1]
    escape = EscapeTool.escape

    def refusing(tool, sender, account_id):
        if account_id == refused_account:
            raise ChainError(ChainErrorCode.REVERTED, "escape reverted", "escape pool exhausted")
        return escape(tool, sender, account_id)

    monkeypatch.setattr(EscapeTool, "escape", refusing)
    drill = stack.halt_drill()
    assert drill["failed_escapes"] == [{"account": refused_account, "reason": "escape pool exhausted"}]
    assert drill["reconciled"] is False and drill["escaped_total"] < drill["expected_total"]
    assert drill["escaped_accounts"] >= 3
