"""The one percentile rule of the benchmarks (bench/ is on sys.path: ``from stats import
percentile``), so their p50 / p99 figures are computed alike, and the one rule for which of
several runs is reported (``median_run``)."""

from __future__ import annotations

import math
from typing import Sequence


def percentile(values: Sequence[float], q: float, presorted: bool = False) -> float:
    """Nearest-rank q-quantile (0 < q ≤ 1): the ⌈q·n⌉-th smallest of ``values``. Raises
    ValueError when there are none."""
    if not values:
        raise ValueError("no samples")
    ordered = values if presorted else sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


def median_run(runs: Sequence[dict], key: str) -> dict:
    """The run whose ``key`` (e.g. its p99) is the median of the runs' — the upper middle
    one of an even count — so the figures reported together come from one run."""
    ordered = sorted(runs, key=lambda run: run[key])
    return ordered[len(ordered) // 2]
