"""PNG plots of a bench table (matplotlib, Agg backend -- no display needed).

* ``curves_<dataset>.png``: evaluation return vs training steps, one line per algorithm, from the
  ``curve`` of each seed's eval.json (``[[step, mean, std], ...]``, the evaluations during training plus
  the final one). At each step that every seed of the algorithm evaluated, the line is the mean over
  seeds of the evaluation means and the band ± their std over seeds (ddof = 0, as the table). A suite
  with ``eval_every: 0`` has one point per run: the final evaluation.
* ``metric_<metric>_<dataset>.png`` (for a suite's ``metric_curves``): a ``metrics.csv`` column of the
  runs (e.g. dec_mabcq's ``value_diff``, MABCQ Fig. 3) vs training steps, one line per algorithm that
  logs it, mean ± std over seeds at the steps every seed logged (:mod:`offmarl.bench.run_metrics`).
* ``bars.png``: the final table as bars (one panel per dataset, mean ± std over seeds, best bar dark),
  each panel's y axis zoomed to its data (returns need not be near 0) with the means under the algorithm names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from offmarl.bench.records import Table, safe_name, seed_band, seed_curve
from offmarl.bench.run_metrics import METRIC_LABELS, metric_file_name, metric_runs


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_curves(table: Table, out_dir: str | Path) -> list[Path]:
    """One ``curves_<dataset>.png`` per dataset of ``table``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in table.datasets:
        fig = _figure(6.4, 4.2)
        ax = fig.add_subplot()
        seeds = 0
        for algo in table.algos:
            cell = table.cells.get((algo, ds))
            if cell is None:
                continue
            steps, mean, std = seed_curve(cell)
            if not len(steps):
                continue
            seeds = max(seeds, len(cell.records))
            (line,) = ax.plot(steps, mean, marker="o" if len(steps) < 12 else None, markersize=3, label=algo)
            ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xlabel("training steps")
        ax.set_ylabel("per-agent average return")
        ax.set_title(f"{ds}: evaluation return (mean ± std over up to {seeds} seeds)", fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"curves_{safe_name(ds)}.png"
        fig.savefig(path)
        paths.append(path)
    return paths


def _seeds_text(counts: set[int]) -> str:
    return f"{min(counts)} seeds" if len(counts) == 1 else f"{min(counts)}-{max(counts)} seeds"


def plot_metric_curves(table: Table, suite_dir: str | Path, metrics: Sequence[str]) -> list[Path]:
    """For each metric and dataset, ``metric_<metric>_<dataset>.png`` in ``suite_dir``: the metric vs
    training step, one line per algorithm whose runs logged it, mean ± std band over seeds. No file for a
    (metric, dataset) that no algorithm logged. Returns the paths written."""
    suite_dir = Path(suite_dir)
    paths = []
    for metric in metrics:
        cells = metric_runs(table, metric)
        for ds in table.datasets:
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
            label = METRIC_LABELS.get(metric)
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
    """``bars.png``: one panel per dataset, a bar per algorithm (mean ± std over seeds)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = max(1, len(table.datasets))
    fig = _figure(max(4.0, 0.55 * len(table.algos) + 1.5) * n, 4.0)
    for i, ds in enumerate(table.datasets):
        ax = fig.add_subplot(1, n, i + 1)
        algos = [a for a in table.algos if (a, ds) in table.cells]
        means = [table.cells[(a, ds)].mean for a in algos]
        stds = [table.cells[(a, ds)].std for a in algos]
        best = table.best(ds)
        colors = ["#1f4e79" if a in best else "#8fb3d9" for a in algos]
        ax.bar(range(len(algos)), means, yerr=stds, color=colors, capsize=3)
        # zoomed to the data (returns are often far from 0, e.g. all around -50): the tick labels carry
        # the means, the bars the ordering
        low = min(m - s for m, s in zip(means, stds))
        high = max(m + s for m, s in zip(means, stds))
        pad = 0.15 * (high - low) or 0.5
        ax.set_ylim(low - pad, high + pad)
        ax.set_xticks(range(len(algos)))
        ax.set_xticklabels([f"{a}\n{m:.2f}" for a, m in zip(algos, means)], rotation=35, ha="right", fontsize=8)
        ax.set_title(ds, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if i == 0:
            ax.set_ylabel("per-agent average return")
    fig.tight_layout()
    path = out_dir / "bars.png"
    fig.savefig(path)
    return path
