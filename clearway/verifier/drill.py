"""``clearway verifier drill``: honest batches are attested; seven lies never finalise.

On one fresh embedded chain, with three verifiers (threshold 2) that share an attestation
board, finalise by themselves and accept no operator prices, and a genesis config whose
oracle has four reporters and quorum 3:

- every scenario deploys its own vault (a refused batch blocks its vault for good: batch
  n + 1 must chain onto batch n's root, so one vault can show only one lie) and runs the
  same honest prefix — batch 1: deposits and signed oracle updates (``OracleUpdate``);
  batch 2: trades from EIP-712-signed and API-key (operator-attested) orders, a signed
  withdrawal, a forced withdrawal served, oracle updates — each synced by the verifiers
  and finalised;
- then the sequencer lies once, as batch 3, and posts batch 4 on top of it:

  a. a root that credits its own (fee) account 1,000,000 USDC;
  b. batch data that does not produce the posted root (an order's size doubled);
  c. data that cannot be decoded;
  d. an order in a user's account signed with the sequencer's key;
  e. an oracle update with two genuine reports and a forged one (quorum 3), which
     ``apply()`` rejects, and a root as if it had moved the price;
  f. a deposit included while the one before it is skipped (the root credits it);
  g. a forced withdrawal ignored: batches keep coming without it; one verifier is restarted
     from its data directory; past the deadline the verifiers raise FORCED_OVERDUE and
     freeze the vault; every account then escapes with ``clearway escape``'s tool, from
     chain data alone, and the vault's balance is reconciled to the micro-USDC.

After each lie the sequencer also tries to finalise with whatever the board holds. The
report counts honest batches attested and lies finalised (must be 0).
"""

from __future__ import annotations

import logging
import random
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec

from clearway.chain.backend import Chain, EmbeddedChain, open_chain
from clearway.chain.errors import ChainError
from clearway.chain.vault import VaultClient
from clearway.commitment.authorisation import OPERATOR
from clearway.commitment.batch import encode_batch
from clearway.commitment.exchange_state import committed_genesis_hash
from clearway.domain.commands import CancelAll, Deposit, OracleUpdate, PlaceOrder, Withdraw
from clearway.domain.genesis import FEE_ACCOUNT, GenesisConfig
from clearway.domain.instruments import InstrumentSpec, Kind
from clearway.domain.oracle import sign_report
from clearway.domain.orders import TimeInForce
from clearway.verifier.board import MemoryBoard
from clearway.verifier.drill_sequencer import DrillSequencer, PreparedBatch
from clearway.verifier.escape import EscapeTool, escape_everyone
from clearway.verifier.verifier import Verifier, VerifierConfig

USDC = 1_000_000
TICK = 100_000
DEADLINE = 3_600
PRICES = {"BTC": 25_000 * USDC, "ETH": 1_600 * USDC}
ATTEMPTS = {
    "a": "root_credits_sequencer",
    "b": "data_not_producing_root",
    "c": "undecodable_data",
    "d": "forged_order_signature",
    "e": "oracle_below_quorum",
    "f": "skipped_deposit",
    "g": "ignored_forced_withdrawal",
}


def drill_genesis(fee_owner: str, insurance_owner: str, reporters: tuple[str, ...] = ()) -> GenesisConfig:
    """BTC-PERP and ETH-PERP (tick 0.1 USDC, lot 0.0001, maker −1 bp, taker 5 bp); the
    oracle's ``reporters`` (addresses) with quorum 3."""
    specs = [InstrumentSpec(i, u, Kind.PERPETUAL, tick_size=TICK, size_decimals=4, size_increment=1, min_size=1,
                            maker_fee_ppm=-100, taker_fee_ppm=500, imf_ppm=50_000, mmf_ppm=30_000)
             for i, u in enumerate(PRICES)]
    return GenesisConfig(fee_account_owner=fee_owner.lower(), insurance_fund_owner=insurance_owner.lower(),
                         instruments=specs, oracle_reporters=[r.lower() for r in reporters], oracle_quorum=3)


@dataclass
class DrillReport:
    honest_batches: int = 0
    honest_attested: int = 0
    attempts: list[dict[str, Any]] = field(default_factory=list)
    escape: dict[str, Any] = field(default_factory=dict)
    chain: str = "embedded"

    def to_json(self) -> dict[str, Any]:
        finalised = sum(1 for a in self.attempts if a["finalised"])
        return {
            "honest_batches": self.honest_batches,
            "honest_attested": self.honest_attested,
            "dishonest_attempts": len(self.attempts),
            "dishonest_finalised": finalised,
            "alarms": {f"{a['attempt']}_{ATTEMPTS[a['attempt']]}": a["alarm"] for a in self.attempts},
            "escaped_accounts": self.escape.get("escaped_accounts", 0),
            "escape_shortfall": self.escape.get("shortfall", 0),
            "details": {"chain": self.chain, "attempts": self.attempts, "escape": self.escape,
                        "alarms_recorded": sum(a["alarms_recorded"] for a in self.attempts)},
        }


