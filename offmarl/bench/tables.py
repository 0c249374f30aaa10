"""Paper-style tables of a :class:`offmarl.bench.records.Table` (``eval.json`` files only): markdown and CSV.

Markdown: rows algorithms, columns datasets, each cell the table's ``stat`` over seeds
(:mod:`offmarl.bench.records` says how they are computed): mean ± std (the papers' metric, the default),
mean ± standard error, or the IQM [95 % bootstrap CI] -- printed at :data:`~offmarl.bench.records.DECIMALS`
decimals; the best of each column is bold (equal-looking cells together). A cell with fewer seeds than the
table's fullest cell is marked ``†`` and listed in the footer. The footer states the seeds, the training
steps, the evaluation episodes, the protocol (``last``: the weights at the end of training, no selection
of a best checkpoint; ``best``; ``absolute``) and the exact commands that produced the runs (from
``suite.json``). Sections follow: the mean ± std and the IQM [CI] tables when the main one shows another
statistic (so both are always there), the win rates where the env reports wins (:func:`win_rate_markdown`),
the normalized aggregates across tasks
(:func:`aggregate_markdown`) and, for a suite's ``metric_curves``, each metric's value at the end of
training (:func:`final_metric_markdown`).

CSV (long format, one row per cell): ``algorithm, dataset, mean, std, n_seeds, seeds, steps,
eval_episodes, best, sem, iqm, iqm_ci_low, iqm_ci_high, protocol, win_rate, win_rate_std`` (CI bounds empty
below 5 seeds; ``best`` under the table's stat; the win rate's mean and std over seeds as fractions, empty where
no seed recorded one). ``aggregate.csv`` (:func:`aggregate_csv`): ``algorithm, metric, estimate, ci_low,
ci_high, n_tasks, tasks, n_runs``. ``offmarl bench compare`` prints :func:`improvement_markdown` (and writes
:func:`improvement_csv`: ``x, y, probability, ci_low, ci_high, n_tasks, tasks``).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable, Sequence

import numpy as np

from offmarl import __version__
from offmarl.algos.base import get_algo_class, policies_take
from offmarl.bench.aggregates import Improvement, NormalizedScores, PairedDifference
from offmarl.bench.records import DECIMALS, Cell, Table
from offmarl.bench.run_metrics import curve_datasets, final_values, metric_file_name, metric_label, metric_runs
from offmarl.bench.statistics import BOOTSTRAP_REPS, MIN_RUNS_FOR_CI, Estimate
from offmarl.bench.sweeps import SizeSweep
from offmarl.train.run_dir import label_algo_name

MISSING = "–"
FEWER_SEEDS = "†"
NOT_AVAILABLE = "n/a"
METRIC_DECIMALS = 3  # metrics are often well below 1 (value_diff)
WIN_DECIMALS = 1  # win rates in %: 128 evaluation episodes resolve 0.8 %
CI_TEXT = (f"95 % percentile-bootstrap CI over seeds ({BOOTSTRAP_REPS} resamples; {NOT_AVAILABLE} below "
           f"{MIN_RUNS_FOR_CI} seeds, where resampling a handful of values says little)")
STAT_CAPTIONS = {
    "std": "mean ± std over seeds of each seed's evaluation mean (population std, ddof = 0)",
    "sem": "mean ± standard error over seeds of each seed's evaluation mean (sample std, ddof = 1, over √seeds)",
    "iqm": "IQM over seeds of each seed's evaluation mean (the mean of the middle half: ⌊seeds / 4⌋ cut from "
           f"each end, so with 3 seeds the mean) [{CI_TEXT}]",
}
STAT_SECTIONS = {"std": "Mean ± std over seeds (the papers' metric)", "iqm": "IQM over seeds [95 % bootstrap CI]"}
PROTOCOLS = {
    "last": "last (the weights at the end of training; no best-checkpoint selection)",
    "best": "best (the weights of the best evaluation during training, selected on the evaluation seed's episodes "
            "and scored on held-out ones)",
    "absolute": "absolute (Gorsane et al. 2022's absolute metric: the best checkpoint, selected as for best, "
                "scored on 10 x the evaluation episodes)",
}


def _number(x: float, decimals: int = DECIMALS) -> str:
    return NOT_AVAILABLE if x != x else f"{x:.{decimals}f}"  # NaN: a standard error of one seed


def format_estimate(est: Estimate, decimals: int = DECIMALS) -> str:
    """``point [low, high]``, or ``point [n/a]`` without an interval."""
    interval = f"{est.low:.{decimals}f}, {est.high:.{decimals}f}" if est.has_interval else NOT_AVAILABLE
    return f"{est.point:.{decimals}f} [{interval}]"


def format_value(cell: Cell, stat: str) -> str:
    if stat == "iqm":
        return format_estimate(cell.iqm)
    return f"{_number(cell.mean)} ± {_number(cell.sem if stat == 'sem' else cell.std)}"


def format_cell(table: Table, algo: str, dataset: str, stat: str | None = None) -> str:
    """The cell's ``stat`` (default: the table's), bold when best in its column, † when it has fewer seeds."""
    stat = table.stat if stat is None else stat
    cell = table.cells.get((algo, dataset))
    if cell is None:
        return MISSING
    text = format_value(cell, stat)
    if algo in table.best(dataset, stat):
        text = f"**{text}**"
    if len(cell.records) < table.max_seeds:
        text += f" {FEWER_SEEDS}"
    return text


def _grid(table: Table, stat: str) -> list[str]:
    header = ["algorithm", *table.datasets]
    rows = [header, ["---"] * len(header)]
    rows += [[algo, *(format_cell(table, algo, ds, stat) for ds in table.datasets)] for algo in table.algos]
    return ["| " + " | ".join(r) + " |" for r in rows]


def _join(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values)


def _per_algo(table: Table, attr: str) -> str:
    """One value when every run agrees, else ``algo: v1, v2 (dataset)`` per algorithm."""
    values = {getattr(r, attr) for r in table.records}
    if len(values) == 1:
        return str(values.pop())
    parts = []
    for algo in table.algos:
        by_value: dict[Any, list[str]] = {}
        for ds in table.datasets:
            for rec in (table.cells[(algo, ds)].records if (algo, ds) in table.cells else []):
                if ds not in by_value.setdefault(getattr(rec, attr), []):
                    by_value[getattr(rec, attr)].append(ds)
        parts.append(f"{algo} " + " / ".join(f"{v} ({_join(d)})" if len(by_value) > 1 else str(v)
                                               for v, d in by_value.items()))
    return "; ".join(parts)


def _return_conditioned(label: str) -> bool:
    """Whether the algorithm of a table row label (``madt``, ``distill[conventional]``, ``bc@top10``) takes a
    target return; a label that names no registered algorithm (``distill's teacher``) counts as one, so its
    footer keeps the target."""
    try:
        cls = get_algo_class(label_algo_name(label))
    except (KeyError, ValueError):
        return True
    return policies_take(cls, "target_return")


def footer_lines(table: Table, commands: Sequence[str] = (), note: str = "") -> list[str]:
    seeds = sorted({r.seed for r in table.records})
    protocols = sorted({r.protocol for r in table.records})
    targets = sorted({json.dumps(r.target_return) for r in table.records})
    target = ("the policy's default (return-conditioned methods: each agent's best return in the dataset)"
              if targets == ["null"] else _join(targets))
    conditioned = targets != ["null"] or any(_return_conditioned(a) for a in table.algos)
    interacting = [a for a in table.algos if any(r.steps_unit == "frames" for r in table.records if r.algo == a)]
    all_interact = len(interacting) == len(table.algos)  # an online suite: every row counts env frames
    lines = [
        f"Per-agent average return (the papers' metric): {STAT_CAPTIONS[table.stat]}; best of each column in bold "
        "(compared at the printed precision).",
        f"Seeds: {_join(seeds)} (up to {table.max_seeds} per cell). Steps: {_per_algo(table, 'steps')} "
        f"{'environment frames' if all_interact else 'gradient steps'} per run. Evaluation: "
        f"{_per_algo(table, 'episodes')} episodes per seed, greedy actions; "
        f"protocol: {_join(PROTOCOLS.get(p, p) for p in protocols)}"
        + (f"; target return: {target}." if conditioned else "."),
    ]
    if interacting:
        lines.append(f"Steps of {_join(interacting)} count environment frames: they interact with the environment "
                     "(online, or learning from the dataset and the env)"
                     + ("." if all_interact else "; the other rows learn offline from the dataset alone and count "
                        "gradient steps."))
    short = [f"{a} on {d}: seeds {_join(table.cells[(a, d)].seeds)}" for a in table.algos for d in table.datasets
             if (a, d) in table.cells and len(table.cells[(a, d)].records) < table.max_seeds]
    if short:
        lines.append(f"{FEWER_SEEDS} fewer seeds than the fullest cell: {'; '.join(short)}.")
    if table.unevaluated:
        runs = "; ".join(f"{r.algo} on {r.dataset}, seed {r.seed}" for r in table.unevaluated)
        lines.append(f"Not evaluated (offmarl has no environment for data imported from another library): {runs}.")
    if note:
        lines.append(note)
    if commands:
        lines.append("Produced by: " + "; then ".join(f"`{c}`" for c in commands) + f" (offmarl {__version__}).")
    return lines


def to_markdown(table: Table, title: str = "", commands: Sequence[str] = (), note: str = "",
                description: str = "") -> str:
    """The main table under the table's stat, its footer, then the std and IQM tables it does not show."""
    lines = [f"## {title}", ""] if title else []
    lines += [description, ""] if description else []
    lines += _grid(table, table.stat) + [""] + footer_lines(table, commands, note)
    for stat, heading in STAT_SECTIONS.items():
        if stat != table.stat:
            lines += ["", f"### {heading}", "", *_grid(table, stat), "", f"Per-agent average return: "
                      f"{STAT_CAPTIONS[stat]}; best of each column in bold."]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["algorithm", "dataset", "mean", "std", "n_seeds", "seeds", "steps", "eval_episodes", "best",
                     "sem", "iqm", "iqm_ci_low", "iqm_ci_high", "protocol", "win_rate", "win_rate_std"])
    for algo in table.algos:
        for ds in table.datasets:
            cell = table.cells.get((algo, ds))
            if cell is None:
                continue
            steps = sorted({r.steps for r in cell.records if r.steps is not None})
            episodes = sorted({r.episodes for r in cell.records})
            iqm = cell.iqm
            wins = _win_rates(cell)
            writer.writerow([algo, ds, repr(cell.mean), repr(cell.std), len(cell.records),
                             " ".join(map(str, cell.seeds)), " ".join(map(str, steps)), " ".join(map(str, episodes)),
                             algo in table.best(ds), repr(cell.sem), repr(iqm.point),
                             "" if iqm.low is None else repr(iqm.low), "" if iqm.high is None else repr(iqm.high),
                             " ".join(sorted({r.protocol for r in cell.records})),
                             repr(float(wins.mean())) if wins.size else "",
                             repr(float(wins.std())) if wins.size else ""])
    return buf.getvalue()


