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
    # advanced order types (issue 9; README "Advanced order types")
    INVALID_TRIGGER_SOURCE = 1027  # a conditional order's ``trigger`` is not 1 mark, 2 index or 3 last trade
    INVALID_TRIGGER_PRICE = 1028  # trigger price <= 0 or not on the tick (or set on a non-conditional order)
    INVALID_DISPLAY_SIZE = 1029  # iceberg display size <= 0, off the size increment or below the minimum size
    DISPLAY_SIZE_ABOVE_TOTAL = 1030  # iceberg display size larger than the order's size
    NOT_A_RESTING_ORDER = 1031  # display size or expire_at on an order that cannot rest (IOC, FOK, market)
    EXPIRE_AT_NOT_IN_FUTURE = 1032  # good-til-time expire_at <= the command's timestamp
    TWAP_INVALID_INTERVAL = 1033  # TWAP interval outside 30 s .. 1 h
    TWAP_INVALID_DURATION = 1034  # TWAP duration outside 5 min .. 24 h or not a multiple of the interval
    TWAP_INVALID_PRICE_TOLERANCE = 1035  # TWAP price tolerance outside 0 .. 999,999 ppm
    TWAP_SIZE_TOO_SMALL = 1036  # TWAP size below (number of intervals) x the instrument's minimum size
    BATCH_CANCEL_EMPTY = 1037  # a batch cancel without order ids
    BATCH_CANCEL_TOO_MANY = 1038  # a batch cancel of more than 100 order ids
    BATCH_CANCEL_DUPLICATE_ID = 1039  # the same order id twice in one batch cancel
    INVALID_ORDER_ID = 1040  # an order id <= 0 in a batch cancel
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
    TRIGGER_WRONG_SIDE = 3004  # the trigger price is already reached: a stop-buy / take-profit-sell trigger
    #                            must be above the current trigger-source price, a stop-sell / take-profit-buy
    #                            trigger below it
    TRIGGER_PRICE_UNAVAILABLE = 3005  # the trigger source has no price yet (no mark, index or trade)


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
    GOOD_TIL_TIME = 9  # the order's expire_at was reached (clock.py)
    TWAP_COMPLETED = 10  # TwapEnded only: the parent filled completely (not a cancellation)
    TWAP_ELAPSED = 11  # TwapEnded only: the last interval ran with size left unfilled
    TWAP_BELOW_MINIMUM = 12  # TwapEnded only: what is left is below the instrument's minimum size


class SequenceError(Exception):
    """A command out of sequence (gap, replay, or time going backwards).

    Not a rejection: the sequencer must never produce it, so the state transition refuses
    to apply the command at all.
    """
