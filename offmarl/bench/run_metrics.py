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

The ``metrics.csv`` of a run is the one beside its ``eval.json`` (the run directory) or its copy in a records
folder (:mod:`offmarl.bench.records`), so only finished runs (those in the table) count. Plotting is
:func:`offmarl.bench.plots.plot_metric_curves`, the table of the final values
:func:`offmarl.bench.tables.final_metric_markdown`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from offmarl.bench.records import Table, safe_name

# Axis labels of metrics whose name alone does not say what they are
# What a metrics.csv column means, for the reports' captions: exact names, then name prefixes (an index follows)
METRIC_LABELS = {"value_diff": "max_i V_i − min_i V_i"}
METRIC_PREFIX_LABELS = {"effective_items_": "SIT's replay of one agent type (the index): its effective number of "
                                            "individual trajectories (Σ p)² / Σ p² under Eq. 7"}


def metric_label(metric: str) -> str | None:
    """The caption of a metrics.csv column, or None for a column the reports know nothing more about."""
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric]
    return next((label for prefix, label in METRIC_PREFIX_LABELS.items() if metric.startswith(prefix)), None)


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
            series = read_metric(record.metrics_csv, metric)
            if series is not None:
                runs.append(MetricRun(record.seed, series))
        if runs:
            cells[key] = runs
    return cells


def curve_datasets(cells: dict[tuple[str, str], list[MetricRun]], datasets: Sequence[str]) -> list[str]:
    """The ``datasets`` on which some run of ``cells`` (:func:`metric_runs`) logged the metric at more than one
    step: a metric logged once per run (e.g. by a stage that runs once) has no curve, only a final value."""
    return [ds for ds in datasets if any(len(run.series) > 1 for (_, d), runs in cells.items() if d == ds
                                         for run in runs)]


def final_values(runs: Sequence[MetricRun]) -> tuple[float, float]:
    """Mean ± std (``ddof = 0``) over seeds of each run's last logged value."""
    finals = np.array([r.final for r in runs], dtype=np.float64)
    return float(finals.mean()), float(finals.std())


def metric_file_name(metric: str, dataset: str) -> str:
    """The file name of the plot of ``metric`` on ``dataset`` (the table's section refers to it)."""
    return f"metric_{safe_name(metric)}_{safe_name(dataset)}.png"
