"""Escapes conserve money under funding: with every position settled at each tick
(funding_engine.settle_instrument), Σ escape values of a committed state ≤ the vault's
holdings, and the remainder is exactly the price terms' flooring. A committed state that
still carries unsettled funding (lazy settlement) over-promises — the failure this guards."""

from __future__ import annotations

from clearway.commitment.exchange_state import (
    StateCommitter, full_state_root, touched_accounts, unsettled_positions,
)
from clearway.domain.events import FundingPaid, FundingTick
from clearway.domain.funding import RATE_SCALE
from clearway.domain.genesis import FEE_ACCOUNT
from clearway.domain.orders import BUY, SELL
from commitment.unsettled_funding import PRICE, escape_values, holdings, lazy_then_eager, price_rounding
from domain.lifecycle_support import HOUR, lifecycle_genesis, oracle
from support import BTC, Exchange, usd


def test_a_committed_state_with_unsettled_funding_over_promises(monkeypatch):
    ex, committer = lazy_then_eager(monkeypatch)
    state = ex.state
    lagging = unsettled_positions(state)
    indices = {state.accounts[a].positions[i].funding_index for a, i in lagging}
    assert (3, 0) in lagging and len(indices) >= 2     # the short and lots bought at other hours
    # the longs paid the fee account, the short's receipt is still owed: Σ escape > holdings
    assert sum(escape_values(committer).values()) > holdings(ex)


def test_the_next_tick_settles_every_position_and_escapes_reconcile(monkeypatch):
    ex, _ = lazy_then_eager(monkeypatch)
    state = ex.state
    before = {a: state.accounts[a].positions[0].funding_index for a, _ in unsettled_positions(state)}
    ex.ts = (ex.ts // HOUR + 1) * HOUR
    events = oracle(ex, PRICE)
    tick = next(e for e in events if isinstance(e, FundingTick))
    paid = {e.account: e.amount for e in events if isinstance(e, FundingPaid)}
    assert set(before) <= set(paid)
    assert any(amount > 0 for amount in paid.values()) and any(amount < 0 for amount in paid.values())
    assert unsettled_positions(state) == []
    committer = StateCommitter(ex.genesis)
    committer.commit(state, None, 2)
    instruments = committer.committed.instrument_leaves()
    assert instruments[0].funding_index == tick.funding_index
    values = escape_values(committer)
    assert all(values[a] > 0 for a in range(2, 7))                 # every trader solvent
    assert values[FEE_ACCOUNT] == state.accounts[FEE_ACCOUNT].cash >= 0   # funding residues only
    remainder = holdings(ex) - sum(values.values())
    assert remainder == price_rounding(committer) > 0


def test_eager_commits_reconcile_after_every_hour_and_match_a_full_rebuild():
    ex = Exchange(lifecycle_genesis(default_funding_rate=-RATE_SCALE // 2777))   # shorts pay
    for owner in (0xA1, 0xB2, 0xC3, 0xD4):
        ex.deposit(owner, usd(1_000_000))
    oracle(ex, PRICE)
    ex.place(2, SELL, 2 * BTC + 3, usd(50_000))
    ex.place(3, BUY, BTC + 1, usd(50_000))
    ex.place(4, BUY, BTC + 2, usd(50_000))
    committer = StateCommitter(ex.genesis)
    for batch in range(1, 6):
        ex.ts = (ex.ts // HOUR + 1) * HOUR
        events = oracle(ex, PRICE + 3 * batch)
        events += ex.place(2 + batch % 3, SELL, batch, usd(50_000))
        events += ex.place(5, BUY, batch, usd(50_000))
        committer.commit(ex.state, touched_accounts(events), batch)
        assert committer.root(batch, ex.state.last_seq) == full_state_root(ex.state, batch)
        assert unsettled_positions(ex.state) == []
        values = escape_values(committer)
        assert holdings(ex) - sum(values.values()) == price_rounding(committer) >= 0
    assert ex.state.accounts[FEE_ACCOUNT].cash > 0
