"""``offmarl bench list | run | table | status | export | speed | cost | compare | paired`` (the runner is
:mod:`offmarl.bench`).

``offmarl bench run SUITE [--seeds N|LIST] [--workers W] [--backend local|ray] [--address ADDR] [--out DIR]
[--scale F] [--first LABELS] [--restore RESULTS]``: builds the suite's datasets, runs every pending (dataset,
algorithm, seed) resumably, then writes and prints the table of the suite directory ``OUT/<suite>`` and the
paths of the table, the plots and the per-run records. Failed runs are listed at the end (each with its
``error.txt``) and the command exits with status 1; re-running the same command retries them and finishes
whatever a killed bench left.

``--scale F`` multiplies the training steps of every run (the datasets keep the suite's scale) and puts
the runs in ``OUT/<suite>-x<F>`` so that runs of different scales are never mixed in one table.

``--first LABELS`` (comma-separated algorithm and/or dataset labels) runs the runs they name before the others,
e.g. the cells a paired comparison waits for: only the order changes, so the recorded command leaves it out.

``--restore RESULTS`` gives back the finished runs a results folder recorded (``RESULTS/records``, written by
``bench table --out``) before running the rest: eval.json, metrics.csv where recorded and the run's pin, each
checked against the pin this suite gives the run (:func:`offmarl.bench.runner.restore_runs`). A suite whose
runs directory was lost with a machine resumes from its committed results instead of retraining them.

``offmarl bench table DIR [--out OUT]``: rewrites the report of every suite directory or results folder
under DIR (:func:`offmarl.bench.report.report_dirs`) beside it, or into ``OUT/<its name>`` -- a results
folder that holds the table, the plots and the records to re-aggregate it from.

``offmarl bench export DIR --format marl-eval --out FILE.json``: the runs under DIR as the JSON document
marl-eval reads (:mod:`offmarl.bench.export` maps the layouts); runs that were not evaluated are listed.

``offmarl bench cost DIR [--reference madt] [--out FILE]``: per suite directory or results folder under DIR, each
algorithm's training time (median over seeds) against the reference's at equal updates and its stages' shares
(Tseng et al. §4.5; :mod:`offmarl.bench.cost`), with the CPU the runs recorded.

``offmarl bench compare DIR A B [C ...] [--out OUT]``: the probability of improvement ``P(X > Y)`` of every
ordered pair of the named algorithm labels over the tasks both have, with 95 % stratified-bootstrap CIs
(:func:`offmarl.bench.aggregates.probabilities_of_improvement`), from DIR's runs or records; printed as a
table and, with ``--out``, written to ``OUT/probability_of_improvement.md`` and ``.csv``.

``offmarl bench paired DIR X:Y [X2:Y2 ...] [--out OUT]``: a controlled experiment's rows compared seed by seed:
per task, ``X - Y`` at each seed both ran, the mean difference with Student's t 95 % interval and on how many
seeds X scored higher (:func:`offmarl.bench.aggregates.paired_differences`); written to ``OUT/paired.md`` and
``.csv`` with ``--out``. Pairing by seed means something when the seed fixes everything but the change
under test (same dataset, same initial weights where the algorithm derives them so). ``--with DIR2``
(repeatable) takes the named rows DIR lacks from DIR2: a suite of new rows pairs with an earlier suite's
runs of the same setting instead of repeating them (a run is a function of its configuration and seed); the
rows must share each task's data and evaluation, else the error names two runs that differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from offmarl.bench.records import Table


def run_bench_list() -> None:
    from offmarl.bench.suite import builtin_suites, load_suite

    for name in builtin_suites():
        suite = load_suite(name)
        typer.echo(f"{name}")
        typer.echo(f"  {suite.description}")
        budgets = [f"{suite.steps} steps" if suite.steps is not None else "",
                   f"{suite.frames} frames" if suite.frames is not None else "",
                   f"{suite.train_scale:g} x default steps" if suite.train_scale is not None else ""]
        typer.echo(f"  {len(suite.datasets)} datasets or envs x {len(suite.algorithms)} algorithms x "
                   f"{len(suite.seeds)} seeds, {', '.join(b for b in budgets if b)}, {suite.eval_episodes} eval "
                   "episodes")
        if suite.cpu_scale:
            typer.echo(f"  CPU scale: {suite.cpu_scale}")


def run_bench(*, suite: str, seeds: str | None = None, workers: int | None = None, backend: str = "local",
              address: str | None = None, out: Path = Path("runs"), scale: float | None = None,
              threads: int | None = None, first: str | None = None, restore: Path | None = None):
    """Run a suite (module docstring); returns the :class:`offmarl.bench.runner.BenchResult`."""
    from offmarl.bench.report import suite_report
    from offmarl.bench.runner import STATUS_DONE, bench_command, run_suite
    from offmarl.bench.suite import load_suite, parse_seeds

    spec = load_suite(suite)
    seed_list = None if seeds is None else parse_seeds(seeds)
    command = bench_command(suite, seeds, workers, backend, address, out, scale)
    try:
        result = run_suite(spec, seeds=seed_list, workers=workers, backend=backend, address=address, out=Path(out),
                           scale=1.0 if scale is None else scale, command=command, echo=typer.echo, threads=threads,
                           first=[] if first is None else [x.strip() for x in first.split(",") if x.strip()],
                           restore=restore)
    except KeyboardInterrupt:
        typer.echo("interrupted: finished runs are kept and half-done runs resume from their last checkpoint; "
                   f"run `{command}` again to finish the suite", err=True)
        raise typer.Exit(code=130) from None
    done = sum(o.status == STATUS_DONE for o in result.outcomes)
    typer.echo(f"\n{len(result.tasks)} runs: {len(result.skipped)} already done, {done} done now, "
               f"{len(result.failed)} failed ({result.seconds:.0f} s)")
    for outcome in result.failed:
        typer.echo(f"  failed: {outcome.label}: {outcome.error}  ({Path(outcome.run_dir) / 'error.txt'})")
    if result.eval_files:
        report = suite_report(result.suite_dir, result.eval_files)
        typer.echo("\n" + report.markdown)
        typer.echo(f"table: {report.table_md}\ncsv:   {report.table_csv}\nrecords: {report.records}")
        for plot in report.plots:
            typer.echo(f"plot:  {plot}")
    if result.failed:
        typer.echo("re-run the same command to retry the failed runs", err=True)
        raise typer.Exit(code=1)
    return result


def run_bench_table(*, runs_dir: Path, out: Path | None = None) -> None:
    """Aggregate the runs under ``runs_dir`` -- per suite directory or results folder, from their eval.json
    files or else their records -- into tables, plots and records, beside them or in ``out/<folder name>``."""
    from offmarl.bench.report import report_dirs, suite_report

    directories = report_dirs(runs_dir)
    names = [d.name for d in directories]
    if out is not None and len(set(names)) < len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"--out {out}: more than one folder under {runs_dir} is named {repeated[0]!r} and would "
                         f"write {Path(out) / repeated[0]}; aggregate them one at a time")
    for directory in directories:
        report = suite_report(directory, out_dir=None if out is None else Path(out) / directory.name)
        typer.echo(report.markdown)
        typer.echo(f"{report.runs} runs -> table: {report.table_md}, csv: {report.table_csv}, "
                   f"records: {report.records}")
        for plot in report.plots:
            typer.echo(f"plot:  {plot}")


def run_bench_status(*, runs_dir: Path) -> None:
    """Print :func:`offmarl.bench.status.status_markdown` for every suite directory under ``runs_dir``."""
    from offmarl.bench.layout import is_suite_dir
    from offmarl.bench.report import report_dirs
    from offmarl.bench.status import status_markdown

    dirs = [d for d in report_dirs(runs_dir) if is_suite_dir(d)]
    if not dirs:
        raise FileNotFoundError(f"no suite directory (with suite.json) under {runs_dir}")
    typer.echo("\n".join(status_markdown(d) for d in dirs))


def run_bench_export(*, runs_dir: Path, out: Path, fmt: str = "marl-eval") -> None:
    """Write the runs under ``runs_dir`` as a ``fmt`` document (:func:`offmarl.bench.export.write_export`)."""
    from offmarl.bench.export import write_export

    export = write_export(runs_dir, out, fmt)
    environments = ", ".join(f"{env} ({len(tasks)} tasks)" for env, tasks in export.document.items())
    typer.echo(f"{out}: {len(export.runs)} runs in {fmt}'s layout, environments {environments}; step_count counts "
               "gradient updates for offline runs and environment frames for online ones")
    for path, reason in export.skipped:
        typer.echo(f"  not exported: {path.parent}: {reason}")


def run_bench_speed(*, runs_dir: Path, reference: str = "ippo", metric: str = "win_rate", fraction: float = 0.8,
                    out: Path | None = None) -> None:
    """Print (and write to ``out``) the frames each algorithm takes to reach ``fraction`` of ``reference``'s final
    ``metric`` (:mod:`offmarl.bench.speed`)."""
    from offmarl.bench.speed import learning_speed, speed_markdown
    from offmarl.core.files import atomic_write_text

    if not Path(runs_dir).exists():
        raise FileNotFoundError(f"{runs_dir} does not exist")
    text = speed_markdown(learning_speed(runs_dir, reference, metric, fraction), reference, metric, fraction)
    if out is not None:
        atomic_write_text(out, text)
    typer.echo(text)


def run_bench_cost(*, runs_dir: Path, reference: str = "madt", out: Path | None = None) -> None:
    """Print (and write to ``out``) each algorithm's training time against ``reference``'s at equal updates and its
    stages' shares, per suite directory or results folder under ``runs_dir`` (:mod:`offmarl.bench.cost`)."""
    from offmarl.bench.cost import training_cost
    from offmarl.bench.report import report_dirs, report_records
    from offmarl.core.files import atomic_write_text

    texts = []
    for directory in report_dirs(runs_dir):
        runs = report_records(directory)
        texts.append(training_cost(runs.records, reference, runs.title, runs.dataset_order, runs.algo_order))
    text = "\n".join(texts)
    if out is not None:
        atomic_write_text(out, text)
    typer.echo(text)


