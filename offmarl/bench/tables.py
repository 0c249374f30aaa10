"""Paper-style tables from ``eval.json`` files only: markdown and CSV.

One cell per (algorithm label, dataset label): over the seeds that have an ``eval.json``, the mean ± std
of each seed's ``return_mean`` -- the per-agent average episode return, the papers' metric (Tseng et al.
Tables 1-3: "average and standard deviation of return per-agent ... merged with 10 random seeds"). The
std is the population std over seeds (``ddof = 0``, as ``numpy.std``; the papers do not say which they
used). Every return is "higher is better": the best mean of each column, compared at the printed
precision (so equal-looking cells are bold together), is bold. A cell with fewer seeds than the table's
fullest cell is marked ``†`` and listed in the footer. The footer states the seeds, the training steps,
the evaluation episodes, the checkpoint protocol (``last``: the weights at the end of training, no
selection of a best checkpoint) and the exact commands that produced the runs (from ``suite.json``).

CSV (long format, one row per cell): ``algorithm, dataset, mean, std, n_seeds, seeds, steps,
eval_episodes, best``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

DECIMALS = 2
MISSING = "–"
FEWER_SEEDS = "†"


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


def format_cell(table: Table, algo: str, dataset: str) -> str:
    cell = table.cells.get((algo, dataset))
    if cell is None:
        return MISSING
    text = f"{cell.mean:.{DECIMALS}f} ± {cell.std:.{DECIMALS}f}"
    if algo in table.best(dataset):
        text = f"**{text}**"
    if len(cell.records) < table.max_seeds:
        text += f" {FEWER_SEEDS}"
    return text


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


def footer_lines(table: Table, commands: Sequence[str] = (), note: str = "") -> list[str]:
    from offmarl import __version__

    seeds = sorted({r.seed for r in table.records})
    checkpoints = sorted({r.checkpoint for r in table.records})
    protocol = {"last": "last (the weights at the end of training; no best-checkpoint selection)",
                "best": "best (the weights of the best evaluation during training, selected on the evaluation "
                        "seed's episodes and scored on held-out ones)"}
    targets = sorted({json.dumps(r.target_return) for r in table.records})
    target = ("the policy's default (return-conditioned methods: each agent's best return in the dataset)"
              if targets == ["null"] else _join(targets))
    lines = [
        "Per-agent average return (the papers' metric): mean ± std over seeds of each seed's evaluation mean "
        "(population std, ddof = 0); best of each column in bold (compared at the printed precision).",
        f"Seeds: {_join(seeds)} (up to {table.max_seeds} per cell). Steps: {_per_algo(table, 'steps')} gradient "
        f"steps per run. Evaluation: {_per_algo(table, 'episodes')} episodes per seed, greedy actions; "
        f"checkpoint: {_join(protocol.get(c, c) for c in checkpoints)}; target return: {target}.",
    ]
    short = [f"{a} on {d}: seeds {_join(table.cells[(a, d)].seeds)}" for a in table.algos for d in table.datasets
             if (a, d) in table.cells and len(table.cells[(a, d)].records) < table.max_seeds]
    if short:
        lines.append(f"{FEWER_SEEDS} fewer seeds than the fullest cell: {'; '.join(short)}.")
    if note:
        lines.append(note)
    if commands:
        lines.append("Produced by: " + "; then ".join(f"`{c}`" for c in commands) + f" (offmarl {__version__}).")
    return lines


def to_markdown(table: Table, title: str = "", commands: Sequence[str] = (), note: str = "",
                description: str = "") -> str:
    header = ["algorithm", *table.datasets]
    rows = [header, ["---"] * len(header)]
    rows += [[algo, *(format_cell(table, algo, ds) for ds in table.datasets)] for algo in table.algos]
    lines = [f"## {title}", ""] if title else []
    lines += [description, ""] if description else []
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines + [""] + footer_lines(table, commands, note)) + "\n"


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["algorithm", "dataset", "mean", "std", "n_seeds", "seeds", "steps", "eval_episodes", "best"])
    for algo in table.algos:
        for ds in table.datasets:
            cell = table.cells.get((algo, ds))
            if cell is None:
                continue
            steps = sorted({r.steps for r in cell.records if r.steps is not None})
            episodes = sorted({r.episodes for r in cell.records})
            writer.writerow([algo, ds, repr(cell.mean), repr(cell.std), len(cell.records),
                             " ".join(map(str, cell.seeds)), " ".join(map(str, steps)), " ".join(map(str, episodes)),
                             algo in table.best(ds)])
    return buf.getvalue()


# ---- a suite directory's report ------------------------------------------------------------------------
@dataclass
class Report:
    """The written table and plots of one runs directory."""

    markdown: str
    table_md: Path
    table_csv: Path
    plots: list[Path]
    runs: int


def suite_report(suite_dir: str | Path, eval_files: Sequence[Path] | None = None, note: str = "") -> Report:
    """Aggregate ``eval_files`` (default: every eval.json under ``suite_dir``) into ``suite_dir/table.md``,
    ``table.csv``, ``curves_<dataset>.png`` and ``bars.png``.

    When ``suite_dir/suite.json`` exists (written by ``offmarl bench run``) rows and columns follow the
    suite's order, the title is the suite's and the footer quotes the commands that ran it; for each of its
    ``metric_curves`` (metrics.csv columns, :mod:`offmarl.bench.run_metrics`) ``metric_<m>_<dataset>.png``
    are plotted and a table of the final values is appended to table.md."""
    from offmarl.bench.plots import plot_bars, plot_curves, plot_metric_curves
    from offmarl.bench.run_metrics import final_metric_markdown
    from offmarl.core.files import atomic_write_text

    suite_dir = Path(suite_dir)
    files = find_eval_files(suite_dir) if eval_files is None else list(eval_files)
    if not files:
        raise FileNotFoundError(f"no eval.json under {suite_dir}: nothing to aggregate")
    record_path = suite_dir / "suite.json"
    title, description, commands, algo_order, dataset_order = suite_dir.name, "", [], None, None
    metrics: list[str] = []
    if record_path.exists():
        record = json.loads(record_path.read_text())
        suite = record.get("suite", {})
        title, description = suite_dir.name, suite.get("description", "")
        commands = record.get("commands", [])
        algo_order = [a["label"] for a in suite.get("algorithms", [])]
        dataset_order = [d["label"] for d in suite.get("datasets", [])]
        metrics = list(suite.get("metric_curves") or [])  # absent in suite.json files of older benches
    table = build_table([EvalRecord.read(f) for f in files], algo_order, dataset_order)
    markdown = to_markdown(table, title, commands, note, description)
    for section in (final_metric_markdown(table, metric) for metric in metrics):
        markdown += f"\n{section}" if section else ""
    table_md, table_csv = suite_dir / "table.md", suite_dir / "table.csv"
    atomic_write_text(table_md, markdown)
    atomic_write_text(table_csv, to_csv(table))
    plots = plot_curves(table, suite_dir) + [plot_bars(table, suite_dir)]
    plots += plot_metric_curves(table, suite_dir, metrics)
    _remove_stale_plots(suite_dir, plots)
    return Report(markdown=markdown, table_md=table_md, table_csv=table_csv, plots=plots, runs=len(files))


def _remove_stale_plots(suite_dir: Path, written: Sequence[Path]) -> None:
    """Delete ``curves_*.png`` / ``metric_*.png`` this report did not write: left by an earlier report of a
    dataset or metric the suite no longer has, they would sit beside the new table as if current."""
    keep = {Path(p).resolve() for p in written}
    for pattern in ("curves_*.png", "metric_*.png"):
        for path in suite_dir.glob(pattern):
            if path.resolve() not in keep:
                path.unlink(missing_ok=True)


def report_dirs(runs_dir: str | Path) -> list[Path]:
    """The directories ``offmarl bench table DIR`` aggregates: DIR itself when it is a suite directory (or
    holds no suite directory), else every suite directory (one holding ``suite.json``) under it."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise NotADirectoryError(f"{runs_dir} is not a directory")
    if (runs_dir / "suite.json").exists():
        return [runs_dir]
    suites = sorted(p.parent for p in runs_dir.rglob("suite.json"))
    return suites or [runs_dir]
