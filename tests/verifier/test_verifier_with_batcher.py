"""The verifiers as the real batcher's attestation source: batches built by the sequencer
node's batcher (API-key and EIP-712-signed orders, a withdrawal, a forced withdrawal served
by the watcher) are replayed from chain data alone, attested and finalised."""

from __future__ import annotations

from pathlib import Path

from clearway.chain.backend import EmbeddedChain
from clearway.chain.batcher import Batcher
from clearway.chain.inbox import Inbox
from clearway.chain.selftest import selftest_genesis
from clearway.chain.vault import VaultClient
from clearway.chain.watcher import ChainWatcher
from clearway.commitment.authorisation import exchange_domain_separator, sign_command
from clearway.commitment.exchange_state import committed_genesis_hash
from clearway.domain.commands import PlaceOrder, SetMarkPrices, Withdraw
from clearway.domain.orders import TimeInForce
from clearway.engine.journal import SQLITE_FILE, SqliteJournal
from clearway.engine.node import Node
from clearway.verifier import VerifierSet
from clearway.verifier.board import MemoryBoard
from clearway.verifier.verifier import Verifier, VerifierConfig

USDC = 1_000_000


def test_batches_from_the_batcher_are_verified_attested_and_finalised(tmp_path: Path):
    chain = EmbeddedChain(seed=b"verifier-batcher")
    deployer, sequencer = chain.new_account("deployer"), chain.new_account("sequencer")
    keys = [chain.new_account(f"verifier{i}") for i in range(3)]
    genesis = selftest_genesis(chain.new_account("fee").address, chain.new_account("insurance").address)
    client = VaultClient.deploy(chain, deployer, sequencer.address, [k.address for k in keys], 2,
                                committed_genesis_hash(genesis), 3_600)
    start = client.vault.deployment.block_number
    node = Node(tmp_path / "node", genesis, snapshot_every=0, freeze_gc=False)
    journal = SqliteJournal(tmp_path / "node" / SQLITE_FILE)
    inbox = Inbox(tmp_path / "settlement")
    board = MemoryBoard()
    config = VerifierConfig(finalise=False, start_block=start)  # the batcher finalises
    verifiers = VerifierSet([Verifier(client, k, genesis, tmp_path / f"v{i}", board, config)
                             for i, k in enumerate(keys)], board)
    batcher = Batcher(client, sequencer, genesis, journal, inbox, verifiers, max_seconds=3_600)
    watcher = ChainWatcher(client, node, inbox, 1, start)
    separator = exchange_domain_separator(chain.chain_id, client.address)
    try:
        users = [chain.new_account(name) for name in ("maker", "taker", "leaver")]
        for user in users:
            client.mint(deployer, user, 100_000 * USDC)
            client.deposit(user, 100_000 * USDC)
        watcher.poll()
        maker, taker, leaver = (node.query(lambda s, u=u: s.owners[u.address.lower()]).result(10) for u in users)
        price = 25_000 * USDC
        node.submit(SetMarkPrices(0, 0, {"BTC": price}, {0: price})).result(10)
        node.submit(PlaceOrder(0, 0, maker, 0, -1, 10_000, price)).result(10)  # API key
        signed = PlaceOrder(0, 0, taker, 0, 1, 5_000, price, tif=TimeInForce.IOC)
        ticket = node.submit(signed)
        ticket.result(10)
        inbox.record_authorisation(ticket.seq, sign_command(users[1].key, separator, signed, users[1].address, 1))
        node.submit(Withdraw(0, 0, leaver, 1_000 * USDC)).result(10)
        report = batcher.step(force=True)
        assert report.finalised == [1]
        client.request_forced_withdrawal(users[2], 2_000 * USDC)
        watcher.poll()
        report = batcher.step(force=True)
        assert report.finalised == [2] and client.claimable(users[2].address) == 3_000 * USDC
        assert verifiers.alarms == []
        for verifier in verifiers.verifiers:
            assert verifier.height == 2
            stats = verifier.stats
            assert (stats.signed_commands, stats.operator_attested) == (1, 3)
            assert stats.operator_prices == 1 and stats.forced_served == 1 and stats.trades == 1
            assert verifier.status()["lag"] == 0
    finally:
        verifiers.close()
        node.close()
        journal.close()
        inbox.close()
