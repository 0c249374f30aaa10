"""PNG plots of a bench table (matplotlib, Agg backend -- no display needed).

* ``curves_<dataset>.png``: evaluation return vs training steps, one line per algorithm, from the
  ``curve`` of each seed's eval.json (``[[step, mean, std], ...]``, the evaluations during training plus
  the final one). At each step that every seed of the algorithm evaluated, the line and band are the
  table's ``stat`` over seeds of the evaluation means (:func:`offmarl.bench.records.band`): mean ± std
  (ddof = 0, as the table), mean ± standard error, or the IQM with its 95 % bootstrap CI (no band below
  5 seeds). A suite with ``eval_every: 0`` has one point per run: the final evaluation. The x axis counts
  environment frames when every run of the dataset interacted with its env, else training steps.
* ``wins_<dataset>.png`` (envs that report wins, SMAX): the evaluation win rate (%) the same way, from each
  seed's ``win_curve``.
* ``metric_<metric>_<dataset>.png`` (for a suite's ``metric_curves``): a ``metrics.csv`` column of the
  runs (e.g. dec_mabcq's ``value_diff``, MABCQ Fig. 3) vs training steps, one line per algorithm that
  logs it, mean ± std over seeds at the steps every seed logged (:mod:`offmarl.bench.run_metrics`).
* ``bars.png``: the final table as bars (one panel per dataset, the table's stat over seeds, best bar dark),
  each panel's y axis zoomed to its data (returns need not be near 0) with the centres under the algorithm
  names.

* ``data_efficiency.png`` (suites that list one recipe at several scales, :mod:`offmarl.bench.sweeps`): the
  return vs the dataset size (trajectories), one panel per sweep, one line per algorithm, the table's stat
  over seeds at each size (Tseng et al. Fig. 7).

Across tasks, in normalized scores (:mod:`offmarl.bench.aggregates`; Agarwal et al. 2021's figures):

* ``aggregate.png``: one panel per aggregate (IQM, median, mean, optimality gap), per algorithm its
  estimate (a tick) and 95 % stratified-bootstrap CI (a bar; none below 5 seeds a task);
* ``performance_profile.png``: the fraction of runs whose normalized score exceeds each threshold, with CI bands;
* ``sample_efficiency.png``: the IQM of the normalized evaluation returns over training steps, with CI bands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from offmarl.bench.records import Table, band, safe_name, seed_band, seed_curve
from offmarl.bench.run_metrics import curve_datasets, metric_file_name, metric_label, metric_runs
from offmarl.bench.statistics import Estimate
from offmarl.bench.sweeps import SizeSweep, sweep_lines

BAND_LABELS = {"std": "mean ± std", "sem": "mean ± standard error", "iqm": "IQM, 95 % bootstrap CI"}
AGGREGATE_PLOT = "aggregate.png"
PROFILE_PLOT = "performance_profile.png"
SAMPLE_EFFICIENCY_PLOT = "sample_efficiency.png"
SIZE_SWEEP_PLOT = "data_efficiency.png"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_curves(table: Table, out_dir: str | Path) -> list[Path]:
    """One ``curves_<dataset>.png`` per dataset of ``table``, and ``wins_<dataset>.png`` per dataset whose runs
    recorded win curves; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in table.datasets:
        cells = [(algo, table.cells[(algo, ds)]) for algo in table.algos if (algo, ds) in table.cells]
        online = all(r.steps_unit == "frames" for _, cell in cells for r in cell.records)
        won = any(r.win_curve for _, cell in cells for r in cell.records)
        for wins in (False, True) if won else (False,):
            scale = 100.0 if wins else 1.0  # win rates in %
            fig = _figure(6.4, 4.2)
            ax = fig.add_subplot()
            seeds = 0
            for algo, cell in cells:
                steps, center, low, high = seed_curve(cell, table.stat, wins=wins)
                if not len(steps):
                    continue
                seeds = max(seeds, len(cell.records))
                _line_with_band(ax, steps, scale * center, scale * low, scale * high, algo)
            ax.set_xlabel("environment frames" if online else "training steps")
            ax.set_ylabel("win rate (%)" if wins else "per-agent average return")
            ax.set_title(f"{ds}: evaluation {'win rate' if wins else 'return'} ({BAND_LABELS[table.stat]} over up "
                         f"to {seeds} seeds)", fontsize=10)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
            fig.tight_layout()
            path = out_dir / f"{'wins' if wins else 'curves'}_{safe_name(ds)}.png"
            fig.savefig(path)
            paths.append(path)
    return paths


