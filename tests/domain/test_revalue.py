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


def test_pretrade_screen_never_accepts_what_the_exact_check_rejects():
    """After ``remember``, check_order may accept a portfolio account's order from the
    remembered surplus and a bound; every decision must equal the exact check's."""
    import numpy as np

    state, pm_ids, _, rng = build(seed=5, accounts=600)
    margin = state.margin
    # bring the portfolio accounts close to their initial margin: surplus 0..3,000 USDC
    for account_id in pm_ids:
        account = state.accounts[account_id]
        health = margin.health(account)
        account.cash += int(rng.integers(0, 3_000)) * 1_000_000 - health.initial_surplus
    matrix = PositionMatrix.from_state(state)
    kept = margin.remember(state.accounts, matrix, revalue_all(state, matrix))
    assert kept == len(pm_ids)
    n_options = len(state.instruments) - 1
    hits = 0
    for _ in range(400):
        account = state.accounts[pm_ids[int(rng.integers(0, len(pm_ids)))]]
        instrument = int(rng.integers(0, n_options + 1))
        spec = state.instruments[instrument]
        side = 1 if rng.random() < 0.5 else -1
        price = max((state.marks[instrument] + side * int(rng.integers(-20, 60)) * 100_000) // 100_000 * 100_000,
                    100_000)
        lots = int(rng.integers(1, 40)) * 1_000
        screened = margin.check_order(account, spec, side, price, lots)
        hits += margin._screen_accepts(account, spec, side, price, lots)
        saved, margin.screen = margin.screen, None
        exact = margin.check_order(account, spec, side, price, lots)
        margin.screen = saved
        assert screened == exact
        if margin._screen_accepts(account, spec, side, price, lots):
            assert exact is None
    assert hits > 0  # near the boundary most orders need the exact evaluation
    # any change of cash voids the account's entry
    account = state.accounts[pm_ids[0]]
    account.cash += 1
    assert not margin._screen_accepts(account, state.instruments[1], 1, 100_000, 1_000)
    assert np.isfinite(margin.risk.get("BTC").lipschitz).all()
