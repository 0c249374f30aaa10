"""The field's statistics of a benchmark, in numpy: interquartile means, bootstrap confidence intervals,
normalized aggregates, probability of improvement and performance profiles.

Definitions follow Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (section "Recommendations and Tools for Reliable Evaluation"; their library rliable), adopted
for cooperative MARL by Gorsane et al. 2022, "Towards a Standardised Performance Evaluation Protocol for
Cooperative MARL" (the protocol it proposes). Written here rather
than depending on rliable, whose dependencies (scipy, arch, absl, seaborn) offmarl has no other use for.

Shapes. A task's scores are an array whose LAST axis is runs (one score per seed); leading axes are free
(e.g. the evaluation steps of a learning curve). Every statistic reduces the runs axis and keeps the
leading ones, so the same function gives the point estimate and, on bootstrap resamples that carry an
extra leading axis of replicates, its bootstrap distribution. A statistic over tasks takes a sequence of
such arrays, one per task; tasks may have different numbers of runs.

* **IQM** (interquartile mean): the mean of the middle runs after removing ``floor(n / 4)`` runs from
  each end of the sorted scores (rliable's ``scipy.stats.trim_mean(x, 0.25)``): with 3 runs it is the
  mean, with 4 the mean of the middle 2, with 5 the mean of the middle 3. Across tasks, the IQM of all
  runs of all tasks pooled.
* **Mean / median** across tasks: of the per-task means over runs.
* **Optimality gap** at ``gamma = 1``: the mean over all runs of ``max(gamma - x, 0)`` -- how far the
  normalized scores fall short of the reference, scores above it counting as 0.
* **Probability of improvement** ``P(X > Y)``: per task, the fraction of pairs (run of X, run of Y) with
  X's score above Y's, ties counting one half (the Mann-Whitney U statistic over ``m n``); averaged over
  the tasks.
* **Performance profile** (run-score distribution): at each threshold ``tau``, the fraction of all runs
  of all tasks with a score strictly above ``tau``.
* **Standard error**: the sample std (``ddof = 1``) over ``sqrt(n)``.
* **Paired difference** of two algorithms run at the same seeds (a controlled experiment: the seed fixes
  everything but the change under test): the mean over seeds of ``X_s - Y_s`` with Student's t interval
  ``mean ± t_{0.975, n-1} · se`` of those differences (not a bootstrap: with the 3–5 seeds such experiments
  have, a bootstrap of n differences takes a handful of values, while the t interval is exact when the
  differences are normal and honest about how wide 3 seeds leave it).

Confidence intervals are percentile intervals of the bootstrap distribution (``CONFIDENCE`` = 95 %,
:data:`BOOTSTRAP_REPS` replicates of a generator seeded with :data:`BOOTSTRAP_SEED`, so a table is
reproducible to the byte). Across tasks the bootstrap is stratified: each replicate resamples the runs of
each task with replacement, the tasks themselves fixed; statistics of two algorithms (probability of
improvement) resample each one's runs independently. A stratum of fewer than :data:`MIN_RUNS_FOR_CI`
runs gives no interval: with 3 seeds the resamples take a handful of values and the interval says more
about the resampling than about the algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

MIN_RUNS_FOR_CI = 5
BOOTSTRAP_REPS = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95

Tasks = Sequence[np.ndarray]  # one array per task, runs on the last axis


def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean over the last axis (module docstring)."""
    scores = np.sort(np.asarray(scores, dtype=np.float64), axis=-1)
    n = scores.shape[-1]
    if n == 0:
        raise ValueError("the IQM of no runs is undefined")
    cut = n // 4
    return scores[..., cut:n - cut].mean(axis=-1)


def standard_error(scores: np.ndarray) -> np.ndarray:
    """Sample std (``ddof = 1``) over ``sqrt(n)`` along the last axis; NaN for a single run."""
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[-1]
    if n < 2:
        return np.full(scores.shape[:-1], np.nan)
    return scores.std(axis=-1, ddof=1) / np.sqrt(n)


def normalized_scores(returns: np.ndarray, random_return: float, reference_return: float) -> np.ndarray:
    """``(R - R_random) / (R_reference - R_random)``: 0 is the uniform random policy, 1 the reference."""
    if reference_return == random_return:
        raise ValueError(f"the reference return equals the random return ({random_return!r}): scores cannot be "
                         "normalized")
    return (np.asarray(returns, dtype=np.float64) - random_return) / (reference_return - random_return)


def _pooled(tasks: Tasks) -> np.ndarray:
    return np.concatenate([np.asarray(t, dtype=np.float64) for t in tasks], axis=-1)


def _task_means(tasks: Tasks) -> np.ndarray:
    """``[..., tasks]``: each task's mean over its runs."""
    return np.stack([np.asarray(t, dtype=np.float64).mean(axis=-1) for t in tasks], axis=-1)


def aggregate_iqm(tasks: Tasks) -> np.ndarray:
    return iqm(_pooled(tasks))


