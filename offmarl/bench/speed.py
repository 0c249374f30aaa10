"""Learning speed: the frames each algorithm takes to reach a fraction of a reference algorithm's final score.

DM² (Wang et al., AAAI 2023, §6 and Fig. 2) claims that DM² learns faster than IPPO. offmarl measures the
claim on a suite's learning curves (``eval.json``'s ``win_curve`` -- the win rate at every evaluation -- or
its ``curve`` of returns) as follows, per column (dataset or env label):

1. the target: ``fraction`` (0.8) × the reference algorithm's (``ippo``) final score, its mean over seeds
   of the last point of each seed's curve (the final evaluation);
2. per algorithm and seed, the frames (steps) of the first evaluation at or above the target; a seed
   that never gets there has no finite value (``inf``: "not reached within the budget");
3. per algorithm, the mean of those over seeds and a percentile bootstrap interval of the mean
   (:func:`bootstrap_interval`, i.e. :func:`offmarl.bench.statistics.bootstrap`: seeds resampled with
   replacement, 2000 replicates of a generator seeded with 0, 95 %, no interval below 5 seeds); a replicate
   that draws a seed which did not reach the target has an infinite mean, so the upper end can be unbounded;
4. an algorithm is *faster* than the reference where its interval lies entirely below the reference's,
   *slower* where it lies entirely above, *not separated* otherwise, and *n/a* where either has fewer than
   5 seeds (no interval).

The target is the reference's point estimate (its own seed-to-seed spread is not carried into the
intervals); the first crossing is read at the evaluation grid (``eval_every``), so two algorithms closer
than one evaluation interval are not told apart by construction.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from offmarl.bench.records import find_eval_files
from offmarl.bench.statistics import BOOTSTRAP_REPS, BOOTSTRAP_SEED, MIN_RUNS_FOR_CI, bootstrap

METRICS = ("win_rate", "return")
NOT_REACHED = 1e12  # frames standing in for "never reached" inside the bootstrap (no run is that long)
NOT_REACHED_MEAN = 1e9  # a resampled mean this large drew a run that did not reach the target (<= 1000 seeds)


def first_reach(curve: Sequence[tuple[float, float]], target: float) -> float:
    """The step of the first ``(step, score)`` of ``curve`` (in step order) whose score is >= ``target``;
    ``inf`` when none is."""
    for step, score in sorted(curve):
        if score >= target:
            return float(step)
    return math.inf


def bootstrap_interval(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The percentile bootstrap interval of the mean of ``values`` (one per seed), from
    :func:`offmarl.bench.statistics.bootstrap` -- (None, None) below its ``MIN_RUNS_FOR_CI`` seeds. ``inf`` (not
    reached) enters as :data:`NOT_REACHED` and a bound at or above :data:`NOT_REACHED_MEAN` comes back as ``inf``
    (percentile interpolation between a finite value and an infinite one is undefined)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("a bootstrap interval of no values is undefined")
    estimate = bootstrap(lambda tasks: tasks[0].mean(axis=-1), [np.where(np.isinf(x), NOT_REACHED, x)])
    if estimate.low is None:
        return None, None
    back = [math.inf if v >= NOT_REACHED_MEAN else float(v) for v in (estimate.low, estimate.high)]
    return back[0], back[1]


@dataclass(frozen=True)
class SpeedRow:
    """One algorithm on one column: the frames each seed took to reach the target, their mean and interval,
    and the verdict against the reference (``faster`` / ``slower`` / ``not separated``; ``reference`` on the
    reference's own row)."""

    dataset: str
    algo: str
    target: float
    frames: tuple[float, ...]
    mean: float
    low: float | None
    high: float | None
    verdict: str


def _score_curve(record: dict, metric: str) -> list[tuple[float, float]]:
    if metric == "win_rate":
        return [(float(step), float(rate)) for step, rate in record.get("win_curve") or []]
    return [(float(step), float(mean)) for step, mean, _ in record.get("curve") or []]


def read_curves(runs_dir: str | Path, metric: str) -> dict[tuple[str, str], list[list[tuple[float, float]]]]:
    """``{(column, algorithm): [each seed's curve]}`` of the eval.json files under ``runs_dir``: runs without
    curves of ``metric`` (no evaluations during training, or an env without wins) are left out."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    curves: dict[tuple[str, str], list[list[tuple[float, float]]]] = {}
    for path in find_eval_files(runs_dir):
        record = json.loads(Path(path).read_text())
        curve = _score_curve(record, metric)
        if not curve:
            continue
        column = record["source"] if record.get("dataset") is None and "source" in record else record["dataset"]
        curves.setdefault((str(column), str(record["algo"])), []).append(curve)
    return curves


def learning_speed(runs_dir: str | Path, reference: str = "ippo", metric: str = "win_rate",
                   fraction: float = 0.8) -> list[SpeedRow]:
    """The rows of every column that has runs of ``reference`` (module docstring), the reference first."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"--fraction must be in (0, 1], got {fraction}")
    curves = read_curves(runs_dir, metric)
    columns = sorted({column for column, algo in curves if algo == reference})
    if not columns:
        raise ValueError(f"{runs_dir}: no run of the reference {reference!r} with a {metric} curve (evaluations "
                         "during training: the suite's eval_every)")
    rows = []
    for column in columns:
        target = fraction * float(np.mean([sorted(c)[-1][1] for c in curves[(column, reference)]]))
        algos = [reference] + sorted(a for c, a in curves if c == column and a != reference)
        ref_low = ref_high = None
        for algo in algos:
            frames = tuple(first_reach(c, target) for c in curves[(column, algo)])
            low, high = bootstrap_interval(frames)
            if algo == reference:
                ref_low, ref_high, verdict = low, high, "reference"
            elif low is None or ref_low is None:
                verdict = f"n/a (< {MIN_RUNS_FOR_CI} seeds)"
            else:
                verdict = "faster" if high < ref_low else "slower" if low > ref_high else "not separated"
            rows.append(SpeedRow(column, algo, target, frames, float(np.mean(frames)), low, high, verdict))
    return rows


def _frames(x: float | None) -> str:
    return "n/a" if x is None else "not reached" if math.isinf(x) else f"{x:,.0f}"


def speed_markdown(rows: Sequence[SpeedRow], reference: str, metric: str, fraction: float) -> str:
    """The rows as a markdown table with a footer stating the measure."""
    lines = [f"| column | algorithm | target {metric} | seeds | frames to target (mean) | 95 % bootstrap interval | "
             f"vs {reference} |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        reached = sum(not math.isinf(f) for f in r.frames)
        lines.append(f"| {r.dataset} | {r.algo} | {r.target:.3f} | {reached}/{len(r.frames)} reached | "
                     f"{_frames(r.mean)} | {'n/a' if r.low is None else f'[{_frames(r.low)}, {_frames(r.high)}]'} | "
                     f"{r.verdict} |")
    lines.append("")
    lines.append(f"Frames (env steps of one sub-env; offline runs: gradient steps) of the first evaluation at or above "
                 f"{fraction:.0%} of {reference}'s final {metric} (its mean over seeds); mean over seeds with a "
                 f"percentile bootstrap interval over seeds ({BOOTSTRAP_REPS} replicates, seed {BOOTSTRAP_SEED}; none "
                 f"below {MIN_RUNS_FOR_CI} seeds); a "
                 f"seed that never reaches the target counts as not reached (infinite). 'faster' / 'slower': the "
                 f"interval lies entirely below / above {reference}'s.")
    return "\n".join(lines) + "\n"
