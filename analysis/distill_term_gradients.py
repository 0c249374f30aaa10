"""How much do Eq. 4's distillation terms pull on the students? Gradient norms of L_action, α L_rel and
β L_KL on trained distill runs of a bench.

    .venv/bin/python analysis/distill_term_gradients.py [--suite-dir runs/tseng-table1]
                                                        [--batches 4]

For every ``<dataset>/distill/seed<k>`` run of the suite directory, at two points -- the start of the
student stage (the run's saved teacher artifact, students freshly initialised from the run's seed) and
the end of training (the saved model) -- and under both ``distill_reduction`` settings (``mean``: the
terms averaged over the batch's real (window, step) positions, as L_action; ``sum``: summed), this
computes the gradient norm of each weighted term with respect to the students' parameters, on
``--batches`` batches of the run's dataset drawn with the run's sampler, and prints the ratios
‖∇ α L_rel‖ / ‖∇ L_action‖ and ‖∇ β L_KL‖ / ‖∇ L_action‖ (median over seeds and batches).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch


def _ratios(algo, batch) -> tuple[float, float]:
    s, params = algo.settings, list(algo.students.parameters())
    norms = {}
    for term, weight in (("action", 1.0), ("rel", s.alpha), ("kl", s.beta)):
        loss = (weight * algo.distill_losses(batch)[term]).sum()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        norms[term] = float(torch.sqrt(sum((g ** 2).sum() for g in grads if g is not None)))
    return norms["rel"] / norms["action"], norms["kl"] / norms["action"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite-dir", default=Path(__file__).resolve().parents[1] / "runs" / "tseng-table1",
                        help="runs of a tseng-table1 bench (default: runs/tseng-table1 of the repository, where "
                             "`offmarl bench run tseng-table1` run from its root writes them)")
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from offmarl.algos.base import build_config, get_algo_class, load_algo
    from offmarl.core.seeding import seed_everything
    from offmarl.data.sources import dataset_cards
    from offmarl.train.run_dir import resolve_dataset

    cls = get_algo_class("distill")
    print("| dataset | point | reduction | real positions per batch | α L_rel / L_action | β L_KL / L_action | runs |")
    print("|---|---|---|---|---|---|---|")
    for dataset_dir in sorted(p for p in Path(args.suite_dir).iterdir() if (p / "distill").is_dir()):
        runs = sorted((dataset_dir / "distill").glob("seed*"))
        runs = [r for r in runs if (r / "model" / "algo.json").exists()]
        if not runs:
            continue
        config = json.loads((runs[0] / "config.json").read_text())
        data, _ = resolve_dataset(config["dataset_source"]["path"])
        card = dataset_cards(data)[0]
        for point in ("student stage start", "end of training"):
            for reduction in ("mean", "sum"):
                rel, kl, positions = [], [], []
                for run in runs:
                    seed = json.loads((run / "config.json").read_text())["train_config"]["seed"]
                    algo_config = json.loads((run / "config.json").read_text())["algo_config"]
                    cfg = build_config(cls, {**algo_config, "distill_reduction": reduction})
                    seed_everything(seed)
                    algo = cls(card.spec, cfg)
                    if point == "end of training":
                        algo.load_state_dict(load_algo(run / "model").state_dict())
                    else:  # the students as they start: the run's teacher, handed over at the stage's end
                        algo.teacher.load_state_dict(load_algo(run / "teacher").state_dict())
                    sampler = algo.make_sampler(data, seed)
                    algo.on_fit_start(data)
                    algo.enter_stage("student")
                    for _ in range(args.batches):
                        batch = algo.to_device(sampler.sample())
                        r, k = _ratios(algo, batch)
                        rel.append(r), kl.append(k), positions.append(int(batch["mask"].sum()))
                print(f"| {dataset_dir.name} | {point} | {reduction} | {statistics.median(positions):.0f} | "
                      f"{statistics.median(rel):.2g} | {statistics.median(kl):.2g} | {len(runs)} |", flush=True)


if __name__ == "__main__":
    main()
