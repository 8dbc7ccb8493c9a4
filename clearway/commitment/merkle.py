"""Sparse binary keccak Merkle tree of fixed depth, keyed by a 32-bit index.

The tree commits a mapping ``index -> leaf`` for every ``index`` in ``[0, 2**32)``.
Absent indices hold the empty leaf ``bytes32(0)``. An inner node is
``keccak256(left ‖ right)``; the hash of an empty subtree of height ``h`` is precomputed
in :data:`EMPTY_SUBTREE_HASHES` (``h = 0`` is the empty leaf, ``h = 32`` the empty root).

Only non-empty nodes are stored, so the memory of a tree with ``n`` leaves is
``O(n · 32)`` and updating ``k`` leaves costs at most ``k · 32`` hashes.

Proofs list the 32 siblings from the leaf level up. The compact form keeps only the
siblings that are not the empty-subtree hash of their level, plus a 32-bit bitmap whose bit
``i`` says whether the sibling at level ``i`` is present; it is what the vault's
``escape`` and ``post_instrument`` take, because an account among ``n`` has about
``log2(n)`` non-empty siblings, not 32.

The same rules are implemented in ``clearway/chain/contracts/Vault.vy``
(``_compute_root``); ``tests/chain`` checks both sides agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from eth_hash.auto import keccak

TREE_DEPTH = 32
MAX_INDEX = 2**TREE_DEPTH - 1
EMPTY_LEAF = bytes(32)


def _empty_subtree_hashes(depth: int) -> tuple[bytes, ...]:
    hashes = [EMPTY_LEAF]
    for _ in range(depth):
        hashes.append(keccak(hashes[-1] + hashes[-1]))
    return tuple(hashes)


EMPTY_SUBTREE_HASHES: tuple[bytes, ...] = _empty_subtree_hashes(TREE_DEPTH)
"""``EMPTY_SUBTREE_HASHES[h]`` is the root of an empty subtree of height ``h`` (0..32)."""

EMPTY_ROOT: bytes = EMPTY_SUBTREE_HASHES[TREE_DEPTH]
"""Root of the tree with no leaves."""


def _check_index(index: int) -> None:
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= MAX_INDEX:
        raise ValueError(f"tree index must be an integer in [0, 2**32), got {index!r}")


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise ValueError(f"{what} must be 32 bytes, got {value!r}")


def hash_pair(left: bytes, right: bytes) -> bytes:
    """Inner node: ``keccak256(left ‖ right)`` of two 32-byte children."""
    return keccak(left + right)


@dataclass(frozen=True, slots=True)
class MerkleProof:
    """Full proof: the 32 siblings on the path of ``index``, leaf level first."""

    index: int
    siblings: tuple[bytes, ...]

    def compact(self) -> CompactProof:
        """The same proof without its empty-subtree siblings."""
        bitmap = 0
        kept = []
        for level, sibling in enumerate(self.siblings):
            if sibling != EMPTY_SUBTREE_HASHES[level]:
                bitmap |= 1 << level
                kept.append(sibling)
        return CompactProof(self.index, bitmap, tuple(kept))


@dataclass(frozen=True, slots=True)
class CompactProof:
    """Compact proof: ``bitmap`` bit ``i`` set ⇔ the level-``i`` sibling is non-empty;
    ``siblings`` holds only those, in level order (what ``Vault.escape`` takes)."""

    index: int
    bitmap: int
    siblings: tuple[bytes, ...]

    def expand(self) -> MerkleProof:
        """The full 32-sibling proof.

        Raises
        ------
        ValueError
            If the bitmap does not fit 32 bits or disagrees with the number of siblings.
        """
        if not 0 <= self.bitmap < 2**TREE_DEPTH:
            raise ValueError("proof bitmap must fit in 32 bits")
        if bin(self.bitmap).count("1") != len(self.siblings):
            raise ValueError("proof bitmap does not match the number of siblings")
        full = []
        kept = iter(self.siblings)
        for level in range(TREE_DEPTH):
            if self.bitmap >> level & 1:
                full.append(next(kept))
            else:
                full.append(EMPTY_SUBTREE_HASHES[level])
        return MerkleProof(self.index, tuple(full))


def root_from_proof(leaf: bytes, proof: MerkleProof | CompactProof) -> bytes:
    """Root implied by ``leaf`` sitting at ``proof.index`` with the proof's siblings.

    Raises
    ------
    ValueError
        On a malformed proof (wrong sibling count, bitmap mismatch, index out of range).
    """
    if isinstance(proof, CompactProof):
        proof = proof.expand()
    _check_index(proof.index)
    _check_hash(leaf, "leaf")
    if len(proof.siblings) != TREE_DEPTH:
        raise ValueError(f"a full proof has {TREE_DEPTH} siblings, got {len(proof.siblings)}")
    node = bytes(leaf)
    for level, sibling in enumerate(proof.siblings):
        _check_hash(sibling, "sibling")
        if proof.index >> level & 1:
            node = hash_pair(sibling, node)
        else:
            node = hash_pair(node, sibling)
    return node


def verify_proof(root: bytes, leaf: bytes, proof: MerkleProof | CompactProof) -> bool:
    """True iff ``leaf`` is the value at ``proof.index`` in the tree with ``root``.

    A malformed proof verifies as ``False`` rather than raising. Works for the empty
    leaf too (a proof that an index is absent).
    """
    try:
        return root_from_proof(leaf, proof) == root
    except ValueError:
        return False


def merkle_root(leaves: Mapping[int, bytes]) -> bytes:
    """Root of the tree holding ``leaves``, built from scratch (the reference).

    Recursive split by index bit, independent of :class:`SparseMerkleTree`'s incremental
    bookkeeping, so property tests can compare the two. Cost: one hash per non-empty
    inner node.
    """
    items = []
    for index, leaf in leaves.items():
        _check_index(index)
        _check_hash(leaf, "leaf")
        if leaf != EMPTY_LEAF:
            items.append((index, bytes(leaf)))
    return _subtree_root(TREE_DEPTH, items)


def _subtree_root(height: int, items: list[tuple[int, bytes]]) -> bytes:
    if not items:
        return EMPTY_SUBTREE_HASHES[height]
    if height == 0:
        return items[0][1]
    bit = 1 << (height - 1)
    left = [(i, leaf) for i, leaf in items if not i & bit]
    right = [(i & ~bit, leaf) for i, leaf in items if i & bit]
    return hash_pair(_subtree_root(height - 1, left), _subtree_root(height - 1, right))


class SparseMerkleTree:
    """Depth-32 sparse keccak Merkle tree with incremental updates.

    ``_levels[h]`` maps a node index at height ``h`` to its hash, for non-empty nodes only
    (height 0 holds the leaves, height 32 the root at index 0).

    Examples
    --------
    >>> tree = SparseMerkleTree()
    >>> root = tree.update({7: b"\\x01" * 32})
    >>> verify_proof(root, b"\\x01" * 32, tree.compact_proof(7))
    True
    """

    __slots__ = ("_levels",)

    def __init__(self, leaves: Mapping[int, bytes] | None = None) -> None:
        self._levels: list[dict[int, bytes]] = [{} for _ in range(TREE_DEPTH + 1)]
        if leaves:
            self.update(leaves)

    @property
    def root(self) -> bytes:
        """Current root (:data:`EMPTY_ROOT` when no leaf is set)."""
        return self._levels[TREE_DEPTH].get(0, EMPTY_ROOT)

    def __len__(self) -> int:
        """Number of non-empty leaves."""
        return len(self._levels[0])

    def leaf(self, index: int) -> bytes:
        """The leaf at ``index`` (:data:`EMPTY_LEAF` if unset)."""
        _check_index(index)
        return self._levels[0].get(index, EMPTY_LEAF)

    def leaves(self) -> dict[int, bytes]:
        """A copy of the non-empty leaves, by index."""
        return dict(self._levels[0])

    def copy(self) -> SparseMerkleTree:
        """An independent copy (dictionaries copied, hashes shared)."""
        clone = SparseMerkleTree()
        clone._levels = [dict(level) for level in self._levels]
        return clone

    def set(self, index: int, leaf: bytes) -> bytes:
        """Set one leaf; returns the new root. ``EMPTY_LEAF`` removes it."""
        return self.update({index: leaf})

    def update(self, changes: Mapping[int, bytes] | Iterable[tuple[int, bytes]]) -> bytes:
        """Set several leaves at once and return the new root.

        Only the paths of the changed leaves are rehashed: at most ``k · 32`` hashes for
        ``k`` changes, fewer when paths share ancestors. All inputs are validated before
        the first write, so a ``ValueError`` leaves the tree unchanged.
        """
        pairs = list(changes.items() if isinstance(changes, Mapping) else changes)
        for index, leaf in pairs:
            _check_index(index)
            _check_hash(leaf, "leaf")
        leaves = self._levels[0]
        dirty = set()
        for index, leaf in pairs:
            if leaf == EMPTY_LEAF:
                leaves.pop(index, None)
            else:
                leaves[index] = bytes(leaf)
            dirty.add(index)
        for height in range(TREE_DEPTH):
            children = self._levels[height]
            parents = self._levels[height + 1]
            empty = EMPTY_SUBTREE_HASHES[height]
            next_dirty = {index >> 1 for index in dirty}
            for parent in next_dirty:
                left = children.get(2 * parent, empty)
                right = children.get(2 * parent + 1, empty)
                if left == empty and right == empty:
                    parents.pop(parent, None)
                else:
                    parents[parent] = hash_pair(left, right)
            dirty = next_dirty
        return self.root

    def proof(self, index: int) -> MerkleProof:
        """Full proof for ``index`` (valid for absent indices too: the leaf is empty)."""
        _check_index(index)
        siblings = tuple(
            self._levels[height].get((index >> height) ^ 1, EMPTY_SUBTREE_HASHES[height])
            for height in range(TREE_DEPTH)
        )
        return MerkleProof(index, siblings)

    def compact_proof(self, index: int) -> CompactProof:
        """Compact proof for ``index``: bitmap plus the non-empty siblings only."""
        _check_index(index)
        bitmap = 0
        kept = []
        for height in range(TREE_DEPTH):
            sibling = self._levels[height].get((index >> height) ^ 1)
            if sibling is not None:
                bitmap |= 1 << height
                kept.append(sibling)
        return CompactProof(index, bitmap, tuple(kept))
