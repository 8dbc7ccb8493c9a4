"""The escape hatch, from chain data only: ``clearway escape --account ADDRESS``.

Once the vault is frozen, each account is paid once its value at the last finalised root
(DESIGN.md "Trust model"). Nothing of the sequencer is needed (it may be gone):

1. :meth:`EscapeTool.rebuild` replays batches 1 … ``escape_batch`` (the vault's last
   finalised batch at the freeze) from their ``submit_batch`` calldata with the domain's
   ``apply()``, starting from the genesis config whose keccak the vault holds, and checks
   each replayed root against the vault's ``batch_root``;
2. :meth:`EscapeTool.open` reveals the accounts and instruments roots behind the frozen
   state root (``open_escape``, once for everyone) and posts, with proofs, the committed
   settlement values of the instruments an account holds (``post_instrument``, once each);
3. :meth:`EscapeTool.escape` builds the account's leaf and compact Merkle proof and sends
   ``escape``; the vault pays the leaf's owner (anyone may send it). An account whose
   value is 0 has nothing to escape (no transaction).

:meth:`EscapeTool.refund` returns deposits that no finalised batch included.
:func:`escape_everyone` escapes every account and reconciles the vault to the micro-USDC
(the verifier drill and the embedded stack's halt drill).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from clearway.chain.errors import ChainError
from clearway.chain.vault import VaultClient
from clearway.commitment import escape_value
from clearway.commitment.batch import decode_batch
from clearway.commitment.exchange_state import committed_genesis_hash
from clearway.commitment.replay import Replica
from clearway.domain.genesis import GenesisConfig


class EscapeError(Exception):
    """The escape cannot proceed (vault not frozen, chain data that does not rebuild the
    finalised root, unknown account, already escaped)."""


@dataclass(frozen=True, slots=True)
class EscapeResult:
    """One account's escape: ``value`` is what the committed leaf is worth (micro-USDC),
    ``paid`` what the vault paid now (0 when the value is 0); ``gas`` of the escape
    transaction (0 if none was sent)."""

    account: int
    owner: str
    value: int
    paid: int
    gas: int = 0


class EscapeTool:
    """Rebuilds the frozen vault's last finalised state and escapes accounts (module
    docstring). ``start_block``: first block to read events from."""

    def __init__(self, client: VaultClient, genesis: GenesisConfig, start_block: int = 0) -> None:
        if client.view("genesis_config_hash") != committed_genesis_hash(genesis):
            raise EscapeError("the vault's genesis_config_hash is not the keccak of this genesis config")
        self.client = client
        self.genesis = genesis
        self.start_block = start_block
        self.replica: Replica | None = None

    # ------------------------------------------------------------------ rebuild
    def rebuild(self) -> Replica:
        """Replay batches 1 … escape batch from calldata (module docstring, step 1)."""
        client = self.client
        if not client.frozen():
            raise EscapeError("the vault is not frozen: escapes open only after a freeze")
        target = client.view("escape_batch")
        submitted = {s.batch_number: s for s in client.submitted_batches(self.start_block)}
        requests = {r.request_id: r for r, _ in client.forced_requests(self.start_block, client.chain.block_number())}
        replica = Replica(self.genesis)
        for number in range(1, target + 1):
            if number not in submitted:
                raise EscapeError(f"batch {number} is not on chain from block {self.start_block}")
            outcome = replica.apply_batch(decode_batch(client.batch_data(submitted[number])), requests)
            if outcome.state_root != client.batch_root(number):
                raise EscapeError(f"finalised batch {number} does not replay to its root: the chain data cannot "
                                  "prove any account")
        if replica.root != client.view("escape_state_root"):
            raise EscapeError("the rebuilt root is not the vault's escape state root")
        self.replica = replica
        return replica

    # ------------------------------------------------------------------ escape
    def open(self, sender: LocalAccount, instrument_ids=None) -> None:
        """``open_escape`` if nobody did yet, then ``post_instrument`` for each of
        ``instrument_ids`` (default: every committed instrument) not posted yet."""
        replica = self.replica or self.rebuild()
        committed = replica.committer.committed
        client = self.client
        if not client.view("escape_open"):
            client.open_escape(sender, committed.accounts.root, committed.instruments.root, replica.state.last_seq)
        leaves = committed.instrument_leaves()
        for instrument_id in sorted(leaves if instrument_ids is None else instrument_ids):
            if not client.view("instrument", instrument_id)[0]:
                client.post_instrument(sender, leaves[instrument_id], committed.instrument_proof(instrument_id))

    def value(self, account_id: int) -> int:
        """The account's escape value at the frozen root (micro-USDC)."""
        replica = self.replica or self.rebuild()
        committed = replica.committer.committed
        return escape_value(committed.account(account_id), committed.instrument_leaves())

    def account_of(self, owner: str) -> int:
        """Account index of ``owner`` at the frozen root (EscapeError if it has none)."""
        replica = self.replica or self.rebuild()
        account_id = replica.state.owners.get(owner.lower())
        if account_id is None:
            raise EscapeError(f"{owner} has no account at the last finalised root")
        return account_id

    def escape(self, sender: LocalAccount, account_id: int) -> EscapeResult:
        """Escape account ``account_id`` (module docstring, steps 2–3)."""
        replica = self.replica or self.rebuild()
        committed = replica.committer.committed
        leaf = committed.account(account_id)
        value = escape_value(leaf, committed.instrument_leaves())
        if self.client.view("has_escaped", account_id):
            raise EscapeError(f"account {account_id} has already escaped")
        if value <= 0:
            return EscapeResult(account_id, leaf.owner, 0, 0)
        self.open(sender, [p.instrument_id for p in leaf.positions])
        paid, receipt = self.client.escape(sender, leaf, committed.account_proof(account_id))
        return EscapeResult(account_id, leaf.owner, value, paid, receipt.gas_used)

    def refund(self, sender: LocalAccount, depositor: str | None = None) -> list[tuple[int, int]]:
        """Refund every deposit no finalised batch included (only ``depositor``'s if given);
        returns ``(deposit id, amount)`` of each refund sent."""
        client = self.client
        if not client.frozen():
            raise EscapeError("the vault is not frozen")
        out = []
        first = client.view("finalised_last_deposit_id") + 1
        for deposit_id in range(first, client.deposit_count() + 1):
            if client.view("deposit_refunded", deposit_id):
                continue
            if depositor is not None and client.view("deposit_depositor", deposit_id).lower() != depositor.lower():
                continue
            amount, _ = client.refund_deposit(sender, deposit_id)
            out.append((deposit_id, amount))
        return out


