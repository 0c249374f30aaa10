"""Training cost: each algorithm's training time against a reference's at equal updates, and its stages' shares.

Tseng et al. (NeurIPS 2022) §4.5 and App. B (Tables 4-10, "training time (hr)") say that adding the
centralized teacher "only requires less than an additional 10 % training time" over MADT. offmarl measures it
on a suite's runs (``offmarl bench cost DIR``) from what every run already writes:

* ``metrics.csv`` (:mod:`offmarl.train.loggers`): one row per logging window with ``step``, ``stage``,
  ``steps_per_s`` (steps per second of sampling + update time in the window) and ``wall_time`` (seconds since
  the run began: updates, evaluations, checkpoints and stage checks, summed over resumes);
* ``config.json`` beside ``eval.json``: ``cpu`` (the CPU model name) and ``torch_threads``.

Per run: its **update time** -- the sum over windows of ``(step − previous step) / steps_per_s``, the time
spent sampling batches and updating, nothing else -- and its **wall time** (the last row's ``wall_time``),
each in total and per stage (a stage's wall time runs from the previous stage's last row to its own); its
updates (the last row's step).

Per (dataset, algorithm), over seeds: the **median** of each (robust to a run slowed by other jobs on a shared
machine), the update time per update, and the **ratio to the reference** algorithm (``madt`` by default) on the
same dataset *at equal updates*: ``(median time / updates) / (reference's median time / its updates)`` --
when both ran the same number of updates (the ``tseng-cost`` suite) this is the ratio of their median times;
``ratio − 1`` is the overhead the paper bounds by 10 %. A multi-stage algorithm's **stage shares** are the
medians over seeds of each stage's share of the run's update time (distill: ``teacher`` and ``student``; the
teacher stage's share is the cost of the teacher within distill). Wall-time ratios and shares are given too;
they include the evaluations during training (``eval_every``), which cost the same per evaluation for every
decentralized policy but are not training.

A run whose metrics.csv is missing (a results folder's records keep it only for suites with
``metric_curves``) is listed and left out; a run without ``cpu`` in its config.json (runs from before it was
recorded, or a records folder) counts as "not recorded". Times of different CPUs are not comparable: the CPUs
seen are named in the footer.
"""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from offmarl.bench.records import EvalRecord

NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class StageTime:
    """One stage of one run: its updates and the seconds they took (updates only / wall clock)."""

    stage: str
    steps: int
    update_s: float
    wall_s: float


@dataclass(frozen=True)
class RunTime:
    """The training times of one run (module docstring)."""

    algo: str
    dataset: str
    seed: int
    stages: tuple[StageTime, ...]
    cpu: str = NOT_RECORDED
    threads: int | None = None

    @property
    def steps(self) -> int:
        return sum(s.steps for s in self.stages)

    @property
    def update_s(self) -> float:
        return sum(s.update_s for s in self.stages)

    @property
    def wall_s(self) -> float:
        return sum(s.wall_s for s in self.stages)


def read_stage_times(path: str | Path) -> tuple[StageTime, ...]:
    """The stages of the metrics.csv at ``path`` in the order they ran (module docstring). A row without a
    number in ``step``, ``steps_per_s`` or ``wall_time`` is an error naming the file and the row."""
    path = Path(path)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    stages: list[StageTime] = []
    prev_step, prev_wall = 0, 0.0
    for i, row in enumerate(rows):
        try:
            step, rate, wall = int(float(row["step"])), float(row["steps_per_s"]), float(row["wall_time"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: row {i + 1}: expected numbers in step, steps_per_s and wall_time, got "
                             f"{ {k: row.get(k) for k in ('step', 'steps_per_s', 'wall_time')} }") from None
        name = row.get("stage") or "train"
        steps, seconds = step - prev_step, (step - prev_step) / rate if rate > 0 else 0.0
        if stages and stages[-1].stage == name:
            last = stages[-1]
            stages[-1] = StageTime(name, last.steps + steps, last.update_s + seconds, last.wall_s + wall - prev_wall)
        else:
            stages.append(StageTime(name, steps, seconds, wall - prev_wall))
        prev_step, prev_wall = step, wall
    return tuple(stages)


def read_run_time(record: EvalRecord) -> RunTime | None:
    """The :class:`RunTime` of the run of ``record`` (its metrics.csv, the config.json beside its eval.json);
    None when it has no metrics.csv."""
    if not Path(record.metrics_csv).is_file():
        return None
    stages = read_stage_times(record.metrics_csv)
    config_path = Path(record.path).parent / "config.json"
    cpu, threads = NOT_RECORDED, None
    if config_path.is_file():
        config = json.loads(config_path.read_text())
        cpu, threads = config.get("cpu") or NOT_RECORDED, config.get("torch_threads")
    return RunTime(record.algo, record.dataset, record.seed, stages, cpu, threads)


@dataclass(frozen=True)
class CostRow:
    """An algorithm on a dataset: medians over seeds, the ratios to the reference at equal updates and the
    stages' shares (module docstring)."""

    dataset: str
    algo: str
    seeds: tuple[int, ...]
    steps: float  # median updates
    update_s: float  # median update time
    wall_s: float  # median wall time
    update_ratio: float | None  # None: no reference runs on this dataset
    wall_ratio: float | None
    update_shares: tuple[tuple[str, float], ...]  # (stage, median share of the update time); () for one stage
    wall_shares: tuple[tuple[str, float], ...]


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _shares(runs: Sequence[RunTime], attr: str) -> tuple[tuple[str, float], ...]:
    names = [s.stage for s in runs[0].stages]
    if len(names) < 2 or any([s.stage for s in r.stages] != names for r in runs):
        return ()
    return tuple((name, _median([getattr(r.stages[i], attr) / max(getattr(r, attr), 1e-12) for r in runs]))
                 for i, name in enumerate(names))


def _ratio_to(seconds: float, steps: float, reference_per_update: float | None) -> float | None:
    """``seconds / steps`` over the reference's seconds per update; None without a reference."""
    if not reference_per_update or steps <= 0:
        return None
    return seconds / steps / reference_per_update


def _in_order(seen: Sequence[str], preferred: Sequence[str]) -> list[str]:
    """``seen`` (distinct) with the ``preferred`` ones first in that order, the others in first-seen order."""
    seen, preferred = list(dict.fromkeys(seen)), list(dict.fromkeys(preferred))
    return [x for x in preferred if x in seen] + [x for x in seen if x not in preferred]


def cost_rows(runs: Sequence[RunTime], reference: str = "madt", dataset_order: Sequence[str] = (),
              algo_order: Sequence[str] = ()) -> list[CostRow]:
    """One row per (dataset, algorithm) of ``runs``: datasets and algorithms in the given orders (a suite's), the
    others in first-seen order; the reference first on each dataset."""
    cells: dict[tuple[str, str], list[RunTime]] = {}
    for run in runs:
        cells.setdefault((run.dataset, run.algo), []).append(run)
    rows = []
    for dataset in _in_order([d for d, _ in cells], dataset_order):
        algos = _in_order([a for d, a in cells if d == dataset], [reference, *algo_order])
        ref = cells.get((dataset, reference))
        per_update = {}
        if ref is not None:
            per_update = {attr: _median([getattr(r, attr) for r in ref]) / _median([r.steps for r in ref])
                          for attr in ("update_s", "wall_s")}
        for algo in algos:
            group = sorted(cells[(dataset, algo)], key=lambda r: r.seed)
            steps = _median([r.steps for r in group])
            update_s, wall_s = _median([r.update_s for r in group]), _median([r.wall_s for r in group])
            rows.append(CostRow(dataset, algo, tuple(r.seed for r in group), steps, update_s, wall_s,
                                _ratio_to(update_s, steps, per_update.get("update_s")),
                                _ratio_to(wall_s, steps, per_update.get("wall_s")), _shares(group, "update_s"),
                                _shares(group, "wall_s")))
    return rows


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f} ({x - 1:+.0%})"