def aggregate_mean(tasks: Tasks) -> np.ndarray:
    return _task_means(tasks).mean(axis=-1)


def aggregate_median(tasks: Tasks) -> np.ndarray:
    return np.median(_task_means(tasks), axis=-1)


def optimality_gap(tasks: Tasks, gamma: float = 1.0) -> np.ndarray:
    return np.maximum(gamma - _pooled(tasks), 0.0).mean(axis=-1)


AGGREGATES: dict[str, Callable[[Tasks], np.ndarray]] = {
    "IQM": aggregate_iqm, "median": aggregate_median, "mean": aggregate_mean, "optimality gap": optimality_gap}


def probability_of_improvement(x_tasks: Tasks, y_tasks: Tasks) -> np.ndarray:
    """``P(X > Y)`` averaged over tasks (module docstring); task ``i`` of both sequences is the same task."""
    if len(x_tasks) != len(y_tasks) or not x_tasks:
        raise ValueError("the probability of improvement needs the same, non-empty list of tasks for both")
    per_task = []
    for x, y in zip(x_tasks, y_tasks):
        x = np.asarray(x, dtype=np.float64)[..., :, None]
        y = np.asarray(y, dtype=np.float64)[..., None, :]
        per_task.append(((x > y).mean(axis=(-2, -1)) + 0.5 * (x == y).mean(axis=(-2, -1))))
    return np.mean(per_task, axis=0)


def score_distribution(tasks: Tasks, thresholds: np.ndarray) -> np.ndarray:
    """``[..., len(thresholds)]``: the fraction of all runs with a score above each threshold."""
    pooled = _pooled(tasks)
    return (pooled[..., :, None] > np.asarray(thresholds, dtype=np.float64)).mean(axis=-2)


# ---- bootstrap ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """A point estimate and its confidence interval (``low`` / ``high`` None: no interval, too few runs).

    Scalars for a scalar statistic, arrays for a vector one (a curve, a profile)."""

    point: np.ndarray | float
    low: np.ndarray | float | None = None
    high: np.ndarray | float | None = None

    @property
    def has_interval(self) -> bool:
        return self.low is not None

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` as arrays, NaN without an interval (a plot draws no band there)."""
        if self.low is None:
            missing = np.full(np.shape(self.point), np.nan)
            return missing, missing
        return np.asarray(self.low), np.asarray(self.high)


def _resample(task: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``[reps, ..., n]``: the runs of ``task`` drawn with replacement, ``reps`` times."""
    task = np.asarray(task, dtype=np.float64)
    picks = rng.integers(0, task.shape[-1], size=(reps, task.shape[-1]))
    return np.moveaxis(np.take(task, picks, axis=-1), -2, 0)


def bootstrap(statistic: Callable[..., np.ndarray], *groups: Tasks, reps: int = BOOTSTRAP_REPS,
              seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE,
              min_runs: int = MIN_RUNS_FOR_CI) -> Estimate:
    """``statistic(*groups)`` with its stratified-bootstrap percentile interval (module docstring).

    Each group is a sequence of per-task arrays (one group: an algorithm's runs; two: a pair of algorithms,
    resampled independently). No interval when a task of any group has fewer than ``min_runs`` runs."""
    point = statistic(*groups)
    point = float(point) if np.ndim(point) == 0 else np.asarray(point)
    if any(np.shape(task)[-1] < min_runs for group in groups for task in group):
        return Estimate(point)
    rng = np.random.default_rng(seed)
    samples = statistic(*([_resample(task, reps, rng) for task in group] for group in groups))
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    if np.ndim(point) == 0:
        return Estimate(point, float(low), float(high))
    return Estimate(point, low, high)


# ---- paired differences -----------------------------------------------------------------------------------
# Student's t quantiles t_{0.975, df}, df = 1..30; beyond, the Cornish-Fisher expansion (within 1e-3)
_T_975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788,
          2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639,
          2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
_Z_975 = 1.959964


def t_quantile_975(df: int) -> float:
    """Student's t 0.975 quantile with ``df`` >= 1 degrees of freedom (two-sided 95 %)."""
    if df < 1:
        raise ValueError(f"Student's t needs at least 1 degree of freedom, got {df}")
    if df <= len(_T_975):
        return _T_975[df - 1]
    z = _Z_975
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def paired_difference(differences: np.ndarray) -> Estimate:
    """The mean of per-seed differences ``X_s - Y_s`` with its paired t interval (module docstring); no
    interval from a single pair."""
    differences = np.asarray(differences, dtype=np.float64)
    if differences.ndim != 1 or differences.size == 0:
        raise ValueError(f"a paired difference needs a non-empty vector of per-seed differences, got shape "
                         f"{list(differences.shape)}")
    mean = float(differences.mean())
    if differences.size < 2:
        return Estimate(mean)
    half = t_quantile_975(differences.size - 1) * float(standard_error(differences))
    return Estimate(mean, mean - half, mean + half)