@dataclass(frozen=True, slots=True)
class EscapeReport:
    """Every account escaped and the vault reconciled (:func:`escape_everyone`); amounts in
    micro-USDC, ``gas`` summed over the escape transactions, ``seconds`` the wall time of the
    escapes (rebuild excluded)."""

    accounts: int
    escaped_accounts: int
    paid: int
    expected: int
    refunded: int
    deposited: int
    withdrawn: int
    vault_balance_after: int
    still_claimable: int
    included_net: int
    same_root: bool
    reconciled: bool
    gas: int
    seconds: float
    failed: tuple[tuple[int, str], ...] = ()

    @property
    def remainder(self) -> int:
        """What stays in the vault once every claimable withdrawal is claimed: the floor
        rounding of position values (and of accounts floored at zero)."""
        return self.vault_balance_after - self.still_claimable


def escape_everyone(tool: EscapeTool, sender: LocalAccount, reference: Replica) -> EscapeReport:
    """Escape every account of the frozen vault with ``tool`` and reconcile, to the
    micro-USDC, against ``reference`` (a replica at the last finalised root built
    independently of the tool, e.g. a verifier's):

    - ``expected`` = Σ escape values of ``reference``'s committed account leaves; ``paid``
      must equal it, and the tool's rebuilt root must be ``reference``'s and the vault's
      escape state root;
    - an escape the vault refuses is recorded in ``failed`` (account, reason) and the
      others go on; the vault is then not reconciled;
    - deposits no finalised batch included are refunded;
    - deposited = withdrawn + paid + refunded + balance, and balance − still claimable =
      included deposits − included withdrawals − paid ≥ 0 (DESIGN.md "Trust model").

    Raises EscapeError like :meth:`EscapeTool.rebuild`."""
    client = tool.client
    committed = reference.committer.committed
    instruments = committed.instrument_leaves()
    expected = sum(escape_value(committed.account(a), instruments) for a in sorted(reference.state.accounts))
    rebuilt = tool.replica or tool.rebuild()
    started = time.perf_counter()
    escaped_accounts = paid = gas = 0
    failed = []
    for account_id in sorted(rebuilt.state.accounts):
        try:
            result = tool.escape(sender, account_id)
        except ChainError as exc:  # e.g. "escape pool exhausted": the values exceed what the vault holds
            failed.append((account_id, exc.reason or str(exc)))
            continue
        if result.paid:
            escaped_accounts += 1
            paid += result.paid
            gas += result.gas
    seconds = time.perf_counter() - started
    refunded = sum(amount for _, amount in tool.refund(sender))
    head = client.chain.block_number()
    deposited = sum(e.amount for e in client.deposits(tool.start_block, head))
    withdrawn = sum(e.args["amount"] for e in client.vault.events("Withdrawn", tool.start_block, head))
    balance = client.vault_balance()
    still_claimable = client.view("total_claimable")
    included_net = reference.state.total_deposits - reference.state.total_withdrawals
    same_root = rebuilt.root == reference.root == client.view("escape_state_root")
    reconciled = (same_root and not failed and paid == expected and deposited == withdrawn + paid + refunded + balance
                  and balance - still_claimable == included_net - paid >= 0)
    return EscapeReport(len(rebuilt.state.accounts), escaped_accounts, paid, expected, refunded, deposited, withdrawn,
                        balance, still_claimable, included_net, same_root, reconciled, gas, seconds, tuple(failed))
