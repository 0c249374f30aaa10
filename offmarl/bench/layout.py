"""Where a bench keeps its files: the one description of a suite directory that the runner, ``offmarl bench
status`` and the report share (DESIGN.md, "Run directory")::

    OUT/<suite dir>/                          suite_dir_name(): the suite's name, + "-x<F>" when --scale F != 1
      suite.json                              SUITE_RECORD: the resolved suite, its seeds and scale, every
                                                command that ran it (written by the runner)
      configs/<algo label>.yaml               each algorithm's config overrides (``offmarl train --config``)
      <dataset label>/<algo label>/seed<k>/   run_dir_for(): one ``offmarl train`` run directory, plus
        .lock  bench.json  bench.log            LOCK_FILE (held while a bench trains the run), PIN_FILE (the
                                                settings the run is pinned to), LOG_FILE (the run's output)
      records/                                RECORDS_DIR: a copy of each run's eval.json the table was built
                                                from (:mod:`offmarl.bench.records`), written by the report
      table.md  table.csv  *.png              the report (:mod:`offmarl.bench.report`)

A dataset may not be labelled like one of the suite directory's own folders (:data:`SUITE_FOLDERS`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from offmarl.core.files import file_lock

SUITE_RECORD = "suite.json"
CONFIGS_DIR = "configs"
RECORDS_DIR = "records"
SUITE_FOLDERS = (CONFIGS_DIR, RECORDS_DIR)
LOCK_FILE = ".lock"
PIN_FILE = "bench.json"
LOG_FILE = "bench.log"


def suite_dir_name(name: str, scale: float) -> str:
    """The suite directory's name: runs of different training scales never share a directory (or a table)."""
    return name if scale == 1 else f"{name}-x{scale:g}"


def run_dir_for(suite_dir: Path, dataset: str, algo_label: str, seed: int) -> Path:
    """The run directory of (dataset label, algorithm label, seed) in ``suite_dir``."""
    return Path(suite_dir) / dataset / algo_label / f"seed{seed}"


def run_order(seeds: Iterable[int], datasets: Iterable[Any], algorithms: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
    """Every (seed, dataset, algorithm) of a suite, seeds outermost: a bench stopped part-way leaves every
    cell of the table with the same number of seeds, rather than some cells complete and others empty."""
    return itertools.product(seeds, datasets, algorithms)


def run_lock(run_dir: Path, wait_s: float) -> contextlib.AbstractContextManager[bool]:
    """An exclusive lock on ``run_dir/.lock``; yields False when another process holds it after ``wait_s``."""
    return file_lock(Path(run_dir) / LOCK_FILE, wait_s)


def is_suite_dir(path: Path) -> bool:
    return (Path(path) / SUITE_RECORD).is_file()


def read_suite_record(suite_dir: Path) -> dict[str, Any] | None:
    """``suite.json`` of ``suite_dir``, or ``None`` when it has none (a runs directory made by hand)."""
    path = Path(suite_dir) / SUITE_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


@dataclass(frozen=True)
class PlannedRun:
    """One run a suite directory's ``suite.json`` plans."""

    dataset: str
    algo: str
    seed: int
    run_dir: Path


def planned_run_keys(record: dict[str, Any]) -> list[tuple[str, str, int]]:
    """``(dataset label, algorithm label, seed)`` of every run the suite record ``record`` plans: its
    ``runs`` (each algorithm on the entries it learns from, for the seeds of the last command that ran it),
    or, in a record written before ``runs`` was kept, those seeds x the datasets x the algorithms, in
    :func:`run_order`."""
    if "runs" in record:
        return [(dataset, algo, int(seed)) for dataset, algo, seed in record["runs"]]
    suite = record.get("suite", {})
    seeds = record.get("seeds", suite.get("seeds", []))
    datasets = [d["label"] for d in suite.get("datasets", [])]
    algos = [a["label"] for a in suite.get("algorithms", [])]
    return [(dataset, algo, seed) for seed, dataset, algo in run_order(seeds, datasets, algos)]


def planned_runs(suite_dir: Path, record: dict[str, Any]) -> list[PlannedRun]:
    """:func:`planned_run_keys` with each run's directory in ``suite_dir``."""
    return [PlannedRun(dataset, algo, seed, run_dir_for(suite_dir, dataset, algo, seed))
            for dataset, algo, seed in planned_run_keys(record)]
