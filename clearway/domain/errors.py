"""Stable rejection codes, grouped by stage (STYLE.md, "Rejections are values").

The numeric values are a public interface: the API maps them to wire codes in one table,
journals and batch data may carry them. Never renumber; add new codes at the end of their
group.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    # validation 1xxx: the command is malformed or names something that does not exist
    UNKNOWN_INSTRUMENT = 1001
    PRICE_NOT_ON_TICK = 1002
    SIZE_NOT_ON_INCREMENT = 1003
    SIZE_NOT_POSITIVE = 1004
    SIZE_BELOW_MINIMUM = 1005
    PRICE_NOT_POSITIVE = 1006
    UNKNOWN_ACCOUNT = 1007
    DUPLICATE_CLIENT_ORDER_ID = 1008
    UNKNOWN_ORDER = 1009
    NOT_ORDER_OWNER = 1010
    INVALID_TIME_IN_FORCE = 1011
    INVALID_ORDER_TYPE = 1012
    INVALID_SIDE = 1013
    INSTRUMENT_EXISTS = 1014
    INVALID_INSTRUMENT = 1015
    INVALID_AMOUNT = 1016
    DEPOSIT_OUT_OF_ORDER = 1017
    INSTRUMENT_NOT_ACTIVE = 1018
    INVALID_ADDRESS = 1019
    CLIENT_ORDER_ID_TOO_LONG = 1020
    AMEND_NOTHING_TO_CHANGE = 1021
    AMEND_SIZE_NOT_ABOVE_FILLED = 1022
    INVALID_PRICE = 1023
    TOO_MANY_OPEN_ORDERS = 1024
    MARKET_HALTED = 1025  # the underlying's oracle is stale: only cancels and risk-reducing orders
    FORCED_REQUEST_SEEN = 1026  # a forced-withdrawal request id that was already served
    # oracle 15xx: a signed report or an oracle update that cannot be used
    ORACLE_BAD_SIGNATURE = 1501
    ORACLE_UNKNOWN_REPORTER = 1502
    ORACLE_STALE_REPORT = 1503
    ORACLE_DUPLICATE_REPORTER = 1504
    ORACLE_INVALID_VALUE = 1505
    ORACLE_MAX_MOVE = 1506
    ORACLE_NO_QUORUM = 1507
    ORACLE_FUTURE_REPORT = 1508
    ORACLE_WRONG_UNDERLYING = 1509
    ORACLE_NOT_CONFIGURED = 1510  # the genesis config lists no reporters
    # risk 2xxx: the command is well formed but the account cannot afford it
    INSUFFICIENT_MARGIN = 2001
    REDUCE_ONLY_WOULD_INCREASE = 2002
    INSUFFICIENT_FREE_COLLATERAL = 2003
    MARK_PRICE_UNAVAILABLE = 2004
    # matching 3xxx: the order cannot be matched as asked
    POST_ONLY_WOULD_CROSS = 3001
    FILL_OR_KILL_NOT_FILLED = 3002
    NO_LIQUIDITY = 3003


class CancelReason(IntEnum):
    """Why an order left the book without being filled (carried by OrderCancelled)."""

    REQUESTED = 1
    IOC_REMAINDER = 2
    SELF_TRADE = 3
    REDUCE_ONLY_NO_POSITION = 4
    CANCEL_ALL = 5
    AMENDED_AWAY = 6
    LIQUIDATION = 7  # the account is being liquidated (exchange-rules.md "Liquidation" step 1)
    EXPIRED = 8  # the instrument expired


class SequenceError(Exception):
    """A command out of sequence (gap, replay, or time going backwards).

    Not a rejection: the sequencer must never produce it, so the state transition refuses
    to apply the command at all.
    """
