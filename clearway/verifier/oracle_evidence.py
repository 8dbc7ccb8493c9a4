"""Oracle evidence for price commands — interim, until the domain has its oracle-update command.

Today the domain's price commands (``SetMarkPrices``, ``SetMarketData``) carry prices, not
the signed reports behind them, and the batch format (``clearway.commitment.batch``) carries
only domain commands. Until issue 4 adds an oracle-update command that carries the reports
and whose handler applies the quorum rules inside ``apply()``, a batch may carry the
reports next to its commands in an *evidence annex*, and verifiers check every evidenced
price command with the domain's own oracle rules (``clearway.domain.oracle.aggregate``:
signature, known reporter, one report per reporter, age, future, value range, max move,
quorum, median) — nothing is re-implemented here.

Annex format (the whole batch data posted on L1 when a batch has evidence)::

    "CWA" | version 1 | len(batch) (4 bytes, big-endian) | batch (encode_batch bytes)
          | MessagePack [[seq, [OracleReport, …]], …]     # seq strictly increasing

Data without the "CWA" magic is a plain batch (no evidence). Anything else that starts with
it but is not exactly this raises :class:`AnnexError` (the verifier treats it as
undecodable data).

Rules for an evidenced command (``check_prices``), at the command's timestamp:

- ``SetMarketData(U)``: ``aggregate`` of the reports on U must reach quorum and give
  exactly the command's index, stable price (0 = unchanged when no quorum of reports
  carries one) and expiries;
- ``SetMarkPrices``: every underlying in ``index`` must reach quorum with exactly that
  index, and every mark must be of an instrument on such an underlying; a perpetual's mark
  must equal its underlying's aggregated index (interim: the domain's perp mark rule of
  issue 4 replaces it).

A price command without evidence is an *operator price*: counted and reported, and refused
(ORACLE_MISSING) when the verifier is configured with ``require_oracle=True``.
Max move uses the last evidenced index of the underlying that the verifier accepted (kept
in its snapshot), at the time of the command that carried it.

Switch to the domain's command (issue 4): batches carry the oracle update as a domain
command (the batch codec's GENERIC column takes any new command type at once) and no annex;
``apply()`` rejects a bad update with a ``Rejected`` event (ORACLE_NO_QUORUM, …) and the
state root then differs from a sequencer's that applied it, so the verifier's replay catches
it; ``check_prices`` shrinks to counting updates and rejected reports from the replay's
events (the reporters and quorum then come from the genesis config, not from the
verifier's ``OracleParams``), and ROOT_MISMATCH alarms name the first rejected oracle update
of the batch as the diverging command.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import msgspec

from clearway.domain.commands import SetMarketData, SetMarkPrices
from clearway.domain.instruments import Kind
from clearway.domain.oracle import OracleParams, OracleReport, aggregate
from clearway.verifier.alarms import AffectedAccount, AlarmCode, Finding

ANNEX_MAGIC = b"CWA"
ANNEX_VERSION = 1
_HEADER = len(ANNEX_MAGIC) + 1 + 4

Evidence = dict[int, tuple[OracleReport, ...]]
_decoder = msgspec.msgpack.Decoder(list[tuple[int, tuple[OracleReport, ...]]])


class AnnexErrorCode(IntEnum):
    TRUNCATED = 1
    UNSUPPORTED_VERSION = 2
    MALFORMED = 3
    NOT_ASCENDING = 4


class AnnexError(ValueError):
    """Data that starts with the annex magic but is not a well-formed annex."""

    def __init__(self, code: AnnexErrorCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code


def encode_with_evidence(batch_data: bytes, evidence: Mapping[int, Sequence[OracleReport]]) -> bytes:
    """Batch data with an evidence annex; plain ``batch_data`` when ``evidence`` is empty."""
    if not evidence:
        return bytes(batch_data)
    body = msgspec.msgpack.encode([[seq, list(evidence[seq])] for seq in sorted(evidence)])
    return ANNEX_MAGIC + bytes([ANNEX_VERSION]) + len(batch_data).to_bytes(4, "big") + bytes(batch_data) + body


def split_evidence(data: bytes) -> tuple[bytes, Evidence]:
    """``(batch bytes, evidence by seq)`` of posted batch data (module docstring).

    Raises AnnexError on a malformed annex; never inspects the batch bytes themselves.
    """
    data = bytes(data)
    if not data.startswith(ANNEX_MAGIC):
        return data, {}
    if len(data) < _HEADER:
        raise AnnexError(AnnexErrorCode.TRUNCATED, "annex header is truncated")
    if data[3] != ANNEX_VERSION:
        raise AnnexError(AnnexErrorCode.UNSUPPORTED_VERSION, f"annex version {data[3]}")
    length = int.from_bytes(data[4:8], "big")
    if _HEADER + length > len(data):
        raise AnnexError(AnnexErrorCode.TRUNCATED, "the annex's batch is truncated")
    batch = data[_HEADER:_HEADER + length]
    try:
        rows = _decoder.decode(data[_HEADER + length:])
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as exc:
        raise AnnexError(AnnexErrorCode.MALFORMED, f"evidence: {exc}") from None
    evidence: Evidence = {}
    previous = -1
    for seq, reports in rows:
        if seq <= previous:
            raise AnnexError(AnnexErrorCode.NOT_ASCENDING, "evidence sequence numbers must increase")
        previous = seq
        evidence[seq] = reports
    return batch, evidence


@dataclass
class PriceCheck:
    """Outcome of :func:`check_prices` over one batch."""

    findings: list[Finding] = field(default_factory=list)
    oracle_updates: int = 0
    oracle_backed: int = 0
    operator_prices: int = 0
    reports: int = 0
    reports_rejected: int = 0
    accepted: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Underlying → (index, ts) accepted by this batch (for the next batch's max move)."""


