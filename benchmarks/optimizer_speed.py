"""Update speed with the fused Adam/AdamW of ``offmarl.core.optim`` vs torch's default (per-tensor) loop.

    .venv/bin/python benchmarks/optimizer_speed.py [--updates 60] [--dataset tseng/fill_in]

For each algorithm, two learners are built from the same seed on the same dataset, one with the library's
optimizers (fused) and one with ``torch.optim``'s default implementation (``fused`` off); they take turns
on the same batches (alternating which goes first) so that a changing machine load affects both alike.
Reported: updates per second of process CPU time of each, and their ratio, after 5 warm-up updates, one
torch thread. The networks are tseng-table1's small ones (DTs hidden 64, 2 layers, K 10, batch 32; value
baselines hidden 64, batch 32); distill is timed in its student stage (teacher stage of one update).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from unittest import mock

import torch

DT = {"hidden": 64, "n_layers": 2, "context_len": 10, "batch_size": 32, "feature_dim": 64}
ALGOS = {
    "bc": {"hidden": 64, "history": 10, "batch_size": 32},
    "idt": DT, "madt": DT, "teacher": DT,
    "distill (students)": {**DT, "teacher_fraction": 1e-9},
    "qmix": {"hidden": 64, "mixer_hidden": 32, "batch_size": 32},
    "ma_cql": {"hidden": 64, "mixer_hidden": 32, "batch_size": 32},
}


def build(name: str, overrides: dict, data, card, fused: bool):
    from offmarl.algos.base import build_config, get_algo_class
    from offmarl.core.seeding import seed_everything

    cls = get_algo_class(name.split(" ")[0])
    config = dataclasses.replace(build_config(cls, dict(overrides)), steps=100_000)
    seed_everything(0)
    with mock.patch("offmarl.core.optim._fusable", return_value=fused):
        algo = cls(card.spec, config)
    sampler = algo.make_sampler(data, 0)
    algo.on_fit_start(data)
    return algo, sampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--dataset", default="tseng/fill_in")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from offmarl.data.sources import dataset_cards
    from offmarl.train.run_dir import resolve_dataset

    data, _ = resolve_dataset(args.dataset)
    card = dataset_cards(data)[0]
    print(f"{args.dataset}, {args.updates} alternating updates after 5 warm-up, torch {torch.__version__}, 1 thread\n")
    print("| algorithm | fused updates/s | default updates/s | fused / default |")
    print("|---|---|---|---|")
    for name, overrides in ALGOS.items():
        pair = {fused: build(name, overrides, data, card, fused) for fused in (True, False)}
        seconds = {True: 0.0, False: 0.0}
        for i in range(args.updates + 5):
            batch = pair[True][1].sample()
            for fused in (True, False) if i % 2 else (False, True):
                start = time.process_time()
                pair[fused][0].update(batch)
                if i >= 5:
                    seconds[fused] += time.process_time() - start
        rate = {k: args.updates / v for k, v in seconds.items()}
        print(f"| {name} | {rate[True]:.1f} | {rate[False]:.1f} | {rate[True] / rate[False]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
