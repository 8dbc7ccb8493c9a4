"""What a run did, in compact series and counters, for the report (``sim/report.py``).

A :class:`RunRecorder` is fed, in order, the domain events of every applied command
(:meth:`RunRecorder.on_events`) and, through explicit calls, what is not a domain event:
L1 batches and their gas, order latencies, margin snapshots, the insurance fund balance,
invariant checks and the on-chain baseline comparison. It keeps:

- bounded time series (:class:`Series`, at most ``max_points`` points each: when full,
  every second point is dropped and only every other later sample is kept, so the series
  stays evenly spaced in samples; the last sample is always kept): index price per
  underlying, perp mark per perpetual, funding rate per perpetual (hourly), open interest
  (perpetuals in contracts each, options in contracts together), insurance fund, margin
  utilisation percentiles, portfolio / standard margin ratio;
- hourly buckets of liquidations (episodes started, and notional: liquidation fills,
  backstop transfers and deleveraging, as ``stress.py`` counts them);
- option settlement prices per expiry; L1 batches (gas, trades, bytes); a log-binned
  histogram of order latencies (100 bins per decade, p50/p99 within 1.2 %); a pooled
  histogram of margin utilisation and the last snapshot's portfolio-vs-standard pairs;
- counters (:class:`RunCounters`) and, unless ``collect_fills=False``, the fills in the
  form the on-chain baseline replays (``chain.baseline.FillCollector``).

Open interest is rebuilt from the events that move positions (``Trade``,
``BackstopTransfer``, ``Deleveraged``, ``OptionsExpired`` closing every position of the
expired series), so the recorder must see the run from genesis.

Units: prices micro-USDC per contract and amounts micro-USDC inside the recorder (as the
domain); :func:`summary_from` converts amounts to USDC for the summary. Time: ms since the
epoch (the command's timestamp).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from clearway.chain.baseline import FillCollector
from clearway.domain.events import (
    BackstopTransfer, Deleveraged, Deposited, ExpiryPayoff, ForcedWithdrawalServed, FundingPaid, FundingTick,
    InstrumentListed, InsuranceCovered, LiquidationEnded, LiquidationFill, LiquidationStarted, MarketDataSet,
    MarketHalted, MarksUpdated, OptionsExpired, OracleReportRejected, OracleUpdated, OrderAccepted, OrderAmended,
    OrderCancelled, PricesSet, Rejected, Trade, Withdrawn,
)
from clearway.domain.accounts import MarginMode
from clearway.domain.commands import PlaceOrder
from clearway.domain.funding import RATE_SCALE
from clearway.domain.genesis import INSURANCE_FUND
from clearway.domain.instruments import InstrumentSpec, Kind
from clearway.sim.marketdata import usdc

HOUR_MS = 3_600_000
USDC = 1_000_000
DEFAULT_MAX_POINTS = 2_000
DEFAULT_SIZE_DECIMALS = 4
LATENCY_BINS_PER_DECADE = 100
LATENCY_MAX_DECADES = 9            # 1 µs .. 1,000 s
UTILISATION_BIN = 0.05
UTILISATION_MAX = 2.0              # the last bin holds everything at or above it (and equity <= 0)
MAX_PAIRS = 5_000


# ============================================================================ building blocks


class Series:
    """A bounded time series of ``(t_ms, value)``; see the module docstring.

    ``add`` is O(1) amortised; ``arrays()`` returns ``(t, v)`` numpy arrays (int64 ms,
    float64), the last sample included even when the stride skipped it.
    """

    __slots__ = ("max_points", "stride", "t", "v", "_count", "_last")

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS) -> None:
        if max_points < 4:
            raise ValueError("max_points must be at least 4")
        self.max_points = max_points
        self.stride = 1
        self.t: list[int] = []
        self.v: list[float] = []
        self._count = 0
        self._last: tuple[int, float] | None = None

    def add(self, t_ms: int, value: float) -> None:
        self._last = (t_ms, value)
        count = self._count
        self._count = count + 1
        if count % self.stride:
            return
        self.t.append(t_ms)
        self.v.append(value)
        if len(self.t) >= self.max_points:
            del self.t[1::2]
            del self.v[1::2]
            self.stride *= 2

    def __len__(self) -> int:
        """Samples added (not points kept)."""
        return self._count

    @property
    def last(self) -> float | None:
        return None if self._last is None else self._last[1]

    @property
    def first(self) -> float | None:
        return self.v[0] if self.v else None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        t, v = list(self.t), list(self.v)
        if self._last is not None and (not t or (t[-1], v[-1]) != self._last):
            t.append(self._last[0])
            v.append(self._last[1])
        return np.asarray(t, dtype=np.int64), np.asarray(v, dtype=np.float64)


class LatencyHistogram:
    """Log-binned histogram of latencies in microseconds: ``LATENCY_BINS_PER_DECADE`` bins
    per decade from 1 µs; values below 1 µs go to the first bin, above 10⁹ µs to the last.
    Quantiles are the geometric centre of the bin holding the nearest-rank sample (relative
    error below 10^(1/200) − 1 ≈ 1.2 %); ``min``, ``max`` and ``mean`` are exact."""

    def __init__(self) -> None:
        self.counts = np.zeros(LATENCY_BINS_PER_DECADE * LATENCY_MAX_DECADES, dtype=np.int64)
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def _bin(self, value: float) -> int:
        if value <= 1.0:
            return 0
        return min(int(math.log10(value) * LATENCY_BINS_PER_DECADE), len(self.counts) - 1)

    def add(self, value_us: float) -> None:
        if not value_us >= 0:  # also refuses NaN
            raise ValueError("a latency is a non-negative number of microseconds")
        self.counts[self._bin(value_us)] += 1
        self.count += 1
        self.total += value_us
        self.min = min(self.min, value_us)
        self.max = max(self.max, value_us)

    def add_many(self, values_us: Sequence[float] | np.ndarray) -> None:
        values = np.asarray(values_us, dtype=np.float64)
        if values.size == 0:
            return
        if not np.all(values >= 0):
            raise ValueError("a latency is a non-negative number of microseconds")
        bins = np.floor(np.log10(np.maximum(values, 1.0)) * LATENCY_BINS_PER_DECADE).astype(np.int64)
        np.clip(bins, 0, len(self.counts) - 1, out=bins)
        self.counts += np.bincount(bins, minlength=len(self.counts))
        self.count += int(values.size)
        self.total += float(values.sum())
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 < q ≤ 1) in µs, None when empty."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        centre = 10 ** ((index + 0.5) / LATENCY_BINS_PER_DECADE)
        return min(max(centre, self.min), self.max)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def edges(self) -> np.ndarray:
        """Bin edges in µs (len(counts) + 1)."""
        return 10 ** (np.arange(len(self.counts) + 1) / LATENCY_BINS_PER_DECADE)


@dataclass
class RunCounters:
    """Counts and sums of a run. Amounts micro-USDC; ``liquidations`` counts episodes (an
    account becoming liquidatable; passes while it stays so count once), as stress.py."""

    commands: int = 0
    orders: int = 0
    orders_rejected: int = 0   # rejected PlaceOrder commands (when on_events is given the command)
    rejections: int = 0       # Rejected events of any command
    cancels: int = 0
    amends: int = 0
    trades: int = 0
    traded_notional: int = 0
    fees: int = 0
    liquidations: int = 0
    liquidation_fills: int = 0
    liquidated_notional: int = 0
    backstop_transfers: int = 0
    adl_events: int = 0
    insurance_covered: int = 0
    funding_ticks: int = 0
    funding_paid: int = 0
    oracle_updates: int = 0
    oracle_rejected_reports: int = 0
    market_halts: int = 0
    expiries: int = 0
    expiry_payoffs: int = 0
    deposits: int = 0
    deposited: int = 0
    withdrawals: int = 0
    withdrawn: int = 0
    forced_withdrawals_served: int = 0
    batches: int = 0
    attestations: int = 0
    l1_gas: int = 0
    l1_trades: int = 0
    l1_bytes: int = 0
    invariant_checks: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One L1 batch: ``gas_used`` all the L1 gas it cost (submission and finalisation),
    ``trades`` it settled, ``data_bytes`` of batch data, ``ts_ms`` when it was posted."""

    batch_number: int
    gas_used: int
    trades: int
    data_bytes: int
    ts_ms: int | None = None
    commands: int | None = None