def holders(state, underlying: str) -> tuple[AffectedAccount, ...]:
    """Accounts with a position or an open order on an instrument of ``underlying``."""
    ids = {i for i, spec in state.instruments.items() if spec.underlying == underlying}
    out = []
    for account_id in sorted(state.accounts):
        account = state.accounts[account_id]
        if any(i in ids and p.size for i, p in account.positions.items()) or any(i in ids for i in account.open):
            out.append(AffectedAccount(account_id, account.owner))
    return tuple(out)


def _aggregate(reports: Sequence[OracleReport], underlying: str, now_ms: int, params: OracleParams,
               last: Mapping[str, tuple[int, int]], result: PriceCheck):
    previous = last.get(underlying)
    mine = [r for r in reports if r.underlying == underlying]
    agg, rejected = aggregate(mine, underlying, now_ms, params, previous[0] if previous else None,
                              previous[1] if previous else None)
    result.reports += len(mine)
    result.reports_rejected += len(rejected)
    return agg, rejected, len(mine)


def check_prices(commands: Sequence, evidence: Evidence, state, params: OracleParams | None,
                 require: bool, last: Mapping[str, tuple[int, int]]) -> PriceCheck:
    """Check the batch's price commands against their evidence (module docstring).

    Parameters
    ----------
    commands : the batch's commands, in order.
    evidence : reports by sequence number (``split_evidence``).
    state : the ExchangeState before the batch (instruments, holders for the alarm).
    params : the oracle rules; None = no oracle configured (every price is an operator price).
    require : refuse price commands without evidence.
    last : underlying → (index, ts) of the last accepted evidenced index (max move).
    """
    result = PriceCheck()
    memory = dict(last)
    seqs = {c.seq for c in commands}
    for seq in evidence:
        if seq not in seqs:
            result.findings.append(Finding(AlarmCode.ORACLE_MISMATCH, f"evidence for seq {seq}, not in this batch", seq))
    for command in commands:
        t = type(command)
        if hasattr(command, "reports") and command.seq not in evidence:  # the domain's own oracle update (issue 4)
            result.oracle_updates += 1
            result.reports += len(command.reports)
            continue
        if t is not SetMarkPrices and t is not SetMarketData:
            if command.seq in evidence:
                result.findings.append(Finding(AlarmCode.ORACLE_MISMATCH,
                                               f"evidence attached to a {t.__name__}", command.seq))
            continue
        reports = evidence.get(command.seq)
        if reports is None or params is None:
            result.operator_prices += 1
            if require:
                underlyings = [command.underlying] if t is SetMarketData else sorted(command.index)
                affected = tuple(a for u in underlyings for a in holders(state, u))
                result.findings.append(Finding(AlarmCode.ORACLE_MISSING,
                                               f"{t.__name__} without signed oracle reports", command.seq, affected))
            continue
        finding = (_check_market_data if t is SetMarketData else _check_mark_prices)(
            command, reports, state, params, memory, result)
        if finding is not None:
            result.findings.append(finding)
        else:
            result.oracle_backed += 1
    result.accepted = {u: v for u, v in memory.items() if last.get(u) != v}
    return result


def _no_quorum(command, underlying: str, rejected, count: int, params: OracleParams, state) -> Finding:
    reasons = ", ".join(f"report {i}: {code.name}" for i, code in rejected) or "none rejected"
    passing = count - len(rejected)
    return Finding(AlarmCode.ORACLE_NO_QUORUM,
                   f"{underlying}: {passing} valid report(s) of {count}, quorum {params.quorum} ({reasons})",
                   command.seq, holders(state, underlying))


def _check_market_data(command: SetMarketData, reports, state, params, memory, result) -> Finding | None:
    underlying = command.underlying
    agg, rejected, count = _aggregate(reports, underlying, command.ts, params, memory, result)
    if agg is None:
        return _no_quorum(command, underlying, rejected, count, params, state)
    if (command.index, command.stable_price, tuple(command.expiries)) != (agg.index, agg.stable_price, agg.expiries):
        return Finding(AlarmCode.ORACLE_MISMATCH, f"{underlying}: the command's market data is not the reports' median "
                       f"(index {command.index} vs {agg.index})", command.seq, holders(state, underlying))
    memory[underlying] = (agg.index, command.ts)
    return None


def _check_mark_prices(command: SetMarkPrices, reports, state, params, memory, result) -> Finding | None:
    backed: dict[str, int] = {}
    for underlying in sorted(command.index):
        agg, rejected, count = _aggregate(reports, underlying, command.ts, params, memory, result)
        if agg is None:
            return _no_quorum(command, underlying, rejected, count, params, state)
        if agg.index != command.index[underlying]:
            return Finding(AlarmCode.ORACLE_MISMATCH, f"{underlying}: index {command.index[underlying]} is not the "
                           f"reports' median {agg.index}", command.seq, holders(state, underlying))
        backed[underlying] = agg.index
    for instrument, mark in sorted(command.marks.items()):
        spec = state.instruments.get(instrument)
        if spec is None:
            continue  # the domain rejects the command; nothing is priced by it
        if spec.underlying not in backed:
            return Finding(AlarmCode.ORACLE_MISSING, f"mark of {spec.name} without reports on {spec.underlying}",
                           command.seq, holders(state, spec.underlying))
        if spec.kind == Kind.PERPETUAL and mark != backed[spec.underlying]:
            return Finding(AlarmCode.ORACLE_MISMATCH, f"mark {mark} of {spec.name} is not the reports' index "
                           f"{backed[spec.underlying]}", command.seq, holders(state, spec.underlying))
    for underlying, index in backed.items():
        memory[underlying] = (index, command.ts)
    return None
