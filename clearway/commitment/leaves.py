"""Account and instrument leaves of the committed state.

Both leaves are ``keccak256`` of a standard Solidity/Vyper ``abi.encode`` of their fields,
encoded here with eth-abi, so that the vault recomputes exactly the same hash with
``keccak256(abi_encode(...))`` (checked in ``tests/chain``).

Account leaf::

    keccak256(abi.encode(uint32 account_index, address owner, int256 cash,
                         (uint32 instrument_id, int256 size, int256 funding_index)[] positions))

with positions sorted by instrument id and zero-size positions omitted (the canonical
form; :class:`AccountLeaf` builds it whatever order it is given).

Instrument leaf::

    keccak256(abi.encode(uint32 instrument_id, int256 settlement_price,
                         int256 funding_index, uint8 size_decimals))

Units (the contract between the domain and the commitment):

- ``cash``: signed micro-USDC (6 decimals).
- ``size``: signed, in units of ``10**-size_decimals`` contracts of the instrument.
- ``settlement_price``: micro-USDC per whole contract.
- ``funding_index``: cumulative funding in ``10**-12`` USDC per whole contract, i.e.
  micro-USDC scaled by :data:`FUNDING_INDEX_SCALE`; a position stores the instrument's
  index at its last funding settlement.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eth_abi import encode
from eth_hash.auto import keccak
from eth_utils import is_address, to_checksum_address

from clearway.domain.units import FUNDING_INDEX_SCALE  # one definition, the domain's units

UINT32_MAX = 2**32 - 1
INT256_MIN = -(2**255)
INT256_MAX = 2**255 - 1

ACCOUNT_LEAF_TYPES = ("uint32", "address", "int256", "(uint32,int256,int256)[]")
INSTRUMENT_LEAF_TYPES = ("uint32", "int256", "int256", "uint8")


def _int_in(value: int, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{what} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _int256(value: int, what: str) -> int:
    return _int_in(value, INT256_MIN, INT256_MAX, what)


def _uint32(value: int, what: str) -> int:
    return _int_in(value, 0, UINT32_MAX, what)


def normalise_address(owner: str | bytes) -> str:
    """Checksummed ``0x`` address from a hex string or 20 raw bytes.

    Raises
    ------
    ValueError
        If ``owner`` is not an address.
    """
    if isinstance(owner, bytes | bytearray):
        if len(owner) != 20:
            raise ValueError(f"an address has 20 bytes, got {len(owner)}")
        return to_checksum_address(bytes(owner))
    if not isinstance(owner, str) or not is_address(owner):
        raise ValueError(f"not an address: {owner!r}")
    return to_checksum_address(owner)


@dataclass(frozen=True, slots=True)
class PositionLeaf:
    """One position inside an account leaf.

    ``size`` in ``10**-size_decimals`` contracts (signed, long > 0); ``funding_index`` is
    the instrument's funding index (10**-12 USDC per contract) at the position's last
    funding settlement.
    """

    instrument_id: int
    size: int
    funding_index: int

    def __post_init__(self) -> None:
        _uint32(self.instrument_id, "instrument_id")
        _int256(self.size, "size")
        _int256(self.funding_index, "position funding_index")

    def as_tuple(self) -> tuple[int, int, int]:
        """``(instrument_id, size, funding_index)``: the ABI tuple the vault takes."""
        return (self.instrument_id, self.size, self.funding_index)


@dataclass(frozen=True, slots=True)
class AccountLeaf:
    """An account as committed in the accounts tree, at key ``account_index``.

    Construction canonicalises ``positions``: accepts ``PositionLeaf`` or
    ``(instrument_id, size, funding_index)`` tuples, drops zero sizes, sorts by instrument
    id. Raises ``ValueError`` on out-of-range fields or a repeated instrument id.
    """

    account_index: int
    owner: str
    cash: int
    positions: tuple[PositionLeaf, ...] = ()

    def __post_init__(self) -> None:
        _uint32(self.account_index, "account_index")
        _int256(self.cash, "cash")
        object.__setattr__(self, "owner", normalise_address(self.owner))
        object.__setattr__(self, "positions", canonical_positions(self.positions))

    def encode(self) -> bytes:
        """The ABI encoding that is hashed (see module docstring)."""
        return encode(
            ACCOUNT_LEAF_TYPES,
            [self.account_index, self.owner, self.cash, [p.as_tuple() for p in self.positions]],
        )

    def hash(self) -> bytes:
        """The 32-byte leaf: ``keccak256(self.encode())``."""
        return keccak(self.encode())


def canonical_positions(
    positions: Iterable[PositionLeaf | tuple[int, int, int]],
) -> tuple[PositionLeaf, ...]:
    """Positions sorted by instrument id, zero sizes dropped.

    Raises
    ------
    ValueError
        If an instrument id appears twice (among non-zero or zero positions alike).
    """
    leaves = [p if isinstance(p, PositionLeaf) else PositionLeaf(*p) for p in positions]
    ids = [p.instrument_id for p in leaves]
    if len(set(ids)) != len(ids):
        raise ValueError("an account holds at most one position per instrument")
    return tuple(sorted((p for p in leaves if p.size != 0), key=lambda p: p.instrument_id))


@dataclass(frozen=True, slots=True)
class InstrumentLeaf:
    """An instrument's committed settlement values, at key ``instrument_id``.

    ``settlement_price`` in micro-USDC per whole contract; ``funding_index`` in
    10**-12 USDC per contract (0 for instruments without funding, e.g. options);
    ``size_decimals`` as in the instrument spec (sizes are in 10**-size_decimals).
    """

    instrument_id: int
    settlement_price: int
    funding_index: int
    size_decimals: int

    def __post_init__(self) -> None:
        _uint32(self.instrument_id, "instrument_id")
        _int256(self.settlement_price, "settlement_price")
        _int256(self.funding_index, "instrument funding_index")
        _int_in(self.size_decimals, 0, 255, "size_decimals")

    def encode(self) -> bytes:
        """The ABI encoding that is hashed (see module docstring)."""
        return encode(
            INSTRUMENT_LEAF_TYPES,
            [self.instrument_id, self.settlement_price, self.funding_index, self.size_decimals],
        )

    def hash(self) -> bytes:
        """The 32-byte leaf: ``keccak256(self.encode())``."""
        return keccak(self.encode())


def account_leaf_hash(
    account_index: int,
    owner: str | bytes,
    cash: int,
    positions: Iterable[PositionLeaf | tuple[int, int, int]] = (),
) -> bytes:
    """Shortcut for ``AccountLeaf(account_index, owner, cash, positions).hash()``."""
    return AccountLeaf(account_index, owner, cash, tuple(positions)).hash()


def instrument_leaf_hash(
    instrument_id: int, settlement_price: int, funding_index: int, size_decimals: int
) -> bytes:
    """Shortcut for ``InstrumentLeaf(...).hash()``."""
    return InstrumentLeaf(instrument_id, settlement_price, funding_index, size_decimals).hash()
