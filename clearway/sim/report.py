"""The HTML report of a run: ``index.html`` with tables and PNG plots (matplotlib, Agg).

``write_report(out_dir, summary, recorder)`` writes into ``out_dir``:

- ``index.html``: the summary table (keys of ``recorder.SUMMARY_KEYS`` first, with their
  meaning), the comparison table (Clearway's amortised L1 gas per trade, measured latency
  and throughput, against the on-chain settlement baseline's gas per trade and its
  throughput under a 30M-gas, 12-s block), and the plots below. Self-contained: inline
  CSS, no script, images referenced by relative file name.
- ``summary.json``: the summary dict.
- the PNGs (:data:`PLOTS`): prices (index, perp mark, option settlement prices per
  expiry), funding rate, open interest, liquidations per hour (count and notional),
  insurance fund, margin utilisation, portfolio vs standard margin, L1 gas per batch and
  per trade, order latency histogram. A plot without data says so in the image.

Figures are drawn with ``matplotlib.figure.Figure`` (no pyplot state, safe in threads);
PNG metadata carries no software version, so the same run gives the same bytes for a given
matplotlib.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from clearway.sim.recorder import OTHER_KEYS, SUMMARY_KEYS, USDC, RunRecorder, comparison_rows

PLOTS: dict[str, str] = {
    "prices.png": "Index, perpetual mark and option settlement prices",
    "funding.png": "Funding rate (hourly, per 8 h)",
    "open_interest.png": "Open interest",
    "liquidations.png": "Liquidations per hour: episodes and notional",
    "insurance_fund.png": "Insurance fund",
    "margin_utilisation.png": "Margin utilisation (initial margin / equity)",
    "pm_vs_standard.png": "Portfolio vs standard margin, same portfolios",
    "l1_gas.png": "L1 gas per batch and per trade",
    "latency.png": "Order execution latency",
}
"""File name → caption of every plot ``write_report`` draws."""

_SIZE = (9.0, 4.0)
_DPI = 100
_PNG_META = {"Software": None}


def write_report(out_dir: str | Path, summary: Mapping[str, Any], recorder: RunRecorder,
                 title: str = "Clearway run report") -> Path:
    """Write the report (module docstring) and return the path of ``index.html``.

    ``out_dir`` is created if needed; files of an earlier report there are overwritten.
    Raises OSError when it cannot be written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    drawers: dict[str, Callable[[Any, RunRecorder], None]] = {
        "prices.png": _prices,
        "funding.png": _funding,
        "open_interest.png": _open_interest,
        "liquidations.png": _liquidations,
        "insurance_fund.png": _insurance_fund,
        "margin_utilisation.png": _utilisation,
        "pm_vs_standard.png": _pm_vs_standard,
        "l1_gas.png": _l1_gas,
        "latency.png": _latency,
    }
    for name, draw in drawers.items():
        _save(out / name, draw, recorder)
    (out / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2, sort_keys=False) + "\n")
    index = out / "index.html"
    index.write_text(_html(title, summary, recorder))
    return index


