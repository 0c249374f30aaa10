"""A suite directory's report: the table (markdown + CSV), the plots and the per-run records they come from.

``offmarl bench run`` writes it beside the runs when they are done; ``offmarl bench table DIR [--out OUT]``
rewrites it from the ``eval.json`` files alone -- or, in a results folder that has no run directories, from
its records -- into DIR or ``OUT/<name of DIR>``. Files of a report folder (DESIGN.md, "Results")::

    table.md  table.csv                       offmarl.bench.tables
    aggregate.csv                             normalized aggregates across tasks (offmarl.bench.aggregates)
    curves_<dataset>.png  bars.png            offmarl.bench.plots
    aggregate.png  performance_profile.png    across tasks, in normalized scores (when some task has
    sample_efficiency.png                       normalization returns)
    metric_<metric>_<dataset>.png             one per entry of the suite's metric_curves and dataset
    data_efficiency.png                       return vs dataset size, for suites that list one recipe at
                                                several scales (offmarl.bench.sweeps; a table.md section too)
    records/                                  what the table was built from (offmarl.bench.records)

Re-aggregating a report folder from its records gives byte-identical table.md and table.csv (and plots).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from offmarl.bench.aggregates import (
    aggregate_estimates,
    normalize,
    performance_profiles,
    profile_thresholds,
    sample_efficiency,
)
from offmarl.bench.layout import RECORDS_DIR, SUITE_RECORD, is_suite_dir
from offmarl.bench.plots import (
    AGGREGATE_PLOT,
    PROFILE_PLOT,
    SAMPLE_EFFICIENCY_PLOT,
    SIZE_SWEEP_PLOT,
    plot_aggregates,
    plot_bars,
    plot_curves,
    plot_metric_curves,
    plot_performance_profiles,
    plot_sample_efficiency,
    plot_size_sweeps,
)
from offmarl.bench.records import REPORT_FILE, RecordSet, Table, build_table, find_eval_files
from offmarl.bench.sweeps import size_sweeps
from offmarl.bench.tables import (
    aggregate_csv,
    aggregate_markdown,
    final_metric_markdown,
    sweep_markdown,
    to_csv,
    to_markdown,
    win_rate_markdown,
)
from offmarl.core.files import atomic_write_text

AGGREGATE_CSV = "aggregate.csv"


@dataclass
class Report:
    """The written table, plots and records of one report folder."""

    markdown: str
    table_md: Path
    table_csv: Path
    plots: list[Path]
    records: Path
    runs: int
    aggregate_csv: Path | None  # None: no task has normalization returns


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
    (left as it is when it is the input); with normalization returns in the records, the aggregates across
    tasks (a section of table.md, ``aggregate.csv``, ``aggregate.png``, ``performance_profile.png``,
    ``sample_efficiency.png``). The suite's ``stat`` chooses the main column and the curves' bands.

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
    table = _table(runs)
    markdown = to_markdown(table, runs.title, runs.commands, runs.note, runs.description)
    section = win_rate_markdown(table)
    markdown += f"\n{section}" if section else ""
    plots = plot_curves(table, out_dir) + [plot_bars(table, out_dir)]
    sweeps = size_sweeps(runs.dataset_entries)
    sweep_plot = plot_size_sweeps(table, sweeps, out_dir)
    plots += [sweep_plot] if sweep_plot is not None else []
    section = sweep_markdown(table, sweeps, None if sweep_plot is None else sweep_plot.name)
    markdown += f"\n{section}" if section else ""
    aggregates, aggregate_plots, aggregates_csv = _across_tasks(table, out_dir)
    markdown += f"\n{aggregates}"
    for section in (final_metric_markdown(table, metric) for metric in runs.metric_curves):
        markdown += f"\n{section}" if section else ""
    table_md, table_csv = out_dir / "table.md", out_dir / "table.csv"
    atomic_write_text(table_md, markdown)
    atomic_write_text(table_csv, to_csv(table))
    plots += aggregate_plots + plot_metric_curves(table, out_dir, runs.metric_curves)
    _remove_stale(out_dir, plots + ([aggregates_csv] if aggregates_csv else []))
    return Report(markdown=markdown, table_md=table_md, table_csv=table_csv, plots=plots, records=records_dir,
                  runs=len(runs.records), aggregate_csv=aggregates_csv)


def _table(runs: RecordSet) -> Table:
    return build_table(runs.records, runs.algo_order, runs.dataset_order, runs.stat)


def report_records(report_dir: str | Path) -> RecordSet:
    """The runs of the report folder ``report_dir`` as :func:`suite_report` reads them (run directories, else the
    records), without writing anything."""
    return _report_input(Path(report_dir), None)[0]


def report_table(report_dir: str | Path) -> tuple[Table, str]:
    """The table of the report folder ``report_dir`` and its title, read as :func:`suite_report` reads them
    (run directories, else the records), without writing anything."""
    runs, _ = _report_input(Path(report_dir), None)
    return _table(runs), runs.title


def _across_tasks(table: Table, out_dir: Path) -> tuple[str, list[Path], Path | None]:
    """The normalized aggregates: their table.md section, plots and ``aggregate.csv`` (written here; no plots
    and no file when no task has normalization returns)."""
    normalized = normalize(table)
    if not normalized.tasks:
        return aggregate_markdown(normalized, {}, []), [], None
    estimates = aggregate_estimates(normalized)
    thresholds = profile_thresholds(normalized)
    plots = [plot_aggregates(estimates, len(normalized.tasks), out_dir),
             plot_performance_profiles(performance_profiles(normalized, thresholds), thresholds, out_dir)]
    curves = sample_efficiency(table, normalized)
    if curves:
        plots.append(plot_sample_efficiency(curves, out_dir))
    atomic_write_text(out_dir / AGGREGATE_CSV, aggregate_csv(normalized, estimates))
    return aggregate_markdown(normalized, estimates, [p.name for p in plots]), plots, out_dir / AGGREGATE_CSV


def _remove_stale(out_dir: Path, written: Sequence[Path]) -> None:
    """Delete the plots and aggregate.csv this report did not write: left by an earlier report of a dataset or
    metric the suite no longer has (or of records that had normalization returns), they would sit beside the
    new table as if current."""
    keep = {Path(p).resolve() for p in written}
    for pattern in ("curves_*.png", "metric_*.png", AGGREGATE_PLOT, PROFILE_PLOT, SAMPLE_EFFICIENCY_PLOT,
                    SIZE_SWEEP_PLOT, AGGREGATE_CSV):
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
