"""Statistics across the tasks of a bench table (:mod:`offmarl.bench.statistics` applied to a
:class:`~offmarl.bench.records.Table`): normalized aggregates, performance profiles, sample-efficiency
curves and probabilities of improvement.

Normalized scores. Each run's return ``R`` becomes ``(R - R_random) / (R_reference - R_random)`` with its
task's normalization returns (:meth:`Table.normalization`, recorded in eval.json from the dataset card or
the online env's cached measurement; :mod:`offmarl.collect.normalization`): 0 is the uniform random
policy, 1 the reference (the behaviour expert, or the dataset's best episode). A task whose records lack
them is left out of everything normalized (:attr:`NormalizedScores.left_out`).

* :func:`aggregate_estimates`: per algorithm, over the normalized tasks it has runs on, the IQM, median,
  mean and optimality gap with stratified-bootstrap CIs (Agarwal et al. 2021, "Deep RL at the Edge of the
  Statistical Precipice").
* :func:`performance_profiles`: per algorithm, the fraction of its runs above each threshold, with CIs.
* :func:`sample_efficiency`: per algorithm, the IQM of the normalized evaluation returns during training
  at each step every one of its runs evaluated, with CIs (the curves of the eval.json files).
* :func:`probabilities_of_improvement`: ``P(X > Y)`` for ordered pairs of algorithms over the tasks both
  have, on the returns themselves (a comparison within each task needs no normalization).
* :func:`paired_differences`: per task, ``X - Y`` seed by seed over the seeds both ran, its mean and paired
  t interval (a controlled experiment's two rows). ``Y = @best`` is, task by task, the other row with the
  highest mean return there (a paper's "beats every baseline" claim, e.g. SIT's Table 1): picked on the
  same runs it is then compared on, so its mean is biased upwards (the winner's curse) and the comparison
  leans against X.

Tasks are the strata of every bootstrap; no interval when a task has fewer than
:data:`~offmarl.bench.statistics.MIN_RUNS_FOR_CI` seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from offmarl.bench.records import Table
from offmarl.bench.statistics import (
    AGGREGATES,
    MIN_RUNS_FOR_CI,
    Estimate,
    aggregate_iqm,
    bootstrap,
    normalized_scores,
    paired_difference,
    probability_of_improvement,
    score_distribution,
)

PROFILE_POINTS = 101
BEST_OTHER = "@best"  # paired_differences' Y: the best other row of each task


@dataclass(frozen=True)
class NormalizedScores:
    """The normalized scores of a table: ``scores[algo][task]`` over seeds (table orders)."""

    tasks: list[str]  # tasks with normalization returns
    references: dict[str, tuple[float, float]]  # task -> (random_return, reference_return)
    left_out: list[str]  # tasks without them
    scores: dict[str, dict[str, np.ndarray]]

    @property
    def algos(self) -> list[str]:
        return list(self.scores)

    def runs(self, algo: str) -> list[np.ndarray]:
        return list(self.scores[algo].values())


def normalize(table: Table) -> NormalizedScores:
    references = {ds: pair for ds in table.datasets if (pair := table.normalization(ds)) is not None}
    scores: dict[str, dict[str, np.ndarray]] = {}
    for algo in table.algos:
        tasks = {ds: normalized_scores(table.cells[(algo, ds)].values, *references[ds]) for ds in references
                 if (algo, ds) in table.cells}
        if tasks:
            scores[algo] = tasks
    return NormalizedScores(tasks=list(references), references=references,
                            left_out=[ds for ds in table.datasets if ds not in references], scores=scores)


def aggregate_estimates(normalized: NormalizedScores) -> dict[str, dict[str, Estimate]]:
    """``{algo: {metric: Estimate}}`` for the metrics of :data:`~offmarl.bench.statistics.AGGREGATES`."""
    return {algo: {name: bootstrap(statistic, normalized.runs(algo)) for name, statistic in AGGREGATES.items()}
            for algo in normalized.algos}


def profile_thresholds(normalized: NormalizedScores) -> np.ndarray:
    """A grid from 0 (random) or the lowest score, to 1 (the reference) or the highest."""
    pooled = np.concatenate([score for algo in normalized.algos for score in normalized.runs(algo)])
    return np.linspace(min(0.0, pooled.min()), max(1.0, pooled.max()), PROFILE_POINTS)


def performance_profiles(normalized: NormalizedScores, thresholds: np.ndarray) -> dict[str, Estimate]:
    return {algo: bootstrap(lambda tasks: score_distribution(tasks, thresholds), normalized.runs(algo))
            for algo in normalized.algos}


def sample_efficiency(table: Table, normalized: NormalizedScores) -> dict[str, tuple[np.ndarray, Estimate]]:
    """``{algo: (steps, IQM estimate over steps)}`` of the normalized evaluation returns during training, at the
    steps every run of the algorithm (on every normalized task) evaluated; algorithms with none are left out."""
    curves = {}
    for algo in normalized.algos:
        series = {ds: [{step: mean for step, mean, _ in rec.curve} for rec in table.cells[(algo, ds)].records]
                  for ds in normalized.scores[algo]}
        steps = sorted(set.intersection(*(set(s) for runs in series.values() for s in runs)))
        if not steps:
            continue
        tasks = [normalized_scores(np.array([[s[x] for s in runs] for x in steps]), *normalized.references[ds])
                 for ds, runs in series.items()]  # [steps, seeds] each
        curves[algo] = (np.asarray(steps, dtype=np.float64), bootstrap(aggregate_iqm, tasks))
    return curves


@dataclass(frozen=True)
class Improvement:
    """``P(x > y)`` over ``tasks``, with its CI."""

    x: str
    y: str
    estimate: Estimate
    tasks: list[str]


def probabilities_of_improvement(table: Table, algos: Sequence[str], min_seeds: int = MIN_RUNS_FOR_CI
                                 ) -> list[Improvement]:
    """``P(X > Y)`` for every ordered pair of ``algos`` (labels of ``table``) over the tasks both have runs on.

    One-line ValueErrors: a label the table does not have (naming those it has), fewer than two labels, a pair
    with no task in common, a cell with fewer than ``min_seeds`` seeds."""
    unknown = [a for a in algos if a not in table.algos]
    if unknown:
        raise ValueError(f"unknown algorithm {unknown[0]!r}; the runs have: {', '.join(table.algos)}")
    if len(set(algos)) < 2:
        raise ValueError("name at least two different algorithms to compare")
    for algo in algos:
        for ds in table.datasets:
            cell = table.cells.get((algo, ds))
            if cell is not None and len(cell.records) < min_seeds:
                raise ValueError(f"too few seeds: {algo} has {len(cell.records)} on {ds}; the probability of "
                                 f"improvement needs at least {min_seeds} per algorithm and task (run the suite "
                                 f"with --seeds {min_seeds})")
    found = []
    for x in algos:
        for y in algos:
            if x == y:
                continue
            tasks = [ds for ds in table.datasets if (x, ds) in table.cells and (y, ds) in table.cells]
            if not tasks:
                raise ValueError(f"{x} and {y} have no task in common to compare them on")
            found.append(Improvement(x, y, bootstrap(probability_of_improvement,
                                                     [table.cells[(x, ds)].values for ds in tasks],
                                                     [table.cells[(y, ds)].values for ds in tasks],
                                                     min_runs=min_seeds), tasks))
    return found


@dataclass(frozen=True)
class PairedDifference:
    """``x - y`` on one task, seed by seed (``seeds``, ``differences``), and their mean with its interval."""

    x: str
    y: str
    task: str
    seeds: tuple[int, ...]
    differences: np.ndarray
    estimate: Estimate

    @property
    def wins(self) -> int:
        """Seeds on which x scored higher."""
        return int((self.differences > 0).sum())


def paired_differences(table: Table, x: str, y: str) -> list[PairedDifference]:
    """``x - y`` per task over the seeds both rows ran (module docstring), in the table's task order; ``y =``
    :data:`BEST_OTHER` pairs x with each task's best other row by mean return.

    One-line ValueErrors: a label the table does not have (naming those it has), x = y, @best as x, no task
    with a seed in common."""
    if x == BEST_OTHER:
        raise ValueError(f"{BEST_OTHER} stands for the Y of a pair (X:{BEST_OTHER}), not its X")
    unknown = [a for a in (x, y) if a not in table.algos and a != BEST_OTHER]
    if unknown:
        raise ValueError(f"unknown algorithm {unknown[0]!r}; the runs have: {', '.join(table.algos)}")
    if x == y:
        raise ValueError(f"a paired comparison needs two different rows, got {x!r} twice")
    found = []
    for task in table.datasets:
        y_task = _best_other(table, x, task) if y == BEST_OTHER else y
        if (x, task) not in table.cells or (y_task, task) not in table.cells:
            continue
        by_seed = [{r.seed: r.return_mean for r in table.cells[(algo, task)].records} for algo in (x, y_task)]
        seeds = tuple(sorted(set(by_seed[0]) & set(by_seed[1])))
        if not seeds:
            continue
        differences = np.array([by_seed[0][s] - by_seed[1][s] for s in seeds], dtype=np.float64)
        found.append(PairedDifference(x, y_task, task, seeds, differences, paired_difference(differences)))
    if not found:
        raise ValueError(f"{x} and {y} have no task with a seed in common to pair them on")
    return found


def _best_other(table: Table, x: str, task: str) -> str | None:
    """The row other than x with the highest mean return on ``task`` (None when x is alone there)."""
    others = [a for a in table.algos if a != x and (a, task) in table.cells]
    return max(others, key=lambda a: table.cells[(a, task)].mean, default=None)
