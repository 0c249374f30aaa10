"""Training metrics of bench runs, read from each run's ``metrics.csv``: curves over seeds, final values.

A suite's ``metric_curves: [value_diff, ...]`` names ``metrics.csv`` columns (the losses and statistics an
algorithm logs, e.g. dec_mabcq's ``value_diff`` = max_i V_i − min_i V_i, MABCQ (Jiang & Lu) §4.2, Fig. 3).
For each such metric and each (algorithm, dataset) cell of a bench table:

* a run's series is its ``(step, value)`` pairs; blank cells (a multi-stage algorithm logs some columns
  in one stage only, ``offmarl.train.loggers``) and NaN / inf values are left out;
* a run lacking the column (or with no finite value in it) is left out, and a cell none of whose runs
  has it is left out -- so an algorithm that does not log the metric gets no line and no table cell;
* the curve is the mean ± std over seeds (population std, ``ddof = 0``, as the return table) at the steps
  every included seed logged;
* the final value of a run is its value at its last logged step; the table cell is the mean ± std over
  seeds of those.

The ``metrics.csv`` of a run is the one beside its ``eval.json`` (the run directory), so only finished runs
(those in the table) count. Plotting is :func:`offmarl.bench.plots.plot_metric_curves`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from offmarl.bench.tables import MISSING, EvalRecord, Table

METRIC_DECIMALS = 3
# Axis labels of metrics whose name alone does not say what they are
METRIC_LABELS = {"value_diff": "max_i V_i − min_i V_i"}


def metrics_csv_of(record: EvalRecord) -> Path:
    """The ``metrics.csv`` of the run that wrote ``record`` (same run directory as its eval.json)."""
    return Path(record.path).parent / "metrics.csv"


def read_metric(path: str | Path, metric: str) -> dict[float, float] | None:
    """``{step: value}`` of ``metric`` in the metrics.csv at ``path``, without blank and non-finite cells;
    ``None`` when the file is absent, has no such column or no finite value in it.

    A cell that is neither blank nor a number is an error naming the file, the row's step and the column."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = csv.DictReader(f)
        if metric not in (rows.fieldnames or []) or "step" not in (rows.fieldnames or []):
            return None
        series: dict[float, float] = {}
        for row in rows:
            text = (row.get(metric) or "").strip()
            if not text:
                continue
            try:
                step, value = float(row["step"]), float(text)
            except ValueError:
                raise ValueError(f"{path}: step {row['step']!r}: column {metric!r} holds {text!r}, "
                                 "not a number") from None
            if math.isfinite(value):
                series[step] = value
    return series or None


@dataclass(frozen=True)
class MetricRun:
    """One seed's series of a metric."""

    seed: int
    series: dict[float, float]

    @property
    def final(self) -> float:
        return self.series[max(self.series)]


def metric_runs(table: Table, metric: str) -> dict[tuple[str, str], list[MetricRun]]:
    """Per (algorithm, dataset) of ``table``, the seeds whose run logged ``metric`` (cells without any are
    absent), in the table's seed order."""
    cells: dict[tuple[str, str], list[MetricRun]] = {}
    for key, cell in table.cells.items():
        runs = []
        for record in cell.records:
            series = read_metric(metrics_csv_of(record), metric)
            if series is not None:
                runs.append(MetricRun(record.seed, series))
        if runs:
            cells[key] = runs
    return cells


def seed_band(series: Sequence[dict[float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, mean over seeds, std over seeds)`` (``ddof = 0``) at the steps every series has."""
    steps = sorted(set.intersection(*(set(s) for s in series))) if series else []
    values = np.array([[s[x] for x in steps] for s in series], dtype=np.float64).reshape(len(series), len(steps))
    return np.asarray(steps, dtype=np.float64), values.mean(axis=0), values.std(axis=0)


def final_values(runs: Sequence[MetricRun]) -> tuple[float, float]:
    """Mean ± std (``ddof = 0``) over seeds of each run's last logged value."""
    finals = np.array([r.final for r in runs], dtype=np.float64)
    return float(finals.mean()), float(finals.std())


def metric_file_name(metric: str, dataset: str) -> str:
    from offmarl.bench.plots import safe_name

    return f"metric_{safe_name(metric)}_{safe_name(dataset)}.png"


def final_metric_markdown(table: Table, metric: str) -> str:
    """A ``### <metric> at the end of training`` section: rows algorithms, columns datasets, each cell the
    mean ± std over seeds of the runs' last logged value; ``""`` when no run logged ``metric``."""
    cells = metric_runs(table, metric)
    if not cells:
        return ""
    algos = [a for a in table.algos if any((a, d) in cells for d in table.datasets)]
    datasets = [d for d in table.datasets if any((a, d) in cells for a in table.algos)]
    rows = [["algorithm", *datasets], ["---"] * (len(datasets) + 1)]
    for algo in algos:
        row = [algo]
        for ds in datasets:
            runs = cells.get((algo, ds))
            if runs is None:
                row.append(MISSING)
                continue
            mean, std = final_values(runs)
            row.append(f"{mean:.{METRIC_DECIMALS}f} ± {std:.{METRIC_DECIMALS}f}")
        rows.append(row)
    counts = {len(runs) for runs in cells.values()}
    seeds = (f"{counts.pop()} seeds per cell" if len(counts) == 1 else
             "seeds per cell: " + "; ".join(f"{a} on {d}: {len(cells[(a, d)])}" for a in algos for d in datasets
                                            if (a, d) in cells))
    last_steps = sorted({max(r.series) for runs in cells.values() for r in runs})
    at = f"step {last_steps[0]:g}" if len(last_steps) == 1 else f"steps {last_steps[0]:g}-{last_steps[-1]:g}"
    label = METRIC_LABELS.get(metric)
    what = f"`{metric}`" + (f" ({label})" if label else "")
    plots = ", ".join(f"`{metric_file_name(metric, d)}`" for d in datasets)
    skipped = [a for a in table.algos if a not in algos]
    lines = [f"### {metric} at the end of training", "", *("| " + " | ".join(r) + " |" for r in rows), "",
             f"{what} at each run's last logged step of its metrics.csv ({at}): mean ± std over seeds "
             f"(population std, ddof = 0; {seeds}). {MISSING}: not logged. Curves over training: {plots}."]
    if skipped:
        lines.append(f"Not logged by: {', '.join(skipped)}.")
    return "\n".join(lines) + "\n"
