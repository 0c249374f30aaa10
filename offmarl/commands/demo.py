"""``offmarl demo``: the main job on an embedded default, small enough for a laptop CPU.

Until the bench runner exists this is the longest real pipeline offmarl has, end to end:
collect the ``tseng/equal_space`` and ``tseng/fill_in`` recipes at a small scale, show their cards,
train each available sequence-model algorithm for a short budget on each dataset, evaluate the
decentralized policies in the environment and print one table of per-agent returns.
It is a miniature, not a claim: budgets are tiny, a single seed, and the numbers say nothing about
the methods' ranking at full scale.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

DEMO_RECIPES = ("tseng/equal_space", "tseng/fill_in")
DEMO_ALGOS = ("bc", "idt", "madt", "distill")
DEMO_SCALE = 0.05  # recipe episodes x 0.05: 50 episodes per dataset
DEMO_STEPS = 300
DEMO_EVAL_EPISODES = 32


def run_demo(out: Path) -> None:
    from offmarl.algos import list_algos
    from offmarl.collect.recipes import get_recipe_dataset
    from offmarl.commands.info import run_info
    from offmarl.commands.train import run_train

    console = Console()
    out = Path(out)
    started = time.perf_counter()
    algos = [a for a in DEMO_ALGOS if a in list_algos()]
    rows: dict[str, dict[str, str]] = {}
    for recipe in DEMO_RECIPES:
        console.rule(f"dataset {recipe} (scale {DEMO_SCALE})")
        path = get_recipe_dataset(recipe, seed=0, scale=DEMO_SCALE)
        run_info(path=path, as_json=False, agent=None)
        for algo in algos:
            run_dir = out / recipe.replace("/", "__") / algo / "seed0"
            console.print(f"[bold]train[/bold] {algo} on {recipe} -> {run_dir}")
            run_train(algo=algo, dataset=str(path), out=run_dir, seed=0, steps=DEMO_STEPS, scale=1.0,
                      config=None, sets=[], ablation=None, variant=None, preset=None, precision="fp32",
                      resume=(run_dir / "checkpoints" / "last.pt").exists(), eval_episodes=DEMO_EVAL_EPISODES,
                      eval_every=0, checkpoint_every=DEMO_STEPS, device="cpu", list_algos=False, quiet=True)
            result = json.loads((run_dir / "eval.json").read_text())
            rows.setdefault(algo, {})[recipe] = f"{result['return_mean']:.2f} ± {result['return_std']:.2f}"

    table = Table(title=f"offmarl demo: per-agent average return over {DEMO_EVAL_EPISODES} evaluation episodes "
                        f"(1 seed, {DEMO_STEPS} steps, datasets at scale {DEMO_SCALE})")
    table.add_column("algorithm")
    for recipe in DEMO_RECIPES:
        table.add_column(recipe)
    for algo in algos:
        table.add_row(algo, *(rows[algo].get(r, "-") for r in DEMO_RECIPES))
    console.print(table)
    console.print(f"runs in {out.resolve()}  ({time.perf_counter() - started:.0f} s)")