def _partial_grid(table: Table, cells: dict[tuple[str, str], Any], text: Callable[[str, str, Any], str]
                  ) -> tuple[list[str], list[str], list[str]]:
    """Markdown rows of a grid over the table's algorithms and datasets that have an entry in ``cells`` (keyed
    ``(algo, dataset)``): ``text(algo, dataset, entry)`` in each cell, :data:`MISSING` where there is none.
    Returns ``(lines, algos, datasets)``."""
    algos = [a for a in table.algos if any((a, d) in cells for d in table.datasets)]
    datasets = [d for d in table.datasets if any((a, d) in cells for a in table.algos)]
    rows = [["algorithm", *datasets], ["---"] * (len(datasets) + 1)]
    rows += [[algo, *(text(algo, ds, cells[(algo, ds)]) if (algo, ds) in cells else MISSING for ds in datasets)]
             for algo in algos]
    return ["| " + " | ".join(r) + " |" for r in rows], algos, datasets


def _win_rates(cell: Cell) -> np.ndarray:
    return np.array([r.win_rate for r in cell.records if r.win_rate is not None], dtype=np.float64)


def win_rate_markdown(table: Table) -> str:
    """A ``### Win rate`` section for runs on envs that report wins (SMAX): rows algorithms, columns the
    datasets some run has a win rate on, each cell the mean ± std over seeds of each seed's evaluation win rate
    (%) and the lowest seed's, the best mean of each column bold; ``""`` when no run recorded a win rate."""
    wins = {key: rates for key, cell in table.cells.items() if (rates := _win_rates(cell)).size}
    if not wins:
        return ""
    shown = {key: round(100 * float(rates.mean()), WIN_DECIMALS) for key, rates in wins.items()}
    best = {ds: max(v for (_, d), v in shown.items() if d == ds) for _, ds in shown}

    def text(algo: str, ds: str, rates: np.ndarray) -> str:
        out = (f"{100 * rates.mean():.{WIN_DECIMALS}f} ± {100 * rates.std():.{WIN_DECIMALS}f} "
               f"(lowest {100 * rates.min():.{WIN_DECIMALS}f})")
        if shown[(algo, ds)] == best[ds]:
            out = f"**{out}**"
        seeds = len(table.cells[(algo, ds)].records)
        return out + (f" ({rates.size} of {seeds} seeds)" if rates.size < seeds else "")

    grid, _, _ = _partial_grid(table, wins, text)
    return "\n".join(["### Win rate", "", *grid, "",
                      "Win rate (%): the share of each seed's evaluation episodes won (the main table's episodes, "
                      "greedy actions), mean ± std over seeds (population std, ddof = 0) and the lowest seed's; "
                      f"best mean of each column in bold. {MISSING}: the run recorded no win rate."]) + "\n"


