"""SetMarginMode: move an account between standard and portfolio margin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.accounts import MarginMode
from clearway.domain.commands import SetMarginMode
from clearway.domain.errors import ErrorCode
from clearway.domain.events import Event, MarginModeSet
from clearway.domain.handlers.common import reject

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState

_MODES = {int(m): m for m in MarginMode}


def set_margin_mode(state: ExchangeState, cmd: SetMarginMode) -> list[Event]:
    """Switch ``cmd.account`` to ``cmd.mode``, only if its initial surplus in the new mode
    (open orders counted at their limit price, health.Margin.health) is ≥ 0.

    Rejections (nothing changes): UNKNOWN_ACCOUNT (no such account, or a system account);
    INVALID_ORDER_TYPE (unknown mode, or already in it); MARK_PRICE_UNAVAILABLE (something
    the account holds cannot be valued in the new mode, e.g. an option without market data
    for portfolio margin); INSUFFICIENT_MARGIN (initial surplus < 0 in the new mode).
    """
    account = state.accounts.get(cmd.account)
    if account is None or cmd.account < 2:
        return reject(ErrorCode.UNKNOWN_ACCOUNT, "unknown account", cmd.account)
    mode = _MODES.get(cmd.mode)
    if mode is None:
        return reject(ErrorCode.INVALID_ORDER_TYPE, "margin mode must be 1 (standard) or 2 (portfolio)", cmd.account)
    if mode is account.margin_mode:
        return reject(ErrorCode.INVALID_ORDER_TYPE, "the account is already in this margin mode", cmd.account)
    health = state.margin.health(account, mode)
    if health is None:
        return reject(ErrorCode.MARK_PRICE_UNAVAILABLE, "cannot value the account in the new mode", cmd.account)
    if health.initial_surplus < 0:
        return reject(ErrorCode.INSUFFICIENT_MARGIN, "the account would be below initial margin in the new mode",
                      cmd.account)
    account.margin_mode = mode
    return [MarginModeSet(account.account_id, int(mode))]