class Drill:
    """The whole drill (module docstring); ``run()`` returns the report."""

    def __init__(self, data_dir: Path, seed: int = 7, chain: Chain | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.rng = random.Random(seed)
        self.chain = chain or EmbeddedChain(seed=b"clearway-drill-%d" % seed)
        chain = self.chain
        self.deployer = chain.new_account("deployer")
        self.sequencer = chain.new_account("sequencer")
        self.verifier_keys = [chain.new_account(f"verifier{i}") for i in range(3)]
        self.reporters = [chain.new_account(f"reporter{i}") for i in range(4)]
        self.users = {name: chain.new_account(name) for name in ("maker", "alice", "bob", "carol", "dave", "erin")}
        self.genesis = drill_genesis(self.sequencer.address, chain.new_account("insurance").address,
                                     tuple(r.address for r in self.reporters))
        self.config = VerifierConfig(require_oracle=True, deposit_window_blocks=200)
        self.report = DrillReport(chain=self.chain.describe())

    def run(self) -> dict[str, Any]:
        for letter in ATTEMPTS:
            scenario = Scenario(self, letter)
            try:
                scenario.honest_prefix()
                if letter == "g":
                    self.report.attempts.append(scenario.ignore_forced_withdrawal())
                else:
                    self.report.attempts.append(scenario.lie(letter))
            finally:
                scenario.close()
        return self.report.to_json()

    def reports(self, underlying: str, index: int, ts: int, signers=None) -> tuple:
        """Reports of ``index`` signed by ``signers`` (default: every reporter), at ``ts`` − 0.5 s."""
        return tuple(sign_report(r.key, underlying, ts - 500, index, 0)
                     for r in (signers if signers is not None else self.reporters))


class Scenario:
    """One vault, its sequencer and its three verifiers (tests drive it step by step)."""

    def __init__(self, drill: Drill, label: str) -> None:
        self.drill = drill
        self.label = label
        chain = drill.chain
        self.client = VaultClient.deploy(chain, drill.deployer, drill.sequencer.address,
                                         [k.address for k in drill.verifier_keys], 2,
                                         committed_genesis_hash(drill.genesis), DEADLINE)
        self.start_block = self.client.vault.deployment.block_number
        self.config = replace(drill.config, start_block=self.start_block)
        self.board = MemoryBoard()
        self.verifiers = [self._verifier(i) for i in range(3)]
        self.seq = DrillSequencer(self.client, drill.sequencer, drill.genesis)
        self.prices = dict(PRICES)

    def _verifier(self, i: int) -> Verifier:
        return Verifier(self.client, self.drill.verifier_keys[i], self.drill.genesis,
                        self.drill.data_dir / self.label / f"verifier{i}", self.board, self.config, f"verifier{i}")

    def close(self) -> None:
        for verifier in self.verifiers:
            verifier.close()

    def sync(self) -> None:
        for verifier in self.verifiers:
            verifier.sync()

    def user(self, name: str):
        return self.drill.users[name]

    def deposit(self, name: str, amount: int) -> int:
        key = self.user(name)
        self.client.mint(self.drill.deployer, key, amount)
        deposit_id, _ = self.client.deposit(key, amount)
        return deposit_id

    def account(self, name: str) -> int:
        return self.seq.account(self.user(name).address)

    def set_prices(self, factor_ppm: int = 1_000_000) -> None:
        """Signed oracle updates (every reporter) moving every index by ``factor_ppm``."""
        self.prices = {u: p * factor_ppm // 1_000_000 // TICK * TICK for u, p in self.prices.items()}
        for underlying, index in self.prices.items():
            self.seq.submit(OracleUpdate(0, 0, underlying, self.drill.reports(underlying, index, self.seq.next_ts())))

    def honest_batch(self) -> PreparedBatch:
        prepared = self.seq.batch()
        self.drill.report.honest_batches += 1
        self.sync()
        if self.client.finalised_count() >= prepared.batch_number:
            self.drill.report.honest_attested += 1
        return prepared

    def trades(self) -> None:
        """Maker quotes BTC (operator); alice buys (signed, IOC); bob sells (operator, IOC)."""
        btc = self.prices["BTC"]
        maker, alice, bob = self.account("maker"), self.account("alice"), self.account("bob")
        self.seq.submit(PlaceOrder(0, 0, maker, 0, 1, 10_000, btc - 5 * TICK))
        self.seq.submit(PlaceOrder(0, 0, maker, 0, -1, 10_000, btc + 5 * TICK))
        self.seq.submit(PlaceOrder(0, 0, alice, 0, 1, 2_000, btc + 5 * TICK, tif=TimeInForce.IOC), self.user("alice"))
        self.seq.submit(PlaceOrder(0, 0, bob, 0, -1, 1_000, btc - 5 * TICK, tif=TimeInForce.IOC))

    # ------------------------------------------------------------------ honest prefix
    def honest_prefix(self) -> None:
        for name, amount in (("maker", 1_000_000 * USDC), ("alice", 20_000 * USDC), ("bob", 20_000 * USDC),
                             ("carol", 5_000 * USDC)):
            self.deposit(name, amount)
        self.seq.credit_deposits()
        self.set_prices()
        self.honest_batch()
        self.trades()
        carol = self.account("carol")
        self.seq.submit(Withdraw(0, 0, carol, 1_000 * USDC), self.user("carol"))
        request_id, _ = self.client.request_forced_withdrawal(self.user("bob"), 500 * USDC)
        self.seq.serve_forced(request_id)
        self.set_prices(1_010_000)
        self.honest_batch()
        for name in ("carol", "bob"):
            self.client.withdraw(self.user(name))

    # ------------------------------------------------------------------ lies (a)–(f)
    def lie(self, letter: str) -> dict[str, Any]:
        prepared = getattr(self, f"_lie_{letter}")()
        number = prepared.batch_number
        self.seq.post(prepared)
        self.sync()
        self._try_finalise(number)
        self.seq.submit(CancelAll(0, 0, self.account("maker")))
        follow = self.seq.build()  # built on the refused root, continuing its effects
        last = max(follow.effects.last_deposit_id, prepared.effects.last_deposit_id)
        self.seq.post(replace(follow, effects=replace(follow.effects, last_deposit_id=last)))
        self.sync()
        self._try_finalise(number)
        return self._outcome(letter, number)

    def _lie_a(self) -> PreparedBatch:
        self.trades()
        prepared = self.seq.build()

        def credit(state) -> None:
            state.accounts[FEE_ACCOUNT].cash += 1_000_000 * USDC
        return self.seq.with_root(prepared, self.seq.root_with(prepared.batch_number, credit))

    def _lie_b(self) -> PreparedBatch:
        self.trades()
        prepared = self.seq.build()
        commands = list(prepared.batch.commands)
        auths = prepared.batch.authorisations
        i = next(i for i, c in enumerate(commands)  # an API-key order: changing it breaks no signature
                 if type(c) is PlaceOrder and c.tif == TimeInForce.IOC and auths[i] == OPERATOR)
        commands[i] = replace_struct(commands[i], size=commands[i].size * 2)
        altered = replace(prepared.batch, commands=tuple(commands))
        return replace(prepared, data=encode_batch(altered))

    def _lie_c(self) -> PreparedBatch:
        self.trades()
        prepared = self.seq.build()
        garbage = b"CWB\x01\x01" + self.drill.rng.randbytes(4 + 200)
        return replace(prepared, data=garbage)

    def _lie_d(self) -> PreparedBatch:
        btc = self.prices["BTC"]
        alice = self.account("alice")
        self.seq.submit(PlaceOrder(0, 0, alice, 0, -1, 5_000, btc - 5 * TICK, tif=TimeInForce.IOC),
                        signer=self.drill.sequencer)  # the sequencer signs as alice
        return self.seq.build()

    def _lie_e(self) -> PreparedBatch:
        lowered = self.prices["BTC"] * 95 // 100 // TICK * TICK
        ts = self.seq.next_ts()
        genuine = self.drill.reports("BTC", lowered, ts, self.drill.reporters[:2])
        forged = tuple(replace_struct(r, reporter=self.drill.reporters[2].address.lower())
                       for r in self.drill.reports("BTC", lowered, ts, [self.drill.sequencer]))
        self.seq.submit(OracleUpdate(0, 0, "BTC", genuine + forged))  # apply() rejects it: 2 of quorum 3
        self.trades()
        prepared = self.seq.build()

        def moved(state) -> None:  # the root the sequencer posts: as if the update had moved BTC
            state.index["BTC"] = lowered
            state.marks[0] = lowered
        return self.seq.with_root(prepared, self.seq.root_with(prepared.batch_number, moved))

    def _lie_f(self) -> PreparedBatch:
        skipped = self.deposit("dave", 3_000 * USDC)
        included = self.deposit("erin", 4_000 * USDC)
        erin = self.user("erin").address.lower()
        self.seq.submit(Deposit(0, 0, erin, 4_000 * USDC, included))  # the domain rejects it: out of order
        prepared = self.seq.build()

        def credit(state) -> None:
            account = state.accounts[state.owners[erin]] if erin in state.owners else state.create_account(erin)
            account.cash += 4_000 * USDC
            state.last_deposit_id = included
            state.total_deposits += 4_000 * USDC
        root = self.seq.root_with(prepared.batch_number, credit)
        assert skipped == included - 1
        return replace(prepared, new_root=root, effects=replace(prepared.effects, last_deposit_id=included))

    # ------------------------------------------------------------------ (g)
    def ignore_forced_withdrawal(self) -> dict[str, Any]:
        self.deposit("dave", 2_000 * USDC)
        self.seq.credit_deposits()
        self.trades()
        request_id, _ = self.client.request_forced_withdrawal(self.user("dave"), 1_000 * USDC)
        self.honest_batch()  # ignores the request: still within the deadline, attested
        self.deposit("erin", 777 * USDC)  # never included: refunded after the freeze
        self.verifiers[2].close()
        self.verifiers[2] = self._verifier(2)  # restarted from its data directory
        self.drill.chain.time_travel(DEADLINE + 1)
        self.seq.submit(CancelAll(0, 0, self.account("maker")))
        self.trades()
        number = self.seq.batch().batch_number  # still ignores it, past the deadline
        self.sync()
        self._try_finalise(number)
        outcome = self._outcome("g", number, request_id)
        outcome["frozen"] = self.client.frozen()
        outcome["restarted_verifier_height"] = self.verifiers[2].height
        self.drill.report.escape = self.escape_everyone()
        return outcome

    def escape_everyone(self) -> dict[str, Any]:
        """Escape every account with the chain-only tool; reconcile the vault."""
        anyone = self.drill.chain.new_account("escaper")
        reference = self.verifiers[0].replica  # the verifier's state at the last finalised root
        result = escape_everyone(EscapeTool(self.client, self.drill.genesis, self.start_block), anyone, reference)
        return {
            "escaped_accounts": result.escaped_accounts,
            "accounts": result.accounts,
            "expected": result.expected,
            "paid": result.paid,
            "shortfall": result.expected - result.paid,
            "refunded": result.refunded,
            "deposited": result.deposited,
            "withdrawn": result.withdrawn,
            "vault_balance_after": result.vault_balance_after,
            "same_root_as_verifier": result.same_root,
            "reconciled": result.reconciled and result.still_claimable == 0,
        }

    # ------------------------------------------------------------------ outcome
    def _try_finalise(self, number: int) -> None:
        """The sequencer tries to finalise ``number`` with every signature on the board."""
        signatures = [sig for _, _, sig in self.board.entries(number)]
        try:
            self.client.finalise_batch(self.drill.sequencer, number, signatures)
        except ChainError:
            pass

    def _outcome(self, letter: str, number: int, request_id: int | None = None) -> dict[str, Any]:
        firsts, later, recorded = [], [], 0
        for verifier in self.verifiers:
            alarms = verifier.alarms
            recorded += len(alarms)
            mine = [a for a in alarms if a.batch_number == number or (letter == "g" and a.code.name == "FORCED_OVERDUE")]
            firsts.append(mine[0] if mine else None)
            later += [a.code.name for a in alarms if a.batch_number > number]
        first = next((a for a in firsts if a is not None), None)
        return {
            "attempt": letter,
            "what": ATTEMPTS[letter],
            "batch": number,
            "finalised": self.client.finalised_count() >= number,
            "alarm": first.code.name if first else None,
            "verifiers_alarmed": sum(a is not None for a in firsts),
            "first_diverging_seq": first.seq if first else None,
            "accounts_affected": [a.to_json() for a in first.accounts] if first else [],
            "description": first.describe() if first else "",
            "later_batches_refused": later,
            "alarms_recorded": recorded,
            **({"forced_request": request_id} if request_id else {}),
        }


def replace_struct(struct, **changes):
    """``msgspec.structs.replace`` (commands and reports are frozen msgspec Structs)."""
    return msgspec.structs.replace(struct, **changes)


def run_drill(data_dir: Path | None = None, seed: int = 7, rpc_url: str | None = None) -> dict[str, Any]:
    """Run the drill in ``data_dir`` (default: a temporary directory) on a fresh embedded
    chain, or on the dev node at ``rpc_url`` (it must allow ``evm_increaseTime``: anvil
    does); the report. The verifiers' warnings (every refusal is expected here) are muted
    while it runs."""
    logger = logging.getLogger("clearway.verifier")
    level = logger.level
    logger.setLevel(logging.ERROR)
    chain = open_chain(rpc_url) if rpc_url else None
    try:
        if data_dir is not None:
            return Drill(Path(data_dir), seed, chain).run()
        with tempfile.TemporaryDirectory(prefix="clearway-drill-") as tmp:
            return Drill(Path(tmp), seed, chain).run()
    finally:
        logger.setLevel(level)
