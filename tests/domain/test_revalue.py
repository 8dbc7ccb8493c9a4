"""The all-accounts revaluation agrees with the per-account health (positions only), and the
pre-trade screen built from it never decides differently from the exact check."""

from __future__ import annotations

from functools import lru_cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from margin import build  # bench/margin.py: the benchmark's state, here with 400 accounts

from clearway.domain.accounts import OpenOrders, Position
from clearway.domain.revalue import NO_CASH, PositionMatrix, revalue_all


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

    state, pm_ids, std_ids, rng = build(seed=5, accounts=600)
    margin = state.margin
    # bring the portfolio accounts close to their initial margin: surplus 0..3,000 USDC
    for account_id in pm_ids:
        account = state.accounts[account_id]
        health = margin.health(account)
        account.cash += int(rng.integers(0, 3_000)) * 1_000_000 - health.initial_surplus
    matrix = PositionMatrix.from_state(state)
    kept = margin.remember(matrix, revalue_all(state, matrix))
    assert kept == len(pm_ids) + len(std_ids)  # every standard account of the revaluation too
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


@lru_cache(maxsize=1)
def _small_state():
    return build(seed=11, accounts=40)


def _remember(state) -> None:
    matrix = PositionMatrix.from_state(state)
    state.margin.remember(matrix, revalue_all(state, matrix))


_N_OPTIONS = 510  # bench/margin.py: 5 expiries × 51 strikes × call/put after the perpetual (id 0)
_positions = st.dictionaries(st.integers(0, _N_OPTIONS), st.integers(-40, 40).map(lambda n: n * 500 or 500),
                             min_size=1, max_size=6)
