"""The all-accounts revaluation agrees with the per-account health (positions only)."""

from __future__ import annotations

from margin import build  # bench/margin.py: the benchmark's state, here with 400 accounts

from clearway.domain.revalue import PositionMatrix, revalue_all


def test_batched_revaluation_equals_per_account_health_to_a_few_micro_usdc():
    state, pm_ids, std_ids, _ = build(seed=3, accounts=400)
    result = revalue_all(state, PositionMatrix.from_state(state))
    assert list(result.accounts) == pm_ids + std_ids
    for i, account_id in enumerate(result.accounts):
        account = state.accounts[int(account_id)]
        assert not account.open
        h = state.margin.health(account)
        tolerance = 2 + len(account.positions)  # standard margin rounds each short up
        assert abs(h.equity - int(result.equity[i])) <= tolerance
        assert abs(h.initial_margin - int(result.initial_margin[i])) <= tolerance
        assert abs(h.maintenance_margin - int(result.maintenance_margin[i])) <= tolerance
