"""State commitment: leaves, sparse Merkle trees, state roots, proofs, escape values.

Pure functions of plain values (integers, 20-byte addresses, 32-byte hashes) and of the
domain's state (exchange_state.py, replay.py, batch.py); no I/O, and nothing of Clearway
above the domain (DESIGN.md layers). The vault contract
(``clearway/chain/contracts/Vault.vy``) implements the same hashing and the same escape
value; ``tests/chain`` checks both agree.
"""

from clearway.commitment.effects import (
    ForcedWithdrawalServed,
    Withdrawal,
    batch_data_hash,
    batch_effects_hash,
)
from clearway.commitment.escape import account_equity, escape_value, position_value
from clearway.commitment.leaves import (
    FUNDING_INDEX_SCALE,
    AccountLeaf,
    InstrumentLeaf,
    PositionLeaf,
    account_leaf_hash,
    instrument_leaf_hash,
)
from clearway.commitment.merkle import (
    EMPTY_LEAF,
    EMPTY_ROOT,
    EMPTY_SUBTREE_HASHES,
    TREE_DEPTH,
    CompactProof,
    MerkleProof,
    SparseMerkleTree,
    merkle_root,
    root_from_proof,
    verify_proof,
)
from clearway.commitment.state_root import CommittedState, genesis_state_root, state_root

__all__ = [
    "EMPTY_LEAF",
    "EMPTY_ROOT",
    "EMPTY_SUBTREE_HASHES",
    "FUNDING_INDEX_SCALE",
    "TREE_DEPTH",
    "AccountLeaf",
    "CommittedState",
    "CompactProof",
    "ForcedWithdrawalServed",
    "InstrumentLeaf",
    "MerkleProof",
    "PositionLeaf",
    "SparseMerkleTree",
    "Withdrawal",
    "account_equity",
    "account_leaf_hash",
    "batch_data_hash",
    "batch_effects_hash",
    "escape_value",
    "genesis_state_root",
    "instrument_leaf_hash",
    "merkle_root",
    "position_value",
    "root_from_proof",
    "state_root",
    "verify_proof",
]
