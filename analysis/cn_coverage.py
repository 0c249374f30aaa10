"""Where does an online learner lose return on cooperative navigation? Coverage and precision of trained runs.

    .venv/bin/python analysis/cn_coverage.py --suite-dir runs/online-mpe [--episodes 128] [--out FILE]

On SIT's cooperative-navigation maps (``mpe_cn_*``, :mod:`offmarl.envs.mpe`) every step's team reward is
``g = − Σ_l min_i |p_i − q_l|``: the return falls short of the scripted expert's (which assigns landmarks
from the global state, :mod:`offmarl.policies.scripted.mpe`) either because two seekers settle on the same
landmark, leaving one uncovered (coordination), or because each seeker approaches its landmark slowly or
stops short of it (precision). This script rolls out the greedy policy of every run under ``--suite-dir``
(a run directory holds ``config.json`` and ``model/``) and the env's scripted expert on the same episodes
(seed 7, ``--episodes`` at once; each run on its own env kwargs) and prints, per policy:

* ``return``: the per-agent return (as the bench tables report it);
* ``shared``: the fraction of episodes whose seekers end (t = 25) with fewer distinct nearest landmarks
  than seekers, and the mean return of those episodes and of the others;
* ``g@5 / g@10 / g@25``: the team reward at those steps (how fast it approaches, where it settles);
* ``distance``: the median and 90th percentile of each seeker's final distance to its nearest landmark;
* ``covered``: landmarks with a seeker within 0.1 at the end (of ``N``).

Retrains nothing; CPU-seconds per run. The finding it supports is in results/FINDINGS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _report import emit  # analysis/, beside this script

from offmarl.envs import make_env
from offmarl.envs.mpe import state_layout, unpack_state
from offmarl.policies.registry import make_behavior_policy
from offmarl.train.experiment import load_run, run_config, run_env

SEED = 7
COVERED = 0.1  # a landmark is covered when a seeker's centre is this close (a seeker's radius is 0.15)


def rollout_stats(policy, env_name: str, env_kwargs: dict, episodes: int) -> dict[str, float]:
    env = make_env(env_name, num_envs=episodes, seed=SEED, **env_kwargs)
    try:
        layout = state_layout(env.spec)
        ts = env.reset()
        policy.reset(episodes)
        team_reward = []  # [T] of [B]
        for t in range(env.spec.episode_limit):
            ts = env.step(policy.act(ts, t == 0))
            ended = ts.terminated | ts.truncated
            state = np.where(ended[:, None], ts.final_state, ts.state) if ts.final_state is not None else ts.state
            pos, _, landmarks = unpack_state(state, layout)
            pos = pos[:, : env.spec.n_agents]
            dist = np.linalg.norm(pos[:, :, None] - landmarks[:, None], axis=-1)  # [B, N, L]
            team_reward.append(-dist.min(axis=1).sum(axis=1))
    finally:
        env.close()
    g = np.stack(team_reward)  # [T, B]
    returns = g.sum(axis=0)  # [B] the team reward is every seeker's reward: per-agent return = team return
    nearest = dist.argmin(axis=2)  # [B, N] at the last step
    shared = (np.diff(np.sort(nearest, axis=1), axis=1) == 0).any(axis=1)  # [B] two seekers, one landmark
    own = dist.min(axis=2)  # [B, N]
    return {"return": returns.mean(), "shared": shared.mean(),
            "return_shared": returns[shared].mean() if shared.any() else float("nan"),
            "return_distinct": returns[~shared].mean() if (~shared).any() else float("nan"),
            "g5": g[4].mean(), "g10": g[9].mean(), "g_end": g[-1].mean(),
            "dist_median": float(np.median(own)), "dist_p90": float(np.quantile(own, 0.9)),
            "covered": (dist.min(axis=1) < COVERED).sum(axis=1).mean(), "landmarks": dist.shape[2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite-dir", type=Path, default=Path("runs/online-mpe"))
    parser.add_argument("--episodes", type=int, default=128)
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = sorted(p.parent for p in args.suite_dir.rglob("config.json") if (p.parent / "model").is_dir())
    if not runs:
        raise SystemExit(f"{args.suite_dir}: no trained runs (directories with config.json and model/)")
    rows, experts = [], {}
    for run in runs:
        env_name, env_kwargs = run_env(run_config(run))
        if not env_name.startswith("mpe_cn_"):
            continue
        key = (env_name, tuple(sorted(env_kwargs.items())))
        if key not in experts:
            spec = make_env(env_name, num_envs=1, seed=0, **env_kwargs).spec
            experts[key] = rollout_stats(make_behavior_policy("expert", spec, seed=0), env_name, env_kwargs,
                                         args.episodes)
            rows.append((f"scripted expert ({env_name}{' ' + str(dict(env_kwargs)) if env_kwargs else ''})",
                         experts[key]))
        algo, _ = load_run(run)
        rows.append((str(run.relative_to(args.suite_dir)), rollout_stats(algo.policies(), env_name, env_kwargs,
                                                                        args.episodes)))
    lines = ["| policy | return | shared (return shared / distinct) | g@5 | g@10 | g@25 | distance median / p90 "
             "| covered |", "|---|---|---|---|---|---|---|---|"]
    for name, s in rows:
        lines.append(f"| {name} | {s['return']:.2f} | {s['shared']:.2f} ({s['return_shared']:.2f} / "
                     f"{s['return_distinct']:.2f}) | {s['g5']:.2f} | {s['g10']:.2f} | {s['g_end']:.3f} | "
                     f"{s['dist_median']:.3f} / {s['dist_p90']:.3f} | {s['covered']:.2f} / {s['landmarks']} |")
    lines.append(f"\nGreedy policies, {args.episodes} episodes (env seed {SEED}) per row, every run on its own env "
                 "kwargs; `analysis/cn_coverage.py` (module docstring defines the columns).")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