def _share_text(shares: Sequence[tuple[str, float]]) -> str:
    return " · ".join(f"{name} {share:.0%}" for name, share in shares) or "–"


def cost_markdown(rows: Sequence[CostRow], runs: Sequence[RunTime], reference: str, title: str = "",
                  missing: Sequence[str] = ()) -> str:
    """The rows as a markdown table with a footer naming the measure and the CPUs."""
    lines = [f"## Training cost{': ' + title if title else ''}", "",
             f"| dataset | algorithm | seeds | updates | update time (s) | ms / update | × {reference} at equal "
             f"updates | stage shares of update time | wall time (s) | wall × {reference} | "
             "stage shares of wall time |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.dataset} | {r.algo} | {len(r.seeds)} | {r.steps:g} | {r.update_s:.1f} | "
                     f"{1000 * r.update_s / max(r.steps, 1):.2f} | {_ratio(r.update_ratio)} | "
                     f"{_share_text(r.update_shares)} | {r.wall_s:.1f} | {_ratio(r.wall_ratio)} | "
                     f"{_share_text(r.wall_shares)} |")
    cpus = sorted({(run.cpu, run.threads) for run in runs}, key=str)
    machine = "; ".join(f"{cpu} ({threads} torch thread{'s' if threads != 1 else ''})" if threads else cpu
                        for cpu, threads in cpus)
    lines += ["", f"Medians over seeds. Update time: seconds of sampling and updates (metrics.csv's steps_per_s "
              f"over each window); wall time: the run's wall clock to its last update (evaluations during training, "
              f"checkpoints and stage checks included, the final evaluation not). × {reference}: the median time "
              f"per update over {reference}'s on the same dataset (at equal updates; − 1 is the overhead). Stage "
              f"shares: the median over seeds of each stage's share of the run's time (distill: the teacher "
              f"stage, then the students). CPU: {machine or NOT_RECORDED}."]
    if len(cpus) > 1:
        lines.append("The runs ran on more than one CPU (or some did not record it): their times are not "
                     "comparable across CPUs.")
    if missing:
        lines.append(f"Left out (no metrics.csv): {', '.join(missing)}.")
    return "\n".join(lines) + "\n"


def training_cost(records: Sequence[EvalRecord], reference: str = "madt", title: str = "",
                  dataset_order: Sequence[str] = (), algo_order: Sequence[str] = ()) -> str:
    """The markdown of :func:`cost_markdown` for the runs of ``records`` (rows in the given orders, see
    :func:`cost_rows`); an error when none has a metrics.csv or the reference has no runs."""
    runs, missing = [], []
    for record in records:
        run = read_run_time(record)
        if run is None:
            missing.append(f"{record.algo} on {record.dataset} seed {record.seed}")
        else:
            runs.append(run)
    if not runs:
        raise ValueError("no run has a metrics.csv (a results folder keeps them only for suites with metric_curves): "
                         "point `offmarl bench cost` at the run directories")
    if not any(run.algo == reference for run in runs):
        known = ", ".join(sorted({run.algo for run in runs}))
        raise ValueError(f"no run of the reference {reference!r} (algorithms: {known}); choose one with --reference")
    return cost_markdown(cost_rows(runs, reference, dataset_order, algo_order), runs, reference, title, missing)
