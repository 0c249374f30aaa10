"""Build the datasets made from trained policies (policy pools) into the cache and report what they cost and hold.

    .venv/bin/python benchmarks/trained_datasets.py build [--only PREFIX ...] [--log LOG]
    .venv/bin/python benchmarks/trained_datasets.py report [--log LOG] [--out FILE]

``build`` goes through the trained recipes in the trained-datasets order of priority (SIT's MPE and SMAX 2s3z
data, SIT's MaMuJoCo data, Tseng's trained-expert data, DM²'s demonstrations, MABCQ's per-agent mixtures),
training and binning each recipe's pools first when the cache lacks them, then building the dataset into the
cache (``$OFFMARL_HOME/datasets``), where bench suites and ``offmarl train --dataset RECIPE`` find it. Each
recipe appends one JSON line to LOG (default ``$OFFMARL_HOME/trained_datasets.jsonl``): the dataset's build
time and returns. It is resumable: a killed pool training continues from its last checkpoint, built recipes are
cache hits. Torch runs on one thread (the other core is meant for a bench suite).

``report`` prints the two tables of BENCHMARKS.md from LOG, the pools' cards and their runs: each pool's
training time (the run's own wall clock, summed over the sessions that resumed it), its levels' returns and
their position in the pool's return range; each dataset's build time, return and its position in its pool's
range next to the paper's (SIT Tables 5-9 report dataset returns and pool ranges on their own reward scale;
the position (R - R_lowest) / (R_best - R_lowest) is what compares across scales), or, for Tseng's tiers, the
normalized score against the tier's target.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

from offmarl.core.machine import cpu_name

# Tian et al., SIT, App. C Tables 4-6: the return range [fully random, best] of each map's pools, and Tables 7-9:
# the average episode return of each low / medium dataset
SIT_RANGES = {"mpe_cn_3ls3l": (-174.41, -37.32), "mpe_cn_4ls4l": (-288.89, -40.81), "mpe_pp_3p1p": (-306.57, -54.96),
              "smac_2s3z": (0.0, 20.0), "mamujoco_halfcheetah_2x3": (-203.47, 198.70),
              "mamujoco_walker2d_2x3": (-74.51, 231.09)}
SIT_DATASET_RETURNS = {("mpe_cn_3ls3l", "low"): -157.70, ("mpe_cn_3ls3l", "medium"): -107.46,
                       ("mpe_cn_4ls4l", "low"): -278.40, ("mpe_cn_4ls4l", "medium"): -166.26,
                       ("mpe_pp_3p1p", "low"): -249.58, ("mpe_pp_3p1p", "medium"): -155.46,
                       ("smac_2s3z", "low"): 3.24, ("smac_2s3z", "medium"): 7.04,
                       ("mamujoco_halfcheetah_2x3", "low"): -110.52, ("mamujoco_halfcheetah_2x3", "medium"): 41.79,
                       ("mamujoco_walker2d_2x3", "low"): -21.67, ("mamujoco_walker2d_2x3", "medium"): 71.68}

ORDER = ([f"sit/{env}/{quality}/trained" for env in ("mpe_cn_3ls3l", "mpe_cn_4ls4l", "mpe_pp_3p1p")
          for quality in ("low", "medium")]
         + [f"sit/smac_2s3z/{kind}/trained" for kind in ("low", "medium", "extreme", "balanced_random",
                                                         "balanced_medium", "balanced_expert")]
         + [f"sit/{env}/{quality}/trained" for env in ("mamujoco_halfcheetah_2x3", "mamujoco_walker2d_2x3")
            for quality in ("low", "medium")]
         + ["tseng/equal_space/trained"] + [f"tseng/grid_world/{tier}/trained" for tier in ("good", "normal", "poor")]
         + ["tseng/smac_2s3z/good/trained", "tseng/smac_3s5z/good/trained"]
         + [f"dm2/{env}/{kind}/trained" for env in ("smac_3s_vs_3z", "smac_5m_vs_6m")
            for kind in ("cotrained", "separate")]
         + [f"mabcq/{env}/per_agent/trained" for env in ("mamujoco_halfcheetah_2x3", "mamujoco_hopper_3x1")])


def default_log() -> Path:
    from offmarl.core.files import offmarl_home

    return offmarl_home() / "trained_datasets.jsonl"


def build(only: list[str], log: Path) -> None:
    import torch

    from offmarl.collect.recipes import cache_recipe_dataset, get_recipe, recipe_dataset_path
    from offmarl.data.io import dataset_info
    from offmarl.train.experiment import build_pool

    torch.set_num_threads(1)
    for name in ORDER:
        if only and not any(name.startswith(prefix) for prefix in only):
            continue
        recipe = get_recipe(name)
        # train and bin the pools first (their time is the run's, read by `report`): the cache's, or shipped ones
        pools = [str(build_pool(spec).root) for spec in recipe.pools]
        started = time.perf_counter()
        built = cache_recipe_dataset(name, progress=True, pool_provider=build_pool)
        seconds = time.perf_counter() - started
        info = dataset_info(recipe_dataset_path(name))
        cards = [agent["card"] for agent in info["agents"]] if info["per_agent"] else [info["card"]]
        record = {"recipe": name, "built": built, "dataset_seconds": round(seconds, 1) if built else None,
                  "cards": [{key: card[key] for key in ("episodes", "steps", "return_mean", "return_std",
                                                        "random_return", "reference_return", "quality_tier", "extra")}
                            for card in cards],
                  "pools": pools,
                  "cpu": cpu_name(), "date": time.strftime("%Y-%m-%d")}
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"{name}: {'built in %.0f s' % seconds if built else 'cached'}; return "
              f"{cards[0]['return_mean']:.2f} ± {cards[0]['return_std']:.2f}", flush=True)


def _run_hours(pool_dir: Path) -> tuple[float | None, int | None]:
    """(training wall-clock hours, frames) of the run a pool was binned from: its metrics.csv's last row (the
    wall clock continues across resumes); (None, None) for a shipped pool, which comes without its run."""
    metrics = pool_dir.parent / "run" / "metrics.csv"
    if not metrics.is_file():
        return None, None
    with open(metrics, newline="") as f:
        last = list(csv.DictReader(f))[-1]
    return float(last["wall_time"]) / 3600, int(last["step"])


def _position(value: float, low: float, high: float) -> float:
    return (value - low) / (high - low)


def report(log: Path) -> str:
    from offmarl.collect.mixing import LEVELS
    from offmarl.collect.pools import Pool
    from offmarl.collect.tiers import TIER_TARGETS

    records: dict[str, dict] = {}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if record["recipe"] not in records or record["built"]:  # the build's own line over later cache hits
            records[record["recipe"]] = record
    pools = sorted({path for record in records.values() for path in record["pools"]})
    lines = ["| pool | algo | frames | training (h) | checkpoints r / m / e | return: lowest / r-m edge / m-e edge / "
             "best |", "|---|---|---:|---:|---|---|"]
    ranges = {}
    for path in pools:
        pool = Pool.load(path)
        hours, frames = _run_hours(Path(path))
        edges = pool.card["edges"]
        ranges[path] = (edges[0], edges[3])
        counts = " / ".join(str(len(pool.card["levels"][level])) for level in LEVELS)
        frames_text = "shipped" if frames is None else f"{frames:,}"
        hours_text = "shipped" if hours is None else f"{hours:.2f}"
        lines.append(f"| {pool.env_name} seed {pool.card['key']['seed']} | {pool.card['key']['algo']} | "
                     f"{frames_text} | {hours_text} | {counts} | {' / '.join(f'{e:.2f}' for e in edges)} |")
    lines += ["", "| dataset | episodes | build (s) | return (per-agent avg) | position in pool range | paper's "
              "position |", "|---|---:|---:|---|---:|---:|"]
    for name, record in records.items():
        env, kind = name.split("/")[1], name.split("/")[2]
        for i, card in enumerate(record["cards"]):
            low, high = ranges[record["pools"][min(i, len(record["pools"]) - 1)]]
            position = f"{_position(card['return_mean'], low, high):.2f}"
            paper = ""
            if (env, kind) in SIT_DATASET_RETURNS:
                paper = f"{_position(SIT_DATASET_RETURNS[(env, kind)], *SIT_RANGES[env]):.2f}"
            elif kind in TIER_TARGETS and card.get("extra", {}).get("tier"):
                achieved = card["extra"]["tier"].get("achieved_score")
                position += f" (tier score {achieved:.2f})" if achieved is not None else ""
                paper = f"tier {TIER_TARGETS[kind]:.2f}"
            label = name if len(record["cards"]) == 1 else f"{name} (agent {i})"
            seconds = f"{record['dataset_seconds']:.0f}" if record["dataset_seconds"] is not None else "cached"
            lines.append(f"| {label} | {card['episodes']} | {seconds} | {card['return_mean']:.2f} ± "
                         f"{card['return_std']:.2f} | {position} | {paper} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build", "report"))
    parser.add_argument("--only", nargs="*", default=[], help="recipes whose name starts with one of these")
    parser.add_argument("--log", type=Path, default=None, help="the JSON-lines log (default: in $OFFMARL_HOME)")
    parser.add_argument("--out", type=Path, default=None, help="report: also write the tables to this file")
    args = parser.parse_args()
    log = args.log or default_log()
    if args.command == "build":
        build(args.only, log)
        return
    text = report(log) + (f"\n\nmachine: {cpu_name()}, {os.cpu_count()} cores; "
                          f"command: `.venv/bin/python benchmarks/trained_datasets.py build` then `... report` "
                          f"({time.strftime('%Y-%m-%d')})")
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
