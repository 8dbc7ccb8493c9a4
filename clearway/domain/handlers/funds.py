"""Deposit and Withdraw: the only ways money enters or leaves the exchange."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from clearway.domain.commands import Deposit, Withdraw
from clearway.domain.errors import ErrorCode
from clearway.domain.events import AccountCreated, Deposited, Event, Withdrawn
from clearway.domain.handlers.common import reject

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState

_ADDRESS = re.compile(r"0x[0-9a-f]{40}\Z")


def deposit(state: ExchangeState, cmd: Deposit) -> list[Event]:
    """Credit a vault deposit. ``deposit_id`` must be exactly the next one (the vault's
    order); the owner's account is created on its first deposit. Addresses are lower-case
    hex (the caller normalises checksummed forms)."""
    if cmd.deposit_id != state.last_deposit_id + 1:
        return reject(ErrorCode.DEPOSIT_OUT_OF_ORDER,
                      f"expected deposit id {state.last_deposit_id + 1}, got {cmd.deposit_id}")
    if cmd.amount <= 0:
        return reject(ErrorCode.INVALID_AMOUNT, "deposit amount must be positive")
    if not _ADDRESS.match(cmd.owner):
        return reject(ErrorCode.INVALID_ADDRESS, "owner must be a lower-case 0x-prefixed 20-byte hex address")
    events: list[Event] = []
    account_id = state.owners.get(cmd.owner)
    if account_id is None:
        account = state.create_account(cmd.owner)
        events.append(AccountCreated(account.account_id, account.owner))
    else:
        account = state.accounts[account_id]
    account.cash += cmd.amount
    state.last_deposit_id = cmd.deposit_id
    state.total_deposits += cmd.amount
    events.append(Deposited(account.account_id, cmd.amount, cmd.deposit_id, account.cash))
    return events


def withdraw(state: ExchangeState, cmd: Withdraw) -> list[Event]:
    """Debit ``amount`` for payment on L1. Needs amount ≤ free collateral (equity − initial
    requirement with open orders), so a withdrawal never leaves the account below its
    initial margin. Cash may go negative when a long position backs it (cash-based
    accounting, as dYdX v4's quote balance). Refused (MARKET_HALTED) while the account
    holds a position of a halted underlying: its free collateral rests on a stale price."""
    account = state.accounts.get(cmd.account)
    if account is None or cmd.account < 2:
        return reject(ErrorCode.UNKNOWN_ACCOUNT, "unknown account", cmd.account)
    if cmd.amount <= 0:
        return reject(ErrorCode.INVALID_AMOUNT, "withdrawal amount must be positive", cmd.account)
    margin = state.margin
    if state.halted and any(state.instruments[i].underlying in state.halted for i in account.positions):
        return reject(ErrorCode.MARKET_HALTED, "the account holds a position of a halted market", cmd.account)
    if (account.positions or account.open) and not margin.priced(account):
        return reject(ErrorCode.MARK_PRICE_UNAVAILABLE, "cannot value the account's positions", cmd.account)
    if cmd.amount > margin.free_collateral(account):
        return reject(ErrorCode.INSUFFICIENT_FREE_COLLATERAL, "withdrawal exceeds free collateral", cmd.account)
    account.cash -= cmd.amount
    state.total_withdrawals += cmd.amount
    return [Withdrawn(account.account_id, cmd.amount, account.cash)]
