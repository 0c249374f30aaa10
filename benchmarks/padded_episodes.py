"""CPU per update of the episode learners with batches padded to the dataset's longest episode
(``EpisodeSampler(pad="max_len")``) vs to the batch's own longest (``pad="batch"``, the library's choice).

    .venv/bin/python benchmarks/padded_episodes.py [--dataset sit/smac_2s3z/low/scripted] [--scale 0.1]
        [--updates 20] [--repeats 3]

For each learner two copies are built from the same seed on the same dataset, one sampling each way; they
take turns (alternating which goes first) for ``--repeats`` rounds of ``--updates`` updates so that a
changing machine load affects both alike, after 3 warm-up updates, on one torch thread. Reported: process
CPU seconds per update of each (median over rounds) and their ratio. The value baselines run SIT's Table 11
preset (GRU agents, batch 32 episodes); sit is timed in Stage I (ARDNEM, uniform joint episodes) and in
Stage III (the decomposed prioritized replay) right after Stage II. Both ways give the same weights
(tests/test_padding.py): only the cost differs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def learner(name: str, dataset, pad: str, stage: str | None):
    from offmarl.algos import make_algo
    from offmarl.algos.base import get_algo_class
    from offmarl.core.seeding import seed_everything
    from offmarl.data.samplers import EpisodeSampler

    seed_everything(0)
    overrides = {"preset": "sit"} if "preset" in get_algo_class(name).Config.__dataclass_fields__ else {}
    algo = make_algo(name, dataset.spec, **overrides)
    sampler = algo.make_sampler(dataset, seed=0)
    inner = [sampler] if isinstance(sampler, EpisodeSampler) else [sampler.episodes, *sampler.replay.replays]
    for s in inner:
        s.pad = pad
    if stage is not None:  # sit: Stage I, or straight to Stage III through Stage II
        algo.plan(1_000_000)
        algo.enter_stage("ardnem")
        if stage == "policy":
            algo.enter_stage("dper")
            algo.update(sampler.sample())
            algo.enter_stage("policy")
    return algo, sampler


def cpu_per_update(algo, sampler, updates: int) -> float:
    start = time.process_time()
    for _ in range(updates):
        algo.update(sampler.sample())
    return (time.process_time() - start) / updates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="sit/smac_2s3z/low/scripted")
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from offmarl.collect.recipes import cache_recipe_dataset, recipe_dataset_path
    from offmarl.data.io import load_dataset

    cache_recipe_dataset(args.dataset, scale=args.scale)
    dataset = load_dataset(recipe_dataset_path(args.dataset, scale=args.scale))
    lengths = dataset.episode_lengths
    print(f"{args.dataset} at scale {args.scale}: {dataset.n_episodes} episodes, length mean "
          f"{lengths.mean():.1f}, max {lengths.max()}; torch {torch.__version__}, one thread")
    print("| learner | CPU s / update, pad max_len | pad batch | ratio |")
    print("| --- | --- | --- | --- |")
    for name, stage in (("qmix", None), ("ma_bcq", None), ("ma_cql", None), ("ma_icq", None), ("sit", "ardnem"),
                        ("sit", "policy")):
        pair = {pad: learner(name, dataset, pad, stage) for pad in ("max_len", "batch")}
        for algo, sampler in pair.values():
            cpu_per_update(algo, sampler, 3)
        times: dict[str, list[float]] = {"max_len": [], "batch": []}
        for k in range(args.repeats):
            for pad in (("max_len", "batch") if k % 2 == 0 else ("batch", "max_len")):
                times[pad].append(cpu_per_update(*pair[pad], args.updates))
        full, trimmed = statistics.median(times["max_len"]), statistics.median(times["batch"])
        label = name if stage is None else f"{name} ({'Stage I' if stage == 'ardnem' else 'Stage III'})"
        print(f"| {label} | {full:.3f} | {trimmed:.3f} | {full / trimmed:.2f}x |")


if __name__ == "__main__":
    main()
