"""The committed instrument leaf carries the domain's funding index, so an escape pays
exactly the unsettled funding the domain would settle."""

from __future__ import annotations

from clearway.commitment.escape import escape_value
from clearway.commitment.exchange_state import account_leaf, instrument_leaf
from clearway.domain.orders import BUY, SELL
from clearway.domain.units import funding_payment
from support import BTC, funded_exchange, usd


def test_escape_value_includes_unsettled_funding_at_the_committed_index():
    ex = funded_exchange()
    ex.place(2, SELL, BTC, usd(25_000))
    ex.place(3, BUY, BTC, usd(25_000))
    state = ex.state
    long_position = state.accounts[3].positions[0]
    # funding accrues after the position was opened (a long pays when the index rises)
    state.funding_index[0] = long_position.funding_index + 6_250_000 * 10**6  # 6.25 USD per BTC
    leaf = instrument_leaf(state, 0)
    assert leaf.funding_index == state.funding_index[0]
    account = state.accounts[3]
    expected = (account.cash + BTC * state.marks[0] // BTC
                + funding_payment(BTC, state.funding_index[0], long_position.funding_index, BTC))
    assert escape_value(account_leaf(state, 3), {0: leaf}) == expected
    assert expected == account.cash + usd(25_000) - usd(6.25)
