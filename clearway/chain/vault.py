"""A typed client of the vault (``contracts/Vault.vy``) and its stablecoin on any
:class:`~clearway.chain.backend.Chain`.

Amounts are stablecoin units (micro-USDC, 6 decimals); roots and hashes are 32 bytes;
addresses checksummed strings. Every transaction returns its
:class:`~clearway.chain.backend.Receipt` (gas included); reverts raise ChainError REVERTED
with the vault's reason (e.g. ``"vault is frozen"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from clearway.chain.backend import Chain, Contract, Receipt
from clearway.chain.contracts import DEFAULT_FORCED_ACTION_DEADLINE, Signature
from clearway.chain.errors import ChainError, ChainErrorCode
from clearway.commitment import AccountLeaf, CompactProof, InstrumentLeaf
from clearway.commitment.replay import BatchEffects, ForcedRequest

MAX_UINT256 = 2**256 - 1


@dataclass(frozen=True, slots=True)
class DepositEvent:
    """A vault ``Deposit`` event: ``amount`` micro-USDC for ``owner`` (lower-case address),
    paid by ``depositor``, mined in ``block_number``."""

    deposit_id: int
    owner: str
    amount: int
    depositor: str
    block_number: int


@dataclass(frozen=True, slots=True)
class SubmittedBatch:
    """A ``BatchSubmitted`` event and where it was mined."""

    batch_number: int
    prev_root: bytes
    new_root: bytes
    data_hash: bytes
    effects_hash: bytes
    last_deposit_id: int
    block_number: int
    tx_hash: bytes


class VaultClient:
    """The vault and its token on one chain (see the module docstring)."""

    def __init__(self, chain: Chain, vault: Contract, token: Contract) -> None:
        self.chain = chain
        self.vault = vault
        self.token = token

    @property
    def address(self) -> str:
        return self.vault.address

    # ------------------------------------------------------------------ deployment
    @classmethod
    def deploy(cls, chain: Chain, deployer: LocalAccount, sequencer: str, verifiers: Sequence[str], threshold: int,
               genesis_hash: bytes, forced_action_deadline: int = DEFAULT_FORCED_ACTION_DEADLINE) -> "VaultClient":
        """Deploy a fresh test stablecoin (``deployer`` is its minter) and a vault."""
        token = chain.deploy("Stablecoin", "Clearway Test USD", "cwUSD", sender=deployer)
        vault = chain.deploy("Vault", token.address, sequencer, list(verifiers), threshold, forced_action_deadline,
                             genesis_hash, sender=deployer)
        return cls(chain, vault, token)

    # ------------------------------------------------------------------ users
    def mint(self, minter: LocalAccount, user: LocalAccount, amount: int) -> None:
        """Mint ``amount`` to ``user`` and approve the vault for everything."""
        self.token.transact("mint", user.address, amount, sender=minter)
        self.token.transact("approve", self.vault.address, MAX_UINT256, sender=user)

    def deposit(self, user: LocalAccount, amount: int, owner: str | None = None) -> tuple[int, Receipt]:
        """Deposit ``amount`` for ``owner`` (default ``user``); returns (deposit id, receipt)."""
        receipt = self.vault.transact("deposit", amount, owner or user.address, sender=user)
        (event,) = self.vault.receipt_events(receipt, "Deposit")
        return event.args["deposit_id"], receipt

    def request_forced_withdrawal(self, user: LocalAccount, amount: int) -> tuple[int, Receipt]:
        """Returns (request id, receipt)."""
        receipt = self.vault.transact("request_forced_withdrawal", amount, sender=user)
        (event,) = self.vault.receipt_events(receipt, "ForcedWithdrawalRequested")
        return event.args["request_id"], receipt

    def withdraw(self, user: LocalAccount) -> tuple[int, Receipt]:
        """Claim everything claimable; returns (amount paid, receipt)."""
        receipt = self.vault.transact("withdraw", sender=user)
        (event,) = self.vault.receipt_events(receipt, "Withdrawn")
        return event.args["amount"], receipt

    # ------------------------------------------------------------------ batches
    def submit_batch(self, sequencer: LocalAccount, batch_number: int, prev_root: bytes, new_root: bytes,
                     data: bytes, effects: BatchEffects) -> Receipt:
        from clearway.commitment import batch_data_hash

        return self.vault.transact(
            "submit_batch", batch_number, prev_root, new_root, batch_data_hash(data), effects.last_deposit_id,
            [w.as_tuple() for w in effects.withdrawals], [f.as_tuple() for f in effects.forced_served], data,
            sender=sequencer)

    def finalise_batch(self, sender: LocalAccount, batch_number: int, signatures: Sequence[Signature]) -> Receipt:
        return self.vault.transact("finalise_batch", batch_number, [s.as_tuple() for s in signatures], sender=sender)

    def batch_data(self, submitted: SubmittedBatch) -> bytes:
        """The batch data of a submitted batch, read from its transaction's calldata."""
        calldata = self.chain.transaction_input(submitted.tx_hash)
        return bytes(self.vault.abi.decode_call("submit_batch", calldata)[7])

    # ------------------------------------------------------------------ freeze and escape
    def freeze(self, sender: LocalAccount, request_id: int) -> Receipt:
        return self.vault.transact("freeze", request_id, sender=sender)

    def open_escape(self, sender: LocalAccount, accounts_root: bytes, instruments_root: bytes,
                    last_sequence: int) -> Receipt:
        return self.vault.transact("open_escape", accounts_root, instruments_root, last_sequence, sender=sender)

    def post_instrument(self, sender: LocalAccount, leaf: InstrumentLeaf, proof: CompactProof) -> Receipt:
        return self.vault.transact("post_instrument", leaf.instrument_id, leaf.settlement_price, leaf.funding_index,
                                   leaf.size_decimals, proof.bitmap, list(proof.siblings), sender=sender)

    def escape(self, sender: LocalAccount, leaf: AccountLeaf, proof: CompactProof) -> tuple[int, Receipt]:
        """Escape the account of ``leaf`` (anyone may send; its owner is paid)."""
        receipt = self.vault.transact("escape", leaf.account_index, leaf.owner, leaf.cash,
                                      [p.as_tuple() for p in leaf.positions], proof.bitmap, list(proof.siblings),
                                      sender=sender)
        (event,) = self.vault.receipt_events(receipt, "Escaped")
        return event.args["amount"], receipt

    def refund_deposit(self, sender: LocalAccount, deposit_id: int) -> tuple[int, Receipt]:
        receipt = self.vault.transact("refund_deposit", deposit_id, sender=sender)
        (event,) = self.vault.receipt_events(receipt, "DepositRefunded")
        return event.args["amount"], receipt

    # ------------------------------------------------------------------ views
    def view(self, function: str, *args):
        return self.vault.call(function, *args)

    def batch_count(self) -> int:
        return self.vault.call("batch_count")

    def finalised_count(self) -> int:
        return self.vault.call("finalised_count")

    def batch_root(self, batch_number: int) -> bytes:
        return self.vault.call("batch_root", batch_number)

    def latest_root(self) -> bytes:
        return self.vault.call("latest_root")

    def deposit_count(self) -> int:
        return self.vault.call("deposit_count")

    def frozen(self) -> bool:
        return self.vault.call("frozen")

    def claimable(self, address: str) -> int:
        return self.vault.call("claimable", address)

    def token_balance(self, address: str) -> int:
        return self.token.call("balanceOf", address)

    def vault_balance(self) -> int:
        return self.token_balance(self.vault.address)

    def forced_request(self, request_id: int) -> tuple[ForcedRequest, int, int]:
        """(request, served_in_batch, paid) of a forced-withdrawal request."""
        owner, amount, deadline, served_in, paid = self.vault.call("forced_requests", request_id)
        if owner == "0x" + "00" * 20:
            raise ChainError(ChainErrorCode.BAD_ARGUMENTS, f"no forced-withdrawal request {request_id}")
        return ForcedRequest(request_id, owner.lower(), amount, deadline), served_in, paid

    # ------------------------------------------------------------------ events
    def deposits(self, from_block: int, to_block: int) -> list[DepositEvent]:
        return [DepositEvent(e.args["deposit_id"], e.args["owner"].lower(), e.args["amount"],
                             e.args["depositor"], e.block_number)
                for e in self.vault.events("Deposit", from_block, to_block)]

    def forced_requests(self, from_block: int, to_block: int) -> list[tuple[ForcedRequest, int]]:
        """(request, block number) of every ForcedWithdrawalRequested in the range."""
        return [(ForcedRequest(e.args["request_id"], e.args["owner"].lower(), e.args["amount"], e.args["deadline"]),
                 e.block_number)
                for e in self.vault.events("ForcedWithdrawalRequested", from_block, to_block)]

    def submitted_batches(self, from_block: int = 0, to_block: int | None = None) -> list[SubmittedBatch]:
        return [SubmittedBatch(e.args["batch_number"], e.args["prev_root"], e.args["new_root"], e.args["data_hash"],
                               e.args["effects_hash"], e.args["last_deposit_id"], e.block_number, e.tx_hash)
                for e in self.vault.events("BatchSubmitted", from_block, to_block)]
