"""Deposits, withdrawals and the standard-margin pre-trade check."""

from __future__ import annotations

from hypothesis import given, strategies as st

from clearway.domain.commands import Deposit
from clearway.domain.errors import ErrorCode
from clearway.domain.events import Rejected
from clearway.domain.margin import _ceil_requirement
from clearway.domain.orders import BUY, SELL
from support import BTC, Exchange, kinds, option_spec, perp_spec, usd


def test_deposits_must_arrive_in_vault_order():
    ex = Exchange()
    events = ex.run(Deposit, owner="0x" + "11" * 20, amount=5, deposit_id=2)
    assert events[0].code == ErrorCode.DEPOSIT_OUT_OF_ORDER
    assert kinds(ex.run(Deposit, owner="0x" + "11" * 20, amount=5, deposit_id=1)) == ["AccountCreated", "Deposited"]
    assert kinds(ex.run(Deposit, owner="0x" + "11" * 20, amount=5, deposit_id=2)) == ["Deposited"]
    assert ex.run(Deposit, owner="0x" + "11" * 20, amount=5, deposit_id=2)[0].code == ErrorCode.DEPOSIT_OUT_OF_ORDER


def test_deposit_with_bad_address_or_amount_is_rejected():
    ex = Exchange()
    assert ex.run(Deposit, owner="0x" + "AB" * 20, amount=5, deposit_id=1)[0].code == ErrorCode.INVALID_ADDRESS
    assert ex.run(Deposit, owner="0x12", amount=5, deposit_id=1)[0].code == ErrorCode.INVALID_ADDRESS
    assert ex.run(Deposit, owner="0x" + "11" * 20, amount=0, deposit_id=1)[0].code == ErrorCode.INVALID_AMOUNT


def test_withdrawal_limited_to_free_collateral(exchange):
    exchange.place(2, SELL, 10 * BTC, usd(25_000))
    exchange.place(3, BUY, 10 * BTC, usd(25_000))
    # account 3: long 10 BTC at mark 25,000 → IM 12,500; equity = 1,000,000 − 125 fee
    free = exchange.state.margin.free_collateral(exchange.state.accounts[3])
    assert free == usd(1_000_000) - usd(125) - usd(12_500)
    assert exchange.withdraw(3, free + 1)[0].code == ErrorCode.INSUFFICIENT_FREE_COLLATERAL
    assert kinds(exchange.withdraw(3, free)) == ["Withdrawn"]
    assert exchange.state.total_withdrawals == free


def test_withdrawal_cannot_exceed_cash(exchange):
    assert exchange.withdraw(2, usd(1_000_001))[0].code == ErrorCode.INSUFFICIENT_FREE_COLLATERAL
    assert exchange.withdraw(2, 0)[0].code == ErrorCode.INVALID_AMOUNT


def test_initial_margin_check_counts_open_orders_at_their_limit_price():
    ex = Exchange()
    a = ex.deposit(1, usd(1_250))   # IM of 1 BTC at 25,000 with IMF 5% = 1,250
    ex.marks(usd(25_000))
    assert kinds(ex.place(a, BUY, BTC, usd(25_000))) == ["OrderAccepted"]
    # a second bid would need another 1,250
    assert ex.place(a, BUY, 1, usd(25_000))[0].code == ErrorCode.INSUFFICIENT_MARGIN
    # a bid above the mark costs the overpayment too: 1 lot at 26,000 → loss 0.1 USDC
    ex.cancel(a, order_id=1)
    assert ex.place(a, BUY, BTC, usd(26_000))[0].code == ErrorCode.INSUFFICIENT_MARGIN


def test_orders_on_both_sides_are_charged_for_the_worse_side_only():
    ex = Exchange()
    a = ex.deposit(1, usd(1_250))
    ex.marks(usd(25_000))
    assert kinds(ex.place(a, BUY, BTC, usd(25_000))) == ["OrderAccepted"]
    assert kinds(ex.place(a, SELL, BTC, usd(25_100))) == ["OrderAccepted"]


def test_risk_reducing_order_is_accepted_when_below_initial_margin(exchange):
    b = exchange.deposit(0x44, usd(2_000))
    exchange.place(2, SELL, BTC, usd(25_000))
    exchange.place(b, BUY, BTC, usd(25_000))
    exchange.marks(usd(24_500))     # equity 2,000 − 12.5 − 500 = 1,487.5 > IM 1,225 still
    exchange.marks(usd(24_000))     # equity 987.5 < IM 1,200: below initial margin
    assert exchange.place(b, BUY, 1, usd(24_000))[0].code == ErrorCode.INSUFFICIENT_MARGIN
    assert kinds(exchange.place(b, SELL, BTC, usd(24_100))) == ["OrderAccepted"]


def test_option_standard_margin_examples_per_contract():
    """exchange-rules.md: S = F = 1500, vol 0 so mark = intrinsic."""
    from clearway.domain.genesis import GenesisConfig
    from clearway.domain.instruments import OptionType
    specs = [perp_spec(0), option_spec(1, 1400), option_spec(2, 400), option_spec(3, 1600),
             option_spec(4, 3000, OptionType.PUT), option_spec(5, 1400, OptionType.PUT)]
    state = Exchange(GenesisConfig(instruments=specs)).state
    spot = usd(1500)
    state.index["BTC"] = spot
    expected = {1: (325, 212.5), 2: (1325, 1212.5), 3: (150, 112.5), 4: (1725, 1612.5), 5: (150, 112.5)}
    for instrument, (im, mm) in expected.items():
        spec = state.instruments[instrument]
        intrinsic = max(spot - spec.strike, 0) if spec.option_type == OptionType.CALL else max(spec.strike - spot, 0)
        state.marks[instrument] = intrinsic
        assert state.margin._requirement(spec, intrinsic, -BTC, True) == usd(im)
        assert state.margin._requirement(spec, intrinsic, -BTC, False) == usd(mm)
        assert state.margin._requirement(spec, intrinsic, BTC, True) == 0


def test_rejected_commands_do_not_move_money(exchange):
    total = sum(a.cash for a in exchange.state.accounts.values())
    for events in (exchange.place(2, BUY, 10_000 * BTC, usd(25_000)), exchange.withdraw(2, usd(2_000_000))):
        assert isinstance(events[0], Rejected)
    assert sum(a.cash for a in exchange.state.accounts.values()) == total


@given(st.integers(0, 10**12), st.integers(1, 10**15), st.integers(0, 10**6), st.sampled_from([10**6, 10**10, 10**14]))
def test_the_perp_requirement_is_the_exact_rounded_up_triple_product(lots, mark, imf, denom):
    """margin._ceil_requirement (the fast path's ⌈lots · mark · IMF / denom⌉ without the
    triple product) is the ceiling of the exact product, including where it passes 2⁶²."""
    assert _ceil_requirement(lots, mark, imf, denom) == -(-(lots * mark * imf) // denom)
