"""``clearway chain selftest``: the whole settlement lifecycle on a fresh chain.

1. Deploy the stablecoin and a 2-of-3 vault whose genesis hash is the keccak of the
   genesis config (ten perpetuals); start a sequencer node (SQLite journal in a temporary
   directory), the deposit watcher, the batcher and three local verifiers (attest.py).
2. Deposits from market makers, takers, a ten-position trader and two users who will force
   withdrawals; the watcher credits them.
3. Batch 1: prices, and the ten-position trader opens a position in every instrument.
4. Batch 2: API-key (operator-attested) flow — makers quote, takers send IOC orders — until
   ``api_trades`` trades: ``gas_per_trade`` = (submit + finalise gas) / trades.
5. Batch 3: the same with every order EIP-712-signed by its owner (``signed_trades``, 800 by
   default: 65-byte signatures fill the 64 KiB data cap near 900 orders):
   ``gas_per_signed_trade``.
6. Batch 4: an ordinary withdrawal and a forced withdrawal that the watcher serves; both
   are claimed with ``withdraw()`` (``withdraw_gas``).
7. A forced withdrawal the sequencer ignores and a deposit it never includes; the clock
   passes the deadline; anyone freezes; the escape is opened from the roots a verifier
   rebuilt from chain data alone; every account with a positive value escapes
   (``escape_gas``: the ten-position account), the deposit is refunded.
8. Conservation, to the micro-USDC: deposits = withdrawals + escapes + refunds + what the
   vault still holds; escapes = Σ escape values at the last finalised root; what the vault
   still holds = included deposits − withdrawals − escapes (the rounding of position
   values, never negative).

The engine is reached through two injected factories (the chain layer does not import it):
``node_factory(data_dir, genesis)`` returns a running sequencer node and
``log_factory(data_dir)`` a reader of its journal (``read_after``).
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from clearway.chain.attest import LocalVerifier, LocalVerifiers
from clearway.chain.backend import Chain, open_chain
from clearway.chain.batcher import Batcher, StepReport
from clearway.chain.inbox import Inbox
from clearway.chain.vault import VaultClient
from clearway.chain.watcher import ChainWatcher
from clearway.commitment import escape_value
from clearway.commitment.authorisation import OPERATOR, Authorisation, exchange_domain_separator, sign_command
from clearway.commitment.exchange_state import committed_genesis_hash
from clearway.domain.commands import PlaceOrder, SetMarkPrices, Withdraw
from clearway.domain.events import Rejected, Trade
from clearway.domain.genesis import GenesisConfig
from clearway.domain.instruments import InstrumentSpec, Kind
from clearway.domain.orders import TimeInForce

USDC = 1_000_000
TICK = 100_000  # 0.1 USDC
UNDERLYINGS = ("BTC", "ETH", "SOL", "XRP", "BNB", "ADA", "DOGE", "AVAX", "LINK", "DOT")
PRICES = (25_000, 1_600, 20, 50, 250, 30, 10, 15, 7, 5)  # USDC, on the 0.1 tick
DEADLINE = 24 * 3600
ESCAPE_TARGET = 150_000
TRADE_TARGET = 500
SIGNATURE_FLOOR_GAS = 65 * 4 * 10  # 65 non-zero bytes at the EIP-7623 floor (10 per token, 4 tokens a byte)


def selftest_genesis(fee_owner: str, insurance_owner: str) -> GenesisConfig:
    """Ten USDC-margined perpetuals (tick 0.1 USDC, lot 0.0001, maker −1 bp, taker 5 bp)."""
    specs = [InstrumentSpec(i, u, Kind.PERPETUAL, tick_size=TICK, size_decimals=4, size_increment=1, min_size=1,
                            maker_fee_ppm=-100, taker_fee_ppm=500, imf_ppm=50_000, mmf_ppm=30_000)
             for i, u in enumerate(UNDERLYINGS)]
    return GenesisConfig(fee_account_owner=fee_owner.lower(), insurance_fund_owner=insurance_owner.lower(),
                         instruments=specs)


@dataclass
class _User:
    key: Any
    account: int = -1
    nonce: int = 0

    @property
    def owner(self) -> str:
        return self.key.address.lower()


class Selftest:
    """One run (see the module docstring); ``run()`` returns the report dict."""

    def __init__(self, chain: Chain, node_factory: Callable, log_factory: Callable, data_dir: Path,
                 api_trades: int = 1_000, signed_trades: int = 800, seed: int = 7) -> None:
        self.chain = chain
        self.rng = random.Random(seed)
        self.api_trades = api_trades
        self.signed_trades = signed_trades
        self.deployer = chain.new_account("deployer")
        self.sequencer_key = chain.new_account("sequencer")
        self.verifier_keys = [chain.new_account(f"verifier{i}") for i in range(3)]
        fee, insurance = chain.new_account("fee"), chain.new_account("insurance")
        self.genesis = selftest_genesis(fee.address, insurance.address)
        self.client = VaultClient.deploy(chain, self.deployer, self.sequencer_key.address,
                                         [k.address for k in self.verifier_keys], 2,
                                         committed_genesis_hash(self.genesis), DEADLINE)
        self.start_block = self.client.vault.deployment.block_number
        self.node = node_factory(data_dir / "node", self.genesis)
        self.log = log_factory(data_dir / "node")
        self.inbox = Inbox(data_dir / "settlement")
        self.verifiers = LocalVerifiers([LocalVerifier(k, self.client, self.genesis) for k in self.verifier_keys])
        self.watcher = ChainWatcher(self.client, self.node, self.inbox, confirmations=1, start_block=self.start_block)
        self.batcher = Batcher(self.client, self.sequencer_key, self.genesis, self.log, self.inbox, self.verifiers,
                               max_commands=20_000, max_seconds=3_600)
        self.separator = exchange_domain_separator(chain.chain_id, self.client.address)
        self.batch_gas: dict[int, int] = {}
        self.batch_trades: dict[int, int] = {}

    def close(self) -> None:
        self.node.close()
        for resource in (self.log, self.inbox):
            close = getattr(resource, "close", None)
            if close is not None:
                close()

    # ------------------------------------------------------------------ helpers
    def _user(self, label: str, amount: int) -> _User:
        user = _User(self.chain.new_account(label))
        self.client.mint(self.deployer, user.key, amount)
        self.client.deposit(user.key, amount)
        return user

    def _submit(self, commands: list, signers: list[_User | None] | None = None) -> list[list]:
        """Submit commands (signing those with a signer), wait until durable, record the
        authorisations; returns each command's events."""
        tickets, auths = [], []
        for i, command in enumerate(commands):
            signer = signers[i] if signers else None
            auth = OPERATOR
            if signer is not None:
                signer.nonce = max(signer.nonce + 1, time.time_ns() // 1_000_000)
                auth = sign_command(signer.key.key, self.separator, command, signer.owner, signer.nonce)
            auths.append(auth)
            tickets.append(self.node.submit(command))
        out = []
        for ticket, auth in zip(tickets, auths):
            out.append(ticket.result(60))
            self.inbox.record_authorisation(ticket.seq, auth)
        return out

    def _batch(self) -> StepReport:
        report = self.batcher.step(force=True)
        if not report.finalised or report.finalised[-1] != report.built[-1]:
            raise RuntimeError(f"batch not finalised: {report}; alarms {self.verifiers.alarms}")
        for number in report.built:
            self.batch_gas[number] = report.submit_gas[number] + report.finalise_gas[number]
            stored = next(b for b in self.inbox.batches() if b.batch_number == number)
            self.batch_trades[number] = stored.trades
        return report

    def _flow(self, makers: list[_User], takers: list[_User], trades_wanted: int, signed: bool) -> int:
        """Makers quote ten levels a side on BTC-PERP, takers cross with IOC orders until
        ``trades_wanted`` trades; makers refresh now and then. Returns the trades made."""
        mid = PRICES[0] * USDC
        commands, signers = [], []
        for level in range(10):
            for side in (1, -1):
                maker = makers[level % len(makers)]
                commands.append(PlaceOrder(0, 0, maker.account, 0, side, 20_000, mid - side * (level + 1) * TICK))
                signers.append(maker if signed else None)
        trades = sum(isinstance(e, Trade) for events in self._submit(commands, signers) for e in events)
        while trades < trades_wanted:
            commands, signers = [], []
            for _ in range(min(200, trades_wanted - trades)):
                taker = self.rng.choice(takers)
                side = self.rng.choice((1, -1))
                commands.append(PlaceOrder(0, 0, taker.account, 0, side, self.rng.randint(1, 40) * 10,
                                           mid + side * 3 * TICK, tif=TimeInForce.IOC))
                signers.append(taker if signed else None)
            if self.rng.random() < 0.5:
                maker = self.rng.choice(makers)
                side = self.rng.choice((1, -1))
                commands.append(PlaceOrder(0, 0, maker.account, 0, side, 20_000, mid - side * TICK))
                signers.append(maker if signed else None)
            results = self._submit(commands, signers)
            trades += sum(isinstance(e, Trade) for events in results for e in events)
        return trades

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, Any]:
        client = self.client
        makers = [self._user(f"maker{i}", 5_000_000 * USDC) for i in range(2)]
        takers = [self._user(f"taker{i}", 200_000 * USDC) for i in range(6)]
        tenpos = self._user("ten-positions", 500_000 * USDC)
        forced_served_user = self._user("forced-served", 10_000 * USDC)
        forced_ignored_user = self._user("forced-ignored", 10_000 * USDC)
        users = [*makers, *takers, tenpos, forced_served_user, forced_ignored_user]
        self.watcher.poll()
        owners = self.node.query(lambda s: dict(s.owners)).result(30)
        for user in users:
            user.account = owners[user.owner]

        # batch 1: prices; ten positions
        marks = {i: p * USDC for i, p in enumerate(PRICES)}
        self._submit([SetMarkPrices(0, 0, {u: p * USDC for u, p in zip(UNDERLYINGS, PRICES)}, marks)])
        commands = []
        for i, price in marks.items():
            side = 1 if i % 2 == 0 else -1
            commands.append(PlaceOrder(0, 0, makers[0].account, i, -side, 1_000, price))
            commands.append(PlaceOrder(0, 0, tenpos.account, i, side, 1_000, price))
        self._check_no_rejection(self._submit(commands))
        self._batch()

        # batch 2: API-key trades; batch 3: signed trades
        api_batch = self._flow_batch(makers, takers, self.api_trades, signed=False)
        signed_batch = self._flow_batch(makers, takers, self.signed_trades, signed=True)

        # batch 4: an ordinary withdrawal and a served forced withdrawal
        withdrawer = takers[0]
        self._check_no_rejection(self._submit([Withdraw(0, 0, withdrawer.account, 1_000 * USDC)], [withdrawer]))
        served_request, _ = client.request_forced_withdrawal(forced_served_user.key, 2_500 * USDC)
        self.watcher.poll()
        self._batch()
        paid, receipt = client.withdraw(withdrawer.key)
        withdraw_gas = receipt.gas_used
        forced_paid, _ = client.withdraw(forced_served_user.key)
        if (paid, forced_paid) != (1_000 * USDC, 2_500 * USDC):
            raise RuntimeError(f"withdrawals paid {paid} and {forced_paid}")

        # the sequencer ignores a forced withdrawal and a deposit: freeze and escape
        ignored_request, _ = client.request_forced_withdrawal(forced_ignored_user.key, 1_000 * USDC)
        late = self._user("late-depositor", 777 * USDC)
        late_deposit = client.deposit_count()
        self.chain.time_travel(DEADLINE + 1)
        client.freeze(late.key, ignored_request)
        escape = self._escape(tenpos, late, late_deposit)
        return self._report(escape, api_batch, signed_batch, withdraw_gas, served_request)

    def _flow_batch(self, makers, takers, trades: int, signed: bool) -> list[int]:
        """Run a flow and batch it (more than one batch if it exceeds the vault's limits)."""
        self._flow(makers, takers, trades, signed)
        return self._batch().built

    @staticmethod
    def _check_no_rejection(results: list[list]) -> None:
        for events in results:
            for event in events:
                if isinstance(event, Rejected):
                    raise RuntimeError(f"selftest command rejected: {event}")

    def _escape(self, tenpos: _User, late: _User, late_deposit: int) -> dict[str, Any]:
        """Open the escape from a verifier's chain-only state, escape everyone, refund."""
        client = self.client
        verifier = self.verifiers.verifiers[0]
        verifier.sync()
        replica = verifier.replica
        if replica.batch_number != client.finalised_count():
            raise RuntimeError("the verifier is not at the last finalised batch")
        committed = replica.committer.committed
        anyone = late.key
        client.open_escape(anyone, committed.accounts.root, committed.instruments.root, replica.state.last_seq)
        instruments = committed.instrument_leaves()
        for leaf in instruments.values():
            client.post_instrument(anyone, leaf, committed.instrument_proof(leaf.instrument_id))
        escaped, gas, expected = 0, {}, 0
        for account_id in sorted(replica.state.accounts):
            leaf = committed.account(account_id)
            value = escape_value(leaf, instruments)
            expected += value
            if value <= 0:
                continue
            amount, receipt = client.escape(anyone, leaf, committed.account_proof(account_id))
            escaped += amount
            gas[account_id] = (receipt.gas_used, len(leaf.positions))
        refunded, _ = client.refund_deposit(anyone, late_deposit)
        return {"escaped": escaped, "expected": expected, "gas": gas, "refunded": refunded,
                "tenpos_gas": gas[tenpos.account][0], "tenpos_positions": gas[tenpos.account][1],
                "included_net": replica.state.total_deposits - replica.state.total_withdrawals}

    def _report(self, escape: dict, api_batch: list[int], signed_batch: list[int], withdraw_gas: int,
                served_request: int) -> dict[str, Any]:
        client = self.client
        head = self.chain.block_number()
        deposited = sum(e.amount for e in client.deposits(self.start_block, head))
        withdrawn = sum(e.args["amount"] for e in client.vault.events("Withdrawn", self.start_block, head))
        balance = client.vault_balance()
        def totals(numbers: list[int]) -> dict[str, int]:
            return {"batches": len(numbers), "trades": sum(self.batch_trades[n] for n in numbers),
                    "gas": sum(self.batch_gas[n] for n in numbers),
                    "data_bytes": sum(len(stored[n].data) for n in numbers)}

        stored = {b.batch_number: b for b in self.inbox.batches()}
        api, signed = totals(api_batch), totals(signed_batch)
        gas_per_trade = api["gas"] / api["trades"]
        gas_per_signed = signed["gas"] / signed["trades"]
        conservation = (deposited == withdrawn + escape["escaped"] + escape["refunded"] + balance
                        and escape["escaped"] == escape["expected"]
                        and balance == escape["included_net"] - escape["escaped"] >= 0
                        and client.view("total_claimable") == 0)
        return {
            "chain": self.chain.describe(),
            "batches": len(self.batch_gas),
            "trades": sum(self.batch_trades.values()),
            "gas_per_batch": round(sum(self.batch_gas.values()) / len(self.batch_gas)),
            "gas_per_trade": round(gas_per_trade, 1),
            "gas_per_signed_trade": round(gas_per_signed, 1),
            "escape_gas": escape["tenpos_gas"],
            "withdraw_gas": withdraw_gas,
            "escaped_total": escape["escaped"],
            "expected_total": escape["expected"],
            "vault_balance_after": balance,
            "conservation_ok": conservation,
            "details": {
                "deposited": deposited, "withdrawn": withdrawn, "refunded": escape["refunded"],
                "api_key_flow": api, "signed_flow": signed,
                "escape_positions": escape["tenpos_positions"], "escapes": len(escape["gas"]),
                "served_forced_request": served_request,
                "verifier_alarms": self.verifiers.alarms,
                "targets": {
                    "gas_per_trade_max": TRADE_TARGET,
                    "gas_per_signed_trade_max": TRADE_TARGET + SIGNATURE_FLOOR_GAS,
                    "escape_gas_max": ESCAPE_TARGET,
                    "met": gas_per_trade <= TRADE_TARGET and gas_per_signed <= TRADE_TARGET + SIGNATURE_FLOOR_GAS
                    and escape["tenpos_gas"] <= ESCAPE_TARGET,
                },
            },
        }


def run_selftest(node_factory: Callable, log_factory: Callable, rpc_url: str | None = None,
                 api_trades: int = 1_000, signed_trades: int = 800, data_dir: Path | None = None) -> dict[str, Any]:
    """Run the lifecycle on a fresh embedded chain (``rpc_url`` None) or on the node at
    ``rpc_url`` (it must allow ``evm_increaseTime``: anvil does); return the report."""
    chain = open_chain(rpc_url)
    with tempfile.TemporaryDirectory(prefix="clearway-selftest-") as tmp:
        test = Selftest(chain, node_factory, log_factory, Path(data_dir or tmp), api_trades, signed_trades)
        try:
            return test.run()
        finally:
            test.close()
