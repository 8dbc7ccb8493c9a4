"""Funding formulas: the spec example, impact prices and premium samples."""

from __future__ import annotations

from clearway.domain.book import OrderBook
from clearway.domain.funding import RATE_SCALE, funding_index_delta, hourly_rate, impact_price, premium_sample
from clearway.domain.orders import BUY, SELL, Order
from clearway.domain.units import funding_payment

USDC = 10**6
SCALE = 10_000


def test_spec_example_index_and_payment():
    delta = funding_index_delta(50_000 * USDC, RATE_SCALE // 1000)  # 0.1 % for one hour
    assert delta == 6_250_000 * 10**6  # 6.25 USD per BTC in 10⁻¹² USDC
    assert funding_payment(2 * SCALE, delta, 0, SCALE) == -12_500_000  # a 2 BTC long pays 12.50


def _book(levels):
    book = OrderBook(0)
    for i, (side, price, lots) in enumerate(levels):
        book.add(Order(i + 1, 2, 0, side, price * USDC, lots, 1, False, False, ""))
    return book


def test_impact_price_averages_over_levels_and_needs_enough_depth():
    book = _book([(SELL, 20_000, SCALE // 4), (SELL, 20_100, SCALE)])  # 5,000 then 20,100 USDC
    price = impact_price(book, BUY, 10_000 * USDC, SCALE)
    contracts = 0.25 + 5_000 / 20_100
    assert abs(float(price) / USDC - 10_000 / contracts) < 1e-6
    assert impact_price(book, BUY, 30_000 * USDC, SCALE) is None


def test_premium_sample_positive_when_bids_above_index_and_zero_without_depth():
    book = _book([(BUY, 20_100, SCALE), (SELL, 20_200, SCALE)])
    assert premium_sample(book, 20_000 * USDC, 10_000 * USDC, SCALE, clamp=RATE_SCALE) == RATE_SCALE * 100 // 20_000
    assert premium_sample(_book([(BUY, 20_100, SCALE)]), 20_000 * USDC, 10_000 * USDC, SCALE, RATE_SCALE) == 0


def test_hourly_rate_counts_missing_samples_as_zero_and_clamps():
    assert hourly_rate([600] * 30, 0, 50_000, 30_000) == 300
    cap = 6 * 20_000 * 10**6
    assert hourly_rate([10**15] * 60, 0, 50_000, 30_000) == cap
    assert hourly_rate([-10**15] * 60, 0, 50_000, 30_000) == -cap
