"""A settlement stack for tests: embedded chain, 2-of-3 vault, a sequencer node on SQLite in
a temporary directory, the watcher, the batcher and three local verifiers."""

from __future__ import annotations

from pathlib import Path

from clearway.chain.attest import LocalVerifier, LocalVerifiers
from clearway.chain.backend import Chain, EmbeddedChain
from clearway.chain.batcher import Batcher
from clearway.chain.inbox import Inbox
from clearway.chain.selftest import selftest_genesis
from clearway.chain.vault import VaultClient
from clearway.chain.watcher import ChainWatcher
from clearway.commitment.exchange_state import committed_genesis_hash
from clearway.engine.journal import SQLITE_FILE, SqliteJournal
from clearway.engine.node import Node

USDC = 1_000_000
DEADLINE = 3_600


class Engine:
    """The EngineHooks of clearway/chain/cli.py, for tests."""

    def open_node(self, data_dir: Path, genesis) -> Node:
        return Node(data_dir, genesis, snapshot_every=0, freeze_gc=False)

    def open_log(self, data_dir: Path) -> SqliteJournal:
        return SqliteJournal(Path(data_dir) / SQLITE_FILE)


class Stack:
    def __init__(self, tmp: Path, chain: Chain | None = None, confirmations: int = 1, **batcher_kwargs) -> None:
        self.tmp = tmp
        self.chain = chain or EmbeddedChain()
        self.deployer = self.chain.new_account("deployer")
        self.sequencer = self.chain.new_account("sequencer")
        self.verifier_keys = [self.chain.new_account(f"verifier{i}") for i in range(3)]
        self.genesis = selftest_genesis(self.chain.new_account("fee").address,
                                        self.chain.new_account("insurance").address)
        self.client = VaultClient.deploy(self.chain, self.deployer, self.sequencer.address,
                                         [k.address for k in self.verifier_keys], 2,
                                         committed_genesis_hash(self.genesis), DEADLINE)
        self.start_block = self.client.vault.deployment.block_number
        self.node = Engine().open_node(tmp / "node", self.genesis)
        self.log = Engine().open_log(tmp / "node")
        self.inbox = Inbox(tmp / "settlement")
        self.verifiers = LocalVerifiers([LocalVerifier(k, self.client, self.genesis) for k in self.verifier_keys])
        self.confirmations = confirmations
        self.watcher = self.new_watcher()
        self.batcher_kwargs = {"max_seconds": 3_600, **batcher_kwargs}
        self.batcher = self.new_batcher()

    def new_watcher(self, inbox: Inbox | None = None) -> ChainWatcher:
        return ChainWatcher(self.client, self.node, inbox or self.inbox, self.confirmations, self.start_block)

    def new_batcher(self, **kwargs) -> Batcher:
        return Batcher(self.client, self.sequencer, self.genesis, self.log, self.inbox, self.verifiers,
                       **{**self.batcher_kwargs, **kwargs})

    def user(self, label: str, deposit: int = 0):
        key = self.chain.new_account(label)
        self.client.mint(self.deployer, key, max(deposit, 1) * 10)
        if deposit:
            self.client.deposit(key, deposit)
        return key

    def account_of(self, key) -> int:
        return self.node.query(lambda s: s.owners.get(key.address.lower(), -1)).result(10)

    def run(self, *commands) -> list:
        tickets = [self.node.submit(c) for c in commands]
        return [t.result(30) for t in tickets]

    def close(self) -> None:
        self.node.close()
        self.log.close()
        self.inbox.close()