def _line_with_band(ax, x: np.ndarray, center: np.ndarray, low: np.ndarray, high: np.ndarray, label: str) -> None:
    """A line and its band (NaN bounds: no band there)."""
    (line,) = ax.plot(x, center, marker="o" if len(x) < 12 else None, markersize=3, label=label)
    ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)


def _seeds_text(counts: set[int]) -> str:
    return f"{min(counts)} seeds" if len(counts) == 1 else f"{min(counts)}-{max(counts)} seeds"


def plot_metric_curves(table: Table, suite_dir: str | Path, metrics: Sequence[str]) -> list[Path]:
    """For each metric and dataset, ``metric_<metric>_<dataset>.png`` in ``suite_dir``: the metric vs
    training step, one line per algorithm whose runs logged it, mean ± std band over seeds. No file for a
    (metric, dataset) that no algorithm logged at more than one step (:func:`curve_datasets`). Returns the
    paths written."""
    suite_dir = Path(suite_dir)
    paths = []
    for metric in metrics:
        cells = metric_runs(table, metric)
        for ds in curve_datasets(cells, table.datasets):
            lines = [(algo, cells[(algo, ds)]) for algo in table.algos if (algo, ds) in cells]
            if not lines:
                continue
            counts = {len(runs) for _, runs in lines}
            fig = _figure(6.4, 4.2)
            ax = fig.add_subplot()
            for algo, runs in lines:
                steps, mean, std = seed_band([r.series for r in runs])
                if not len(steps):  # the seeds logged at disjoint steps: nothing to average
                    continue
                (line,) = ax.plot(steps, mean, marker="o" if len(steps) < 12 else None, markersize=3,
                                  label=f"{algo} ({len(runs)} seeds)" if len(counts) > 1 else algo)
                ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
            label = metric_label(metric)
            ax.set_xlabel("training steps")
            ax.set_ylabel(f"{metric} ({label})" if label else metric)
            ax.set_title(f"{ds}: {metric} during training (mean ± std over {_seeds_text(counts)})", fontsize=10)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
            fig.tight_layout()
            suite_dir.mkdir(parents=True, exist_ok=True)
            path = suite_dir / metric_file_name(metric, ds)
            fig.savefig(path)
            paths.append(path)
    return paths


