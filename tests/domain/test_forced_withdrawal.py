"""ForcedWithdrawal: min(requested, free collateral), once per request id."""

from __future__ import annotations

from clearway.domain.commands import ForcedWithdrawal, decode_command, encode_command
from clearway.domain.errors import ErrorCode
from clearway.domain.events import ForcedWithdrawalServed
from clearway.domain.orders import BUY, SELL
from support import BTC, kinds, usd

OWNER_2 = "0x" + "a1" * 20


def _forced(ex, request_id, owner, amount):
    return ex.run(ForcedWithdrawal, request_id=request_id, owner=owner, amount=amount)


def test_pays_the_requested_amount_when_it_is_free(exchange):
    events = _forced(exchange, 1, OWNER_2, usd(1_000))
    assert events == [ForcedWithdrawalServed(1, 2, usd(1_000), usd(1_000))]
    assert exchange.cash(2) == usd(999_000)
    assert exchange.state.total_withdrawals == usd(1_000)


def test_pays_at_most_the_free_collateral(exchange):
    exchange.place(3, SELL, 10 * BTC, usd(25_000))
    exchange.place(2, BUY, 10 * BTC, usd(25_000))
    free = exchange.state.margin.free_collateral(exchange.state.accounts[2])
    events = _forced(exchange, 7, OWNER_2.upper().replace("0X", "0x"), usd(10_000_000))
    assert events == [ForcedWithdrawalServed(7, 2, usd(10_000_000), free)]
    assert exchange.state.margin.free_collateral(exchange.state.accounts[2]) == 0


def test_a_request_id_is_served_once(exchange):
    _forced(exchange, 3, OWNER_2, usd(1))
    before = exchange.state.canonical()[3:]
    events = _forced(exchange, 3, OWNER_2, usd(1))
    assert events[0].code == ErrorCode.FORCED_REQUEST_SEEN
    assert exchange.state.canonical()[3:] == before


def test_an_owner_without_account_is_served_with_zero(exchange):
    events = _forced(exchange, 2, "0x" + "99" * 20, usd(5))
    assert events == [ForcedWithdrawalServed(2, -1, usd(5), 0)]
    assert 2 in exchange.state.forced_served
    assert exchange.replay_hash() == exchange.hash()


def test_nothing_is_paid_below_initial_margin(exchange):
    exchange.place(3, SELL, 100 * BTC, usd(25_000))
    exchange.place(2, BUY, 100 * BTC, usd(25_000))
    exchange.marks(usd(15_500))                  # equity 50,000 < IM 77,500
    assert _forced(exchange, 4, OWNER_2, usd(1)) == [ForcedWithdrawalServed(4, 2, usd(1), 0)]


def test_the_command_round_trips_through_the_wire_encoding():
    command = ForcedWithdrawal(5, 1_700_000_000_000, 42, OWNER_2, usd(3))
    assert decode_command(encode_command(command)) == command
    assert kinds([command]) == ["ForcedWithdrawal"]
