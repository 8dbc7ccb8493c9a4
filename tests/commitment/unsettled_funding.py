"""A state with unsettled funding, and the conservation check of its committed escapes.

Shared by tests/commitment/test_funding_conservation.py and tests/chain/test_vault_escape.py
(imported as ``commitment.unsettled_funding``: ``tests`` is on the pytest path).

:func:`lazy_then_eager` builds, through ``apply``, an exchange whose positions carry
funding left unsettled for a few hours — as lazy settlement left them before
funding_engine settled every position at each tick: the eager settlement is switched off
(``settle_instrument`` replaced by a no-op) while the longs trade lots each hour (settling
lazily, at different indices) and the short does not. The default rate is chosen so that
every payment has a rounding residue; the oracle price has micro-USDC digits so that the
price terms round too. Then the next tick, with eager settlement on, settles everyone.
"""

from __future__ import annotations

from fractions import Fraction

from clearway.commitment.escape import escape_value
from clearway.commitment.exchange_state import StateCommitter
from clearway.domain import funding_engine
from clearway.domain.funding import RATE_SCALE
from clearway.domain.orders import BUY, SELL
from domain.lifecycle_support import HOUR, lifecycle_genesis, oracle
from support import BTC, Exchange, usd

PRICE = 50_000.123457           # USD; micro-USDC digits make the price terms round
RATE = RATE_SCALE // 3333       # rate_8h ≈ 0.03 %: payments with residues
FEE_OWNER = "0x" + "fe" * 20    # the fee account escapes its residues to a real address


def _next_hour(ex: Exchange) -> None:
    ex.ts = (ex.ts // HOUR + 1) * HOUR


def lazy_then_eager(monkeypatch, lazy_hours: int = 3) -> tuple[Exchange, StateCommitter]:
    """Returns the exchange after the lazy hours (funding unsettled, eager settlement
    switched back on) and a committer holding that state's commitment (batch 1)."""
    ex = Exchange(lifecycle_genesis(default_funding_rate=RATE, fee_account_owner=FEE_OWNER))
    for owner in (0xA1, 0xB2, 0xC3, 0xD4, 0xE5):   # accounts 2..6
        ex.deposit(owner, usd(1_000_000))
    oracle(ex, PRICE)
    ex.place(3, SELL, 3 * BTC + 7, usd(50_000))       # the short receives a positive rate
    ex.place(2, BUY, BTC + 3, usd(50_000))
    ex.place(4, BUY, 2 * BTC + 4, usd(50_000))
    with monkeypatch.context() as patch:
        patch.setattr(funding_engine, "settle_instrument", lambda *args: 0)
        for hour in range(lazy_hours):
            _next_hour(ex)
            oracle(ex, PRICE + hour)
            long = (2, 4)[hour % 2]                   # settles lazily, sells a lot to 5 or 6
            ex.place(long, SELL, 1 + hour, usd(50_000))
            ex.place(5 + hour % 2, BUY, 1 + hour, usd(50_000))
    committer = StateCommitter(ex.genesis)
    committer.commit(ex.state, None, 1)
    return ex, committer


def holdings(ex: Exchange) -> int:
    """What the vault holds for the exchange (micro-USDC): deposits less withdrawals."""
    return ex.state.total_deposits - ex.state.total_withdrawals


def escape_values(committer: StateCommitter) -> dict[int, int]:
    """Escape value of every committed account, through commitment/escape.py."""
    committed = committer.committed
    instruments = committed.instrument_leaves()
    return {i: escape_value(leaf, instruments) for i, leaf in committed.account_leaves().items()}


def price_rounding(committer: StateCommitter) -> int:
    """The documented remainder of a fully settled state whose accounts are all solvent:
    Σ over positions of (exact − floored) price term, computed with exact fractions."""
    committed = committer.committed
    instruments = committed.instrument_leaves()
    total = Fraction(0)
    for leaf in committed.account_leaves().values():
        for p in leaf.positions:
            spec = instruments[p.instrument_id]
            exact = Fraction(p.size * spec.settlement_price, 10**spec.size_decimals)
            total += exact - (p.size * spec.settlement_price) // 10**spec.size_decimals
    assert total.denominator == 1   # Σ size = 0 per instrument: the fractions add to whole units
    return int(total)
