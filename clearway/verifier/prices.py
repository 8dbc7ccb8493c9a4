"""Price commands in a batch: the domain's signed oracle updates, and operator prices.

Prices reach the exchange state in two ways (``clearway.domain.commands``):

- ``OracleUpdate``: the reports exactly as the reporters signed them. ``apply()`` checks each
  report (signature, known reporter, one per reporter, age, future, value range, max move)
  and the quorum with the genesis config's oracle rules (``clearway.domain.oracle``), and
  rejects an update below quorum. The verifier does not judge reports itself: its replay
  does. A sequencer that posts a root as if it had applied a rejected update is refused
  (ROOT_MISMATCH), and the verifier names that update as the first diverging command
  (``Verifier._diagnose``: ORACLE_NO_QUORUM, or ORACLE_REJECTED for the other oracle codes).
- ``SetMarkPrices`` / ``SetMarketData``: operator prices, signed by nobody. They are counted
  and reported (what the operator is trusted with, like operator-attested orders), and
  refused (ORACLE_MISSING) by a verifier configured with ``require_oracle``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from clearway.domain.commands import SetMarketData, SetMarkPrices
from clearway.verifier.alarms import AffectedAccount, AlarmCode, Finding


@dataclass
class PriceCheck:
    """Outcome of :func:`check_prices` over one batch: findings, the oracle updates and the
    reports they carry, and the operator price commands."""

    findings: list[Finding] = field(default_factory=list)
    oracle_updates: int = 0
    reports: int = 0
    operator_prices: int = 0


def holders(state, underlying: str) -> tuple[AffectedAccount, ...]:
    """Accounts with a position or an open order on an instrument of ``underlying``: whom a
    price of that underlying affects."""
    ids = {i for i, spec in state.instruments.items() if spec.underlying == underlying}
    out = []
    for account_id in sorted(state.accounts):
        account = state.accounts[account_id]
        if any(i in ids and p.size for i, p in account.positions.items()) or any(i in ids for i in account.open):
            out.append(AffectedAccount(account_id, account.owner))
    return tuple(out)


def check_prices(commands: Sequence, state, require_oracle: bool) -> PriceCheck:
    """Count the batch's oracle updates (any command carrying ``reports``) and operator price
    commands; with ``require_oracle`` each operator price command is an ORACLE_MISSING
    finding naming the accounts its underlyings affect (``state``: before the batch)."""
    result = PriceCheck()
    for command in commands:
        reports = getattr(command, "reports", None)
        if reports is not None:
            result.oracle_updates += 1
            result.reports += len(reports)
            continue
        t = type(command)
        if t is not SetMarkPrices and t is not SetMarketData:
            continue
        result.operator_prices += 1
        if require_oracle:
            underlyings = [command.underlying] if t is SetMarketData else sorted(command.index)
            affected = tuple(a for u in underlyings for a in holders(state, u))
            result.findings.append(Finding(AlarmCode.ORACLE_MISSING, f"{t.__name__}: prices signed by no oracle "
                                           "reporter", command.seq, affected))
    return result
