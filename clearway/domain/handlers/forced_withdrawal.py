"""ForcedWithdrawal: serve a vault forced-withdrawal request inside the state machine.

DESIGN.md "Liveness": a user's forced-withdrawal request on L1 must be included in a batch
within ``forced_action_deadline``. The command carries the vault's request id, so serving
is idempotent by construction: the state keeps every served id and refuses a second
command for it (``FORCED_REQUEST_SEEN``). Every request is served exactly once, possibly
with 0:

    paid = max(0, min(requested, free collateral))

where free collateral is the account's initial surplus (health.Margin.free_collateral:
equity with unsettled funding − initial margin with open orders). Nothing is paid when
the owner has no user account, when the account cannot be priced, or while it holds a
position of a halted underlying (its free collateral would rest on a stale price; the
same rule as ``Withdraw``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearway.domain.commands import ForcedWithdrawal
from clearway.domain.errors import ErrorCode
from clearway.domain.events import Event, ForcedWithdrawalServed
from clearway.domain.handlers.common import reject

if TYPE_CHECKING:
    from clearway.domain.state import ExchangeState


def forced_withdrawal(state: ExchangeState, cmd: ForcedWithdrawal) -> list[Event]:
    """Handle ForcedWithdrawal (module docstring). Rejections (nothing changes, the id is
    not recorded): FORCED_REQUEST_SEEN (id already served), INVALID_AMOUNT (negative
    amount or an id < 1)."""
    if cmd.request_id in state.forced_served:
        return reject(ErrorCode.FORCED_REQUEST_SEEN, f"forced request {cmd.request_id} was already served")
    if cmd.amount < 0 or cmd.request_id < 1:
        return reject(ErrorCode.INVALID_AMOUNT, "forced request ids start at 1 and amounts are non-negative")
    account_id = state.owners.get(cmd.owner.lower(), -1)
    paid = 0
    if account_id >= 2:
        account = state.accounts[account_id]
        paid = min(cmd.amount, withdrawable(state, account))
    state.forced_served.add(cmd.request_id)
    if paid > 0:
        state.accounts[account_id].cash -= paid
        state.total_withdrawals += paid
    else:
        paid = 0
    return [ForcedWithdrawalServed(cmd.request_id, account_id, cmd.amount, paid)]


def withdrawable(state: ExchangeState, account) -> int:
    """Free collateral of ``account`` (micro-USDC, may be negative); 0 when it cannot be
    priced or holds a position of a halted underlying."""
    margin = state.margin
    if state.halted and any(state.instruments[i].underlying in state.halted for i in account.positions):
        return 0
    if (account.positions or account.open) and not margin.priced(account):
        return 0
    return margin.free_collateral(account)