def plot_bars(table: Table, out_dir: str | Path) -> Path:
    """``bars.png``: one panel per dataset, a bar per algorithm (the table's stat over seeds)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = max(1, len(table.datasets))
    fig = _figure(max(4.0, 0.55 * len(table.algos) + 1.5) * n, 4.0)
    for i, ds in enumerate(table.datasets):
        ax = fig.add_subplot(1, n, i + 1)
        algos = [a for a in table.algos if (a, ds) in table.cells]
        center, low, high = (np.array(v) for v in zip(*(band(table.cells[(a, ds)].values, table.stat)
                                                          for a in algos)))
        low, high = np.where(np.isnan(low), center, low), np.where(np.isnan(high), center, high)  # no band
        best = table.best(ds)
        colors = ["#1f4e79" if a in best else "#8fb3d9" for a in algos]
        ax.bar(range(len(algos)), center, yerr=[center - low, high - center], color=colors, capsize=3)
        # zoomed to the data (returns are often far from 0, e.g. all around -50): the tick labels carry
        # the centres, the bars the ordering
        pad = 0.15 * (high.max() - low.min()) or 0.5
        ax.set_ylim(low.min() - pad, high.max() + pad)
        ax.set_xticks(range(len(algos)))
        ax.set_xticklabels([f"{a}\n{m:.2f}" for a, m in zip(algos, center)], rotation=35, ha="right", fontsize=8)
        ax.set_title(ds, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if i == 0:
            ax.set_ylabel(f"per-agent average return ({BAND_LABELS[table.stat]})")
    fig.tight_layout()
    path = out_dir / "bars.png"
    fig.savefig(path)
    return path


def plot_aggregates(estimates: dict[str, dict[str, Estimate]], n_tasks: int, out_dir: str | Path) -> Path:
    """``aggregate.png``: one panel per aggregate metric, per algorithm its estimate and CI (rliable's layout)."""
    algos = list(estimates)[::-1]  # the first algorithm on top
    metrics = list(estimates[algos[0]])
    fig = _figure(3.0 * len(metrics), 0.9 + 0.35 * len(algos))
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for y, algo in enumerate(algos):
            est = estimates[algo][metric]
            color = f"C{len(algos) - 1 - y}"
            if est.has_interval:
                ax.barh(y, est.high - est.low, left=est.low, height=0.6, color=color, alpha=0.45)
            ax.plot([est.point], [y], marker="|" if est.has_interval else "o", markersize=14 if est.has_interval
                    else 5, markeredgewidth=2, color=color)
        ax.set_yticks(range(len(algos)))
        ax.set_yticklabels(algos if i == 0 else [], fontsize=8)
        ax.set_title(metric + (" (lower is better)" if metric == "optimality gap" else ""), fontsize=9)
        ax.set_xlabel("normalized score", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Normalized scores over {n_tasks} task(s): estimate and 95 % stratified-bootstrap CI", fontsize=9)
    fig.tight_layout()
    return _save(fig, out_dir, AGGREGATE_PLOT)


def plot_performance_profiles(profiles: dict[str, Estimate], thresholds: np.ndarray, out_dir: str | Path) -> Path:
    """``performance_profile.png``: fraction of runs with a normalized score above each threshold."""
    return _bands({algo: (thresholds, est) for algo, est in profiles.items()}, out_dir, PROFILE_PLOT,
                  xlabel="normalized score τ (0: uniform random policy, 1: reference)",
                  ylabel="fraction of runs with score > τ",
                  title="Performance profiles (95 % stratified-bootstrap CIs)",
                  marks=(0.0, 1.0))  # the random policy and the reference


def plot_sample_efficiency(curves: dict[str, tuple[np.ndarray, Estimate]], out_dir: str | Path) -> Path:
    """``sample_efficiency.png``: IQM of the normalized evaluation returns vs training steps, with CI bands."""
    return _bands(curves, out_dir, SAMPLE_EFFICIENCY_PLOT, xlabel="training steps", ylabel="IQM normalized score",
                  title="Sample efficiency: IQM over runs and tasks (95 % stratified-bootstrap CIs)")


def _bands(lines: dict[str, tuple[np.ndarray, Estimate]], out_dir: str | Path, name: str, *, xlabel: str,
           ylabel: str, title: str, marks: tuple[float, ...] = ()) -> Path:
    """One line with its CI band per algorithm, dotted verticals at ``marks``."""
    fig = _figure(6.4, 4.2)
    _band_panel(fig.add_subplot(), {algo: (x, est.point, *est.bounds()) for algo, (x, est) in lines.items()},
                xlabel=xlabel, ylabel=ylabel, title=title, marks=marks)
    fig.tight_layout()
    return _save(fig, out_dir, name)


def _band_panel(ax, lines: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], *, xlabel: str,
                ylabel: str, title: str, marks: tuple[float, ...] = ()) -> None:
    """On ``ax``: per label, the line ``(x, centre, low, high)`` with its band; dotted verticals at ``marks``."""
    for label, (x, center, low, high) in lines.items():
        _line_with_band(ax, x, center, low, high, label)
    for x in marks:
        ax.axvline(x, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def plot_size_sweeps(table: Table, sweeps: Sequence[SizeSweep], out_dir: str | Path) -> Path | None:
    """``data_efficiency.png``: one panel per dataset-size sweep (:mod:`offmarl.bench.sweeps`), per algorithm
    the table's stat over seeds of the return at each size (log-scaled axis: the sizes span a decade);
    None (no file) when no sweep has an algorithm with runs at two sizes."""
    panels = [(sweep, sweep_lines(table, sweep)) for sweep in sweeps]
    panels = [(sweep, lines) for sweep, lines in panels if lines]
    if not panels:
        return None
    fig = _figure(6.4 * len(panels), 4.4)
    for i, (sweep, lines) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        _band_panel(ax, lines, xlabel=f"dataset size ({sweep.unit}, log scale)",
                    ylabel=f"per-agent average return ({BAND_LABELS[table.stat]})",
                    title=f"{sweep.title}: return vs dataset size", marks=())
        ax.set_xscale("log")
        sizes = [p.episodes if sweep.unit == "trajectories" else p.scale for p in sweep.points]
        ax.set_xticks(sizes)
        ax.set_xticklabels([f"{s:g}" for s in sizes], fontsize=8)
        ax.minorticks_off()
    fig.tight_layout()
    return _save(fig, out_dir, SIZE_SWEEP_PLOT)


def _save(fig, out_dir: str | Path, name: str) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / name)
    return out_dir / name
