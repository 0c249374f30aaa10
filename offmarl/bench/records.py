"""What bench tables and plots are computed from: the ``eval.json`` of each run, grouped into cells.

One cell per (algorithm label, dataset label): over the seeds that have an evaluated ``eval.json``, the
mean ± std of each seed's return -- the per-agent average episode return, the papers' metric (Tseng et al.
Tables 1-3: "average and standard deviation of return per-agent ... merged with 10 random seeds"). The
std is the population std over seeds (``ddof = 0``, as ``numpy.std``; the papers do not say which they
used). A run of data imported from another library has no environment to be evaluated in: its
``return_mean`` is null, and the table lists it apart (``Table.unevaluated``). A cell also has the field's
statistics over its seeds (:mod:`offmarl.bench.statistics`): the standard error and the IQM with its 95 %
bootstrap CI (none below 5 seeds). A table's ``stat`` (a suite's ``stat: std | sem | iqm``) says which the
table's main column and the learning curves' bands show (:func:`band`). Every return is "higher is
better": a column's best cells are those with the highest centre (the mean; the IQM for ``stat: iqm``) at
the printed precision (:data:`DECIMALS`), so equal-looking cells are best together.

A run's return is its eval.json's ``return_mean`` -- or, when its protocol is the absolute metric
(``protocol.absolute_metric``), ``absolute_return_mean``: the best checkpoint on ten times the episodes.
Each record's protocol (``last``, ``best`` or ``absolute``) is kept, for the table's footer. A record also
carries its task's normalization returns (``random_return``, ``reference_return``; :meth:`Table.normalization`)
and, on an env that reports wins (SMAX), the evaluation's win rate (:func:`offmarl.bench.tables.win_rate_markdown`).

Learning curves over seeds (:func:`seed_curve`, :func:`seed_band`) are computed here too, so that the
plots (:mod:`offmarl.bench.plots`) and the tables (:mod:`offmarl.bench.tables`) read one data model.

Per-run records (DESIGN.md, "Results"): the report copies what its table was built from into a ``records/``
folder beside the table (:meth:`RecordSet.write`), so that the table can be re-aggregated -- to the byte --
without the run directories::

    records/
      report.json                                       {"title", "suite": the bench's suite.json or null}
      <dataset label>/<algo label>/seed<k>.json         the run's eval.json, byte for byte
      <dataset label>/<algo label>/seed<k>.metrics.csv  the run's metrics.csv, byte for byte, only when the suite
                                                        has metric_curves (the table's metric sections read it)

The labels are read from the files, not from the folder names (a label that cannot name a folder -- one with
"/" or a leading "." -- is folded by :func:`safe_name` there).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from offmarl.bench.layout import RECORDS_DIR, planned_run_keys, read_suite_record
from offmarl.bench.statistics import Estimate, aggregate_iqm, bootstrap, standard_error
from offmarl.core.files import atomic_write_bytes, atomic_write_json

DECIMALS = 2  # the precision a table prints means at, and compares them at
REPORT_FILE = "report.json"
METRICS_SUFFIX = ".metrics.csv"
_RECORD_NAME = re.compile(r"seed\d+\.json")
_RECORDED_FILE = re.compile(r"seed\d+(\.json|\.metrics\.csv)")


@dataclass(frozen=True)
class EvalRecord:
    """What a table needs from one ``eval.json``."""

    path: str
    algo: str
    dataset: str
    seed: int
    return_mean: float | None  # the protocol's score; None: not evaluated (module docstring)
    episodes: int
    steps: int | None
    checkpoint: str
    target_return: Any
    curve: tuple[tuple[float, float, float], ...]
    metrics_csv: str  # the run's metrics.csv (it need not exist): beside its eval.json, or its recorded copy
    steps_unit: str = "updates"  # "frames": the run interacted with its env (online, or a dataset and the env)
    protocol: str = "last"  # "last" | "best" | "absolute"
    random_return: float | None = None
    reference_return: float | None = None
    win_rate: float | None = None  # the share of evaluation episodes won; None: the env reports no wins
    win_curve: tuple[tuple[float, float], ...] = ()  # (step, win rate) at every evaluation; () without wins

    @classmethod
    def read(cls, path: str | Path, metrics_csv: str | Path | None = None) -> "EvalRecord":
        """The record of the eval.json at ``path``; ``metrics_csv`` defaults to the one beside it (the run
        directory's). A file that is not an offmarl eval.json is a one-line ValueError naming it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read eval.json: {exc}") from None
        try:
            protocol = data.get("protocol") or {}
            online = data.get("dataset") is None and "source" in data  # an online run: its env's label
            source = data["source"] if online else data["dataset"]
            checkpoint = str(protocol.get("checkpoint", "last"))
            absolute = bool(protocol.get("absolute_metric"))
            scored = "absolute_" if absolute else ""
            return cls(path=str(path), algo=str(data["algo"]), dataset=str(source), seed=int(data["seed"]),
                       return_mean=_optional_float(data[f"{scored}return_mean"]),
                       episodes=int(data[f"{scored}episodes"]),
                       steps=None if protocol.get("steps") is None else int(protocol["steps"]),
                       checkpoint=checkpoint, target_return=protocol.get("target_return"),
                       curve=tuple((float(s), float(m), float(sd)) for s, m, sd in data.get("curve") or []),
                       metrics_csv=str(path.parent / "metrics.csv" if metrics_csv is None else metrics_csv),
                       steps_unit=str(protocol.get("steps_unit", "updates")),
                       protocol="absolute" if absolute else checkpoint,
                       random_return=_optional_float(data.get("random_return")),
                       reference_return=_optional_float(data.get("reference_return")),
                       # under the absolute metric the recorded win rate is the best checkpoint's on the
                       # ordinary episodes, not the score's: no win rate rather than a mismatched one
                       win_rate=None if absolute else _optional_float(data.get("win_rate")),
                       win_curve=tuple((float(s), float(w)) for s, w in data.get("win_curve") or []))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not an offmarl eval.json (field {exc} missing or malformed)") from None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass
class Cell:
    records: list[EvalRecord]

    @property
    def values(self) -> np.ndarray:
        return np.array([r.return_mean for r in self.records], dtype=np.float64)

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def std(self) -> float:
        return float(self.values.std())  # ddof = 0 (module docstring)

    @property
    def sem(self) -> float:
        return float(standard_error(self.values))

    @functools.cached_property
    def iqm(self) -> Estimate:
        """The IQM over seeds with its 95 % bootstrap CI (none below 5 seeds)."""
        return bootstrap(aggregate_iqm, [self.values])

    def center(self, stat: str) -> float:
        return float(self.iqm.point) if stat == "iqm" else self.mean

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.records]