# ============================================================================ HTML


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 960px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
figure { margin: 1.5em 0; } figcaption { font-size: 0.9em; color: #555; }
img { max-width: 100%; }
.note { font-size: 0.9em; color: #555; }
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.6f}".rstrip("0").rstrip(".") if abs(value) < 1e15 else f"{value:.6g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(_jsonable(value))
    return str(value)


def _html(title: str, summary: Mapping[str, Any], recorder: RunRecorder) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if recorder.start_ms is not None:
        start = np.datetime64(recorder.start_ms, "ms")
        end = np.datetime64(recorder.end_ms, "ms")
        parts.append(f'<p class="note">Simulated time {esc(str(start))} → {esc(str(end))} UTC; '
                     f"{recorder.counters.commands:,} commands.</p>")

    parts.append("<h2>Clearway vs on-chain settlement</h2>")
    parts.append("<table><tr><th>figure</th><th>Clearway</th><th>on-chain baseline</th></tr>")
    for figure, clearway, onchain in comparison_rows(recorder, summary):
        parts.append(f'<tr><td>{esc(figure)}</td><td class="num">{esc(clearway)}</td>'
                     f'<td class="num">{esc(onchain)}</td></tr>')
    parts.append("</table>")
    parts.append('<p class="note">Baseline: every fill settled on L1 by its own transaction '
                 "(OnchainSettlement.vy: two EIP-712 order signatures, fill accounting, positions, "
                 "cash and fees, collateral check), the run's fills replayed on the same embedded "
                 "chain; gas from receipts, calldata included. Clearway: all L1 gas of the batches "
                 "(submission and finalisation) divided by the trades they settled.</p>")

    parts.append("<h2>Summary</h2>")
    parts.append("<table><tr><th>key</th><th>value</th><th>meaning</th></tr>")
    keys = list(SUMMARY_KEYS) + [k for k in summary if k not in SUMMARY_KEYS]
    for key in keys:
        value = summary.get(key)
        parts.append(f'<tr><td>{esc(key)}</td><td class="num">{esc(_fmt(value))}</td>'
                     f"<td>{esc(SUMMARY_KEYS.get(key) or OTHER_KEYS.get(key, ''))}</td></tr>")
    parts.append("</table>")

    parts.append("<h2>Plots</h2>")
    for name, caption in PLOTS.items():
        parts.append(f'<figure><img src="{esc(name)}" alt="{esc(caption)}">'
                     f"<figcaption>{esc(caption)}</figcaption></figure>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ============================================================================ plots


def _save(path: Path, draw: Callable[[Any, RunRecorder], None], recorder: RunRecorder) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
    draw(figure, recorder)
    figure.savefig(path, format="png", metadata=_PNG_META)


def _dates(t_ms: np.ndarray) -> np.ndarray:
    return np.asarray(t_ms, dtype="datetime64[ms]")


def _time_axis(ax: Any, narrow: bool = False) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if narrow:
        ax.tick_params(axis="x", labelsize=7, labelrotation=30)
    ax.grid(True, alpha=0.3)


def _finish(ax: Any, drawn: bool, what: str) -> None:
    """A time plot's legend and axis, or the "no data" note when nothing was drawn."""
    if not drawn:
        _no_data(ax, what)
        return
    ax.legend(loc="best", fontsize=8)
    _time_axis(ax)


def _thousands(axis: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))


def _no_data(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} recorded in this run", ha="center", va="center", transform=ax.transAxes,
            color="#777")
    ax.set_xticks([])
    ax.set_yticks([])


def _prices(figure: Any, r: RunRecorder) -> None:
    ax = figure.subplots()
    ax.set_title("Index, perp mark and option settlement prices (USDC)")
    drawn = False
    for underlying, series in sorted(r.index.items()):
        t, v = series.arrays()
        if len(t):
            ax.plot(_dates(t), v / USDC, lw=1.0, label=f"{underlying} index")
            drawn = True
    for instrument, series in sorted(r.perp_mark.items()):
        t, v = series.arrays()
        if len(t):
            ax.plot(_dates(t), v / USDC, lw=0.8, alpha=0.8, label=f"perp mark (instrument {instrument})")
            drawn = True
    if r.settlements:
        expiries = sorted(r.settlements)
        ax.scatter(_dates(np.array(expiries)), np.array([r.settlements[e] for e in expiries]) / USDC,
                   marker="D", color="black", zorder=3, label="option settlement price")
        for e in expiries:
            ax.annotate(f"{r.settlements[e] / USDC:,.0f}", (_dates(np.array([e]))[0], r.settlements[e] / USDC),
                        textcoords="offset points", xytext=(4, 6), fontsize=8)
        drawn = True
    _finish(ax, drawn, "prices")


def _funding(figure: Any, r: RunRecorder) -> None:
    ax = figure.subplots()
    ax.set_title("Funding rate per 8 h (%), set hourly")
    drawn = False
    for instrument, series in sorted(r.funding_rate.items()):
        t, v = series.arrays()
        ax.step(_dates(t), v * 100, where="post", lw=1.0, label=f"instrument {instrument}")
        drawn = True
    if drawn:
        ax.axhline(0, color="#999", lw=0.6)
    _finish(ax, drawn, "funding ticks")


def _open_interest(figure: Any, r: RunRecorder) -> None:
    ax = figure.subplots()
    ax.set_title("Open interest (contracts)")
    drawn = False
    for instrument, series in sorted(r.open_interest_perp.items()):
        t, v = series.arrays()
        ax.step(_dates(t), v, where="post", lw=1.0, label=f"perp (instrument {instrument})")
        drawn = True
    if len(r.open_interest_options):
        t, v = r.open_interest_options.arrays()
        ax.step(_dates(t), v, where="post", lw=1.0, label="options, all series")
        drawn = True
    _finish(ax, drawn, "positions")


def _liquidations(figure: Any, r: RunRecorder) -> None:
    ax = figure.subplots()
    ax.set_title("Liquidations per hour")
    t, counts, notional = r.liquidation_buckets()
    if not len(t):
        _no_data(ax, "liquidations")
        return
    width = np.timedelta64(50, "m")
    ax.bar(_dates(t) + np.timedelta64(30, "m"), counts, width=width, color="#c44", alpha=0.7,
           label="episodes started")
    ax.set_ylabel("episodes")
    twin = ax.twinx()
    twin.plot(_dates(t) + np.timedelta64(30, "m"), notional / USDC, color="black", lw=1.0,
              marker=".", label="notional liquidated")
    twin.set_ylabel("notional (USDC)")
    _thousands(twin.yaxis)
    handles = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", fontsize=8)
    _time_axis(ax)


def _insurance_fund(figure: Any, r: RunRecorder) -> None:
    ax = figure.subplots()
    ax.set_title("Insurance fund (USDC)")
    if not len(r.insurance_fund):
        _no_data(ax, "insurance fund samples")
        return
    t, v = r.insurance_fund.arrays()
    ax.step(_dates(t), v / USDC, where="post", lw=1.2)
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    _time_axis(ax)


def _utilisation(figure: Any, r: RunRecorder) -> None:
    left, right = figure.subplots(1, 2, width_ratios=(1, 1.4))
    left.set_title("Distribution (all snapshots)")
    right.set_title("Percentiles over time")
    counts = r.utilisation_counts
    if counts.sum() == 0:
        _no_data(left, "margin snapshots")
        _no_data(right, "margin snapshots")
        return
    edges = r.utilisation_edges()
    left.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#47a", edgecolor="white")
    left.set_xlabel(f"initial margin / equity (last bin: ≥ {edges[-2]:.2f})")
    left.set_ylabel("account snapshots")
    for label, series in (("p50", r.utilisation_p50), ("p90", r.utilisation_p90), ("p99", r.utilisation_p99)):
        t, v = series.arrays()
        right.plot(_dates(t), v, lw=1.0, label=label)
    right.axhline(1.0, color="#c44", lw=0.8, ls="--", label="no free collateral")
    right.set_ylabel(f"initial margin / equity (capped at {edges[-2]:.0f})")
    right.legend(loc="best", fontsize=8)
    _time_axis(right, narrow=True)


def _pm_vs_standard(figure: Any, r: RunRecorder) -> None:
    left, right = figure.subplots(1, 2)
    left.set_title("Last snapshot: same portfolios")
    right.set_title("Σ portfolio / Σ standard over time")
    if not r.pm_pairs:
        _no_data(left, "portfolio-margin comparisons")
        _no_data(right, "portfolio-margin comparisons")
        return
    pairs = np.array(r.pm_pairs, dtype=np.float64) / USDC
    left.scatter(pairs[:, 1], pairs[:, 0], s=8, alpha=0.6)
    positive = pairs[pairs > 0]
    wide = positive.size == pairs.size and positive.max() > 100 * positive.min()
    low = float(positive.min()) if wide else 0.0
    top = float(max(pairs.max(), 1e-6))
    left.plot([low, top], [low, top], color="#999", lw=0.8, ls="--", label="equal")
    if wide:  # requirements spanning orders of magnitude: log-log
        left.set_xscale("log")
        left.set_yscale("log")
    else:
        _thousands(left.xaxis)
        _thousands(left.yaxis)
    left.set_xlabel("standard initial margin (USDC)")
    left.set_ylabel("portfolio initial margin (USDC)")
    left.legend(loc="upper left", fontsize=8)
    left.grid(True, alpha=0.3)
    t, v = r.pm_ratio.arrays()
    if len(t):
        right.plot(_dates(t), v, lw=1.0)
        right.axhline(1.0, color="#999", lw=0.8, ls="--")
        _time_axis(right, narrow=True)
    else:
        _no_data(right, "ratios")


def _l1_gas(figure: Any, r: RunRecorder) -> None:
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.set_title("L1 gas per batch")
    bottom.set_title("L1 gas per trade (log scale)")
    if not r.batches:
        _no_data(top, "batches")
        _no_data(bottom, "batches")
        return
    numbers = np.array([b.batch_number for b in r.batches])
    gas = np.array([b.gas_used for b in r.batches], dtype=np.float64)
    trades = np.array([b.trades for b in r.batches], dtype=np.float64)
    top.bar(numbers, gas, color="#47a")
    top.set_ylabel("gas")
    _thousands(top.yaxis)
    top.grid(True, alpha=0.3)
    with_trades = trades > 0
    if with_trades.any():
        bottom.plot(numbers[with_trades], gas[with_trades] / trades[with_trades], marker="o", ms=3, lw=1.0,
                    label="Clearway, per batch")
    amortised = r.gas_per_trade()
    if amortised:
        bottom.axhline(amortised, color="#47a", ls=":", lw=1.0, label=f"Clearway amortised {amortised:,.0f}")
    baseline = r.comparison.get("baseline", {}).get("gas_per_trade")
    if baseline:
        bottom.axhline(baseline, color="#c44", ls="--", lw=1.0, label=f"on-chain baseline {baseline:,.0f}")
    bottom.set_yscale("log")
    bottom.set_xlabel("batch number")
    bottom.set_ylabel("gas / trade")
    bottom.grid(True, alpha=0.3, which="both")
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend(loc="best", fontsize=8)


def _latency(figure: Any, r: RunRecorder) -> None:
    from matplotlib.ticker import FuncFormatter

    ax = figure.subplots()
    ax.set_title("Order execution latency (submission → acknowledgement)")
    h = r.latency
    if h.count == 0:
        _no_data(ax, "latencies")
        return
    nonzero = np.nonzero(h.counts)[0]
    lo, hi = nonzero[0], nonzero[-1] + 1
    edges = h.edges()[lo:hi + 1] / 1000.0  # ms
    ax.stairs(h.counts[lo:hi], edges, fill=True, color="#47a", alpha=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("orders")
    for q, style in ((0.5, "--"), (0.99, ":")):
        value = h.quantile(q)
        if value is not None:
            ax.axvline(value / 1000.0, color="black", ls=style, lw=1.0, label=f"p{int(q * 100)} {value / 1000.0:.3g} ms")
    ax.legend(loc="best", fontsize=8)
    ax.grid(True, alpha=0.3, which="both")
