"""Paper-style tables of a :class:`offmarl.bench.records.Table` (``eval.json`` files only): markdown and CSV.

Markdown: rows algorithms, columns datasets, each cell the mean ± std over seeds (:mod:`offmarl.bench.records`
says how they are computed), printed at :data:`~offmarl.bench.records.DECIMALS` decimals; the best mean of
each column is bold (equal-looking cells together). A cell with fewer seeds than the table's fullest cell is
marked ``†`` and listed in the footer. The footer states the seeds, the training steps, the evaluation
episodes, the checkpoint protocol (``last``: the weights at the end of training, no selection of a best
checkpoint) and the exact commands that produced the runs (from ``suite.json``). For a suite's
``metric_curves``, :func:`final_metric_markdown` tables each metric's value at the end of training.

CSV (long format, one row per cell): ``algorithm, dataset, mean, std, n_seeds, seeds, steps,
eval_episodes, best``.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Sequence

from offmarl import __version__
from offmarl.bench.records import DECIMALS, Table
from offmarl.bench.run_metrics import METRIC_LABELS, final_values, metric_file_name, metric_runs

MISSING = "–"
FEWER_SEEDS = "†"
METRIC_DECIMALS = 3  # metrics are often well below 1 (value_diff)


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
    interacting = [a for a in table.algos if any(r.steps_unit == "frames" for r in table.records if r.algo == a)]
    if interacting:
        lines.append(f"Steps of {_join(interacting)} count environment frames: they interact with the environment "
                     "(online, or learning from the dataset and the env); the other rows learn offline from the "
                     "dataset alone and count gradient steps.")
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


def final_metric_markdown(table: Table, metric: str) -> str:
    """A ``### <metric> at the end of training`` section: rows algorithms, columns datasets, each cell the
    mean ± std over seeds of the runs' last logged value; ``""`` when no run logged ``metric``."""
    cells = metric_runs(table, metric)
    if not cells:
        return ""
    algos = [a for a in table.algos if any((a, d) in cells for d in table.datasets)]
    datasets = [d for d in table.datasets if any((a, d) in cells for a in table.algos)]
    rows = [["algorithm", *datasets], ["---"] * (len(datasets) + 1)]
    for algo in algos:
        row = [algo]
        for ds in datasets:
            runs = cells.get((algo, ds))
            if runs is None:
                row.append(MISSING)
                continue
            mean, std = final_values(runs)
            row.append(f"{mean:.{METRIC_DECIMALS}f} ± {std:.{METRIC_DECIMALS}f}")
        rows.append(row)
    counts = {len(runs) for runs in cells.values()}
    seeds = (f"{counts.pop()} seeds per cell" if len(counts) == 1 else
             "seeds per cell: " + "; ".join(f"{a} on {d}: {len(cells[(a, d)])}" for a in algos for d in datasets
                                            if (a, d) in cells))
    last_steps = sorted({max(r.series) for runs in cells.values() for r in runs})
    at = f"step {last_steps[0]:g}" if len(last_steps) == 1 else f"steps {last_steps[0]:g}-{last_steps[-1]:g}"
    label = METRIC_LABELS.get(metric)
    what = f"`{metric}`" + (f" ({label})" if label else "")
    plots = ", ".join(f"`{metric_file_name(metric, d)}`" for d in datasets)
    skipped = [a for a in table.algos if a not in algos]
    lines = [f"### {metric} at the end of training", "", *("| " + " | ".join(r) + " |" for r in rows), "",
             f"{what} at each run's last logged step of its metrics.csv ({at}): mean ± std over seeds "
             f"(population std, ddof = 0; {seeds}). {MISSING}: not logged. Curves over training: {plots}."]
    if skipped:
        lines.append(f"Not logged by: {', '.join(skipped)}.")
    return "\n".join(lines) + "\n"