@dataclass
class _Instrument:
    kind: Kind | None
    scale: int


# ============================================================================ the recorder


class RunRecorder:
    """Accumulates a run for the report (module docstring).

    Parameters
    ----------
    instruments : mapping id → InstrumentSpec, or iterable of specs
        Consulted when an event needs an instrument's kind or size scale. A live mapping
        (e.g. ``state.instruments``) also covers instruments listed later; otherwise
        :meth:`add_instrument` them. An unknown instrument is taken as a perpetual when its
        ``InstrumentListed`` name ends in ``-PERP``, else as an option, with
        ``DEFAULT_SIZE_DECIMALS``.
    max_points : int
        Bound on every time series.
    collect_fills : bool
        Keep the fills for the on-chain baseline (``self.fills``, a FillCollector).
    """

    def __init__(self, instruments: Mapping[int, InstrumentSpec] | Iterable[InstrumentSpec] = (), *,
                 max_points: int = DEFAULT_MAX_POINTS, collect_fills: bool = True) -> None:
        self.max_points = max_points
        self._specs: Mapping[int, InstrumentSpec] = (
            instruments if isinstance(instruments, Mapping) else {s.instrument_id: s for s in instruments})
        self._extra_specs: dict[int, InstrumentSpec] = {}
        self._listed_names: dict[int, str] = {}
        self._info: dict[int, _Instrument] = {}
        self.counters = RunCounters()
        self.fills: FillCollector | None = FillCollector() if collect_fills else None
        self.start_ms: int | None = None
        self.end_ms: int | None = None
        # series
        self.index: dict[str, Series] = {}
        self.perp_mark: dict[int, Series] = {}
        self.funding_rate: dict[int, Series] = {}          # rate per 8 h, fraction
        self.open_interest_perp: dict[int, Series] = {}    # contracts
        self.open_interest_options = Series(max_points)    # contracts, all option series
        self.insurance_fund = Series(max_points)           # micro-USDC
        self.utilisation_p50 = Series(max_points)
        self.utilisation_p90 = Series(max_points)
        self.utilisation_p99 = Series(max_points)
        self.pm_ratio = Series(max_points)                 # Σ portfolio / Σ standard requirement
        self.settlements: dict[int, int] = {}              # expiry ms -> settlement price
        self.liquidations_hourly: dict[int, list[int]] = {}  # hour start ms -> [episodes, notional]
        self.batches: list[BatchRecord] = []
        self.latency = LatencyHistogram()
        self.utilisation_counts = np.zeros(int(round(UTILISATION_MAX / UTILISATION_BIN)) + 1, dtype=np.int64)
        self.pm_pairs: list[tuple[int, int]] = []          # last snapshot, (portfolio, standard)
        self.comparison: dict[str, Any] = {}
        self.problems: list[str] = []
        self.invariants_ok = True
        # open interest bookkeeping
        self._positions: dict[tuple[int, int], int] = {}
        self._oi: dict[int, int] = {}
        self._in_liquidation: set[int] = set()
        self._dispatch = {
            OrderAccepted: self._order_accepted, Rejected: self._rejected, OrderCancelled: self._cancelled,
            OrderAmended: self._amended, Trade: self._trade, OracleUpdated: self._oracle_updated,
            MarketDataSet: self._market_data, PricesSet: self._prices_set, MarksUpdated: self._marks_updated,
            OracleReportRejected: self._oracle_report_rejected, FundingTick: self._funding_tick,
            FundingPaid: self._funding_paid, LiquidationStarted: self._liquidation_started,
            LiquidationEnded: self._liquidation_ended, LiquidationFill: self._liquidation_fill,
            BackstopTransfer: self._backstop, Deleveraged: self._deleveraged,
            InsuranceCovered: self._insurance_covered, OptionsExpired: self._options_expired,
            ExpiryPayoff: self._expiry_payoff, Deposited: self._deposited, Withdrawn: self._withdrawn,
            ForcedWithdrawalServed: self._forced_served, MarketHalted: self._halted,
            InstrumentListed: self._listed,
        }

    # -- instruments -----------------------------------------------------------------------
    def add_instrument(self, spec: InstrumentSpec) -> None:
        """Make ``spec`` known (for instruments the ``instruments`` argument does not hold)."""
        self._extra_specs[spec.instrument_id] = spec
        self._info.pop(spec.instrument_id, None)

    def _instrument(self, instrument: int) -> _Instrument:
        info = self._info.get(instrument)
        if info is not None:
            return info
        spec = self._specs.get(instrument) or self._extra_specs.get(instrument)
        if spec is not None:
            info = _Instrument(spec.kind, spec.size_scale)
        else:
            name = self._listed_names.get(instrument, "")
            kind = Kind.PERPETUAL if name.endswith("-PERP") else Kind.OPTION if name else None
            info = _Instrument(kind, 10**DEFAULT_SIZE_DECIMALS)
            if kind is None:
                return info  # not cached: a spec or a listing may still arrive
        self._info[instrument] = info
        return info

    def _series(self, table: dict, key: Any) -> Series:
        series = table.get(key)
        if series is None:
            series = table[key] = Series(self.max_points)
        return series

    # -- events ----------------------------------------------------------------------------
    def on_events(self, ts_ms: int, events: Iterable[Any], command: Any = None) -> None:
        """The events of one applied command with its timestamp (ms); commands in order.
        ``command`` (optional) lets a rejected ``PlaceOrder`` count in ``orders_rejected``."""
        if self.start_ms is None:
            self.start_ms = ts_ms
        self.end_ms = ts_ms
        self.counters.commands += 1
        if not isinstance(events, list):
            events = list(events)
        if command is not None and type(command) is PlaceOrder and events and type(events[-1]) is Rejected:
            self.counters.orders_rejected += 1
        if self.fills is not None:
            self.fills.feed(events)
        dispatch = self._dispatch
        moved: set[int] = set()
        for event in events:
            handler = dispatch.get(type(event))
            if handler is not None:
                handler(ts_ms, event, moved)
        if moved:
            for instrument in sorted(moved):
                self._sample_open_interest(ts_ms, instrument)

    def _order_accepted(self, ts, e, moved) -> None:
        self.counters.orders += 1

    def _rejected(self, ts, e, moved) -> None:
        self.counters.rejections += 1

    def _cancelled(self, ts, e, moved) -> None:
        self.counters.cancels += 1

    def _amended(self, ts, e, moved) -> None:
        self.counters.amends += 1

    def _trade(self, ts, e, moved) -> None:
        c = self.counters
        c.trades += 1
        info = self._info.get(e.instrument) or self._instrument(e.instrument)
        c.traded_notional += e.size * e.price // info.scale
        c.fees += e.maker_fee + e.taker_fee
        self._move(e.taker_account, e.instrument, e.taker_side * e.size, moved)
        self._move(e.maker_account, e.instrument, -e.taker_side * e.size, moved)

    def _oracle_updated(self, ts, e, moved) -> None:
        self.counters.oracle_updates += 1
        self._series(self.index, e.underlying).add(ts, e.index)
        self._marks(ts, e.marks)

    def _market_data(self, ts, e, moved) -> None:
        self._series(self.index, e.underlying).add(ts, e.index)
        self._marks(ts, e.marks)

    def _prices_set(self, ts, e, moved) -> None:
        for underlying, price in sorted(e.index.items()):
            self._series(self.index, underlying).add(ts, price)
        self._marks(ts, e.marks)

    def _marks_updated(self, ts, e, moved) -> None:
        self._marks(ts, e.marks)

    def _marks(self, ts: int, marks: Mapping[int, int]) -> None:
        info = self._info
        for instrument, price in marks.items():
            known = info.get(instrument) or self._instrument(instrument)
            if known.kind == Kind.PERPETUAL:
                self._series(self.perp_mark, instrument).add(ts, price)

    def _oracle_report_rejected(self, ts, e, moved) -> None:
        self.counters.oracle_rejected_reports += 1

    def _funding_tick(self, ts, e, moved) -> None:
        self.counters.funding_ticks += 1
        self._series(self.funding_rate, e.instrument).add(e.ts, e.rate_8h / RATE_SCALE)

    def _funding_paid(self, ts, e, moved) -> None:
        if e.amount < 0:
            self.counters.funding_paid += -e.amount

    def _hour(self, ts: int) -> list[int]:
        hour = ts - ts % HOUR_MS
        bucket = self.liquidations_hourly.get(hour)
        if bucket is None:
            bucket = self.liquidations_hourly[hour] = [0, 0]
        return bucket

    def _liquidation_started(self, ts, e, moved) -> None:
        if e.account not in self._in_liquidation:
            self._in_liquidation.add(e.account)
            self.counters.liquidations += 1
            self._hour(ts)[0] += 1

    def _liquidation_ended(self, ts, e, moved) -> None:
        if not e.liquidatable:
            self._in_liquidation.discard(e.account)

    def _liquidated(self, ts: int, notional: int) -> None:
        self.counters.liquidated_notional += notional
        self._hour(ts)[1] += notional

    def _liquidation_fill(self, ts, e, moved) -> None:  # its Trade already moved the positions
        self.counters.liquidation_fills += 1
        self._liquidated(ts, e.size * e.price // self._instrument(e.instrument).scale)

    def _backstop(self, ts, e, moved) -> None:
        self.counters.backstop_transfers += 1
        self._liquidated(ts, e.size * e.price // self._instrument(e.instrument).scale)
        self._move(e.account, e.instrument, e.side * e.size, moved)
        self._move(INSURANCE_FUND, e.instrument, -e.side * e.size, moved)

    def _deleveraged(self, ts, e, moved) -> None:
        self.counters.adl_events += 1
        self._liquidated(ts, abs(e.quote))
        self._move(e.account, e.instrument, e.side * e.size, moved)
        self._move(e.counterparty, e.instrument, -e.side * e.size, moved)

    def _insurance_covered(self, ts, e, moved) -> None:
        self.counters.insurance_covered += e.amount

    def _options_expired(self, ts, e, moved) -> None:
        self.counters.expiries += 1
        self.settlements[e.expiry_ms] = e.settlement_price
        expired = set(e.instruments)
        for key in [k for k in self._positions if k[1] in expired]:
            self._move(key[0], key[1], -self._positions[key], moved)

    def _expiry_payoff(self, ts, e, moved) -> None:
        self.counters.expiry_payoffs += 1

    def _deposited(self, ts, e, moved) -> None:
        self.counters.deposits += 1
        self.counters.deposited += e.amount

    def _withdrawn(self, ts, e, moved) -> None:
        self.counters.withdrawals += 1
        self.counters.withdrawn += e.amount

    def _forced_served(self, ts, e, moved) -> None:
        self.counters.forced_withdrawals_served += 1

    def _halted(self, ts, e, moved) -> None:
        self.counters.market_halts += 1

    def _listed(self, ts, e, moved) -> None:
        self._listed_names[e.instrument] = e.name

    # -- open interest ---------------------------------------------------------------------
    def _move(self, account: int, instrument: int, delta: int, moved: set[int]) -> None:
        positions = self._positions
        key = (account, instrument)
        old = positions.get(key, 0)
        new = old + delta
        if new:
            positions[key] = new
        elif old:
            del positions[key]
        change = (new if new > 0 else 0) - (old if old > 0 else 0)
        if change:
            self._oi[instrument] = self._oi.get(instrument, 0) + change
            moved.add(instrument)

    def open_interest(self, instrument: int) -> int:
        """Open interest of ``instrument`` in lots (Σ long positions)."""
        return self._oi.get(instrument, 0)

    def _sample_open_interest(self, ts: int, instrument: int) -> None:
        info = self._instrument(instrument)
        if info.kind == Kind.PERPETUAL:
            self._series(self.open_interest_perp, instrument).add(ts, self._oi.get(instrument, 0) / info.scale)
        else:
            total = 0.0
            for other, lots in self._oi.items():
                other_info = self._instrument(other)
                if other_info.kind != Kind.PERPETUAL and lots:
                    total += lots / other_info.scale
            self.open_interest_options.add(ts, total)

    # -- explicit inputs -------------------------------------------------------------------
    def on_batch(self, batch_number: int, gas_used: int, trades: int, data_bytes: int, *,
                 ts_ms: int | None = None, commands: int | None = None, attestations: int = 0) -> None:
        """An L1 batch: ``gas_used`` all the gas it cost on L1 (submission and finalisation,
        receipts' ``gasUsed``), the ``trades`` it settled, its ``data_bytes``; optionally the
        verifier ``attestations`` it collected (else count them with :meth:`on_attestation`)."""
        if gas_used < 0 or trades < 0 or data_bytes < 0:
            raise ValueError("gas, trades and bytes of a batch are non-negative")
        self.batches.append(BatchRecord(batch_number, gas_used, trades, data_bytes, ts_ms, commands))
        c = self.counters
        c.batches += 1
        c.l1_gas += gas_used
        c.l1_trades += trades
        c.l1_bytes += data_bytes
        c.attestations += attestations

    def on_attestation(self, batch_number: int, count: int = 1) -> None:
        """``count`` verifier attestations of batch ``batch_number`` were posted."""
        self.counters.attestations += count

    def on_latency_us(self, value: float) -> None:
        """One order's execution latency (submission to acknowledgement), microseconds."""
        self.latency.add(value)

    def on_latencies_us(self, values: Sequence[float] | np.ndarray) -> None:
        """Many latencies at once (µs), as :meth:`on_latency_us` each."""
        self.latency.add_many(values)

    def on_insurance_fund(self, ts_ms: int, balance: int) -> None:
        """The insurance fund's cash (micro-USDC) at ``ts_ms`` (sample it as often as the
        plot needs, e.g. every simulated minute; the first and last give start and end)."""
        self.insurance_fund.add(ts_ms, balance)

    def on_margin_snapshot(self, ts_ms: int, utilisation: Sequence[float] | np.ndarray,
                           pm_pairs: Iterable[tuple[int, int]] = ()) -> None:
        """A margin snapshot of the accounts at ``ts_ms``.

        Parameters
        ----------
        utilisation : floats
            Per account with a requirement: initial margin / equity (0 = unused; ≥ 1 = no
            free collateral). Equity ≤ 0 should be passed as ``math.inf``. Pooled into a
            histogram (bins of 0.05 up to 2.0, the last bin open) and summarised as p50,
            p90 and p99 series (values capped at 2.0).
        pm_pairs : (portfolio requirement, standard requirement) pairs
            The same portfolios margined both ways, micro-USDC (initial margin). The last
            snapshot's pairs are kept (at most 5,000, evenly spaced) and Σ portfolio /
            Σ standard is a series.
        """
        values = np.asarray(utilisation, dtype=np.float64)
        if values.size:
            if np.isnan(values).any() or (values < 0).any():
                raise ValueError("utilisation values are non-negative numbers")
            bins = np.minimum(np.floor(np.minimum(values, UTILISATION_MAX) / UTILISATION_BIN),
                              len(self.utilisation_counts) - 1).astype(np.int64)
            self.utilisation_counts += np.bincount(bins, minlength=len(self.utilisation_counts))
            capped = np.minimum(values, UTILISATION_MAX)
            self.utilisation_p50.add(ts_ms, float(np.percentile(capped, 50)))
            self.utilisation_p90.add(ts_ms, float(np.percentile(capped, 90)))
            self.utilisation_p99.add(ts_ms, float(np.percentile(capped, 99)))
        pairs = [(int(p), int(s)) for p, s in pm_pairs]
        if pairs:
            if any(p < 0 or s < 0 for p, s in pairs):
                raise ValueError("margin requirements are non-negative")
            if len(pairs) > MAX_PAIRS:
                pairs = [pairs[(i * len(pairs)) // MAX_PAIRS] for i in range(MAX_PAIRS)]
            self.pm_pairs = pairs
            standard = sum(s for _, s in pairs)
            if standard:
                self.pm_ratio.add(ts_ms, sum(p for p, _ in pairs) / standard)

    def on_state(self, ts_ms: int, state: Any, margin: bool = True) -> None:
        """Sample an ``ExchangeState`` the caller may read (no command being applied): the
        insurance fund's cash and, if ``margin``, a :func:`margin_snapshot`."""
        self.on_insurance_fund(ts_ms, state.accounts[INSURANCE_FUND].cash)
        if margin:
            utilisation, pairs = margin_snapshot(state)
            self.on_margin_snapshot(ts_ms, utilisation, pairs)

    def on_comparison(self, baseline: Mapping[str, Any], *, clearway_gas_per_trade: float | None = None,
                      throughput_trades_per_s: float | None = None,
                      throughput_orders_per_s: float | None = None,
                      latency_p50_ms: float | None = None, latency_p99_ms: float | None = None) -> None:
        """The on-chain baseline's result (``chain.baseline.measure_baseline``) and Clearway's
        measured figures; a figure left None is taken from what the recorder measured
        (gas: Σ batch gas / Σ batch trades; latency: the histogram)."""
        self.comparison = {
            "baseline": dict(baseline),
            "clearway_gas_per_trade": clearway_gas_per_trade,
            "throughput_trades_per_s": throughput_trades_per_s,
            "throughput_orders_per_s": throughput_orders_per_s,
            "latency_p50_ms": latency_p50_ms,
            "latency_p99_ms": latency_p99_ms,
        }

    def on_invariant_check(self, ok: bool, problem: str = "") -> None:
        """The result of one invariant check; a failure keeps ``problem`` (first 100)."""
        self.counters.invariant_checks += 1
        if not ok:
            self.invariants_ok = False
            if len(self.problems) < 100:
                self.problems.append(problem or "invariant check failed")

    # -- derived figures -------------------------------------------------------------------
    def gas_per_trade(self) -> float | None:
        """Clearway's amortised L1 gas per trade: Σ batch gas / Σ batch trades."""
        c = self.counters
        return c.l1_gas / c.l1_trades if c.l1_trades else None

    def latency_ms(self, q: float) -> float | None:
        value = self.latency.quantile(q)
        return None if value is None else value / 1000.0

    def liquidation_buckets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hour start ms, episodes, notional micro-USDC), hours in order, empty hours
        between the first and the last included as zeros."""
        if not self.liquidations_hourly:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        hours = sorted(self.liquidations_hourly)
        start = hours[0]
        if self.start_ms is not None:
            start = min(start, self.start_ms - self.start_ms % HOUR_MS)
        end = max(hours[-1], (self.end_ms or hours[-1]) - (self.end_ms or hours[-1]) % HOUR_MS)
        t = np.arange(start, end + HOUR_MS, HOUR_MS, dtype=np.int64)
        counts = np.zeros(len(t), dtype=np.int64)
        notional = np.zeros(len(t), dtype=np.int64)
        for hour, (n, amount) in self.liquidations_hourly.items():
            i = (hour - start) // HOUR_MS
            counts[i] = n
            notional[i] = amount
        return t, counts, notional

    def utilisation_edges(self) -> np.ndarray:
        return np.arange(len(self.utilisation_counts) + 1) * UTILISATION_BIN


# ============================================================================ margin snapshot


def margin_snapshot(state: Any) -> tuple[list[float], list[tuple[int, int]]]:
    """Margin figures of every user account of ``state`` (an ``ExchangeState``) with a
    position or an open order, through the domain's ``state.margin.health``:

    - utilisation = initial margin / equity in the account's own margin mode (``math.inf``
      when equity ≤ 0; accounts with no requirement are left out);
    - for accounts holding an option position, the pair (portfolio-margin initial margin,
      standard initial margin) of the same portfolio (portfolio-margin.md vs
      exchange-rules.md "Standard margin"); accounts either mode cannot price are left out.

    Accounts 0 (fees) and 1 (insurance fund) are not users. Reads only; O(accounts).
    """
    utilisation: list[float] = []
    pairs: list[tuple[int, int]] = []
    margin = state.margin
    for account_id in sorted(state.accounts):
        if account_id <= INSURANCE_FUND:
            continue
        account = state.accounts[account_id]
        if not account.positions and not account.open:
            continue
        health = margin.health(account)
        if health is not None and health.initial_margin > 0:
            utilisation.append(health.initial_margin / health.equity if health.equity > 0 else math.inf)
        if any(state.instruments[i].kind == Kind.OPTION for i in account.positions):
            standard = margin.health(account, MarginMode.STANDARD)
            portfolio = margin.health(account, MarginMode.PORTFOLIO)
            if standard is not None and portfolio is not None:
                pairs.append((portfolio.initial_margin, standard.initial_margin))
    return utilisation, pairs


# ============================================================================ summary

SUMMARY_KEYS: dict[str, str] = {
    "orders": "orders accepted by the exchange (OrderAccepted events)",
    "trades": "fills (Trade events), liquidation fills included",
    "liquidations": "liquidation episodes: an account becoming liquidatable (repeated passes count once)",
    "adl_events": "auto-deleveraging fills (Deleveraged events)",
    "insurance_fund_start": "insurance fund at the first sample, USDC",
    "insurance_fund_end": "insurance fund at the last sample, USDC",
    "funding_paid": "funding paid by payers (settled FundingPaid), USDC",
    "batches": "L1 batches posted",
    "attestations": "verifier attestations posted",
    "gas_per_trade_clearway": "Clearway's amortised L1 gas per trade: all batch gas / trades settled",
    "gas_per_trade_onchain": "gas per trade of the on-chain settlement baseline (mean over the replayed fills)",
    "latency_p50_ms": "order execution latency, median, ms (measured)",
    "latency_p99_ms": "order execution latency, 99th percentile, ms (measured)",
    "escaped_total": "USDC paid out by escapes in the halt drill",
    "expected_total": "USDC the escapes should pay (Σ account values at the last finalised root)",
    "invariants_ok": "every invariant check of the run passed",
}
"""Keys every summary has (value None when the run did not measure it), with meaning and unit."""


OTHER_KEYS: dict[str, str] = {
    "commands": "commands applied (on_events calls)",
    "orders_rejected": "PlaceOrder commands rejected",
    "cancels": "orders or remainders that left the book (OrderCancelled)",
    "traded_notional": "Σ price × size of all trades, USDC",
    "fees": "Σ maker and taker fees net of rebates, USDC",
    "liquidation_fills": "liquidation orders' fills against the book",
    "liquidated_notional": "notional of liquidation fills, backstop transfers and deleveraging, USDC",
    "backstop_transfers": "option positions moved to the insurance fund",
    "insurance_covered": "negative equity the insurance fund paid, USDC",
    "oracle_updates": "accepted oracle updates",
    "oracle_rejected_reports": "oracle reports that did not count",
    "funding_ticks": "hourly funding rates set",
    "expiries": "option expiries settled",
    "settlement_prices": "option settlement price per expiry (UTC), USDC",
    "deposits": "deposits credited",
    "withdrawals": "withdrawals",
    "forced_withdrawals_served": "forced withdrawals served",
    "l1_gas": "all L1 gas of the batches",
    "l1_bytes": "batch data posted to L1, bytes",
    "latency_samples": "orders whose latency was measured",
    "onchain_max_trades_per_s": "on-chain baseline: 30M gas / gas per trade / 12 s",
    "onchain_trades_replayed": "fills the baseline settled on chain",
}
"""Descriptions of the further keys :func:`summary_from` fills."""


def _iso(ms: int) -> str:
    return str(np.datetime64(int(ms), "ms").astype("datetime64[s]")) + "Z"


def summary_from(recorder: RunRecorder, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The run summary: every key of :data:`SUMMARY_KEYS` (in that order), then further
    figures the recorder knows, then ``extra``'s other keys.

    What the recorder cannot know comes from ``extra`` (``escaped_total``,
    ``expected_total``, and anything measured outside it); a key in ``extra`` overrides the
    recorder's value (e.g. ``funding_paid`` including funding owed but not yet settled).
    ``invariants_ok`` is the recorder's flag and ``extra["invariants_ok"]`` when given.
    Amounts in USDC (floats rounded to the micro-USDC); latency in ms.
    """
    extra = dict(extra or {})
    c = recorder.counters
    baseline = recorder.comparison.get("baseline", {})
    gas_clearway = recorder.comparison.get("clearway_gas_per_trade") or recorder.gas_per_trade()
    p50 = recorder.comparison.get("latency_p50_ms") or recorder.latency_ms(0.50)
    p99 = recorder.comparison.get("latency_p99_ms") or recorder.latency_ms(0.99)
    invariants = recorder.invariants_ok and bool(extra.pop("invariants_ok", True))
    summary: dict[str, Any] = {
        "orders": c.orders,
        "trades": c.trades,
        "liquidations": c.liquidations,
        "adl_events": c.adl_events,
        "insurance_fund_start": usdc(recorder.insurance_fund.first),
        "insurance_fund_end": usdc(recorder.insurance_fund.last),
        "funding_paid": usdc(c.funding_paid),
        "batches": c.batches,
        "attestations": c.attestations,
        "gas_per_trade_clearway": None if gas_clearway is None else round(gas_clearway, 1),
        "gas_per_trade_onchain": None if baseline.get("gas_per_trade") is None
        else round(float(baseline["gas_per_trade"]), 1),
        "latency_p50_ms": None if p50 is None else round(p50, 3),
        "latency_p99_ms": None if p99 is None else round(p99, 3),
        "escaped_total": None,
        "expected_total": None,
        "invariants_ok": invariants,
    }
    summary.update({
        "commands": c.commands,
        "orders_rejected": c.orders_rejected,
        "cancels": c.cancels,
        "traded_notional": usdc(c.traded_notional),
        "fees": usdc(c.fees),
        "liquidation_fills": c.liquidation_fills,
        "liquidated_notional": usdc(c.liquidated_notional),
        "backstop_transfers": c.backstop_transfers,
        "insurance_covered": usdc(c.insurance_covered),
        "oracle_updates": c.oracle_updates,
        "oracle_rejected_reports": c.oracle_rejected_reports,
        "funding_ticks": c.funding_ticks,
        "expiries": c.expiries,
        "settlement_prices": {_iso(k): usdc(v) for k, v in sorted(recorder.settlements.items())},
        "deposits": c.deposits,
        "withdrawals": c.withdrawals,
        "forced_withdrawals_served": c.forced_withdrawals_served,
        "l1_gas": c.l1_gas,
        "l1_bytes": c.l1_bytes,
        "latency_samples": recorder.latency.count,
    })
    if baseline:
        summary["onchain_max_trades_per_s"] = baseline.get("max_trades_per_s")
        summary["onchain_trades_replayed"] = baseline.get("trades_settled")
    if recorder.problems:
        summary["problems"] = list(recorder.problems)
    summary.update(extra)
    return summary


def comparison_rows(recorder: RunRecorder, summary: Mapping[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """The comparison table: (figure, Clearway, on-chain baseline), formatted for display.

    Throughput of Clearway is the measured one (``throughput_trades_per_s`` of
    :meth:`RunRecorder.on_comparison`, else ``summary["throughput_trades_per_s"]``); the
    baseline's is what a 30M-gas block every 12 s allows at its measured gas per trade.
    """
    summary = summary or {}
    comparison = recorder.comparison
    baseline = comparison.get("baseline", {})
    gas_cw = comparison.get("clearway_gas_per_trade") or recorder.gas_per_trade()
    gas_bl = baseline.get("gas_per_trade")
    block = baseline.get("block_gas_limit", 30_000_000)
    block_time = baseline.get("block_time_s", 12)
    p50 = comparison.get("latency_p50_ms") or recorder.latency_ms(0.50)
    p99 = comparison.get("latency_p99_ms") or recorder.latency_ms(0.99)
    tps = comparison.get("throughput_trades_per_s") or summary.get("throughput_trades_per_s")
    ops = comparison.get("throughput_orders_per_s") or summary.get("throughput_orders_per_s")

    def num(value: float | None, digits: int = 0) -> str:
        return "n/a" if value is None else f"{value:,.{digits}f}"

    rows = [
        ("L1 gas per trade", num(gas_cw, 1) + " (amortised over batches)",
         num(gas_bl, 0) + (f" (mean; p50 {num(baseline.get('gas_per_trade_p50'))})" if gas_bl else "")),
        (f"trades per {block / 1e6:.0f}M-gas block", num(block / gas_cw if gas_cw else None),
         num(block / gas_bl if gas_bl else None)),
        ("throughput, trades/s", num(tps, 1) + (" (measured)" if tps else ""),
         num(baseline.get("max_trades_per_s"), 1) + (f" (bound: {block / 1e6:.0f}M gas / {block_time} s block)"
                                                     if gas_bl else "")),
        ("execution latency p50 / p99, ms", f"{num(p50, 2)} / {num(p99, 2)} (measured)",
         f"≥ {block_time * 1000:,} (inclusion in an L1 block)"),
    ]
    if ops:
        rows.insert(3, ("throughput, orders/s", num(ops, 1) + " (measured)", "n/a"))
    if baseline:
        rows.append(("fills replayed on the baseline", f"{recorder.counters.trades:,} trades in the run",
                     f"{baseline.get('trades_settled', 0):,} of {baseline.get('trades', 0):,}"
                     + (f", {baseline['reverted']} reverted" if baseline.get("reverted") else "")))
    return rows
