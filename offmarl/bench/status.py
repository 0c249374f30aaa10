"""``offmarl bench status DIR``: how far the suites under a runs directory have got, without running anything.

For a suite directory (one holding ``suite.json``, written by ``offmarl bench run``) the planned runs are
its recorded datasets x algorithms x seeds; each run directory is

* ``done``: it has an ``eval.json``;
* ``running``: a bench holds its lock (``.lock``) right now;
* ``failed``: it has an ``error.txt`` (a re-run of the bench retries it);
* ``partial``: it has a checkpoint (``step/steps`` from its last metrics.csv row and its ``bench.json``) --
  a re-run resumes it;
* ``pending``: nothing yet.

Suites too long for one sitting are finished by re-running the command quoted in ``suite.json``; this
says how much is left.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from offmarl.bench.layout import LOCK_FILE, PIN_FILE, SUITE_RECORD, planned_runs, read_suite_record, run_lock
from offmarl.train.run_dir import RunPaths

STATES = ("done", "running", "partial", "failed", "pending")


@dataclass(frozen=True)
class RunState:
    dataset: str
    algo: str
    seed: int
    state: str
    step: int | None = None
    steps: int | None = None
    error: str = ""


def _locked(run_dir: Path) -> bool:
    """Whether a bench holds the run's lock right now (the lock file exists only once a bench took it)."""
    if not (run_dir / LOCK_FILE).exists():
        return False
    with run_lock(run_dir, wait_s=0.0) as acquired:
        return not acquired


def _last_step(metrics: Path) -> int | None:
    if not metrics.exists():
        return None
    with open(metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    return int(float(rows[-1]["step"])) if rows else None


def run_state(run_dir: Path, dataset: str, algo: str, seed: int) -> RunState:
    paths = RunPaths(run_dir)
    pin = run_dir / PIN_FILE
    steps = json.loads(pin.read_text()).get("steps") if pin.exists() else None
    step = _last_step(paths.metrics)
    if paths.eval.exists():
        return RunState(dataset, algo, seed, "done", step, steps)
    if _locked(run_dir):
        return RunState(dataset, algo, seed, "running", step, steps)
    if paths.error.exists():
        lines = [line for line in paths.error.read_text().splitlines() if line.strip()]
        return RunState(dataset, algo, seed, "failed", step, steps, lines[-1] if lines else "")
    if paths.checkpoint.exists():
        return RunState(dataset, algo, seed, "partial", step, steps)
    return RunState(dataset, algo, seed, "pending", None, steps)


def suite_status(suite_dir: str | Path) -> tuple[dict, list[RunState]]:
    """``(suite.json, the state of every planned run)`` of a suite directory."""
    suite_dir = Path(suite_dir)
    record = read_suite_record(suite_dir)
    if record is None:
        raise FileNotFoundError(f"{suite_dir} is not a suite directory (no {SUITE_RECORD}; `offmarl bench run` "
                                "writes it)")
    return record, [run_state(run.run_dir, run.dataset, run.algo, run.seed) for run in planned_runs(suite_dir, record)]


def status_markdown(suite_dir: str | Path) -> str:
    """A report of :func:`suite_status`: counts per state, then every run that is not done or pending."""
    record, states = suite_status(suite_dir)
    counts = {s: sum(r.state == s for r in states) for s in STATES}
    total = len(states)
    lines = [f"## {Path(suite_dir).name}: {counts['done']} of {total} runs done"
             + (f" ({100 * counts['done'] / total:.0f} %)" if total else ""), ""]
    lines.append(", ".join(f"{counts[s]} {s}" for s in STATES if counts[s]) or "no runs planned")
    for r in states:
        if r.state in ("running", "partial", "failed"):
            progress = f" at step {r.step}/{r.steps}" if r.step is not None and r.steps else ""
            error = f": {r.error}" if r.error else ""
            lines.append(f"- {r.state}: {r.algo} · {r.dataset} · seed {r.seed}{progress}{error}")
    if counts["done"] < total and record.get("commands"):
        lines.append(f"\nTo finish: `{record['commands'][-1]}` (finished runs are skipped, partial ones resume).")
    return "\n".join(lines) + "\n"