@dataclass
class Table:
    algos: list[str]
    datasets: list[str]
    cells: dict[tuple[str, str], Cell]
    records: list[EvalRecord] = field(default_factory=list)
    unevaluated: list[EvalRecord] = field(default_factory=list)  # runs without a return, in no cell
    stat: str = "std"  # what the main column and the curves' bands show (module docstring)

    @property
    def max_seeds(self) -> int:
        return max((len(c.records) for c in self.cells.values()), default=0)

    def best(self, dataset: str, stat: str | None = None) -> set[str]:
        """Algorithms whose centre under ``stat`` (default: the table's), at the printed precision, is the
        column's highest."""
        stat = self.stat if stat is None else stat
        shown = {a: round(self.cells[(a, dataset)].center(stat), DECIMALS) for a in self.algos
                 if (a, dataset) in self.cells}
        if not shown:
            return set()
        top = max(shown.values())
        return {a for a, v in shown.items() if v == top}

    def normalization(self, dataset: str) -> tuple[float, float] | None:
        """``(random_return, reference_return)`` of ``dataset``, from the records that carry them; None when
        none does (data of format version 1, an online env without a scripted expert). A record without them
        (written before eval.json carried them, e.g. the first seeds of a suite re-run with more) is a run on
        the same column's data and takes them; records that disagree are an error naming two of their files."""
        pairs = {(r.random_return, r.reference_return): r.path for r in self.records
                 if r.dataset == dataset and r.random_return is not None and r.reference_return is not None}
        if len(pairs) > 1:
            (first, a), (second, b) = list(pairs.items())[:2]
            raise ValueError(f"the runs on {dataset} disagree on its normalization returns (random, reference): "
                             f"{first} in {a}, {second} in {b}; were they trained on different data?")
        return next(iter(pairs), None)


def find_eval_files(runs_dir: str | Path) -> list[Path]:
    return sorted(Path(runs_dir).rglob("eval.json"))


