"""Settlement of one fill between two accounts: cash, fees, positions, the trade event.

Cash-based accounting (accounts.py): the buyer pays the exact notional lots × price /
10**size_decimals (exact by ``InstrumentSpec.validate``), the seller receives it; fees go
to the fee account (a negative maker fee is a rebate paid from it). Rounding: units.fee_amount.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.accounts import Account, Position
from clearway.domain.arith import mul
from clearway.domain.events import Trade
from clearway.domain.genesis import FEE_ACCOUNT
from clearway.domain.orders import Order
from clearway.domain.units import PPM

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState


def change_position(account: Account, instrument: int, delta: int, price: int, funding_index: int) -> None:
    """Add ``delta`` lots at ``price`` to the account's position.

    Entry price (reporting only): volume-weighted on increase, unchanged on decrease, the
    fill price after a flip. A position that reaches zero is removed. ``funding_index`` is
    the instrument's current funding index: the caller has settled the old position's
    funding up to it (funding_engine.settle_before_change), so the position carries it.
    """
    position = account.positions.get(instrument)
    if position is None:
        account.positions[instrument] = Position(delta, price, funding_index)
        return
    old = position.size
    new = old + delta
    if new == 0:
        del account.positions[instrument]
        return
    position.funding_index = funding_index
    if (old > 0) == (delta > 0):
        position.entry_price = (mul(position.entry_price, abs(old)) + mul(price, abs(delta))) // abs(new)
    elif (old > 0) != (new > 0):
        position.entry_price = price
    position.size = new


def settle_fill(state: ExchangeState, spec, maker: Order, taker: Account, taker_side: int, lots: int,
                taker_order_id: int, taker_fee_ppm: int, events: list | None = None) -> Trade:
    """Move cash, fees and positions for one fill of ``lots`` at ``maker.price``.

    ``maker`` has already been reduced in the book; here its account aggregates are
    reduced and, if it is fully filled, it is forgotten. Returns the Trade event.
    Fees: ``units.fee_amount`` (a charge rounds up, a rebate rounds down), inlined.

    Funding (exchange-rules.md "Funding"): when the instrument has a funding index, both
    positions are first settled to it (funding_engine.settle_position; ``FundingPaid``
    events go to ``events``) and the changed positions carry it.

    ``state`` and ``maker`` are annotated so that the compiled module reads their fields
    directly (an unannotated parameter is a Python object to mypyc: every attribute read a
    generic lookup, 160–290 instructions; README, "The deterministic core").
    """
    instrument = spec.instrument_id
    funding_index = state.funding_index.get(instrument)
    if funding_index is not None:
        _settle_funding(state, taker, instrument, funding_index, events)
        _settle_funding(state, state.accounts[maker.account], instrument, funding_index, events)
    else:
        funding_index = 0
    scale = 10**spec.size_decimals
    price = maker.price
    notional = mul(lots, price) // scale
    maker_fee = -(mul(-notional, spec.maker_fee_ppm) // PPM)
    taker_fee = -(mul(-notional, taker_fee_ppm) // PPM)
    maker_account = state.accounts[maker.account]
    if taker_side > 0:
        taker.cash -= notional + taker_fee
        maker_account.cash += notional - maker_fee
    else:
        taker.cash += notional - taker_fee
        maker_account.cash -= notional + maker_fee
    state.accounts[FEE_ACCOUNT].cash += maker_fee + taker_fee
    taker_lots = lots if taker_side > 0 else -lots
    change_position(taker, instrument, taker_lots, price, funding_index)
    change_position(maker_account, instrument, -taker_lots, price, funding_index)
    # maker's open-order aggregates (Account.reduce_order, inlined)
    agg = maker_account.open[instrument]
    if maker.side > 0:
        agg.bid_size -= lots
        agg.bid_notional -= notional
    else:
        agg.ask_size -= lots
        agg.ask_notional -= notional
    if maker.remaining == 0:
        maker_account.remove_order(maker, scale)
        del state.orders[maker.order_id]
    trade_id = state.next_trade_id
    state.next_trade_id = trade_id + 1
    state.last_trade[instrument] = price  # every trade is made here: LAST triggers read it
    return Trade(trade_id, instrument, price, lots, taker_side, maker.order_id, taker_order_id,  # type: ignore[arg-type]
                 maker.account, taker.account_id, maker_fee, taker_fee)  # type: ignore[arg-type]


def _settle_funding(state: ExchangeState, account: Account, instrument: int, index: int,
                    events: list | None) -> None:
    position = account.positions.get(instrument)
    if position is not None and position.funding_index != index:
        from clearway.domain.funding_engine import settle_position

        settle_position(state, account, instrument, position, index, events if events is not None else [])