IMPROVEMENT_FILE = "probability_of_improvement"
PAIRED_FILE = "paired"


def _one_report(path: Path, verb: str) -> Path:
    """The one suite directory or results folder ``path`` is (or holds)."""
    from offmarl.bench.report import report_dirs

    directories = report_dirs(path)
    if len(directories) != 1:
        raise ValueError(f"{path} holds {len(directories)} suite directories or results folders "
                         f"({', '.join(d.name for d in directories)}); {verb} within one of them")
    return directories[0]


def _single_table(suite_dir: Path, verb: str) -> tuple["Table", str]:
    """The table and title of the one suite directory or results folder ``suite_dir`` is (or holds)."""
    from offmarl.bench.report import report_table

    return report_table(_one_report(suite_dir, verb))


def _echo_and_write(markdown: str, csv_text: str, out: Path | None, name: str) -> None:
    """Print ``markdown``; with ``out``, also write it and ``csv_text`` to ``OUT/<name>.md`` and ``.csv``."""
    from offmarl.core.files import atomic_write_text

    typer.echo(markdown)
    if out is not None:
        atomic_write_text(Path(out) / f"{name}.md", markdown)
        atomic_write_text(Path(out) / f"{name}.csv", csv_text)
        typer.echo(f"wrote {Path(out) / name}.md and .csv")


