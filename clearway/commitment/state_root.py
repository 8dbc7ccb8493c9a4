"""The state root committed on L1 for each batch, and the committed state behind it.

::

    state_root = keccak256(abi.encode(bytes32 accounts_root, bytes32 instruments_root,
                                      uint64 batch_number, uint64 last_sequence,
                                      bytes32 genesis_config_hash))

``accounts_root`` is the sparse Merkle root of account leaves keyed by account index,
``instruments_root`` that of instrument leaves keyed by instrument id
(:mod:`clearway.commitment.merkle`, :mod:`clearway.commitment.leaves`).

Batch 0 is the genesis: its root is :func:`genesis_state_root`, with both trees empty and
``last_sequence = 0``. The vault computes the same value in its constructor, and batch 1
must name it as its ``prev_root``.
"""

from __future__ import annotations

from collections.abc import Iterable

from eth_abi import encode
from eth_hash.auto import keccak

from clearway.commitment.leaves import AccountLeaf, InstrumentLeaf
from clearway.commitment.merkle import EMPTY_ROOT, CompactProof, SparseMerkleTree

STATE_ROOT_TYPES = ("bytes32", "bytes32", "uint64", "uint64", "bytes32")
UINT64_MAX = 2**64 - 1


def state_root(
    accounts_root: bytes,
    instruments_root: bytes,
    batch_number: int,
    last_sequence: int,
    genesis_config_hash: bytes,
) -> bytes:
    """The 32-byte state root of a batch (formula in the module docstring).

    Raises
    ------
    ValueError
        If a hash is not 32 bytes or a number does not fit uint64.
    """
    for name, value in (
        ("accounts_root", accounts_root),
        ("instruments_root", instruments_root),
        ("genesis_config_hash", genesis_config_hash),
    ):
        if not isinstance(value, bytes | bytearray) or len(value) != 32:
            raise ValueError(f"{name} must be 32 bytes")
    for name, number in (("batch_number", batch_number), ("last_sequence", last_sequence)):
        if not isinstance(number, int) or not 0 <= number <= UINT64_MAX:
            raise ValueError(f"{name} must fit uint64, got {number!r}")
    return keccak(
        encode(
            STATE_ROOT_TYPES,
            [
                bytes(accounts_root),
                bytes(instruments_root),
                batch_number,
                last_sequence,
                bytes(genesis_config_hash),
            ],
        )
    )


def genesis_state_root(genesis_config_hash: bytes) -> bytes:
    """Root before batch 1: empty trees, batch 0, sequence 0 (what the vault starts from)."""
    return state_root(EMPTY_ROOT, EMPTY_ROOT, 0, 0, genesis_config_hash)


class CommittedState:
    """The two trees of the committed state, updated incrementally batch after batch.

    Keeps the latest :class:`AccountLeaf` / :class:`InstrumentLeaf` per key so that proofs
    and escape data can be produced for any account. Not thread-safe.
    """

    __slots__ = ("genesis_config_hash", "accounts", "instruments", "_account_leaves",
                 "_instrument_leaves")

    def __init__(self, genesis_config_hash: bytes) -> None:
        if not isinstance(genesis_config_hash, bytes) or len(genesis_config_hash) != 32:
            raise ValueError("genesis_config_hash must be 32 bytes")
        self.genesis_config_hash = genesis_config_hash
        self.accounts = SparseMerkleTree()
        self.instruments = SparseMerkleTree()
        self._account_leaves: dict[int, AccountLeaf] = {}
        self._instrument_leaves: dict[int, InstrumentLeaf] = {}

    def update(
        self,
        accounts: Iterable[AccountLeaf] = (),
        instruments: Iterable[InstrumentLeaf] = (),
    ) -> None:
        """Replace the leaves of the given accounts and instruments (changed ones only)."""
        accounts = list(accounts)
        instruments = list(instruments)
        self.accounts.update({a.account_index: a.hash() for a in accounts})
        self.instruments.update({i.instrument_id: i.hash() for i in instruments})
        self._account_leaves.update((a.account_index, a) for a in accounts)
        self._instrument_leaves.update((i.instrument_id, i) for i in instruments)

    def root(self, batch_number: int, last_sequence: int) -> bytes:
        """State root of the current trees for ``batch_number`` / ``last_sequence``."""
        return state_root(
            self.accounts.root,
            self.instruments.root,
            batch_number,
            last_sequence,
            self.genesis_config_hash,
        )

    def account(self, account_index: int) -> AccountLeaf:
        """The committed leaf of ``account_index`` (``KeyError`` if never committed)."""
        return self._account_leaves[account_index]

    def instrument(self, instrument_id: int) -> InstrumentLeaf:
        """The committed leaf of ``instrument_id`` (``KeyError`` if never committed)."""
        return self._instrument_leaves[instrument_id]

    def account_leaves(self) -> dict[int, AccountLeaf]:
        """All committed account leaves by index, ascending (a copy)."""
        return dict(sorted(self._account_leaves.items()))

    def instrument_leaves(self) -> dict[int, InstrumentLeaf]:
        """All committed instrument leaves by id (a copy)."""
        return dict(self._instrument_leaves)

    def account_proof(self, account_index: int) -> CompactProof:
        """Compact proof of the account's leaf against :attr:`accounts` root."""
        return self.accounts.compact_proof(account_index)

    def instrument_proof(self, instrument_id: int) -> CompactProof:
        """Compact proof of the instrument's leaf against :attr:`instruments` root."""
        return self.instruments.compact_proof(instrument_id)
