"""Escape value: cash plus position values at committed prices minus unsettled funding,
each term floored toward −∞, total floored at zero."""

import pytest

from clearway.commitment import AccountLeaf, InstrumentLeaf, PositionLeaf, escape_value
from clearway.commitment.escape import account_equity, position_value

OWNER = "0x" + "ab" * 20
BTC = InstrumentLeaf(1, 60_000_000_000, 0, 4)  # 60,000 USDC, sizes in 1e-4 BTC


def test_long_position_is_worth_size_times_price():
    # 0.5 BTC long at 60,000 USDC = 30,000 USDC
    assert position_value(PositionLeaf(1, 5_000, 0), BTC) == 30_000_000_000


def test_price_term_floors_toward_minus_infinity_for_shorts():
    odd = InstrumentLeaf(2, 3, 0, 1)  # 3 micro-USDC per contract, sizes in 0.1
    assert position_value(PositionLeaf(2, 1, 0), odd) == 0  # 0.3 -> 0
    assert position_value(PositionLeaf(2, -1, 0), odd) == -1  # -0.3 -> -1


def test_longs_pay_a_rising_funding_index_and_shorts_receive_it():
    funded = InstrumentLeaf(1, 0, 2_500_000, 0)  # index rose by 2.5 micro-USDC per contract
    assert position_value(PositionLeaf(1, 2, 0), funded) == -5
    assert position_value(PositionLeaf(1, -2, 0), funded) == 5
    assert position_value(PositionLeaf(1, 1, 0), funded) == -3  # -2.5 floors to -3
    assert position_value(PositionLeaf(1, 1, 2_500_000), funded) == 0  # already settled


def test_negative_equity_escapes_nothing():
    leaf = AccountLeaf(1, OWNER, -10, [(1, 1, 0)])
    cheap = {1: InstrumentLeaf(1, 5, 0, 0)}
    assert account_equity(leaf.cash, leaf.positions, cheap) == -5
    assert escape_value(leaf, cheap) == 0
    assert escape_value((100, ()), {}) == 100


def test_large_sizes_use_exact_integers():
    big = InstrumentLeaf(1, 10**30, 10**30, 18)
    value = position_value(PositionLeaf(1, 10**40, 0), big)
    assert value == 10**52 - 10**46  # price term 1e52, funding term -1e46


def test_missing_instrument_is_an_error():
    with pytest.raises(ValueError, match="no committed instrument"):
        escape_value(AccountLeaf(1, OWNER, 0, [(7, 1, 0)]), {})