def _ordered(seen: Sequence[str], preferred: Sequence[str] | None) -> list[str]:
    preferred = [x for x in (preferred or []) if x in seen]
    return preferred + sorted(x for x in set(seen) if x not in preferred)


def build_table(records: Sequence[EvalRecord], algo_order: Sequence[str] | None = None,
                dataset_order: Sequence[str] | None = None, stat: str = "std") -> Table:
    """Group the evaluated records by (algorithm, dataset); rows/columns in the given order, the others sorted
    after; records without a return go to ``Table.unevaluated``.

    Two records of the same (algorithm, dataset, seed) are an error naming both files."""
    cells: dict[tuple[str, str], Cell] = {}
    seen: dict[tuple[str, str, int], str] = {}
    for rec in records:
        key = (rec.algo, rec.dataset, rec.seed)
        if key in seen:
            raise ValueError(f"two eval.json files for {rec.algo} on {rec.dataset}, seed {rec.seed}: {seen[key]} and "
                             f"{rec.path}; aggregate their directories separately")
        seen[key] = rec.path
    evaluated = [rec for rec in records if rec.return_mean is not None]
    for rec in evaluated:
        cells.setdefault((rec.algo, rec.dataset), Cell([])).records.append(rec)
    for cell in cells.values():
        cell.records.sort(key=lambda r: r.seed)
    return Table(algos=_ordered([r.algo for r in evaluated], algo_order),
                 datasets=_ordered([r.dataset for r in evaluated], dataset_order), cells=cells, records=evaluated,
                 unevaluated=[rec for rec in records if rec.return_mean is None], stat=stat)