def aggregate_markdown(normalized: NormalizedScores, estimates: dict[str, dict[str, Estimate]],
                       plots: Sequence[str]) -> str:
    """A ``### Normalized scores across tasks`` section: per algorithm, each aggregate [95 % CI] over the
    normalized tasks it has runs on (:mod:`offmarl.bench.aggregates`), and how the scores were made."""
    lines = ["### Normalized scores across tasks", ""]
    if not normalized.tasks:
        return "\n".join(lines + ["Not computed: no task's records carry normalization returns (random_return, "
                                  "reference_return): data of dataset format version 1, or online envs without a "
                                  "scripted expert."]) + "\n"
    metrics = list(next(iter(estimates.values())))
    lines += ["| " + " | ".join(["algorithm", *metrics, "tasks"]) + " |", "|" + " --- |" * (len(metrics) + 2)]
    for algo, row in estimates.items():
        lines.append("| " + " | ".join([algo, *(format_estimate(row[m]) for m in metrics),
                                        str(len(normalized.scores[algo]))]) + " |")
    references = "; ".join(f"{ds} {random:.{DECIMALS}f} and {reference:.{DECIMALS}f}"
                           for ds, (random, reference) in normalized.references.items())
    lines += ["", "Each run's return R normalized as (R − R_random) / (R_reference − R_random) with its task's "
              f"R_random and R_reference ({references}): 0 is the uniform random policy, 1 the reference -- the "
              "behaviour expert (online: the env's scripted expert; for data without an expert, its best episode) -- "
              "both measured when the data was collected (online: once per env). Over the "
              "tasks each algorithm has runs on: the IQM of all its runs, the median and mean of its per-task "
              "means, the optimality gap = the mean over runs of max(1 − score, 0) (lower is better) -- Agarwal "
              "et al. 2021's definitions -- with 95 % stratified-bootstrap CIs (seeds resampled within each task, "
              f"{BOOTSTRAP_REPS} resamples; {NOT_AVAILABLE} when a task has fewer than {MIN_RUNS_FOR_CI} seeds)."
              + (f" Plots: {', '.join(f'`{p}`' for p in plots)}." if plots else "")
              + " Probability of improvement between two algorithms: `offmarl bench compare DIR A B`."]
    if normalized.left_out:
        lines.append(f"Left out (no normalization returns in their records): {', '.join(normalized.left_out)}.")
    return "\n".join(lines) + "\n"


