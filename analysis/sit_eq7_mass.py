"""Which individual trajectories would SIT's Eq. 7 replay? Its sampling mass by behaviour level, per agent type.

    .venv/bin/python analysis/sit_eq7_mass.py RUN [RUN ...] [--out FILE]

Each RUN is a ``sit`` run past its Stage II (``dper/dper.pt`` holds the episode priorities p̂ ``[E, n]`` and, when
the dataset records them, the episodes' behaviour levels). The script recomputes Eq. 7 at the run's α from p̂ --
whether or not the run itself sampled by it (a ``uniform_replay`` run trains the same Stage I as ``sit`` at the
same seed, so its p̂ says what sit's replay holds) -- and reports, per agent type (one replay each):

* ``effective``: (Σp)² / Σp², how many trajectories Eq. 7 effectively samples;
* ``mass by level``: the share of the type's sampling probability on trajectories of each behaviour level
  (an agent's trajectory has that agent's level in that episode);
* ``top trajectory``: the single most likely (episode, agent), its level, p̂ and probability.

Retrains nothing; seconds per run. The finding is in results/FINDINGS.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _report import sit_stage_two, tabulate_runs  # analysis/, beside this script

from offmarl.data.io import load_dataset
from offmarl.data.samplers import softmax_priorities


def rows_of(run: Path) -> list[str]:
    config, dper = sit_stage_two(run)
    meta = config["algo_config"]
    scores = dper["priority_score"].double().numpy()  # [E, n] p̂ in [0, priority_high]
    ds = load_dataset(config["dataset_source"]["path"])
    names = ds.card.behavior_level_names or []
    levels = (None if "behavior_levels" not in dper
              else np.asarray(names or [], dtype=object)[dper["behavior_levels"].numpy()] if names
              else dper["behavior_levels"].numpy().astype(str))  # [E, n]
    types = ds.spec.agent_types
    rows = []
    for agent_type in dict.fromkeys(types):
        agents = [i for i, t in enumerate(types) if t == agent_type]
        p = softmax_priorities(scores[:, agents], meta["alpha"])  # [E, |type|] Eq. 7 within the type
        p = p / p.sum()
        effective = 1.0 / (p ** 2).sum()
        mass = "–"
        if levels is not None:
            here = levels[:, agents]
            mass = ", ".join(f"{name} {p[here == name].sum():.3f} ({(here == name).sum()})"
                             for name in sorted(np.unique(here)))
        e, k = np.unravel_index(int(np.argmax(p)), p.shape)
        level = "" if levels is None else f" {levels[e, agents[k]]}"
        rows.append(f"| {run} | {agent_type} ({len(agents)}) | {effective:.1f} | {mass} | episode {e}, agent "
                    f"{agents[k]}{level}: p̂ {scores[e, agents[k]]:.2f}, probability {p[e, k]:.3f} |")
    return rows


def main() -> None:
    tabulate_runs(__doc__.splitlines()[0],
                  "| run | type (agents) | effective trajectories | mass by level (trajectories) | top trajectory |",
                  rows_of, "Eq. 7 recomputed at each run's α from its Stage II priorities p̂ "
                  "(`analysis/sit_eq7_mass.py`; the module docstring defines the columns).")


if __name__ == "__main__":
    main()
