"""What bench tables and plots are computed from: the ``eval.json`` of each run, grouped into cells.

One cell per (algorithm label, dataset label): over the seeds that have an ``eval.json``, the mean ± std
of each seed's ``return_mean`` -- the per-agent average episode return, the papers' metric (Tseng et al.
Tables 1-3: "average and standard deviation of return per-agent ... merged with 10 random seeds"). The
std is the population std over seeds (``ddof = 0``, as ``numpy.std``; the papers do not say which they
used). Every return is "higher is better": a column's best cells are those with the highest mean at the
printed precision (:data:`DECIMALS`), so equal-looking cells are best together.

Learning curves over seeds (:func:`seed_curve`, :func:`seed_band`) are computed here too, so that the
plots (:mod:`offmarl.bench.plots`) and the tables (:mod:`offmarl.bench.tables`) read one data model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

DECIMALS = 2  # the precision a table prints means at, and compares them at


@dataclass(frozen=True)
class EvalRecord:
    """What a table needs from one ``eval.json``."""

    path: str
    algo: str
    dataset: str
    seed: int
    return_mean: float
    episodes: int
    steps: int | None
    checkpoint: str
    target_return: Any
    curve: tuple[tuple[float, float, float], ...]

    @classmethod
    def read(cls, path: str | Path) -> "EvalRecord":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read eval.json: {exc}") from None
        try:
            protocol = data.get("protocol") or {}
            return cls(path=str(path), algo=str(data["algo"]), dataset=str(data["dataset"]), seed=int(data["seed"]),
                       return_mean=float(data["return_mean"]), episodes=int(data["episodes"]),
                       steps=None if protocol.get("steps") is None else int(protocol["steps"]),
                       checkpoint=str(protocol.get("checkpoint", "last")), target_return=protocol.get("target_return"),
                       curve=tuple((float(s), float(m), float(sd)) for s, m, sd in data.get("curve") or []))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not an offmarl eval.json (field {exc} missing or malformed)") from None


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
    def seeds(self) -> list[int]:
        return [r.seed for r in self.records]


@dataclass
class Table:
    algos: list[str]
    datasets: list[str]
    cells: dict[tuple[str, str], Cell]
    records: list[EvalRecord] = field(default_factory=list)

    @property
    def max_seeds(self) -> int:
        return max((len(c.records) for c in self.cells.values()), default=0)

    def best(self, dataset: str) -> set[str]:
        """Algorithms whose mean, at the printed precision, is the column's highest."""
        shown = {a: round(self.cells[(a, dataset)].mean, DECIMALS) for a in self.algos if (a, dataset) in self.cells}
        if not shown:
            return set()
        top = max(shown.values())
        return {a for a, v in shown.items() if v == top}


def find_eval_files(runs_dir: str | Path) -> list[Path]:
    return sorted(Path(runs_dir).rglob("eval.json"))


def _ordered(seen: Sequence[str], preferred: Sequence[str] | None) -> list[str]:
    preferred = [x for x in (preferred or []) if x in seen]
    return preferred + sorted(x for x in set(seen) if x not in preferred)


def build_table(records: Sequence[EvalRecord], algo_order: Sequence[str] | None = None,
                dataset_order: Sequence[str] | None = None) -> Table:
    """Group records by (algorithm, dataset); rows/columns in the given order, the others sorted after.

    Two records of the same (algorithm, dataset, seed) are an error naming both files."""
    cells: dict[tuple[str, str], Cell] = {}
    seen: dict[tuple[str, str, int], str] = {}
    for rec in records:
        key = (rec.algo, rec.dataset, rec.seed)
        if key in seen:
            raise ValueError(f"two eval.json files for {rec.algo} on {rec.dataset}, seed {rec.seed}: {seen[key]} and "
                             f"{rec.path}; aggregate their directories separately")
        seen[key] = rec.path
        cells.setdefault((rec.algo, rec.dataset), Cell([])).records.append(rec)
    for cell in cells.values():
        cell.records.sort(key=lambda r: r.seed)
    return Table(algos=_ordered([r.algo for r in records], algo_order),
                 datasets=_ordered([r.dataset for r in records], dataset_order), cells=cells, records=list(records))


def seed_band(series: Sequence[dict[float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, mean over seeds, std over seeds)`` (``ddof = 0``) at the steps every series has."""
    steps = sorted(set.intersection(*(set(s) for s in series))) if series else []
    values = np.array([[s[x] for x in steps] for s in series], dtype=np.float64).reshape(len(series), len(steps))
    return np.asarray(steps, dtype=np.float64), values.mean(axis=0), values.std(axis=0)


def seed_curve(cell: Cell) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, mean over seeds, std over seeds)`` of the evaluation means at the steps every seed evaluated."""
    return seed_band([{step: mean for step, mean, _ in rec.curve} for rec in cell.records])


def safe_name(label: str) -> str:
    """A file-name fragment of a label (recipe names hold '/')."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", label).strip("_") or "dataset"
