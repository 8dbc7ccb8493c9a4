"""L1 effects of a batch and the hash that binds them to the verifiers' attestation.

``Vault.submit_batch`` receives, besides the batch data, the effects the vault must carry
out when the batch is finalised: the last deposit id the batch includes, the withdrawals
it pays and the forced-withdrawal requests it serves. Verifiers recompute them by replaying
the batch data and sign::

    effects_hash = keccak256(abi.encode(uint256 last_deposit_id,
                                        (address owner, uint256 amount)[] withdrawals,
                                        (uint256 request_id, uint256 amount)[] forced_served))

in the EIP-712 attestation next to the data hash, so the sequencer cannot pay out anything
the replay does not produce. Amounts are micro-USDC; a served forced request's ``amount``
may be anything from 0 (rejected by the domain, e.g. not enough free collateral) up to the
requested amount.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eth_abi import encode
from eth_hash.auto import keccak

from clearway.commitment.leaves import normalise_address

EFFECTS_TYPES = ("uint256", "(address,uint256)[]", "(uint256,uint256)[]")
MAX_EFFECT_AMOUNT = 2**96 - 1
"""Largest withdrawal amount the vault accepts (it packs owner and amount in one slot)."""


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A withdrawal paid by a batch: ``amount`` micro-USDC claimable by ``owner``."""

    owner: str
    amount: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "owner", normalise_address(self.owner))
        if not isinstance(self.amount, int) or not 0 < self.amount <= MAX_EFFECT_AMOUNT:
            raise ValueError(f"withdrawal amount must be in (0, 2**96), got {self.amount!r}")

    def as_tuple(self) -> tuple[str, int]:
        """``(owner, amount)``: the ABI tuple the vault takes."""
        return (self.owner, self.amount)


@dataclass(frozen=True, slots=True)
class ForcedWithdrawalServed:
    """Forced-withdrawal request ``request_id`` served by a batch, paying ``amount``."""

    request_id: int
    amount: int

    def __post_init__(self) -> None:
        if not isinstance(self.request_id, int) or self.request_id < 1:
            raise ValueError("forced-withdrawal request ids start at 1")
        if not isinstance(self.amount, int) or not 0 <= self.amount <= MAX_EFFECT_AMOUNT:
            raise ValueError(f"served amount must be in [0, 2**96), got {self.amount!r}")

    def as_tuple(self) -> tuple[int, int]:
        """``(request_id, amount)``: the ABI tuple the vault takes."""
        return (self.request_id, self.amount)


def batch_effects_hash(
    last_deposit_id: int,
    withdrawals: Iterable[Withdrawal] = (),
    forced_served: Iterable[ForcedWithdrawalServed] = (),
) -> bytes:
    """The effects hash (formula in the module docstring), order-sensitive."""
    if not isinstance(last_deposit_id, int) or last_deposit_id < 0:
        raise ValueError("last_deposit_id must be a non-negative integer")
    return keccak(
        encode(
            EFFECTS_TYPES,
            [
                last_deposit_id,
                [w.as_tuple() for w in withdrawals],
                [f.as_tuple() for f in forced_served],
            ],
        )
    )


def batch_data_hash(data: bytes) -> bytes:
    """``keccak256(data)``: the data hash recorded by the vault and attested."""
    return keccak(bytes(data))
