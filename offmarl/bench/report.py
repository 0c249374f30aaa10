"""A suite directory's report: the table (markdown + CSV), the plots and the per-run records they come from.

``offmarl bench run`` writes it beside the runs when they are done; ``offmarl bench table DIR [--out OUT]``
rewrites it from the ``eval.json`` files alone -- or, in a results folder that has no run directories, from
its records -- into DIR or ``OUT/<name of DIR>``. Files of a report folder (DESIGN.md, "Results")::

    table.md  table.csv                       offmarl.bench.tables
    curves_<dataset>.png  bars.png            offmarl.bench.plots
    metric_<metric>_<dataset>.png             one per entry of the suite's metric_curves and dataset
    records/                                  what the table was built from (offmarl.bench.records)

Re-aggregating a report folder from its records gives byte-identical table.md and table.csv (and plots).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from offmarl.bench.layout import RECORDS_DIR, SUITE_RECORD, is_suite_dir
from offmarl.bench.plots import plot_bars, plot_curves, plot_metric_curves
from offmarl.bench.records import REPORT_FILE, RecordSet, build_table, find_eval_files
from offmarl.bench.tables import final_metric_markdown, to_csv, to_markdown
from offmarl.core.files import atomic_write_text


@dataclass
class Report:
    """The written table, plots and records of one report folder."""

    markdown: str
    table_md: Path
    table_csv: Path
    plots: list[Path]
    records: Path
    runs: int


def _report_input(report_dir: Path, eval_files: Sequence[Path] | None) -> tuple[RecordSet, Path | None]:
    """The runs of the report and the records folder they were read from (``None``: run directories)."""
    files = find_eval_files(report_dir) if eval_files is None else list(eval_files)
    records_dir = report_dir / RECORDS_DIR
    if files or not records_dir.is_dir():
        return RecordSet.from_runs(report_dir, files), None
    return RecordSet.from_records(records_dir), records_dir


def suite_report(report_dir: str | Path, eval_files: Sequence[Path] | None = None,
                 out_dir: str | Path | None = None) -> Report:
    """Aggregate the runs of ``report_dir`` -- ``eval_files``, else every eval.json under it (the run
    directories are the truth while they exist), else its ``records/`` folder -- into ``out_dir`` (default:
    ``report_dir``): ``table.md``, ``table.csv``, ``curves_<dataset>.png``, ``bars.png`` and ``records/``
    (left as it is when it is the input).

    The title is the name of ``report_dir`` (a records folder keeps the one it was written with). With a
    ``suite.json`` (written by ``offmarl bench run``; a records folder keeps it too) rows and columns follow
    the suite's order and the footer quotes the commands that ran it; for each of its ``metric_curves``
    (metrics.csv columns, :mod:`offmarl.bench.run_metrics`) ``metric_<m>_<dataset>.png`` are plotted and a
    table of the final values is appended to table.md; runs it plans that have no eval.json make the footer
    say ``Incomplete: k of n runs have an eval.json.``"""
    report_dir = Path(report_dir)
    out_dir = report_dir if out_dir is None else Path(out_dir)
    runs, source_records = _report_input(report_dir, eval_files)
    records_dir = out_dir / RECORDS_DIR
    if source_records is None or source_records.resolve() != records_dir.resolve():
        runs.write(records_dir)
    table = build_table(runs.records, runs.algo_order, runs.dataset_order)
    markdown = to_markdown(table, runs.title, runs.commands, runs.note, runs.description)
    for section in (final_metric_markdown(table, metric) for metric in runs.metric_curves):
        markdown += f"\n{section}" if section else ""
    table_md, table_csv = out_dir / "table.md", out_dir / "table.csv"
    atomic_write_text(table_md, markdown)
    atomic_write_text(table_csv, to_csv(table))
    plots = plot_curves(table, out_dir) + [plot_bars(table, out_dir)]
    plots += plot_metric_curves(table, out_dir, runs.metric_curves)
    _remove_stale_plots(out_dir, plots)
    return Report(markdown=markdown, table_md=table_md, table_csv=table_csv, plots=plots, records=records_dir,
                  runs=len(runs.records))


def _remove_stale_plots(out_dir: Path, written: Sequence[Path]) -> None:
    """Delete ``curves_*.png`` / ``metric_*.png`` this report did not write: left by an earlier report of a
    dataset or metric the suite no longer has, they would sit beside the new table as if current."""
    keep = {Path(p).resolve() for p in written}
    for pattern in ("curves_*.png", "metric_*.png"):
        for path in out_dir.glob(pattern):
            if path.resolve() not in keep:
                path.unlink(missing_ok=True)


def report_dirs(path: str | Path) -> list[Path]:
    """The report folders ``offmarl bench table PATH`` aggregates: PATH itself when it is a suite directory or
    a results folder (one with ``records/``), its parent when it is a records folder; else every suite
    directory and results folder under PATH -- or PATH itself when there is none (a runs directory made by
    hand)."""
    path = Path(path)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")
    if (path / REPORT_FILE).is_file():
        return [path.parent]
    if is_suite_dir(path) or (path / RECORDS_DIR / REPORT_FILE).is_file():
        return [path]
    found = {p.parent for p in path.rglob(SUITE_RECORD)}
    found |= {p.parent.parent for p in path.rglob(f"{RECORDS_DIR}/{REPORT_FILE}")}
    return sorted(found) or [path]
