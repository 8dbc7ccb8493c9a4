"""Signed oracle reports: digest, signature recovery, per-report checks, quorum and median.

Source: exchange-rules.md "Index, mark price and oracle". Reporters are secp256k1 keys
listed in the genesis config (as addresses). An oracle update carries one report per
reporter; each report is checked on its own — signature, known reporter, one report per
reporter, age ≤ ``max_age``, not from the future, values finite, positive and in range,
index within ``max_move`` of the last accepted index while that index is younger than
``max_move_window`` — and the update is accepted when at least ``quorum`` distinct
reporters pass. The aggregate is the median of each field over the passing reports
(median of an even count = floor of the mean of the two middle values); an expiry enters
the surface only if at least ``quorum`` passing reports carry it.

Pure functions: no clock (``now_ms`` is the command's timestamp), no I/O.

Report digest (what reporters sign): keccak256 of the ASCII domain tag
``"Clearway oracle report v1"`` followed by the MessagePack array encoding of
``(underlying, ts, index, stable_price, expiries)``; the signature is a 65-byte
secp256k1 (r, s, v) recoverable signature over that digest, v ∈ {0, 1, 27, 28}.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from eth_hash.auto import keccak
from eth_keys import keys
from eth_keys.exceptions import BadSignature, ValidationError

from clearway.domain.errors import ErrorCode
from clearway.domain.market import ExpiryData, FIXED_SCALE, MAX_ABS_RATE, MAX_STABLE_PRICE
from clearway.domain.units import PPM

DIGEST_TAG = b"Clearway oracle report v1"
MAX_PRICE = 10**18  # micro-USDC per contract: 10¹² USDC, far beyond any real price
MAX_SVI = 100 * FIXED_SCALE  # |SVI parameter| bound, in 10⁻¹² units


class OracleReport(msgspec.Struct, frozen=True, array_like=True):
    """One reporter's signed observation of one underlying.

    Attributes
    ----------
    reporter : str
        The reporter's address (lower-case 0x hex), which must equal the signer.
    underlying : str
    ts : int
        Observation time, ms since the epoch.
    index : Price
        Index price, micro-USDC per unit.
    stable_price : int
        USD per USDC in ppm (0 = this reporter does not report it).
    expiries : tuple[ExpiryData, ...]
        Per-expiry forward, rate and SVI parameters (market.py units); may be empty.
    signature : bytes
        65-byte recoverable secp256k1 signature of ``report_digest``.
    """

    reporter: str
    underlying: str
    ts: int
    index: int
    stable_price: int
    expiries: tuple[ExpiryData, ...]
    signature: bytes


@dataclass(frozen=True)
class OracleParams:
    """Oracle rules of the genesis config (defaults: exchange-rules.md)."""

    reporters: tuple[str, ...]
    quorum: int = 3
    max_age_ms: int = 60_000
    max_move_ppm: int = 100_000
    max_move_window_ms: int = 60_000
    halt_after_ms: int = 300_000
    max_future_ms: int = 5_000


def report_digest(underlying: str, ts: int, index: int, stable_price: int,
                  expiries: tuple[ExpiryData, ...] | list[ExpiryData]) -> bytes:
    """The 32-byte digest a reporter signs (module docstring)."""
    body = msgspec.msgpack.encode((underlying, ts, index, stable_price, tuple(expiries)))
    return keccak(DIGEST_TAG + body)


def sign_report(private_key: bytes, underlying: str, ts: int, index: int, stable_price: int,
                expiries: tuple[ExpiryData, ...] = ()) -> OracleReport:
    """Build and sign a report with a 32-byte private key (reporters and tests use this)."""
    key = keys.PrivateKey(private_key)
    digest = report_digest(underlying, ts, index, stable_price, expiries)
    signature = key.sign_msg_hash(digest).to_bytes()
    reporter = "0x" + key.public_key.to_canonical_address().hex()
    return OracleReport(reporter, underlying, ts, index, stable_price, tuple(expiries), signature)


def recover_signer(report: OracleReport) -> str | None:
    """Lower-case address that signed ``report``, or None if the signature is malformed."""
    sig = report.signature
    if len(sig) != 65:
        return None
    v = sig[64]
    if v >= 27:
        v -= 27
    if v not in (0, 1):
        return None
    try:
        signature = keys.Signature(sig[:64] + bytes([v]))
        digest = report_digest(report.underlying, report.ts, report.index, report.stable_price, report.expiries)
        public_key = signature.recover_public_key_from_msg_hash(digest)
    except (BadSignature, ValidationError, ValueError):
        return None
    return "0x" + public_key.to_canonical_address().hex()


def _values_valid(report: OracleReport) -> bool:
    """Every number finite (integers by construction), positive where it must be, in range;
    expiries strictly increasing."""
    if not 0 <= report.ts < 2**62:
        return False
    if not 0 < report.index <= MAX_PRICE:
        return False
    if not 0 <= report.stable_price <= MAX_STABLE_PRICE:
        return False
    previous = -1
    for e in report.expiries:
        if e.expiry_ms <= previous or not 0 < e.forward <= MAX_PRICE or abs(e.rate) > MAX_ABS_RATE:
            return False
        if any(abs(v) > MAX_SVI for v in (e.svi_a, e.svi_b, e.svi_rho, e.svi_m, e.svi_sigma)):
            return False
        if e.svi_b < 0 or e.svi_sigma <= 0 or abs(e.svi_rho) >= FIXED_SCALE:
            return False
        previous = e.expiry_ms
    return True


def check_report(report: OracleReport, underlying: str, now_ms: int, params: OracleParams,
                 last_index: int | None, last_index_ts: int | None) -> ErrorCode | None:
    """Why one report cannot be used, or None. Does not check duplicates (see ``aggregate``)."""
    if report.underlying != underlying:
        return ErrorCode.ORACLE_WRONG_UNDERLYING
    if report.reporter not in params.reporters:
        return ErrorCode.ORACLE_UNKNOWN_REPORTER
    if not _values_valid(report):  # before the digest: out-of-range integers cannot be encoded
        return ErrorCode.ORACLE_INVALID_VALUE
    if recover_signer(report) != report.reporter:
        return ErrorCode.ORACLE_BAD_SIGNATURE
    if report.ts > now_ms + params.max_future_ms:
        return ErrorCode.ORACLE_FUTURE_REPORT
    if now_ms - report.ts > params.max_age_ms:
        return ErrorCode.ORACLE_STALE_REPORT
    if last_index is not None and last_index_ts is not None and now_ms - last_index_ts <= params.max_move_window_ms:
        if abs(report.index - last_index) * PPM > params.max_move_ppm * last_index:
            return ErrorCode.ORACLE_MAX_MOVE
    return None


def median(values: list[int]) -> int:
    """Median of integers; for an even count, floor of the mean of the two middle values."""
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) // 2


@dataclass(frozen=True)
class Aggregate:
    """Result of an accepted update: medians and who counted."""

    index: int
    stable_price: int  # 0 when fewer than quorum reports carried one
    expiries: tuple[ExpiryData, ...]
    reporters: tuple[str, ...]
    ts: int  # median report time


def aggregate(reports: list[OracleReport] | tuple[OracleReport, ...], underlying: str, now_ms: int,
              params: OracleParams, last_index: int | None, last_index_ts: int | None,
              ) -> tuple[Aggregate | None, list[tuple[int, ErrorCode]]]:
    """Check every report and aggregate the passing ones.

    Returns ``(aggregate or None, rejections)`` where rejections lists ``(position in
    reports, code)`` for each report that did not count; a second report of a reporter is
    ``ORACLE_DUPLICATE_REPORTER`` (the first one counts if valid). The aggregate is None when
    fewer than ``params.quorum`` distinct reporters pass.
    """
    rejected: list[tuple[int, ErrorCode]] = []
    good: list[OracleReport] = []
    seen: set[str] = set()
    for position, report in enumerate(reports):
        if report.reporter in seen:
            rejected.append((position, ErrorCode.ORACLE_DUPLICATE_REPORTER))
            continue
        code = check_report(report, underlying, now_ms, params, last_index, last_index_ts)
        if code not in (ErrorCode.ORACLE_UNKNOWN_REPORTER, ErrorCode.ORACLE_BAD_SIGNATURE):
            seen.add(report.reporter)  # a forged report cannot use up a reporter's slot
        if code is not None:
            rejected.append((position, code))
        else:
            good.append(report)
    if len(good) < params.quorum:
        return None, rejected
    stables = [r.stable_price for r in good if r.stable_price > 0]
    by_expiry: dict[int, list[ExpiryData]] = {}
    for r in good:
        for e in r.expiries:
            by_expiry.setdefault(e.expiry_ms, []).append(e)
    expiries = []
    for expiry_ms in sorted(by_expiry):
        rows = by_expiry[expiry_ms]
        if len(rows) < params.quorum:
            continue
        fields = list(ExpiryData.__struct_fields__[1:])
        expiries.append(ExpiryData(expiry_ms, *(median([getattr(row, f) for row in rows]) for f in fields)))
    return Aggregate(
        index=median([r.index for r in good]),
        stable_price=median(stables) if len(stables) >= params.quorum else 0,
        expiries=tuple(expiries),
        reporters=tuple(sorted(r.reporter for r in good)),
        ts=median([r.ts for r in good]),
    ), rejected
