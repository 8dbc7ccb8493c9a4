"""The whole settlement layer in one process: :class:`EmbeddedStack` (DESIGN.md,
"Deployments", embedded column).

One object composes the existing parts exactly as a deployment runs them:

- an embedded L1 (:class:`~clearway.chain.backend.EmbeddedChain`: titanoboa's py-evm, Prague
  gas) with the test stablecoin and the vault deployed (``VaultClient.deploy``), a
  sequencer key and ``verifiers`` verifier keys (3, attestation threshold 2 by default);
- a sequencer :class:`~clearway.engine.node.Node` with its SQLite journal in
  ``data_dir/node`` and an injectable clock (milliseconds since the epoch): a simulation
  passes its simulated time, so the same seed gives the same commands, timestamps and
  state roots;
- the deposit watcher (``chain/watcher.py``: vault ``Deposit`` events → domain ``Deposit``
  commands; forced-withdrawal requests served), the batcher (``chain/batcher.py``:
  journal → batches on the vault → finalisation) and real verifiers
  (``clearway.verifier.Verifier`` in a :class:`~clearway.verifier.VerifierSet` sharing an
  in-memory attestation board; each replays every batch from the chain's calldata alone
  and signs; the batcher finalises once ``threshold`` signatures are on the board);
- optionally the trading API (``clearway.api``) on loopback, in a thread (:meth:`serve_api`).

Public API (all amounts micro-USDC, keys ``eth_account`` LocalAccounts or 32-byte private
keys, time in milliseconds of the stack's clock)::

    stack = EmbeddedStack(data_dir, genesis, clock=sim_clock_ms)   # or genesis_factory=...
    key = stack.new_key("alice")                 # a fresh, funded-for-gas L1 key
    account = stack.deposit(key, 10_000 * USDC)  # mint, approve, deposit on L1; credited
    stack.deposit_many([(key, amount), ...])     # several, one watcher poll
    stack.deposit_on_l1(key, amount)             # L1 only; the next step credits it
    events = stack.submit(command, signer=key)   # to the sequencer; EIP-712 signed if signer
    stack.withdraw(key, 1_000 * USDC)            # domain Withdraw (signed by the owner)
    report = stack.step()                        # L1 time, watcher, batcher, verifiers
    stack.batch_summaries(report.finalised)      # commands, trades, bytes, gas, attestations
    stack.settle()                               # batch everything pending until finalised
    paid = stack.claim(key)                      # the L1 withdrawal of what is claimable
    stack.force_withdrawal(key, amount)          # L1 request; the next step serves it
    stack.status()                               # batches, vault balance, verifier heights
    url = stack.serve_api(port=0)                # the JSON-RPC API on 127.0.0.1
    drill = stack.halt_drill()                   # sequencer stops, freeze, every account escapes
    stack.close()

L1 time follows the stack's clock: the embedded chain starts at the clock's time and every
:meth:`step` moves it forward to the clock (never back), so forced-withdrawal deadlines
are in the same simulated time as the commands.

Threads: the node runs its own threads; everything that touches the chain (watcher,
batcher, verifiers, deposits, claims, the API's L1 views) holds :attr:`lock`, so a
background stepper (:meth:`start_background`, used by ``clearway node --dev``) and the
caller never run the EVM at the same time.

Errors: :class:`StackError` (``code``: a :class:`StackErrorCode`) for a deposit the node
did not credit, a batch the verifiers did not finalise, a claim with nothing claimable, a
stack whose sequencer has halted, a halt drill whose verifier is not at the frozen root, a
data directory (or dev node) holding an earlier run; chain and engine errors propagate
unchanged.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from eth_account import Account
from eth_account.signers.local import LocalAccount

from clearway.chain.backend import Chain, EmbeddedChain
from clearway.chain.batcher import Batcher, StepReport
from clearway.chain.inbox import Inbox
from clearway.chain.vault import VaultClient
from clearway.chain.watcher import ChainWatcher
from clearway.commitment.authorisation import OPERATOR, exchange_domain_separator, sign_command
from clearway.commitment.exchange_state import committed_genesis_hash, full_state_root
from clearway.domain.commands import Command, Withdraw
from clearway.domain.genesis import GenesisConfig
from clearway.engine.journal import SQLITE_FILE, SqliteJournal
from clearway.engine.node import Node, wall_clock_ms
from clearway.verifier import VerifierSet
from clearway.verifier.board import MemoryBoard
from clearway.verifier.escape import EscapeTool, escape_everyone
from clearway.verifier.verifier import Verifier, VerifierConfig

log = logging.getLogger("clearway.sim")

USDC = 1_000_000
ETHER = 10**18


class StackErrorCode(IntEnum):
    DEPOSIT_NOT_CREDITED = 1
    NOT_FINALISED = 2
    NOTHING_TO_CLAIM = 3
    HALTED = 4
    NOT_RECONCILED = 5
    USED_NODE = 6


class StackError(Exception):
    """A stack operation that could not complete; ``code`` says which."""

    def __init__(self, code: StackErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class StackConfig:
    """How the embedded settlement layer is set up.

    verifiers, threshold : int
        Verifier keys in the vault and attestations needed to finalise (3 and 2).
    forced_action_deadline : int
        Seconds (L1 time) a forced withdrawal may wait before anyone may freeze.
    batch_max_commands : int
        Cut a batch once this many commands are pending (the batcher also respects the
        vault's limits: 64 KiB of data, 64 withdrawals, 32 forced inclusions).
    batch_max_seconds : float
        … or once the oldest pending command has waited this long (stack clock).
    confirmations : int
        Blocks the watcher waits for (1 on the embedded chain: every transaction is a block).
    verifier_snapshot_every : int
        Each verifier persists its state every this many batches (1: every batch; larger is
        faster on long runs, a restart then replays more).
    require_oracle : bool
        Verifiers refuse operator price commands (``SetMarkPrices``, ``SetMarketData``).
    deposit_window_blocks : int | None
        Verifiers refuse a batch that leaves out a deposit mined this many blocks before it
        (every embedded transaction is a block; None: no deadline).
    chain_seed : bytes
        Seed of the embedded chain's key derivation (same seed, same keys).
    """

    verifiers: int = 3
    threshold: int = 2
    forced_action_deadline: int = 24 * 3600
    batch_max_commands: int = 5_000
    batch_max_seconds: float = 600.0
    confirmations: int = 1
    verifier_snapshot_every: int = 1
    require_oracle: bool = False
    deposit_window_blocks: int | None = 7_200
    chain_seed: bytes = b"clearway-stack"


@dataclass
class StackStep:
    """What one :meth:`EmbeddedStack.step` did: the watcher's deposits credited and forced
    requests recorded; batch numbers built, submitted and finalised; L1 gas of each built
    batch (submit + finalise, by batch number; finalise may land in a later step); and the
    wall-clock seconds the step took."""

    deposits: int = 0
    forced: int = 0
    built: list[int] = field(default_factory=list)
    submitted: list[int] = field(default_factory=list)
    finalised: list[int] = field(default_factory=list)
    gas: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0


def as_key(key: LocalAccount | bytes | str) -> LocalAccount:
    """A LocalAccount from a LocalAccount, 32 raw bytes or a hex private key."""
    if isinstance(key, LocalAccount):
        return key
    return Account.from_key(key)


class EmbeddedStack:
    """The embedded settlement layer (module docstring).

    Parameters
    ----------
    data_dir : Path
        Holds ``node/`` (journal, snapshots), ``settlement/`` (the batcher's inbox) and
        ``verifiers/<i>/`` (each verifier's store). Must be fresh unless ``node`` is given.
    genesis : GenesisConfig | None
        The exchange's genesis config (its keccak goes into the vault).
    genesis_factory : callable(fee_owner, insurance_owner) → GenesisConfig
        Alternative to ``genesis``: build it from two keys of the chain (``fee_key`` and
        ``insurance_key`` keep them), so the system accounts' escapes pay known keys.
    clock : callable → int
        Milliseconds since the epoch; the node stamps commands with it, the batcher's age
        limit and L1 time follow it. Default: the wall clock.
    config : StackConfig
    node : Node | None
        An already running sequencer (``clearway node --dev``): the stack reads its journal
        from ``node.data_dir`` and does not close it. Without one, ``data_dir/node`` must
        hold no journal of an earlier run (StackError USED_NODE).
    chain : Chain | None
        Default: a fresh :class:`EmbeddedChain` seeded with ``config.chain_seed``.
    """

    def __init__(self, data_dir: Path | str, genesis: GenesisConfig | None = None, *,
                 genesis_factory: Callable[[str, str], GenesisConfig] | None = None,
                 clock: Callable[[], int] = wall_clock_ms, config: StackConfig = StackConfig(),
                 node: Node | None = None, chain: Chain | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self.chain = chain or EmbeddedChain(seed=config.chain_seed)
        _start_chain_clock(self.chain, clock() // 1000)
        chain = self.chain
        self.deployer = chain.new_account("deployer")
        self.sequencer_key = chain.new_account("sequencer")
        self.verifier_keys = [chain.new_account(f"verifier{i}") for i in range(config.verifiers)]
        self.fee_key = chain.new_account("fee")
        self.insurance_key = chain.new_account("insurance")
        if genesis is None:
            genesis = genesis_factory(self.fee_key.address, self.insurance_key.address) if genesis_factory \
                else GenesisConfig()
        self.genesis = genesis
        self.client = VaultClient.deploy(chain, self.deployer, self.sequencer_key.address,
                                         [k.address for k in self.verifier_keys], config.threshold,
                                         committed_genesis_hash(genesis), config.forced_action_deadline)
        self.start_block = self.client.vault.deployment.block_number
        self.separator = exchange_domain_separator(chain.chain_id, self.client.address)
        self._owns_node = node is None
        self.node = node if node is not None else Node(self.data_dir / "node", genesis, clock=clock,
                                                       snapshot_every=0, freeze_gc=False)
        opened: list = []
        try:
            if self._owns_node and self.node.last_seq:
                raise StackError(StackErrorCode.USED_NODE, f"{self.data_dir} holds the journal of an earlier run "
                                 "(the embedded chain does not outlive its process): use a fresh directory")
            self.journal = SqliteJournal(self.node.data_dir / SQLITE_FILE)
            opened.append(self.journal)
            self.inbox = Inbox(self.data_dir / "settlement")
            opened.append(self.inbox)
            self.board = MemoryBoard()
            verifier_config = VerifierConfig(require_oracle=config.require_oracle, finalise=False,
                                             deposit_window_blocks=config.deposit_window_blocks,
                                             snapshot_every=config.verifier_snapshot_every,
                                             start_block=self.start_block)
            verifiers = []
            for i, key in enumerate(self.verifier_keys):
                verifiers.append(Verifier(self.client, key, genesis, self.data_dir / "verifiers" / str(i), self.board,
                                          verifier_config, f"verifier{i}"))
                opened.append(verifiers[-1])
            self.verifiers = VerifierSet(verifiers, self.board)
        except BaseException:
            for resource in reversed(opened):
                resource.close()
            if self._owns_node:
                self.node.close(snapshot=False)
            raise
        self.watcher = ChainWatcher(self.client, self.node, self.inbox, config.confirmations, self.start_block)
        self.batcher = Batcher(self.client, self.sequencer_key, genesis, self.journal, self.inbox, self.verifiers,
                               max_commands=config.batch_max_commands, max_seconds=config.batch_max_seconds,
                               clock=lambda: self.clock() / 1000)
        self.keys: dict[str, LocalAccount] = {}  # owner (lower case) → key, for claims and the drill
        self.batch_gas: dict[int, int] = {}
        self.halted = False
        self._approved: set[str] = set()
        self._nonces: dict[str, int] = {}
        self._server = None
        self._background: threading.Thread | None = None
        self._stop = threading.Event()
        self.background_error: BaseException | None = None

    # ------------------------------------------------------------------ users
    def new_key(self, label: str = "") -> LocalAccount:
        """A fresh L1 key (deterministic from the chain seed and a counter)."""
        with self.lock:
            return self.chain.new_account(label)

    def _remember(self, key: LocalAccount) -> str:
        owner = key.address.lower()
        self.keys[owner] = key
        return owner

    def fund_l1(self, key: LocalAccount | bytes | str, amount: int) -> LocalAccount:
        """Mint ``amount`` of the stablecoin to ``key`` and approve the vault (once per key)."""
        key = as_key(key)
        with self.lock:
            self._check_running()
            self.client.token.transact("mint", key.address, amount, sender=self.deployer)
            owner = self._remember(key)
            if owner not in self._approved:
                self.client.token.transact("approve", self.client.address, 2**256 - 1, sender=key)
                self._approved.add(owner)
        return key

    def deposit(self, key: LocalAccount | bytes | str, amount: int, owner: str | None = None) -> int:
        """Mint ``amount`` to ``key``, deposit it through the vault (for ``owner``, default the
        key's address) and poll the watcher until the node has credited it; returns the
        account id. StackError DEPOSIT_NOT_CREDITED if the node has no account for it."""
        return self.deposit_many([(key, amount)], owner)[0]

    def deposit_many(self, deposits: Iterable[tuple[LocalAccount | bytes | str, int]],
                     owner: str | None = None) -> list[int]:
        """Several :meth:`deposit` s with one watcher poll; account ids in order."""
        owners = []
        with self.lock:
            for key, amount in deposits:
                key = self.fund_l1(key, amount)
                self.client.deposit(key, amount, owner)
                owners.append((owner or key.address).lower())
            self.watcher.poll()
        found = self.node.query(lambda state: [state.owners.get(o) for o in owners]).result(60)
        if None in found:
            raise StackError(StackErrorCode.DEPOSIT_NOT_CREDITED,
                             f"the node did not credit {owners[found.index(None)]}")
        return found

    def deposit_on_l1(self, key: LocalAccount | bytes | str, amount: int) -> int:
        """Mint and deposit on L1 only (the next :meth:`step` credits it); the deposit id."""
        with self.lock:
            key = self.fund_l1(key, amount)
            deposit_id, _ = self.client.deposit(key, amount)
        return deposit_id

    def account_of(self, owner: str | LocalAccount) -> int | None:
        """The account id of ``owner`` (address or key) at the node, or None."""
        address = owner.address if isinstance(owner, LocalAccount) else owner
        return self.node.query(lambda state: state.owners.get(address.lower())).result(60)

    # ------------------------------------------------------------------ commands
    def submit(self, command: Command, signer: LocalAccount | bytes | str | None = None) -> list:
        """Sequence ``command`` and wait until durable; its events. With ``signer`` the
        command is EIP-712 signed by that key as the account owner's (nonce: 1, 2, … per
        owner) and the signature goes into the batch data; otherwise it is
        operator-attested (an API-key session)."""
        return self.submit_many([command], [signer] if signer is not None else None)[0]

    def submit_many(self, commands: Sequence[Command],
                    signers: Sequence[LocalAccount | bytes | str | None] | None = None) -> list[list]:
        """Submit all, then wait for all (one group commit); events of each, in order."""
        if self.halted:
            raise StackError(StackErrorCode.HALTED, "the sequencer has halted")
        tickets, auths = [], []
        for i, command in enumerate(commands):
            signer = signers[i] if signers is not None else None
            auth = OPERATOR
            if signer is not None:
                key = as_key(signer)
                owner = key.address.lower()
                nonce = self._nonces.get(owner, 0) + 1
                self._nonces[owner] = nonce
                auth = sign_command(key.key, self.separator, command, owner, nonce)
            auths.append(auth)
            tickets.append(self.node.submit(command))
        out = []
        for ticket, auth in zip(tickets, auths):
            out.append(ticket.result(120))
            if auth is not OPERATOR:
                self.inbox.record_authorisation(ticket.seq, auth)
        return out

    def withdraw(self, key: LocalAccount | bytes | str, amount: int, signed: bool = True) -> list:
        """A domain ``Withdraw`` of ``amount`` from ``key``'s account (signed by the key unless
        ``signed`` is False); its events. The amount becomes claimable on L1 once its batch
        is finalised (:meth:`settle`, then :meth:`claim`)."""
        key = as_key(key)
        self._remember(key)
        account = self.account_of(key)
        if account is None:
            raise StackError(StackErrorCode.DEPOSIT_NOT_CREDITED, f"{key.address} has no account")
        return self.submit(Withdraw(0, 0, account, amount), key if signed else None)

    def claim(self, key: LocalAccount | bytes | str) -> int:
        """Execute the L1 withdrawal of everything claimable by ``key``; the amount paid.
        StackError NOTHING_TO_CLAIM when nothing is claimable."""
        key = as_key(key)
        with self.lock:
            if self.client.claimable(key.address) == 0:
                raise StackError(StackErrorCode.NOTHING_TO_CLAIM, f"nothing claimable by {key.address}")
            paid, _ = self.client.withdraw(key)
        return paid

    def force_withdrawal(self, key: LocalAccount | bytes | str, amount: int) -> int:
        """Request a forced withdrawal of ``amount`` on L1 (``Vault.request_forced_withdrawal``);
        the request id. The next :meth:`step` serves it (min(amount, free collateral)); once
        its batch is finalised the amount is claimable (:meth:`claim`)."""
        key = as_key(key)
        with self.lock:
            self._check_running()
            self._remember(key)
            request_id, _ = self.client.request_forced_withdrawal(key, amount)
        return request_id

    # ------------------------------------------------------------------ L1 progress
    def step(self, force: bool = False) -> StackStep:
        """Advance L1 once: move the chain's clock to the stack's, mine a block, poll the
        watcher (deposits → commands, forced requests served), step the batcher (build when
        due or ``force``, submit, collect the verifiers' attestations, finalise) and sync
        the verifiers. Chain errors propagate (the next step retries)."""
        started = time.perf_counter()
        out = StackStep()
        with self.lock:
            self._check_running()
            self._advance_chain_clock()
            self.chain.mine(1)
            watched = self.watcher.poll()
            out.deposits, out.forced = watched.deposits, watched.forced
            report = self.batcher.step(force=force)
            if report.submitted and not report.finalised:
                self.verifiers.sync()
            self._record(report, out)
        out.seconds = time.perf_counter() - started
        return out

    def settle(self, max_rounds: int = 100) -> StackStep:
        """Step with ``force`` until every journaled command is in a finalised batch; the
        merged report. StackError NOT_FINALISED if the verifiers do not finalise (their
        alarms in the message)."""
        total = StackStep()
        started = time.perf_counter()
        for _ in range(max_rounds):
            step = self.step(force=True)
            total.deposits += step.deposits
            total.forced += step.forced
            total.built += step.built
            total.submitted += step.submitted
            total.finalised += step.finalised
            total.gas.update(step.gas)
            with self.lock:
                batched = self.batcher.replica.state.last_seq
                done = (batched >= self.node.last_seq and self.client.finalised_count() == self.client.batch_count()
                        and not any(r.seq is not None and r.batch_number is None for r in self.inbox.forced()))
            if done:
                total.seconds = time.perf_counter() - started
                return total
            if not step.built and not step.finalised and not step.deposits:
                break
        raise StackError(StackErrorCode.NOT_FINALISED,
                         f"batches not finalised after settling; verifier alarms: {self.alarms()}")

    def _record(self, report: StepReport, out: StackStep) -> None:
        out.built, out.submitted, out.finalised = report.built, report.submitted, report.finalised
        for number, gas in report.submit_gas.items():
            self.batch_gas[number] = self.batch_gas.get(number, 0) + gas
        for number, gas in report.finalise_gas.items():
            self.batch_gas[number] = self.batch_gas.get(number, 0) + gas
        out.gas = {n: self.batch_gas[n] for n in (*report.built, *report.finalised) if n in self.batch_gas}

    def _advance_chain_clock(self) -> None:
        target = self.clock() // 1000
        now = self.chain.timestamp()
        if target > now and self.chain.supports_time_travel:
            self.chain.time_travel(target - now)

    def _check_running(self) -> None:
        if self.halted:
            raise StackError(StackErrorCode.HALTED, "the sequencer has halted")

    def batch_summaries(self, numbers: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """One dict per batch built (or per batch of ``numbers``, e.g. a step's
        ``finalised``, read one by one: cheap on long runs): ``batch_number``, ``first_seq``,
        ``last_seq``, ``commands``, ``trades``, ``data_bytes``, ``status`` (built, submitted,
        finalised), ``gas`` (submit + finalise gas so far), ``attestations`` (signatures on
        the board)."""
        if numbers is None:
            stored = self.inbox.batches()
        else:
            stored = [b for b in (self.inbox.batch(n) for n in numbers) if b is not None]
        out = []
        for batch in stored:
            number = batch.batch_number
            out.append({"batch_number": number, "first_seq": batch.first_seq, "last_seq": batch.last_seq,
                        "commands": batch.last_seq - batch.first_seq + 1, "trades": batch.trades,
                        "data_bytes": len(batch.data), "status": batch.status, "gas": self.batch_gas.get(number, 0),
                        "attestations": len(self.board.entries(number))})
        return out

    def alarms(self) -> list[str]:
        """Every verifier alarm, described."""
        return [a.describe() for a in self.verifiers.alarms]

    def status(self) -> dict[str, Any]:
        """Batches submitted and finalised on L1, the last sequence number batched, the
        vault's balance and whether it is frozen, each verifier's height and alarms."""
        with self.lock:
            return {
                "submitted": self.client.batch_count(),
                "finalised": self.client.finalised_count(),
                "latest_root": "0x" + self.client.latest_root().hex(),
                "last_seq_batched": self.batcher.replica.state.last_seq,
                "frozen": self.client.frozen(),
                "vault_balance": self.client.vault_balance(),
                "verifiers": [{"address": v.address, "height": v.height, "alarms": len(v.alarms)}
                              for v in self.verifiers.verifiers],
            }

    # ------------------------------------------------------------------ background
    def start_background(self, interval: float = 2.0) -> None:
        """Step (``force``: a batch every ``interval`` seconds if anything is pending) from a
        daemon thread until :meth:`stop_background`. A failing step is logged and retried;
        the last error stays in ``background_error``."""
        if self._background is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.step(force=True)
                except Exception as exc:  # the chain or the node failed: keep trying
                    self.background_error = exc
                    log.warning("settlement step failed: %s", exc)

        self._background = threading.Thread(target=loop, name="clearway-settlement", daemon=True)
        self._background.start()

    def stop_background(self) -> None:
        if self._background is not None:
            self._stop.set()
            self._background.join()
            self._background = None

    # ------------------------------------------------------------------ API
    @property
    def settlement(self) -> "StackSettlement":
        """The API's view of the L1 side (``clearway.api.service.Settlement``)."""
        return StackSettlement(self)

    def serve_api(self, port: int = 0, host: str = "127.0.0.1", signing: Any = None,
                  keys_path: Path | None = None) -> str:
        """Start the JSON-RPC API on ``host:port`` (0: a free port) in a thread, with this
        stack's settlement view; signed commands received by the API have their signature
        recorded for the batch data. ``signing``: a ``clearway.api.service.CommandSigning``
        (None: the API refuses signed orders). Returns the HTTP base URL."""
        from clearway.api.server import ApiServer
        from clearway.api.service import ApiConfig

        if self._server is None:
            config = ApiConfig(keys_path=keys_path or self.data_dir / "api_keys.json", settlement=self.settlement,
                               signing=signing, chain_id=self.chain.chain_id, on_authorised=self.on_authorised)
            self._server = ApiServer(self.node, config, host=host, port=port).start()
        return self._server.url

    @property
    def api_server(self):
        return self._server

    def on_authorised(self, seq: int, command, owner: str, nonce: int, signature: bytes) -> None:
        """``ApiConfig.on_authorised``: keep the EIP-712 signature of a command the API
        received signed, so its batch carries it (verifiable by anyone)."""
        from clearway.commitment.authorisation import Authorisation, AuthKind

        self.inbox.record_authorisation(seq, Authorisation(AuthKind.SIGNED, nonce, signature))

    # ------------------------------------------------------------------ halt drill
    def halt_drill(self, forced: Sequence[LocalAccount] | None = None, forced_amount: int = USDC,
                   settle_first: bool = True) -> dict[str, Any]:
        """The sequencer halts; nobody answers the forced withdrawals; escape everyone.

        1. (``settle_first``) :meth:`settle`, so that the last batch is finalised; commands
           sequenced after that are lost with the sequencer.
        2. The sequencer stops (API, background stepper, node, batcher, watcher).
        3. ``forced`` keys (default: up to three known depositors) each request a forced
           withdrawal of ``forced_amount`` on L1; L1 time passes the deadline.
        4. The verifiers sync: FORCED_OVERDUE alarms, and they freeze the vault (if none
           does, a user does).
        5. Withdrawals made claimable before the halt are claimed by their known owners.
        6. The escape tool (``verifier/escape.py``) rebuilds the last finalised state from
           chain data alone and escapes every account with a positive value; deposits no
           finalised batch included are refunded.
        7. Reconciliation, to the micro-USDC: ``escaped_total == expected_total`` (Σ escape
           values of the committed leaves, computed from the first verifier's state at the
           last finalised root, independently of the tool); ``deposited == withdrawn +
           escaped + refunded + vault_balance_after``; ``remainder = vault_balance_after −
           still_claimable == included_net − escaped_total ≥ 0`` (the floor rounding of
           position values and accounts floored at zero; 0 without open positions).

        Returns the figures (keys in the README); StackError NOT_RECONCILED if the
        verifiers' state is not at the frozen root."""
        if settle_first:
            self.settle()
        self.halt()
        verifier_log = logging.getLogger("clearway.verifier")
        level = verifier_log.level
        verifier_log.setLevel(logging.ERROR)  # FORCED_OVERDUE is the point of the drill
        try:
            return self._halt_drill(forced, forced_amount)
        finally:
            verifier_log.setLevel(level)

    def _halt_drill(self, forced: Sequence[LocalAccount] | None, forced_amount: int) -> dict[str, Any]:
        client, chain = self.client, self.chain
        started = time.perf_counter()
        with self.lock:
            keys = list(forced) if forced is not None else list(self.keys.values())[:3]
            anyone = chain.new_account("escaper")
            requests = [client.request_forced_withdrawal(key, forced_amount)[0] for key in keys]
            chain.time_travel(self.config.forced_action_deadline + 1)
            chain.mine(1)
            self.verifiers.sync()
            froze_by = "verifiers"
            if not client.frozen():
                if not requests:
                    requests.append(client.request_forced_withdrawal(anyone, 1)[0])
                    chain.time_travel(self.config.forced_action_deadline + 1)
                client.freeze(anyone, requests[0])
                froze_by = "user"
            overdue = sum(1 for a in self.verifiers.alarms if a.code.name == "FORCED_OVERDUE")
            claimed = 0
            for owner, key in sorted(self.keys.items()):
                if client.claimable(key.address):
                    claimed += client.withdraw(key)[0]
            escape_batch = client.view("escape_batch")
            reference = self.verifiers.verifiers[0]
            if reference.height != escape_batch:
                raise StackError(StackErrorCode.NOT_RECONCILED,
                                 f"verifier 0 is at batch {reference.height}, the vault froze at {escape_batch}")
            tool = EscapeTool(client, self.genesis, self.start_block)
            tool.rebuild()
            rebuild_s = time.perf_counter() - started
            result = escape_everyone(tool, anyone, reference.replica)
        return {
            "frozen": client.frozen(),
            "frozen_by": froze_by,
            "escape_batch": escape_batch,
            "forced_requests_unanswered": len(requests),
            "forced_overdue_alarms": overdue,
            "accounts": result.accounts,
            "escaped_accounts": result.escaped_accounts,
            "escaped_total": result.paid,
            "expected_total": result.expected,
            "refunded": result.refunded,
            "deposited": result.deposited,
            "withdrawn": result.withdrawn,
            "claimed_after_halt": claimed,
            "still_claimable": result.still_claimable,
            "included_net": result.included_net,
            "vault_balance_after": result.vault_balance_after,
            "remainder": result.remainder,
            "escape_gas": result.gas,
            "failed_escapes": [{"account": a, "reason": r} for a, r in result.failed],
            "same_root_as_verifier": result.same_root,
            "reconciled": result.reconciled,
            "seconds": {"freeze_and_rebuild": round(rebuild_s, 3), "escapes": round(result.seconds, 3)},
        }

    def halt(self) -> None:
        """The sequencer stops: the API, the background stepper and the node (if the stack
        owns it) stop; no more watcher polls or batches. Idempotent."""
        if not self.halted:
            self._stop_sequencer()
            self.halted = True

    def _stop_sequencer(self) -> None:
        self.stop_background()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._owns_node:
            self.node.close(snapshot=False)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Stop everything and release the files (the node only if the stack opened it)."""
        self._stop_sequencer()
        self.verifiers.close()
        self.journal.close()
        self.inbox.close()

    def __enter__(self) -> "EmbeddedStack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StackSettlement:
    """The L1 side as the API reports it (``clearway.api.service.Settlement``)."""

    def __init__(self, stack: EmbeddedStack) -> None:
        self.stack = stack

    def l1_info(self) -> dict:
        stack = self.stack
        return {"chain_id": stack.chain.chain_id, "vault": stack.client.address,
                "token": stack.client.token.address, "backend": stack.chain.describe(),
                "confirmations": stack.config.confirmations, "deployment_block": stack.start_block,
                "forced_action_deadline_s": stack.config.forced_action_deadline,
                "verifiers": [k.address for k in stack.verifier_keys], "threshold": stack.config.threshold}

    def batch_status(self) -> dict:
        return self.stack.status()

    def state_root(self, state) -> str | None:
        """Root of the live state as the next batch would commit it (built from scratch)."""
        number = self.stack.batcher.replica.batch_number + 1
        return "0x" + full_state_root(state, number).hex()


def _start_chain_clock(chain: Chain, seconds: int) -> None:
    """Start a fresh embedded chain at ``seconds`` (the stack's clock), so L1 time and the
    sequencer's agree from block 1; other chains keep their own time."""
    if isinstance(chain, EmbeddedChain) and chain.block_number() == 1:
        chain._env.evm.patch.timestamp = seconds  # no public setter on EmbeddedChain yet


# ============================================================================ clearway node --dev


class DevChain:
    """``clearway node --dev``'s embedded L1 (``clearway.api.cli.DevChain``): the vault on an
    embedded chain next to the dev node, its watcher, batcher and three verifiers stepping
    in a background thread (a batch every ``interval`` seconds when commands are pending).

    ``fund(private_key, amount)`` mints ``amount`` micro-USDC to the key, deposits it through
    the vault like any user, and returns once the node has credited it."""

    def __init__(self, genesis: GenesisConfig, node: Node, data_dir: Path | None = None,
                 interval: float = 2.0, config: StackConfig = StackConfig(batch_max_seconds=2.0)) -> None:
        if node.query(lambda state: state.last_deposit_id).result(60):
            raise StackError(StackErrorCode.USED_NODE, "the node already holds deposits of another L1 (the embedded "
                             "chain does not outlive the process): start --dev with a fresh --data-dir")
        self.stack = EmbeddedStack(data_dir or node.data_dir / "l1", genesis, node=node, config=config)
        self.settlement = self.stack.settlement
        self.on_authorised = self.stack.on_authorised  # for ApiConfig.on_authorised (signed commands → batch data)
        self.stack.start_background(interval)

    def fund(self, private_key: bytes, amount: int) -> None:
        self.stack.deposit(private_key, amount)

    def close(self) -> None:
        self.stack.close()


def dev_chain(genesis: GenesisConfig, node: Node) -> DevChain:
    """The ``dev_chain`` hook of ``clearway.api.cli.add_api_arguments`` (see DevChain)."""
    return DevChain(genesis, node)
