"""Where does SIT's uncertainty weight η/û go? Eq. 9-10's per-step weights over a run's dataset.

    .venv/bin/python analysis/sit_uncertainty_weights.py RUN [RUN ...] [--out FILE]

Each RUN is a ``sit`` run past its Stage II (``dper/dper.pt`` holds û ``[T, n]`` and, when the dataset records
them, the episodes' behaviour levels). Over every step of the run's dataset, per agent, the weight
w = η/û of ``offmarl.algos.sit.uncertainty_weights`` with the whole dataset as its batch (û clamped below at
``uncertainty_floor`` × its mean over the agent's steps; the loss clamps at its batch mean instead). Columns:

* ``inactive``: the share of the agent's steps at which it has a single available action (a dead SMAX unit
  keeps "stop" only and observes zeros; 0 on envs without action masks), and the share of w they carry;
* ``û active / inactive``: mean û on each kind of step (the ensemble agrees on a constant input);
* per behaviour level: the level's share of the agent's active steps and of their w -- whether the weights
  favour one level's trajectories (a weight that does not changes what is imitated only through its spread);
* ``top 1 %``: the share of the active steps' w carried by their heaviest 1 %.

An inactive step gives the actor no gradient (its masked softmax has one action) but is a full term of the
critic's weighted TD loss (Eq. 9). Retrains nothing; seconds per run. The finding is in results/FINDINGS.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from _report import sit_stage_two, tabulate_runs  # analysis/, beside this script

from offmarl.algos.sit import uncertainty_weights
from offmarl.data.io import load_dataset


def rows_of(run: Path) -> list[str]:
    config, dper = sit_stage_two(run)
    settings = config["algo_config"]
    uncertainty = dper["uncertainty"].double()  # [T, n]
    everywhere = torch.ones_like(uncertainty, dtype=torch.bool)[None]  # the whole dataset as one batch
    w = uncertainty_weights(uncertainty[None], everywhere, settings["eta"], settings["uncertainty_floor"])[0].numpy()
    uncertainty = uncertainty.numpy()
    ds = load_dataset(config["dataset_source"]["path"])
    inactive = (np.zeros(uncertainty.shape, dtype=bool) if ds.avail_actions is None
                else np.asarray(ds.avail_actions).sum(axis=-1) == 1)  # [T, n]
    levels = None if "behavior_levels" not in dper else dper["behavior_levels"].numpy()[ds.episode_index]  # [T, n]
    names = ds.card.behavior_level_names or []
    rows = []
    for i in range(uncertainty.shape[1]):
        active = ~inactive[:, i]
        total = w[:, i].sum()
        cells = [f"{inactive[:, i].mean():.2f} / {w[inactive[:, i], i].sum() / total:.2f}",
                 f"{uncertainty[active, i].mean():.5f} / "
                 + (f"{uncertainty[~active, i].mean():.5f}" if (~active).any() else "–")]
        by_level = []
        if levels is not None:
            for level in np.unique(levels[:, i]):
                here = active & (levels[:, i] == level)
                name = names[level] if level < len(names) else str(level)
                by_level.append(f"{name} {here.sum() / active.sum():.2f} / {w[here, i].sum() / w[active, i].sum():.2f}")
        heaviest = np.sort(w[active, i])[::-1]
        top = heaviest[: max(1, len(heaviest) // 100)].sum() / heaviest.sum()
        rows.append(f"| {run} | {i} | {' | '.join(cells)} | {', '.join(by_level) or '–'} | {top:.3f} |")
    return rows


def main() -> None:
    tabulate_runs(__doc__.splitlines()[0],
                  "| run | agent | inactive steps / their w | û active / inactive | level: active steps / their w | "
                  "top 1 % of active w |", rows_of,
                  "w = η/û over every step of the run's dataset (`analysis/sit_uncertainty_weights.py`; the module "
                  "docstring defines the columns).")


if __name__ == "__main__":
    main()