_orders = st.lists(st.tuples(st.integers(0, _N_OPTIONS), st.sampled_from([1, -1]), st.integers(-20, 80),
                             st.integers(1, 60)), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(positions=_positions, surplus_usdc=st.integers(-2_000, 4_000), funding=st.integers(-10**15, 10**15),
       orders=_orders, expiry_block=st.integers(0, 4), same_expiry=st.booleans(),
       boundary=st.one_of(st.none(), st.integers(-4, 4), st.integers(-40, 40)))
def test_standard_screen_never_accepts_what_the_exact_check_rejects(positions, surplus_usdc, funding, orders,
                                                                   expiry_block, same_expiry, boundary):
    """Standard accounts (perpetual and options, several per expiry so that the maximum-loss
    cap binds, unsettled funding, surplus near 0 — or, with ``boundary``, cash within 40
    micro-USDC of the least cash at which the exact check accepts the first order): after
    ``remember`` every order's decision with the screen equals the exact check's, and
    whatever the screen accepts the exact check accepts."""
    state, _, std_ids, _ = _small_state()
    margin = state.margin
    account = state.accounts[std_ids[0]]
    saved = (account.positions, account.cash, dict(margin.funding))
    per_expiry = _N_OPTIONS // 5
    try:
        if same_expiry:  # crowd the options into one expiry: spreads, unpaired calls, the cap
            positions = {(i - 1) % per_expiry + 1 + expiry_block * per_expiry if i else 0: n
                         for i, n in positions.items()}
        account.positions = {i: Position(n, 0, 7 * 10**12 if i == 0 else 0) for i, n in positions.items()}
        margin.funding[0] = funding
        health = margin.health(account)
        account.cash += surplus_usdc * 1_000_000 - health.initial_surplus

        def order(instrument, side, ticks, contracts):
            if same_expiry and instrument:
                instrument = (instrument - 1) % per_expiry + 1 + expiry_block * per_expiry
            price = max((state.marks[instrument] + side * ticks * 100_000) // 100_000 * 100_000, 100_000)
            return state.instruments[instrument], side, price, contracts * 500

        if boundary is not None:  # the least cash the exact check accepts the first order at
            low, high = account.cash - 10**12, account.cash + 10**12
            first = order(*orders[0])
            while high - low > 1:
                account.cash = (low + high) // 2
                if margin.check_order(account, *first) is None:
                    high = account.cash
                else:
                    low = account.cash
            account.cash = high + boundary
        _remember(state)
        # the remembered bound never exceeds the exact initial surplus (the screen's premise)
        row = margin.screen.row(account.account_id, False)
        assert int(margin.screen.surplus[row]) <= margin.health(account).initial_surplus
        for drawn in orders:
            spec, side, price, lots = order(*drawn)
            accepted = margin._standard_screen_accepts(account, spec, side, price, lots)
            screened = margin.check_order(account, spec, side, price, lots)
            kept, margin.screen = margin.screen, None
            exact = margin.check_order(account, spec, side, price, lots)
            margin.screen = kept
            assert screened == exact
            if accepted:
                assert exact is None
    finally:
        account.positions, account.cash = saved[0], saved[1]
        margin.funding.clear()
        margin.funding.update(saved[2])
        margin.screen = None


def test_standard_screen_accepts_most_orders_and_any_change_voids_an_entry():
    state, _, std_ids, rng = build(seed=7, accounts=300)
    margin = state.margin
    _remember(state)
    hits = checks = 0
    for account_id in std_ids:
        account = state.accounts[account_id]
        instrument = int(rng.integers(1, _N_OPTIONS + 1))
        spec = state.instruments[instrument]
        side = 1 if rng.random() < 0.5 else -1
        lots = int(rng.integers(1, 11)) * 1_000
        price = state.marks[instrument]
        checks += 1
        if margin._standard_screen_accepts(account, spec, side, price, lots):
            hits += 1
            saved, margin.screen = margin.screen, None
            assert margin.check_order(account, spec, side, price, lots) is None
            margin.screen = saved
    assert hits >= 0.9 * checks  # well-funded accounts: the screen decides
    account = state.accounts[std_ids[0]]
    spec = state.instruments[1]
    order = (spec, 1, state.marks[1], 1_000)
    assert margin._standard_screen_accepts(account, *order)
    account.cash += 1  # cash
    assert not margin._standard_screen_accepts(account, *order)
    account.cash -= 1
    held = next(i for i in account.positions if i)
    state.marks[held] += 1  # a mark of a held instrument
    assert not margin._standard_screen_accepts(account, *order)
    state.marks[held] -= 1
    state.index["BTC"] += 1  # the index
    assert not margin._standard_screen_accepts(account, *order)
    state.index["BTC"] -= 1
    account.positions[0].size += 1  # a position
    assert not margin._standard_screen_accepts(account, *order)
    account.positions[0].size -= 1
    account.open[0] = OpenOrders()  # an open order
    assert not margin._standard_screen_accepts(account, *order)
    del account.open[0]
    assert margin._standard_screen_accepts(account, *order)


def test_cash_term_counts_unsettled_funding_and_a_depeg_like_health():
    state, pm_ids, std_ids, rng = build(seed=4, accounts=200)
    margin = state.margin
    margin.funding[0] = 987_654_321_000
    margin.set_stable_price(993_500)
    try:
        for account_id in pm_ids + std_ids:
            account = state.accounts[account_id]
            account.cash = int(rng.integers(-10**10, 10**12))
            if 0 in account.positions:
                account.positions[0].funding_index = int(rng.integers(-10**12, 10**12))
        result = revalue_all(state, PositionMatrix.from_state(state))
        for i, account_id in enumerate(result.accounts.tolist()):
            account = state.accounts[account_id]
            assert abs(margin.health(account).equity - int(result.equity[i])) <= 2 + len(account.positions)
    finally:
        margin.funding.clear()
        margin.set_stable_price(1_000_000)


def _cash_change_voids_entry(cash_term: int) -> tuple[bool, bool]:
    """(screen accepted before, screen accepted after a 1 micro-USDC withdrawal) of a
    well-funded standard account of the small state whose cash term was ``cash_term`` when
    remembered."""
    state, _, std_ids, _ = _small_state()
    margin = state.margin
    account = state.accounts[std_ids[0]]
    saved = account.cash
    order = (state.instruments[1], 1, state.marks[1], 1_000)
    try:
        account.cash = cash_term - margin.pending_funding(account)
        assert margin.cash_value(account.cash) + margin.pending_funding(account) == cash_term
        _remember(state)
        before = margin._standard_screen_accepts(account, *order)
        account.cash -= 1
        return before, margin._standard_screen_accepts(account, *order)
    finally:
        account.cash = saved
        margin.screen = None


def test_a_cash_change_below_float_resolution_at_a_large_balance_voids_an_entry():
    """Above 2^33 USD two cash terms 1 micro-USDC apart can be the same float in USD; the
    screen compares the exact integers: the unchanged, well-funded account is screened, and
    a 1 micro-USDC change voids its entry."""
    big = 9 * 10**15 + 2  # 9·10^9 USD
    assert (big - 1) / 1e6 == big / 1e6  # the float copy cannot tell them apart
    assert _cash_change_voids_entry(big) == (True, False)


def test_the_screen_tells_cash_terms_apart_up_to_its_limit_and_leaves_larger_ones_out():
    """Up to ``_SCREEN_FIT`` (2^62 micro-USDC, 4.6·10^12 USD) the screen decides and a
    1 micro-USDC change voids the entry; beyond it (equity past the bound, or a cash term
    past int64, stored as ``NO_CASH``) the row is left out and the exact check decides."""
    assert _cash_change_voids_entry(4 * 10**18) == (True, False)
    assert _cash_change_voids_entry(2**62 + 10**15) == (False, False)
    assert _cash_change_voids_entry(2**63 + 1) == (False, False)
    state, _, std_ids, _ = _small_state()
    account = state.accounts[std_ids[0]]
    saved = account.cash
    try:
        account.cash = 2**63 + 1 - state.margin.pending_funding(account)
        matrix = PositionMatrix.from_state(state)
        row = matrix.accounts.tolist().index(account.account_id)
        assert matrix.cash_micro[row] == NO_CASH
        assert state.margin.remember(matrix, revalue_all(state, matrix)) == matrix.accounts.size - 1
    finally:
        account.cash = saved
        state.margin.screen = None
