"""Estimate the wall time of an ``offmarl bench`` suite on an idle machine from short timed runs.

    .venv/bin/python benchmarks/bench_suite_cost.py SUITE [SUITE ...] [--cores 2] [--updates 30] [--scale F]

For every (dataset, algorithm) of the suite -- datasets built at the suite's scale, configs resolved
exactly as the runner does (per-env defaults, the suite's overrides, ablation/variant/preset, steps) --
this times ``--updates`` updates after 3 warm-up updates and one evaluation of ``eval_episodes`` episodes,
in one thread (the runner gives each of W = cores workers cores // W = 1 thread). Multi-stage algorithms
(``distill``'s teacher then students, ``dec_mabcq``'s VAEs then Q-learning, ``ma_bcq``'s behaviour model
then Q-learning) are timed per stage: the later stage on a copy whose first stage is empty.

Times are process CPU seconds (``time.process_time``), not wall seconds: on a machine shared with other
jobs the wall clock counts the time the process waited for a core, the CPU time is what it would take
alone (a slight underestimate: cache and memory-bandwidth contention still slow it down). The suite's
cost is the sum over runs of ``steps / updates_per_s + evaluations x eval_s + per-run overhead`` (loading
the dataset, writing checkpoints: ``--overhead``, default 3 s), divided among ``--cores`` workers, plus
the time to build the datasets and start the workers. Prints a markdown table per suite.

``--stand-in LABEL=FILE`` (repeatable; ``*=FILE`` for every column of the suite) times the updates and the
evaluation on FILE instead of building the suite's dataset of that column -- for data that is expensive
(Highway's tiers) or not built yet (the trained SMAX recipes): a small dataset of the same env and kwargs.
An update's cost depends on the env's shapes and the batch, not on the dataset's size; the data's build cost
is then not measured (the stand-in columns are named in the output) and must be estimated apart.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

WORKER_START_S = 8.0  # spawning a worker and importing torch + offmarl in it (measured: 5-8 s)


def _rate(algo, sampler, updates: int) -> float:
    """Updates per CPU second after 3 warm-up updates."""
    for _ in range(3):
        algo.update(sampler.sample())
    start = time.process_time()
    for _ in range(updates):
        algo.update(sampler.sample())
    return updates / max(time.process_time() - start, 1e-9)


def _build(cls, spec, config, dataset, seed: int = 0):
    from offmarl.core.seeding import seed_everything

    seed_everything(seed)
    algo = cls(spec, config)
    sampler = algo.make_sampler(dataset, seed)
    algo.on_fit_start(dataset)
    return algo, sampler


def _train_seconds(algo, sampler, updates: int) -> tuple[float, str]:
    """CPU seconds of the algorithm's budget: each stage entered and timed on its own, times its length; and
    the updates/s of each stage (``"a / b"`` for two)."""
    seconds, rates = 0.0, []
    for stage in algo.schedule.names:
        algo.enter_stage(stage)
        rate = _rate(algo, sampler, updates)
        seconds += algo.schedule.length(stage) / rate
        rates.append(f"{rate:.1f}")
    return seconds, " / ".join(rates)


def estimate(suite_name: str, updates: int, scale: float, overhead: float,
             stand_ins: dict[str, str] | None = None) -> tuple[list[dict], float, float]:
    """Per (dataset, algorithm) costs, the datasets' build time and the total CPU seconds of the suite; the
    columns of ``stand_ins`` (label -> file, ``*``: every column) are timed on that file, not built."""
    from offmarl.algos.base import build_config, get_algo_class
    from offmarl.bench.runner import prepare_datasets, resolve_steps, write_override_files
    from offmarl.bench.suite import check_algorithms, import_modules, load_suite
    from offmarl.data.sources import dataset_cards
    from offmarl.train.evaluate import evaluate_policy
    from offmarl.train.experiment import config_overrides
    from offmarl.train.run_dir import resolve_dataset

    suite = load_suite(suite_name)
    import_modules(suite)
    check_algorithms(suite)
    stand_ins = dict(stand_ins or {})
    if "*" in stand_ins:
        stand_ins = {entry.label: stand_ins["*"] for entry in suite.datasets} | stand_ins
        del stand_ins["*"]
    built = dataclasses.replace(suite, datasets=tuple(d for d in suite.datasets if d.label not in stand_ins))
    t0 = time.perf_counter()
    files = {**(prepare_datasets(built, lambda _: None) if built.datasets else {}), **stand_ins}
    build_s = time.perf_counter() - t0
    if stand_ins:
        print(f"  timed on stand-in data (not built): {', '.join(f'{k}={v}' for k, v in stand_ins.items())}")
    configs = write_override_files(suite, Path(tempfile.mkdtemp(prefix="offmarl-cost-")))
    rows, total = [], 0.0
    for entry in suite.datasets:
        data, _ = resolve_dataset(str(files[entry.label]))
        card = dataset_cards(data)[0]
        for algo_entry in suite.algorithms:
            cls = get_algo_class(algo_entry.name)
            steps = resolve_steps(suite, algo_entry, card.env_name, configs[algo_entry.label], scale)
            overrides = config_overrides(cls, card.env_name, configs[algo_entry.label], [], algo_entry.ablation,
                                         algo_entry.variant, algo_entry.preset)
            config = dataclasses.replace(build_config(cls, overrides), steps=steps)
            algo, sampler = _build(cls, card.spec, config, data)
            train_s, stages = _train_seconds(algo, sampler, updates)
            start = time.process_time()
            evaluate_policy(algo.policies(), card.env_name, card.env_kwargs, suite.eval_episodes, 12345)
            eval_s = time.process_time() - start
            evals = 1 + (steps // suite.eval_every if suite.eval_every else 0)
            run_s = train_s + evals * eval_s + overhead
            total += run_s * len(suite.seeds)
            rows.append({"dataset": entry.label, "algo": algo_entry.label, "steps": steps, "updates_per_s": stages,
                         "eval_s": eval_s, "evals": evals, "run_s": run_s})
            print(f"  {entry.label} {algo_entry.label}: {steps} steps at {stages} updates/s, "
                  f"{evals} x {eval_s:.2f} s eval -> {run_s:.0f} s per run", flush=True)
    return rows, build_s, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="+")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--scale", type=float, default=1.0, help="the bench's --scale")
    parser.add_argument("--overhead", type=float, default=3.0, help="seconds per run outside updates and evals")
    parser.add_argument("--stand-in", action="append", default=[], metavar="LABEL=FILE",
                        help="time the column LABEL (* for all) on FILE instead of building its dataset")
    args = parser.parse_args()
    stand_ins = {}
    for item in args.stand_in:
        label, sep, file = item.partition("=")
        if not sep or not file:
            parser.error(f"--stand-in: expected LABEL=FILE, got {item!r}")
        stand_ins[label] = file
    torch.set_num_threads(1)
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name in args.suites:
        print(f"\n## {name}")
        rows, build_s, total = estimate(name, args.updates, args.scale, args.overhead, stand_ins)
        seeds = len(__import__("offmarl.bench.suite", fromlist=["load_suite"]).load_suite(name).seeds)
        print("\n| dataset | algorithm | steps | updates / CPU s | eval CPU s | evals | CPU s per run |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['dataset']} | {r['algo']} | {r['steps']} | {r['updates_per_s']} | {r['eval_s']:.2f} | "
                  f"{r['evals']} | {r['run_s']:.0f} |")
        wall = total / args.cores + build_s + WORKER_START_S
        print(f"\n{name}: {len(rows) * seeds} runs, {total:.0f} CPU s of runs; datasets built in {build_s:.0f} s; "
              f"estimated wall on {args.cores} idle cores: {wall / 60:.1f} min "
              f"(load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