def aggregate_csv(normalized: NormalizedScores, estimates: dict[str, dict[str, Estimate]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["algorithm", "metric", "estimate", "ci_low", "ci_high", "n_tasks", "tasks", "n_runs"])
    for algo, row in estimates.items():
        tasks = normalized.scores[algo]
        for metric, est in row.items():
            writer.writerow([algo, metric, repr(est.point), "" if est.low is None else repr(est.low),
                             "" if est.high is None else repr(est.high), len(tasks), " ".join(tasks),
                             sum(len(v) for v in tasks.values())])
    return buf.getvalue()


def final_metric_markdown(table: Table, metric: str) -> str:
    """A ``### <metric> at the end of training`` section: rows algorithms, columns datasets, each cell the
    mean ± std over seeds of the runs' last logged value; ``""`` when no run logged ``metric``."""
    cells = metric_runs(table, metric)
    if not cells:
        return ""

    def text(algo: str, ds: str, runs) -> str:
        mean, std = final_values(runs)
        return f"{mean:.{METRIC_DECIMALS}f} ± {std:.{METRIC_DECIMALS}f}"

    grid, algos, datasets = _partial_grid(table, cells, text)
    counts = {len(runs) for runs in cells.values()}
    seeds = (f"{counts.pop()} seeds per cell" if len(counts) == 1 else
             "seeds per cell: " + "; ".join(f"{a} on {d}: {len(cells[(a, d)])}" for a in algos for d in datasets
                                            if (a, d) in cells))
    last_steps = sorted({max(r.series) for runs in cells.values() for r in runs})
    at = f"step {last_steps[0]:g}" if len(last_steps) == 1 else f"steps {last_steps[0]:g}-{last_steps[-1]:g}"
    label = metric_label(metric)
    what = f"`{metric}`" + (f" ({label})" if label else "")
    curves = curve_datasets(cells, datasets)
    plots = (f"Curves over training: {', '.join(f'`{metric_file_name(metric, d)}`' for d in curves)}." if curves
             else "Logged once per run: no curves over training.")
    skipped = [a for a in table.algos if a not in algos]
    lines = [f"### {metric} at the end of training", "", *grid, "",
             f"{what} at each run's last logged step of its metrics.csv ({at}): mean ± std over seeds "
             f"(population std, ddof = 0; {seeds}). {MISSING}: not logged. {plots}"]
    if skipped:
        lines.append(f"Not logged by: {', '.join(skipped)}.")
    return "\n".join(lines) + "\n"


def sweep_markdown(table: Table, sweeps: Sequence[SizeSweep], plot: str | None) -> str:
    """A ``### Return vs dataset size`` section (:mod:`offmarl.bench.sweeps`): per sweep, rows algorithms,
    columns the sizes (smallest first), each cell the table's cell of that size's column; ``""`` without
    sweeps."""
    if not sweeps:
        return ""
    lines = ["### Return vs dataset size", ""]
    for sweep in sweeps:
        unit = "trajectories" if sweep.unit == "trajectories" else "× the recipe"
        header = [f"{p.episodes:g} {unit} ({p.label}, scale {p.scale:g})" if sweep.unit == "trajectories"
                  else f"scale {p.scale:g} ({p.label})" for p in sweep.points]
        algos = [a for a in table.algos if any((a, p.label) in table.cells for p in sweep.points)]
        lines += [f"{sweep.title}:", "", "| algorithm | " + " | ".join(header) + " |",
                  "| --- | " + " | ".join("---" for _ in header) + " |"]
        lines += ["| " + " | ".join([algo, *(format_cell(table, algo, p.label) for p in sweep.points)]) + " |"
                  for algo in algos]
        lines.append("")
    caption = (f"The cells of the table above, re-ordered by the number of trajectories each column's recipe "
               f"collects at its scale (each size its own collection, not a subset of the largest). "
               f"{STAT_CAPTIONS[table.stat].capitalize()}.")
    lines.append(caption + (f" Plot: `{plot}`." if plot else ""))
    return "\n".join(lines) + "\n"


def improvement_markdown(improvements: Sequence[Improvement], title: str) -> str:
    """A table of ``P(X > Y)`` with CIs, one row per ordered pair, and how it was computed."""
    lines = [f"## Probability of improvement: {title}", "", "| X | Y | P(X > Y) | 95 % CI | tasks |",
             "| --- | --- | --- | --- | --- |"]
    for imp in improvements:
        est = imp.estimate
        interval = f"[{est.low:.{DECIMALS}f}, {est.high:.{DECIMALS}f}]" if est.has_interval else NOT_AVAILABLE
        lines.append(f"| {imp.x} | {imp.y} | {est.point:.{DECIMALS}f} | {interval} | {', '.join(imp.tasks)} |")
    lines += ["", "P(X > Y): per task, the fraction of (seed of X, seed of Y) pairs in which X's return is the higher, "
              "ties counting one half (the Mann-Whitney U statistic over the pairs), averaged over the tasks both have "
              "runs on (Agarwal et al. 2021, 'Deep RL at the Edge of the Statistical Precipice'); P(Y > X) = "
              "1 − P(X > Y). 95 % stratified-bootstrap CI: each "
              f"algorithm's seeds resampled within each task, independently of the other's ({BOOTSTRAP_REPS} "
              "resamples)."]
    return "\n".join(lines) + "\n"


def improvement_csv(improvements: Sequence[Improvement]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["x", "y", "probability", "ci_low", "ci_high", "n_tasks", "tasks"])
    for imp in improvements:
        est = imp.estimate
        writer.writerow([imp.x, imp.y, repr(est.point), "" if est.low is None else repr(est.low),
                         "" if est.high is None else repr(est.high), len(imp.tasks), " ".join(imp.tasks)])
    return buf.getvalue()


def paired_markdown(pairs: Sequence[PairedDifference], title: str) -> str:
    """One row per (pair, task): the per-seed differences, their mean with its paired t interval, the wins."""
    lines = [f"## Paired differences: {title}", "", "| X − Y | task | seeds | per seed | mean | 95 % CI | X higher |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in pairs:
        est = p.estimate
        interval = f"[{est.low:+.{DECIMALS}f}, {est.high:+.{DECIMALS}f}]" if est.has_interval else NOT_AVAILABLE
        per_seed = ", ".join(f"{d:+.{DECIMALS}f}" for d in p.differences)
        lines.append(f"| {p.x} − {p.y} | {p.task} | {', '.join(map(str, p.seeds))} | {per_seed} | "
                     f"{est.point:+.{DECIMALS}f} | {interval} | {p.wins} of {len(p.seeds)} |")
    lines += ["", "Each row pairs the two algorithms' runs at the same seed (the seeds both ran) and takes the "
              "difference of their returns; the interval is Student's t over those differences, mean ± "
              "t(0.975, n − 1) · sd / √n (an interval that excludes 0 says the change moved the return beyond "
              "seed noise, assuming the differences are roughly normal)."]
    return "\n".join(lines) + "\n"


def paired_csv(pairs: Sequence[PairedDifference]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["x", "y", "task", "seeds", "differences", "mean", "ci_low", "ci_high", "x_higher"])
    for p in pairs:
        est = p.estimate
        writer.writerow([p.x, p.y, p.task, " ".join(map(str, p.seeds)), " ".join(repr(float(d)) for d in p.differences),
                         repr(est.point), "" if est.low is None else repr(est.low),
                         "" if est.high is None else repr(est.high), p.wins])
    return buf.getvalue()
