"""Test support: a small exchange harness that numbers commands like a sequencer."""

from __future__ import annotations

from clearway.domain.commands import (
    AmendOrder, CancelAll, CancelOrder, Deposit, PlaceOrder, SetMarkPrices, Withdraw,
)
from clearway.domain.events import Rejected
from clearway.domain.genesis import GenesisConfig
from clearway.domain.instruments import InstrumentSpec, Kind, OptionType
from clearway.domain.state import ExchangeState, apply, state_hash

USDC = 1_000_000          # micro-USDC per USDC
BTC = 10_000              # lots per BTC (size_decimals 4)
TICK = 100_000            # 0.1 USDC


def usd(x: float | int) -> int:
    return round(x * USDC)


def perp_spec(instrument_id: int = 0, maker_fee_ppm: int = -100, taker_fee_ppm: int = 500) -> InstrumentSpec:
    return InstrumentSpec(instrument_id, "BTC", Kind.PERPETUAL, tick_size=TICK, size_decimals=4,
                          size_increment=1, min_size=1, maker_fee_ppm=maker_fee_ppm,
                          taker_fee_ppm=taker_fee_ppm, imf_ppm=50_000, mmf_ppm=30_000)


def option_spec(instrument_id: int, strike_usd: int, option_type: OptionType = OptionType.CALL) -> InstrumentSpec:
    return InstrumentSpec(instrument_id, "BTC", Kind.OPTION, tick_size=TICK, size_decimals=4,
                          size_increment=1, min_size=1, maker_fee_ppm=0, taker_fee_ppm=300,
                          strike=usd(strike_usd), expiry_ms=1_680_249_600_000, option_type=option_type)


class Exchange:
    """Drives ``apply`` with consecutive sequence numbers and a settable clock."""

    def __init__(self, genesis: GenesisConfig | None = None) -> None:
        self.genesis = genesis or GenesisConfig(instruments=[perp_spec()])
        self.state = ExchangeState(self.genesis)
        self.commands: list = []
        self.ts = 1_678_000_000_000
        self._deposit_id = 0

    def run(self, command_type, **fields):
        command = command_type(seq=self.state.last_seq + 1, ts=self.ts, **fields)
        self.commands.append(command)
        return apply(self.state, command)

    def deposit(self, owner_byte: int, amount: int) -> int:
        self._deposit_id += 1
        owner = "0x" + f"{owner_byte:02x}" * 20
        events = self.run(Deposit, owner=owner, amount=amount, deposit_id=self._deposit_id)
        assert not isinstance(events[0], Rejected), events
        return self.state.owners[owner]

    def marks(self, price: int, index: int | None = None, **more) -> list:
        marks = {0: price, **{int(k): v for k, v in more.get("marks", {}).items()}}
        return self.run(SetMarkPrices, index={"BTC": index if index is not None else price}, marks=marks)

    def place(self, account: int, side: int, size: int, price: int = 0, instrument: int = 0, **kw):
        return self.run(PlaceOrder, account=account, instrument=instrument, side=side, size=size, price=price, **kw)

    def cancel(self, account: int, order_id: int = 0, client_order_id: str = ""):
        return self.run(CancelOrder, account=account, order_id=order_id, client_order_id=client_order_id)

    def cancel_all(self, account: int, instrument: int = -1):
        return self.run(CancelAll, account=account, instrument=instrument)

    def amend(self, account: int, order_id: int, size: int, price: int):
        return self.run(AmendOrder, account=account, order_id=order_id, size=size, price=price)

    def withdraw(self, account: int, amount: int):
        return self.run(Withdraw, account=account, amount=amount)

    def hash(self) -> str:
        return state_hash(self.state)

    def replay_hash(self) -> str:
        state = ExchangeState(self.genesis)
        for command in self.commands:
            apply(state, command)
        return state_hash(state)

    def cash(self, account: int) -> int:
        return self.state.accounts[account].cash

    def position(self, account: int, instrument: int = 0) -> int:
        return self.state.accounts[account].position_size(instrument)


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events]


def funded_exchange() -> Exchange:
    """One BTC perp (tick 0.1 USDC, lot 0.0001 BTC, maker −1 bp, taker 5 bp), marks at
    25,000 and two funded traders (ids 2 and 3) with 1,000,000 USDC each."""
    ex = Exchange()
    ex.deposit(0xA1, usd(1_000_000))
    ex.deposit(0xB2, usd(1_000_000))
    ex.marks(usd(25_000))
    return ex
