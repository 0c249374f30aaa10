"""Build every recipe of the native environments at full scale and report what each dataset holds.

Checks that every recipe runs and that the quality tiers hold their ratios: for each recipe, wall time, episodes, steps,
per-agent average return (mean ± std over episodes) and, for quality tiers, the achieved normalized
score (R - R_random) / (R_expert - R_random) recorded in the card by the bisection.

    .venv/bin/python benchmarks/recipes.py [--scale 1.0] [--only PREFIX] [--out recipes.md]

Datasets go to a temporary OFFMARL_HOME so the user's cache is untouched. Recipes whose environment
needs an optional extra that is not installed are reported as skipped.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", default="", help="build only recipes whose name starts with this")
    parser.add_argument("--out", default=None, help="also write the markdown table to this file")
    args = parser.parse_args()
    os.environ["OFFMARL_HOME"] = tempfile.mkdtemp(prefix="offmarl_recipes_")

    from offmarl.collect.recipes import build_recipe, list_recipes

    lines = ["| recipe | episodes | steps | return (per-agent avg) | tier score | rate ε | build time (s) |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for name, _ in list_recipes():
        if not name.startswith(args.only):
            continue
        started = time.perf_counter()
        try:
            built = build_recipe(name, scale=args.scale)
        except ImportError as exc:
            lines.append(f"| {name} | skipped: {exc} | | | | | |")
            continue
        seconds = time.perf_counter() - started
        parts = built if isinstance(built, list) else [built]  # per-agent recipes give one dataset per agent
        for i, part in enumerate(parts):
            card = part.card
            tier = card.extra.get("tier", {})
            row_name = name if len(parts) == 1 else f"{name} (agent {i})"
            score = f"{tier['achieved_score']:.3f}" if tier.get("achieved_score") is not None else ""
            rate = f"{tier['rate']:.3f}" if "rate" in tier else ""
            lines.append(f"| {row_name} | {card.episodes} | {card.steps} | {card.return_mean:.3f} ± "
                         f"{card.return_std:.3f} | {score} | {rate} | {seconds:.1f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print()
    print(table)
    print(f"\ncommand: .venv/bin/python benchmarks/recipes.py --scale {args.scale}  ({time.strftime('%Y-%m-%d')})")
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table + "\n")


if __name__ == "__main__":
    main()
