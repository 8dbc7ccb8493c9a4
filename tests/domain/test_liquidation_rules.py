"""The worked examples of exchange-rules.md "Liquidation" on the pure formulas."""

from __future__ import annotations

from fractions import Fraction

from clearway.domain.liquidation_rules import (
    adjusted_bankruptcy_rating, adl_score, bankruptcy_quote, fillable_price, settle_liquidation_fill,
    step_notional_limit,
)

USDC = 10**6
SCALE = 10_000  # lots per BTC
TICK = 100_000


def test_fillable_price_example():
    # +0.1 BTC at 50,000, cash −4,501, MMF 10% → TMMR 500, TNC 499, SMMR 0.1 → 49,999
    size, mark = SCALE // 10, 50_000 * USDC
    tnc, tmmr = -4_501 * USDC + 5_000 * USDC, 500 * USDC
    assert fillable_price(size, mark, SCALE, pmmr=500 * USDC, tnc=tnc, tmmr=tmmr, tick=TICK,
                          smmr_ppm=100_000) == 49_999 * USDC


def test_fillable_price_rounds_toward_the_liquidated_account():
    # sells round up, buys round down to a tick
    price_long = fillable_price(3, 10_000_000_001, 1, pmmr=7, tnc=1, tmmr=10, tick=TICK)
    assert price_long % TICK == 0 and price_long >= 10_000_000_001 - 10 * TICK
    price_short = fillable_price(-3, 10_000_000_001, 1, pmmr=7, tnc=1, tmmr=10, tick=TICK)
    assert price_short % TICK == 0 and price_short <= 10_000_000_001 + 10 * TICK


def test_abr_is_clamped():
    assert adjusted_bankruptcy_rating(600, 500) == 0
    assert adjusted_bankruptcy_rating(-100, 500) == 1
    assert adjusted_bankruptcy_rating(499, 500) == Fraction(1, 500)


def test_bankruptcy_quote_and_fee_example():
    # +0.1 BTC, cash −5,100, sold 0.1 at 56,100: received 5,610, bankruptcy 5,100, fee 28.05
    mark = 56_100 * USDC
    nnv = SCALE // 10 * mark // SCALE
    tnc = -5_100 * USDC + nnv
    tmmr = 561 * USDC  # any positive MMR: the whole position (all of TMMR) is closed
    bankruptcy = bankruptcy_quote(delta_nnv=-nnv, tnc=tnc, delta_mmr=-tmmr, tmmr=tmmr)
    assert bankruptcy == 5_100 * USDC
    assert settle_liquidation_fill(5_610 * USDC, bankruptcy) == (28_050_000, 0)


def test_fund_covers_a_fill_below_bankruptcy():
    assert settle_liquidation_fill(5_000 * USDC, 5_100 * USDC) == (0, 100 * USDC)


def test_fee_is_capped_by_the_surplus():
    assert settle_liquidation_fill(5_110 * USDC, 5_100 * USDC) == (10 * USDC, 0)


def test_step_limit():
    assert step_notional_limit(500 * USDC) == 500 * USDC            # small: all of it
    assert step_notional_limit(5_000 * USDC) == 1_000 * USDC        # 1,000 USDC
    assert step_notional_limit(50_000 * USDC) == 5_000 * USDC       # 10 %


def test_adl_ranking_prefers_profitable_leveraged_positions():
    low = adl_score(SCALE, 50_000 * USDC, 55_000 * USDC, SCALE, equity=50_000 * USDC)
    high = adl_score(SCALE, 50_000 * USDC, 55_000 * USDC, SCALE, equity=5_000 * USDC)
    losing = adl_score(SCALE, 60_000 * USDC, 55_000 * USDC, SCALE, equity=5_000 * USDC)
    assert high > low > losing
