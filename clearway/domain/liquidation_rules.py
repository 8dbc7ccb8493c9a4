"""Liquidation formulas (dYdX v4; ADL ranking Hyperliquid/BitMEX style), as pure integers.

Source: exchange-rules.md "Liquidation, insurance fund, deleveraging". Amounts are
micro-USDC, sizes lots (``scale`` lots per contract), prices micro-USDC per contract, rates
ppm. Intermediate ratios are exact (``fractions.Fraction``); each result states its rounding.

Names follow dYdX: TNC = total net collateral (the account's equity), TMMR = total
maintenance margin requirement, PNNV = the position's net notional value (size × mark,
signed), PMMR = the position's maintenance requirement, ABR = adjusted bankruptcy rating,
BA = bankruptcy adjustment, SMMR = spread to maintenance margin ratio.
"""

from __future__ import annotations

from fractions import Fraction

from clearway.domain.units import PPM, ceil_div


def adjusted_bankruptcy_rating(tnc: int, tmmr: int, ba_ppm: int = PPM) -> Fraction:
    """ABR = clamp(BA · (1 − TNC / TMMR), 0, 1); 0 when there is no requirement."""
    if tmmr <= 0:
        return Fraction(0)
    abr = Fraction(ba_ppm, PPM) * (1 - Fraction(tnc, tmmr))
    return min(max(abr, Fraction(0)), Fraction(1))


def fillable_price(size: int, mark: int, scale: int, pmmr: int, tnc: int, tmmr: int, tick: int,
                   smmr_ppm: int = 1_500_000, ba_ppm: int = PPM) -> int:
    """The worst price at which a liquidation order for the whole position may fill.

    fillable = (PNNV − ABR · SMMR · PMMR) / PS with PNNV = PS · mark and PS = size / scale
    (contracts). Closing a long sells: rounded *up* to a tick; closing a short buys: rounded
    *down* to a tick (exchange-rules.md step 2). Never below one tick.

    Example (spec): +0.1 BTC at 50,000, cash −4,501, MMF 10% → TMMR 500, TNC 499,
    SMMR 0.1 → 49,999.
    """
    if size == 0:
        raise ValueError("no position to liquidate")
    contracts = Fraction(size, scale)
    pnnv = contracts * mark
    abr = adjusted_bankruptcy_rating(tnc, tmmr, ba_ppm)
    price = (pnnv - abr * Fraction(smmr_ppm, PPM) * pmmr) / contracts
    if size > 0:
        ticks = -((-price.numerator) // (price.denominator * tick))  # ceil(price / tick)
    else:
        ticks = price.numerator // (price.denominator * tick)  # floor(price / tick)
    return max(ticks, 1) * tick


def step_notional_limit(position_notional: int, min_step: int = 1_000 * 10**6,
                        fraction_ppm: int = 100_000) -> int:
    """Largest notional one liquidation step may close: max(min(min_step, |N|), fraction·|N|)
    (micro-USDC; the fraction rounds down). The per-account, per-second cap (default
    100,000 USDC) is applied by the caller."""
    n = abs(position_notional)
    return max(min(min_step, n), n * fraction_ppm // PPM)


def bankruptcy_quote(delta_nnv: int, tnc: int, delta_mmr: int, tmmr: int) -> int:
    """Quote the account needs from a liquidation fill so that, at zero equity, its
    equity/MMR ratio is unchanged: −ΔNNV − ⌊TNC · |ΔMMR| / TMMR⌋ (dYdX v4), micro-USDC.

    ``delta_nnv`` is the change of the account's net notional value from the fill (−size ·
    mark for the closed part), ``delta_mmr`` the change of its maintenance requirement.
    Example (spec): +0.1 BTC, cash −5,100, selling the whole position → 5,100 USDC.
    """
    if tmmr <= 0:
        return -delta_nnv - tnc
    return -delta_nnv - (tnc * abs(delta_mmr)) // tmmr


def settle_liquidation_fill(quote_received: int, bankruptcy: int, fee_ppm: int = 5_000) -> tuple[int, int]:
    """Split of one liquidation fill between the account and the insurance fund.

    Δ = quote received − bankruptcy quote. If Δ ≤ 0 the insurance fund pays −Δ to the
    account; else the fund takes fee = min(⌈|quote| · fee_rate⌉, Δ) and the account keeps the
    rest. Returns ``(fee_to_fund, payout_from_fund)``, both ≥ 0, micro-USDC.

    Example (spec): received 5,610, bankruptcy 5,100 → fee 28.05 USDC.
    """
    delta = quote_received - bankruptcy
    if delta <= 0:
        return 0, -delta
    return min(ceil_div(abs(quote_received) * fee_ppm, PPM), delta), 0


def adl_score(size: int, entry_price: int, mark: int, scale: int, equity: int) -> Fraction:
    """Auto-deleveraging rank of a position: unrealised PnL% × effective leverage.

    PnL% = (mark − entry) · sign(size) / entry; effective leverage = |size · mark| / equity
    (accounts with equity ≤ 0 rank first: infinite leverage, represented by a huge value).
    Higher ranks are deleveraged first; ties are broken by account id by the caller.
    """
    if entry_price <= 0:
        return Fraction(0)
    pnl_pct = Fraction((mark - entry_price) * (1 if size > 0 else -1), entry_price)
    notional = Fraction(abs(size) * mark, scale)
    if equity <= 0:
        return pnl_pct * 10**18
    return pnl_pct * notional / equity