def run_bench_compare(*, suite_dir: Path, algos: list[str], out: Path | None = None) -> None:
    """Print (and with ``out`` write) the probabilities of improvement between ``algos`` (module docstring)."""
    from offmarl.bench.aggregates import probabilities_of_improvement
    from offmarl.bench.tables import improvement_csv, improvement_markdown

    table, title = _single_table(suite_dir, "compare")
    improvements = probabilities_of_improvement(table, algos)
    _echo_and_write(improvement_markdown(improvements, title), improvement_csv(improvements), out, IMPROVEMENT_FILE)


def _with_rows(suite_dir: Path, others: list[Path], labels: set[str]) -> tuple["Table", str]:
    """``suite_dir``'s table, plus the rows named in ``labels`` that it lacks taken from the ``others`` (the
    first that has each). Rows of two suites pair only on the same data (equal normalization returns per task)
    under the same evaluation (episodes, checkpoint protocol, steps unit) of the paired rows: else a one-line
    error naming two runs that differ."""
    from offmarl.bench.aggregates import BEST_OTHER
    from offmarl.bench.records import build_table
    from offmarl.bench.report import report_records

    main = report_records(_one_report(suite_dir, "pair rows"))
    records, have = list(main.records), {r.algo for r in main.records}
    for other in others:
        taken = [r for r in report_records(_one_report(other, "pair rows")).records if r.algo in labels - have]
        records += taken
        have |= {r.algo for r in taken}
    table = build_table(records, main.algo_order, main.dataset_order, main.stat)
    paired = set(table.algos) if BEST_OTHER in labels else labels
    for task in table.datasets:
        table.normalization(task)  # the same data: raises naming two runs that disagree
        cells = [table.cells[(a, task)] for a in table.algos if a in paired and (a, task) in table.cells]
        setups = {(r.episodes, r.protocol, r.steps_unit): r.path for cell in cells for r in cell.records}
        if len(setups) > 1:
            (first, a), (second, b) = list(setups.items())[:2]
            raise ValueError(f"the runs on {task} were evaluated differently (episodes, protocol, steps unit): "
                             f"{first} in {a}, {second} in {b}")
    return table, main.title


def run_bench_paired(*, suite_dir: Path, pairs: list[str], out: Path | None = None,
                     others: list[Path] | None = None) -> None:
    """Print (and with ``out`` write ``OUT/paired.md`` and ``.csv``) the seed-by-seed differences of each
    ``X:Y`` pair of rows (module docstring); ``others``: folders to take the rows ``suite_dir`` lacks from."""
    from offmarl.bench.aggregates import paired_differences
    from offmarl.bench.tables import paired_csv, paired_markdown

    parsed = []
    for pair in pairs:
        x, sep, y = pair.rpartition(":")
        if not sep or not x or not y:
            raise ValueError(f"a pair is X:Y (two row labels of the table), got {pair!r}")
        parsed.append((x, y))
    if others:
        table, title = _with_rows(suite_dir, list(others), {label for pair in parsed for label in pair})
    else:
        table, title = _single_table(suite_dir, "pair rows")
    found = [p for x, y in parsed for p in paired_differences(table, x, y)]
    _echo_and_write(paired_markdown(found, title), paired_csv(found), out, PAIRED_FILE)
