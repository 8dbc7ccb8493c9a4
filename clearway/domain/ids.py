"""Identifier types. Plain ``int`` at run time (NewType costs nothing on the hot path);
distinct types for readers and type checkers, and in the msgspec schemas of commands and
events.

AccountId
    Dense index of an account; 0 is the fee account, 1 the insurance fund; also the key of
    the account's leaf in the committed state tree.
InstrumentId
    Dense index of a listed instrument (the key in the committed instruments tree).
OrderId, TradeId
    Assigned by the exchange in arrival order, starting at 1.
DepositId
    The vault's sequential deposit number.
"""

from __future__ import annotations

from typing import NewType

AccountId = NewType("AccountId", int)
InstrumentId = NewType("InstrumentId", int)
OrderId = NewType("OrderId", int)
TradeId = NewType("TradeId", int)
DepositId = NewType("DepositId", int)
