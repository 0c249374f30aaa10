"""Tseng et al. Table 1 on offmarl's native tasks: bc, idt, madt, teacher and distill over seeds.

    .venv/bin/python benchmarks/tseng_table1.py [--scale 0.01] [--seeds 5] [--data-scale 1.0]
        [--algos bc,idt,madt,teacher,distill] [--recipes tseng/equal_space,tseng/fill_in,tseng/grid_world/good]
        [--eval-episodes 32] [--workers 1] [--out runs/tseng_table1] [--tiny]

Protocol (Tseng et al. §4.1, ``../shared/papers/001_9fffdde4843a62eb.txt``; Table 1): every algorithm is
trained on the same dataset per recipe (built once, recipe seed 0, ``--data-scale`` x the paper's
episode count) with seeds 0..N-1, through ``offmarl train`` (``offmarl.commands.train.run_train``: per-env
defaults from ``offmarl/algos/env_defaults``, final checkpoint, greedy evaluation of ``--eval-episodes``
episodes on the fixed evaluation seed, decentralized policies; the teacher is evaluated as the
centralized joint policy it is, for reference). Training steps = the paper's epochs converted to steps
(``env_defaults/<algo>.yaml``; ``bc`` uses IDT's, as Tables 4-5 give both the same epochs; ``distill``
twice that, one per stage) x ``--scale``. Return-conditioned policies use each agent's best dataset
return as target. A cell is the mean ± std over seeds of the per-agent average return (``eval.json``
``return_mean``), the papers' metric.

Runs are resumable: a run whose ``eval.json`` exists is not run again (delete the directory to redo it).
``--tiny`` shrinks every network (hidden 16, one layer, K 4, batch 16) for a smoke test of the pipeline.
Prints the markdown table (and writes it to ``<out>/table.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ALGOS = ("bc", "idt", "madt", "teacher", "distill")
RECIPES = ("tseng/equal_space", "tseng/fill_in", "tseng/grid_world/good")
DT_ALGOS = ("idt", "madt", "teacher", "distill")
TINY_DT = {"hidden": 16, "n_layers": 1, "n_heads": 1, "feature_dim": 8, "context_len": 4, "batch_size": 16}
TINY_BC = {"hidden": 16, "history": 4, "batch_size": 16}


def paper_steps(algo: str, env: str) -> int:
    """Full-scale gradient steps of ``algo`` on ``env`` (``env_defaults``; bc: IDT's)."""
    from offmarl.commands.train import env_defaults

    steps = env_defaults(algo, env).get("steps") or env_defaults("idt", env).get("steps")
    if steps is None:
        raise ValueError(f"no per-env step count for {algo!r} on {env!r} in offmarl/algos/env_defaults")
    return int(steps)


def run_one(job: dict) -> dict:
    """Train + evaluate one (recipe, algo, seed) in its run directory; returns its eval record or error."""
    import torch

    torch.set_num_threads(1)
    from offmarl.commands.train import run_train

    run_dir = Path(job["run_dir"])
    if (run_dir / "eval.json").exists():
        return {**job, "eval": json.loads((run_dir / "eval.json").read_text()), "cached": True}
    t0 = time.time()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # run_train's one-line summaries are progress, not the table
            summary = run_train(algo=job["algo"], dataset=job["dataset"], out=run_dir, seed=job["seed"],
                                steps=job["steps"], sets=job["sets"], eval_episodes=job["eval_episodes"],
                                checkpoint_every=max(1, job["steps"] // 4),
                                resume=(run_dir / "checkpoints" / "last.pt").exists(), quiet=True)
    except Exception as exc:  # one failed run must not stop the table; run_train wrote error.txt
        return {**job, "error": f"{type(exc).__name__}: {exc}"}
    return {**job, "eval": summary["eval"], "seconds": time.time() - t0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.01, help="multiplier of the paper's training steps")
    parser.add_argument("--data-scale", type=float, default=1.0, help="multiplier of the recipes' episode counts")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--algos", default=",".join(ALGOS))
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="parallel runs (one torch thread each)")
    parser.add_argument("--out", default="runs/tseng_table1")
    parser.add_argument("--tiny", action="store_true", help="tiny networks: a smoke test of the pipeline")
    args = parser.parse_args(argv)
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    if args.scale <= 0 or args.data_scale <= 0 or args.seeds < 1:
        parser.error("--scale and --data-scale must be > 0 and --seeds >= 1")

    from offmarl.algos import list_algos
    from offmarl.collect.recipes import get_recipe, get_recipe_dataset

    unknown = [a for a in algos if a not in list_algos()]
    if unknown:
        parser.error(f"unknown algorithm(s) {unknown}; known: {list_algos()}")
    out = Path(args.out)
    jobs, steps_used = [], {}
    for recipe in recipes:
        env = get_recipe(recipe).env
        dataset = str(get_recipe_dataset(recipe, seed=0, scale=args.data_scale))
        for algo in algos:
            steps = max(2, round(paper_steps(algo, env) * args.scale))
            steps_used[(recipe, algo)] = steps
            tiny = TINY_BC if algo == "bc" else TINY_DT
            sets = [f"{k}={v}" for k, v in tiny.items()] if args.tiny else []
            for seed in range(args.seeds):
                jobs.append({"recipe": recipe, "algo": algo, "seed": seed, "steps": steps, "dataset": dataset,
                             "sets": sets, "eval_episodes": args.eval_episodes,
                             "run_dir": str(out / recipe / algo / f"seed{seed}")})

    print(f"{len(jobs)} runs ({len(recipes)} recipes x {len(algos)} algorithms x {args.seeds} seeds), "
          f"{args.workers} worker(s)", file=sys.stderr)
    results = []
    if args.workers > 1:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            for result in pool.map(run_one, jobs):
                results.append(result)
                _progress(result, len(results), len(jobs))
    else:
        for job in jobs:
            results.append(run_one(job))
            _progress(results[-1], len(results), len(jobs))

    table = render_table(results, recipes, algos, steps_used, args)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    print(table)
    return 0 if all("eval" in r for r in results) else 1


def _progress(result: dict, done: int, total: int) -> None:
    what = f"{result['recipe']} {result['algo']} seed {result['seed']}"
    if "error" in result:
        print(f"[{done}/{total}] {what}: FAILED {result['error']}", file=sys.stderr)
    else:
        note = " (cached)" if result.get("cached") else f" ({result.get('seconds', 0):.0f} s)"
        print(f"[{done}/{total}] {what}: return {result['eval']['return_mean']:.3f}{note}", file=sys.stderr)


def render_table(results: list[dict], recipes: list[str], algos: list[str], steps_used: dict, args) -> str:
    cells: dict[tuple[str, str], list[float]] = {}
    failures: dict[tuple[str, str], int] = {}
    for r in results:
        key = (r["recipe"], r["algo"])
        if "eval" in r:
            cells.setdefault(key, []).append(float(r["eval"]["return_mean"]))
        else:
            failures[key] = failures.get(key, 0) + 1
    lines = ["| algorithm | " + " | ".join(recipes) + " |", "|---|" + "---|" * len(recipes)]
    for algo in algos:
        row = []
        for recipe in recipes:
            values = cells.get((recipe, algo), [])
            text = "–" if not values else (f"{statistics.mean(values):.3f} ± "
                                           f"{statistics.pstdev(values) if len(values) > 1 else 0.0:.3f}")
            if failures.get((recipe, algo)):
                text += f" ({failures[(recipe, algo)]} failed)"
            row.append(text)
        label = f"{algo} (centralized)" if algo == "teacher" else algo
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    steps = "; ".join(f"{recipe}: " + ", ".join(f"{a} {steps_used[(recipe, a)]}" for a in algos) for recipe in recipes)
    lines += ["", f"Protocol: mean ± std over {args.seeds} seeds of the per-agent average return of "
              f"{args.eval_episodes} greedy evaluation episodes (last checkpoint; DT target return = each agent's "
              f"best dataset return); recipes at data scale {args.data_scale:g}; training steps = paper epochs "
              f"converted x {args.scale:g} ({steps}){'; tiny networks (--tiny)' if args.tiny else ''}; "
              f"torch threads 1 per run; {os.cpu_count()} CPUs."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
