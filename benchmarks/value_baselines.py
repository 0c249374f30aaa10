"""Value-based baselines (issue 5, "Results"): qmix / ma_cql / ma_icq / ma_bcq on Tseng's recipes and the
dec_mabcq variants on MABCQ's per-agent equal_space datasets, with the value-difference curve (Fig. 3).

For every (recipe, algorithm, seed) it builds the recipe at ``--scale`` (cached under ``$OFFMARL_HOME``),
trains with ``offmarl train`` semantics (``--preset`` for the centralized baselines, default tseng;
steps = ``--steps`` or the algorithm's default × ``--scale``), evaluates ``--eval-episodes`` episodes
(the last checkpoint, greedy) and writes the run under ``--out``. Runs whose ``eval.json`` exists are
reused, so the script resumes. It prints markdown tables (mean ± std of the per-agent average return
over seeds) and writes them, the value-difference curves (``value_diff`` of ``metrics.csv``, mean over
seeds) as a PNG and a JSON of every number, to ``--out``.

    .venv/bin/python benchmarks/value_baselines.py --scale 0.01 --seeds 2 --eval-episodes 8 --out runs/value_tiny
    .venv/bin/python benchmarks/value_baselines.py --scale 1 --seeds 3            # the issue's full protocol
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

CENTRAL_RECIPES = ("tseng/equal_space", "tseng/fill_in", "tseng/grid_world/good")
CENTRAL_ALGOS = ("qmix", "ma_cql", "ma_icq", "ma_bcq")
DEC_RECIPE = "mabcq/equal_space/per_agent"
DEC_VARIANTS = ("vd_tn", "vd", "tn", "bcq", "ddpg", "behavior")


def run_one(algo: str, recipe: str, seed: int, args: argparse.Namespace, variant: str | None = None,
            preset: str | None = None) -> dict:
    """Train + evaluate one run (or reuse its eval.json); returns the eval record plus wall time."""
    from offmarl.algos import get_algo_class
    from offmarl.collect.recipes import get_recipe_dataset
    from offmarl.commands.train import run_train
    from offmarl.train.run_dir import algo_label

    label = algo_label(algo, None, variant)
    run_dir = Path(args.out) / recipe / label / f"seed{seed}"
    if (run_dir / "eval.json").exists():
        return {**json.loads((run_dir / "eval.json").read_text()), "run_dir": str(run_dir), "reused": True}
    path = get_recipe_dataset(recipe, seed=0, scale=args.scale)
    steps = args.steps or max(1, round(get_algo_class(algo).Config().steps * args.scale))
    start = time.perf_counter()
    summary = run_train(algo=algo, dataset=str(path), out=run_dir, seed=seed, steps=steps, variant=variant,
                        preset=preset, eval_episodes=args.eval_episodes, quiet=True,
                        checkpoint_every=max(steps, 1))
    return {**summary["eval"], "run_dir": str(run_dir), "wall_time": time.perf_counter() - start, "reused": False}


def value_diff_curve(run_dir: str) -> list[tuple[int, float]]:
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return [(int(row["step"]), float(row["value_diff"])) for row in csv.DictReader(f)
                if row.get("value_diff") not in (None, "")]


def markdown(rows: dict[str, dict[str, list[float]]], columns: list[str]) -> str:
    lines = ["| algorithm | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, by_col in rows.items():
        cells = []
        for col in columns:
            values = by_col.get(col, [])
            cells.append(f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(curves: dict[str, list[list[tuple[int, float]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, runs in curves.items():
        runs = [r for r in runs if r]
        if not runs:
            continue
        length = min(len(r) for r in runs)
        steps = [s for s, _ in runs[0][:length]]
        values = np.array([[v for _, v in r[:length]] for r in runs])
        mean, std = values.mean(axis=0), values.std(axis=0)
        ax.plot(steps, mean, label=name)
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("update")
    ax.set_ylabel("max_i V_i - min_i V_i")
    ax.set_title(f"dec_mabcq value-estimate difference\n{DEC_RECIPE}", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="recipe size and training steps multiplier")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--steps", type=int, default=None, help="gradient steps per run (default: algorithm default x scale)")
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--preset", default="tseng", help="preset of the centralized baselines (tseng | sit)")
    parser.add_argument("--algos", default=",".join(CENTRAL_ALGOS), help="centralized baselines to run ('' for none)")
    parser.add_argument("--variants", default=",".join(DEC_VARIANTS), help="dec_mabcq variants to run ('' for none)")
    parser.add_argument("--out", default="runs/value_baselines")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    algos = [a for a in args.algos.split(",") if a]
    variants = [v for v in args.variants.split(",") if v]
    records: list[dict] = []
    central: dict[str, dict[str, list[float]]] = {}
    for recipe in CENTRAL_RECIPES:
        for algo in algos:
            for seed in seeds:
                rec = run_one(algo, recipe, seed, args, preset=args.preset)
                records.append({"recipe": recipe, "algo": algo, "seed": seed, **{k: rec.get(k) for k in
                                ("return_mean", "return_std", "wall_time", "reused", "run_dir")}})
                central.setdefault(algo, {}).setdefault(recipe, []).append(rec["return_mean"])
                print(f"{recipe} {algo} seed {seed}: {rec['return_mean']:.3f}", file=sys.stderr, flush=True)
    dec: dict[str, dict[str, list[float]]] = {}
    curves: dict[str, list] = {}
    for variant in variants:
        for seed in seeds:
            rec = run_one("dec_mabcq", DEC_RECIPE, seed, args, variant=variant)
            label = f"dec_mabcq[{variant}]"
            curve = value_diff_curve(rec["run_dir"])
            records.append({"recipe": DEC_RECIPE, "algo": label, "seed": seed, "value_diff_last": curve[-1][1] if curve
                            else None, **{k: rec.get(k) for k in ("return_mean", "return_std", "wall_time", "reused",
                                                                  "run_dir")}})
            dec.setdefault(label, {}).setdefault("return", []).append(rec["return_mean"])
            if curve:
                dec[label].setdefault("final value_diff", []).append(curve[-1][1])
                curves.setdefault(label, []).append(curve)
            print(f"{DEC_RECIPE} {label} seed {seed}: {rec['return_mean']:.3f}", file=sys.stderr, flush=True)

    header = (f"scale {args.scale:g}, seeds {seeds}, steps {args.steps or 'default x scale'}, "
              f"{args.eval_episodes} eval episodes, last checkpoint, greedy; preset {args.preset}")
    text = []
    if central:
        text += [f"### Centralized value baselines ({header})", "", markdown(central, list(CENTRAL_RECIPES)), ""]
    if dec:
        text += [f"### dec_mabcq variants on {DEC_RECIPE} ({header})", "",
                 markdown(dec, ["return", "final value_diff"]), ""]
        plot_curves(curves, out / "value_diff.png")
        text += [f"value-difference curves: {out / 'value_diff.png'}", ""]
    text.append("command: " + " ".join(["benchmarks/value_baselines.py", *(argv if argv is not None else sys.argv[1:])]))
    report = "\n".join(text)
    print(report)
    (out / "value_baselines.md").write_text(report + "\n")
    (out / "value_baselines.json").write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
