"""Escape value of an account at a finalised state root (the reference for ``Vault.escape``).

After a freeze, each account is paid once::

    value = max(0, cash + Σ_positions ( floor(size · settlement_price / 10**size_decimals)
                                     + floor(−size · (F_instrument − F_position)
                                             / (10**size_decimals · 10**6)) ))

with all quantities as committed in the last finalised root (units in
:mod:`clearway.commitment.leaves`) and ``floor`` toward −∞ per position term. The first
term is the position's value at the committed settlement price; the second the funding
accrued since the position's last settlement (a long pays when the index rises). Each term
is floored on its own, so an account never receives a fraction of a micro-USDC it is not
owed. ``Vault.vy`` computes the same with int256 arithmetic (reverting on overflow) and
``tests/chain`` checks equality on many random accounts.

Conservation: the domain settles every position of a perp at each funding tick
(domain/funding_engine.py), so every committed position carries its instrument's funding
index and the funding term is 0; the fee account, counterparty of every payment, holds
the settled balance (and the rounding residues, ≥ 0) in its cash. Hence Σ escape values ≤
Σ cash = what the vault holds for the exchange, the remainder being the price terms'
flooring plus the negative equity of bankrupt accounts (which escape 0). The funding
term stays in the formula (and in ``Vault.vy``) for a state carrying unsettled funding,
which would over-promise the receipts owed to unsettled receivers (the fee account's leaf
holds no claim on the unsettled payers); ``exchange_state.unsettled_positions`` finds
such positions. Tests: tests/commitment/test_funding_conservation.py and
tests/chain/test_vault_escape.py (through ``Vault.escape``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from clearway.commitment.leaves import (
    FUNDING_INDEX_SCALE,
    AccountLeaf,
    InstrumentLeaf,
    PositionLeaf,
)


def position_value(position: PositionLeaf, instrument: InstrumentLeaf) -> int:
    """Value of one position in micro-USDC: price term plus unsettled funding term.

    Each term is floored toward −∞ (Python ``//``).

    Raises
    ------
    ValueError
        If the instrument ids differ.
    """
    if position.instrument_id != instrument.instrument_id:
        raise ValueError("position and instrument ids differ")
    scale = 10**instrument.size_decimals
    price_term = (position.size * instrument.settlement_price) // scale
    funding_delta = instrument.funding_index - position.funding_index
    funding_term = (-position.size * funding_delta) // (scale * FUNDING_INDEX_SCALE)
    return price_term + funding_term


def account_equity(
    cash: int,
    positions: Iterable[PositionLeaf],
    instruments: Mapping[int, InstrumentLeaf],
) -> int:
    """``cash`` plus the value of every position (may be negative), in micro-USDC.

    Raises
    ------
    ValueError
        If a position's instrument is missing from ``instruments``.
    """
    total = cash
    for position in positions:
        instrument = instruments.get(position.instrument_id)
        if instrument is None:
            raise ValueError(f"no committed instrument {position.instrument_id}")
        total += position_value(position, instrument)
    return total


def escape_value(
    account: AccountLeaf | tuple[int, Iterable[PositionLeaf]],
    instruments: Mapping[int, InstrumentLeaf],
) -> int:
    """What ``Vault.escape`` pays this account: its equity floored at zero (micro-USDC).

    ``account`` is an :class:`AccountLeaf` or a ``(cash, positions)`` pair.
    """
    if isinstance(account, AccountLeaf):
        cash, positions = account.cash, account.positions
    else:
        cash, positions = account
    return max(0, account_equity(cash, positions, instruments))