def seed_values(series: Sequence[dict[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values [steps, seeds])`` at the steps every series has."""
    steps = sorted(set.intersection(*(set(s) for s in series))) if series else []
    values = np.array([[s[x] for s in series] for x in steps], dtype=np.float64).reshape(len(steps), len(series))
    return np.asarray(steps, dtype=np.float64), values


def band(values: np.ndarray, stat: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(centre, low, high)`` over the last axis (seeds) under ``stat``: mean ± std (``ddof = 0``), mean ± the
    standard error, or the IQM and its 95 % bootstrap CI; NaN bounds where there is no band (one seed for
    ``sem``, fewer than 5 for ``iqm``)."""
    values = np.asarray(values, dtype=np.float64)
    if stat == "iqm":
        est = bootstrap(aggregate_iqm, [values])
        return (np.asarray(est.point), *est.bounds())
    mean = values.mean(axis=-1)
    spread = standard_error(values) if stat == "sem" else values.std(axis=-1)
    return mean, mean - spread, mean + spread


def seed_band(series: Sequence[dict[float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, mean over seeds, std over seeds)`` (``ddof = 0``) at the steps every series has."""
    steps, values = seed_values(series)
    return steps, values.mean(axis=-1), values.std(axis=-1)


def seed_curve(cell: Cell, stat: str = "std", wins: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, centre, low, high)`` of the evaluation means -- or with ``wins`` the evaluation win rates --
    over seeds (:func:`band` under ``stat``) at the steps every seed evaluated (none when a seed has no win
    curve)."""
    series = ([dict(rec.win_curve) for rec in cell.records] if wins
              else [{step: mean for step, mean, _ in rec.curve} for rec in cell.records])
    steps, values = seed_values(series)
    return (steps, *band(values, stat))


def safe_name(label: str) -> str:
    """A file-name fragment of a label (recipe names hold '/')."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", label).strip("_") or "dataset"


def _folder_name(label: str) -> str:
    """``label`` as one folder name (see the module docstring)."""
    return safe_name(label) if "/" in label or label.startswith(".") or not label else label


def _metrics_copy(record: Path) -> Path:
    """Where the record ``<folder>/seed<k>.json`` keeps its run's metrics.csv."""
    return record.with_name(record.stem + METRICS_SUFFIX)


@dataclass(frozen=True)
class RecordSet:
    """The runs a table is built from, and what its report takes from elsewhere (``records/report.json``):
    the title and the ``suite.json`` of the bench that ran them (row and column order, description,
    commands, metric_curves, the planned runs; ``None`` for runs made by hand)."""

    records: list[EvalRecord]
    title: str
    suite_record: dict[str, Any] | None = None

    @classmethod
    def from_runs(cls, runs_dir: str | Path, eval_files: Sequence[Path]) -> "RecordSet":
        """The ``eval_files`` of run directories under ``runs_dir``, titled by its name, with its suite.json."""
        runs_dir = Path(runs_dir)
        if not eval_files:
            raise FileNotFoundError(f"no eval.json under {runs_dir} (and no {RECORDS_DIR}/ folder of an earlier "
                                    "report): nothing to aggregate")
        return cls([EvalRecord.read(f) for f in eval_files], runs_dir.name, read_suite_record(runs_dir))

    @classmethod
    def from_records(cls, records_dir: str | Path) -> "RecordSet":
        """The set :meth:`write` wrote into ``records_dir``; a file that is not what it wrote is a one-line
        ValueError naming the file."""
        records_dir = Path(records_dir)
        header_path = records_dir / REPORT_FILE
        try:
            header = json.loads(header_path.read_text())
            title, suite_record = str(header["title"]), header["suite"]
            if not isinstance(suite_record, (dict, type(None))):
                raise TypeError(f"'suite' is a {type(suite_record).__name__}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{header_path}: not the {REPORT_FILE} of a records folder ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())})") from None
        files = sorted(p for p in records_dir.rglob("seed*.json") if _RECORD_NAME.fullmatch(p.name))
        if not files:
            raise FileNotFoundError(f"no run records (<dataset>/<algo>/seed<k>.json) in {records_dir}")
        records = [EvalRecord.read(f, metrics_csv=_metrics_copy(f)) for f in files]
        return cls(records, title, suite_record)

    @property
    def _suite(self) -> dict[str, Any]:
        return (self.suite_record or {}).get("suite", {})

    @property
    def description(self) -> str:
        return self._suite.get("description", "")

    @property
    def commands(self) -> list[str]:
        return list((self.suite_record or {}).get("commands", []))

    @property
    def algo_order(self) -> list[str]:
        return [a["label"] for a in self._suite.get("algorithms", [])]

    @property
    def dataset_order(self) -> list[str]:
        return [d["label"] for d in self._suite.get("datasets", [])]

    @property
    def dataset_entries(self) -> list[dict[str, Any]]:
        """The suite's dataset entries as ``suite.json`` records them (recipe, scale, seed, label, ...)."""
        return list(self._suite.get("datasets", []))

    @property
    def metric_curves(self) -> list[str]:
        return list(self._suite.get("metric_curves") or [])  # absent in suite.json files of older benches

    @property
    def stat(self) -> str:
        return self._suite.get("stat") or "std"  # likewise

    @property
    def note(self) -> str:
        """``Incomplete: k of n runs have an eval.json.`` when runs the suite planned have no record, else ""."""
        planned = planned_run_keys(self.suite_record) if self.suite_record is not None else []
        recorded = {(r.dataset, r.algo, r.seed) for r in self.records}
        done = sum(key in recorded for key in planned)
        return f"Incomplete: {done} of {len(planned)} runs have an eval.json." if done < len(planned) else ""

    def write(self, records_dir: str | Path) -> None:
        """Copy every record (with its metrics.csv when the suite has metric_curves) into ``records_dir`` and
        write its report.json. Records of runs not in this set are deleted, and empty folders with them, so the
        folder holds exactly this set; other files in it are left alone."""
        records_dir = Path(records_dir)
        written: dict[Path, str] = {}
        for rec in self.records:
            target = records_dir / _folder_name(rec.dataset) / _folder_name(rec.algo) / f"seed{rec.seed}.json"
            if target in written:
                raise ValueError(f"{rec.path} and {written[target]} would both be recorded as {target} (their "
                                 "labels differ only in characters a folder name cannot hold)")
            copies = [(Path(rec.path), target)]
            if self.metric_curves and Path(rec.metrics_csv).is_file():
                copies.append((Path(rec.metrics_csv), _metrics_copy(target)))
            for source, copy in copies:
                atomic_write_bytes(copy, source.read_bytes())
                written[copy] = str(source)
        atomic_write_json(records_dir / REPORT_FILE, {"title": self.title, "suite": self.suite_record})
        for path in sorted(records_dir.rglob("*"), reverse=True):  # a folder's files before the folder
            if path.is_file() and _RECORDED_FILE.fullmatch(path.name) and path not in written:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
