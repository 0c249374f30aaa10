"""Why does distill not beat MADT everywhere? Re-evaluate a finished `tseng-table1` bench at other targets.

    .venv/bin/python analysis/tseng_investigation.py [--suite-dir runs/tseng-table1]
        [--episodes 32] [--algos idt,madt,teacher,distill] [--out DIR]

Where our table differs from the paper's distill > MADT > IDT > BC, the suspects are teacher
quality, target return, feature choice and scale. This script covers the first two on the trained runs of
a bench, without retraining and without touching the bench's eval.json files:

* target return: every return-conditioned run (idt, madt, teacher, distill's students) is evaluated at
  three per-agent targets from its dataset card -- ``mean`` (the behaviour's average episode return),
  ``max`` (the default: each agent's best dataset return) and ``max+std`` (one std beyond the best);
* teacher quality: the teacher that distill's students were distilled from (the artifact
  ``RUN/teacher/`` of each distill run, evaluated as the centralized joint policy it is) beside the
  students, at the same targets.

Evaluation as the bench's: greedy actions, ``--episodes`` episodes on the fixed evaluation seed 12345,
the last checkpoint. Cells: mean ± std over seeds (ddof = 0) of the per-agent average return. Writes
``investigation.md`` and ``investigation.json`` to ``--out`` (default: the suite directory) and prints
the markdown. Feature choice and scale need retraining and are not covered here (scale: compare two bench
directories run at different ``--scale``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

TARGETS = ("mean", "max", "max+std")


def targets_of(card: dict) -> dict[str, np.ndarray]:
    """Per-agent targets from a run's dataset card (config.json ``dataset``)."""
    mean = np.asarray(card["per_agent_return_mean"], dtype=np.float64)
    best = np.asarray(card["per_agent_return_max"], dtype=np.float64)
    std = np.asarray(card["per_agent_return_std"], dtype=np.float64)
    return {"mean": mean, "max": best, "max+std": best + std}


def evaluate_run(run: Path, episodes: int, teacher_artifact: bool) -> dict[str, float]:
    """``{target name: per-agent average return}`` of one run (or of its distill teacher artifact)."""
    from offmarl.algos.base import load_algo
    from offmarl.train.evaluate import evaluate_policy
    from offmarl.train.experiment import EVAL_SEED, load_run, make_policies, run_config, run_env

    config = run_config(run)
    algo = load_algo(run / "teacher") if teacher_artifact else load_run(run)[0]
    env_name, env_kwargs = run_env(config)
    out = {}
    for name, target in targets_of(config["dataset"]).items():
        result = evaluate_policy(make_policies(algo, target), env_name, env_kwargs, episodes, EVAL_SEED)
        out[name] = float(result["return_mean"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite-dir", default=Path(__file__).resolve().parents[1] / "runs" / "tseng-table1",
                        help="runs of a tseng-table1 bench (default: runs/tseng-table1 of the repository, where "
                             "`offmarl bench run tseng-table1` run from its root writes them)")
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--algos", default="idt,madt,teacher,distill")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    suite_dir = Path(args.suite_dir)
    out_dir = Path(args.out) if args.out else suite_dir
    record = json.loads((suite_dir / "suite.json").read_text())
    datasets = [d["label"] for d in record["suite"]["datasets"]]
    rows: dict[tuple[str, str], dict[str, list[float]]] = {}
    for ds in datasets:
        for algo in args.algos.split(","):
            for run in sorted((suite_dir / ds / algo).glob("seed*")):
                if not (run / "eval.json").exists():
                    continue  # unfinished: the bench's table leaves it out too
                kinds = [(algo, False)] + ([("distill's teacher", True)] if algo == "distill" else [])
                for label, artifact in kinds:
                    values = evaluate_run(run, args.episodes, artifact)
                    cell = rows.setdefault((ds, label), {t: [] for t in TARGETS})
                    for t in TARGETS:
                        cell[t].append(values[t])
                    print(f"  {ds} {label} {run.name}: " + ", ".join(f"{t} {values[t]:.2f}" for t in TARGETS),
                          flush=True)
    lines = [f"## Target return and teacher quality: {suite_dir.name}", "",
             "Per-agent average return, mean ± std over seeds (ddof = 0), greedy, "
             f"{args.episodes} episodes on evaluation seed 12345, at per-agent targets from each dataset card.", "",
             "| dataset | policy | seeds | " + " | ".join(f"target {t}" for t in TARGETS) + " |",
             "|---|---|---|" + "---|" * len(TARGETS)]
    for (ds, label), cell in rows.items():
        stats = [f"{np.mean(cell[t]):.2f} ± {np.std(cell[t]):.2f}" for t in TARGETS]
        lines.append(f"| {ds} | {label} | {len(cell['max'])} | " + " | ".join(stats) + " |")
    markdown = "\n".join(lines) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "investigation.md").write_text(markdown)
    (out_dir / "investigation.json").write_text(json.dumps(
        {f"{ds}|{label}": cell for (ds, label), cell in rows.items()}, indent=1))
    print(markdown)


if __name__ == "__main__":
    main()
