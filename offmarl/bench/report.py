"""A suite directory's report: the table (markdown + CSV) and the plots, written beside its runs.

``offmarl bench run`` writes it when its runs are done and ``offmarl bench table DIR`` rewrites it from the
``eval.json`` files alone. Files (in the suite directory)::

    table.md  table.csv                       offmarl.bench.tables
    curves_<dataset>.png  bars.png            offmarl.bench.plots
    metric_<metric>_<dataset>.png             one per entry of the suite's metric_curves and dataset
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from offmarl.bench.layout import SUITE_RECORD, is_suite_dir, read_suite_record
from offmarl.bench.plots import plot_bars, plot_curves, plot_metric_curves
from offmarl.bench.records import EvalRecord, build_table, find_eval_files
from offmarl.bench.tables import final_metric_markdown, to_csv, to_markdown
from offmarl.core.files import atomic_write_text


@dataclass
class Report:
    """The written table and plots of one runs directory."""

    markdown: str
    table_md: Path
    table_csv: Path
    plots: list[Path]
    runs: int


def suite_report(suite_dir: str | Path, eval_files: Sequence[Path] | None = None, note: str = "") -> Report:
    """Aggregate ``eval_files`` (default: every eval.json under ``suite_dir``) into ``suite_dir/table.md``,
    ``table.csv``, ``curves_<dataset>.png`` and ``bars.png``.

    When ``suite_dir/suite.json`` exists (written by ``offmarl bench run``) rows and columns follow the
    suite's order, the title is the suite's and the footer quotes the commands that ran it; for each of its
    ``metric_curves`` (metrics.csv columns, :mod:`offmarl.bench.run_metrics`) ``metric_<m>_<dataset>.png``
    are plotted and a table of the final values is appended to table.md."""
    suite_dir = Path(suite_dir)
    files = find_eval_files(suite_dir) if eval_files is None else list(eval_files)
    if not files:
        raise FileNotFoundError(f"no eval.json under {suite_dir}: nothing to aggregate")
    title, description, commands, algo_order, dataset_order = suite_dir.name, "", [], None, None
    metrics: list[str] = []
    record = read_suite_record(suite_dir)
    if record is not None:
        suite = record.get("suite", {})
        description = suite.get("description", "")
        commands = record.get("commands", [])
        algo_order = [a["label"] for a in suite.get("algorithms", [])]
        dataset_order = [d["label"] for d in suite.get("datasets", [])]
        metrics = list(suite.get("metric_curves") or [])  # absent in suite.json files of older benches
    table = build_table([EvalRecord.read(f) for f in files], algo_order, dataset_order)
    markdown = to_markdown(table, title, commands, note, description)
    for section in (final_metric_markdown(table, metric) for metric in metrics):
        markdown += f"\n{section}" if section else ""
    table_md, table_csv = suite_dir / "table.md", suite_dir / "table.csv"
    atomic_write_text(table_md, markdown)
    atomic_write_text(table_csv, to_csv(table))
    plots = plot_curves(table, suite_dir) + [plot_bars(table, suite_dir)]
    plots += plot_metric_curves(table, suite_dir, metrics)
    _remove_stale_plots(suite_dir, plots)
    return Report(markdown=markdown, table_md=table_md, table_csv=table_csv, plots=plots, runs=len(files))


def _remove_stale_plots(suite_dir: Path, written: Sequence[Path]) -> None:
    """Delete ``curves_*.png`` / ``metric_*.png`` this report did not write: left by an earlier report of a
    dataset or metric the suite no longer has, they would sit beside the new table as if current."""
    keep = {Path(p).resolve() for p in written}
    for pattern in ("curves_*.png", "metric_*.png"):
        for path in suite_dir.glob(pattern):
            if path.resolve() not in keep:
                path.unlink(missing_ok=True)


def report_dirs(runs_dir: str | Path) -> list[Path]:
    """The directories ``offmarl bench table DIR`` aggregates: DIR itself when it is a suite directory (or
    holds no suite directory), else every suite directory (one holding ``suite.json``) under it."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise NotADirectoryError(f"{runs_dir} is not a directory")
    if is_suite_dir(runs_dir):
        return [runs_dir]
    return sorted(p.parent for p in runs_dir.rglob(SUITE_RECORD)) or [runs_dir]
