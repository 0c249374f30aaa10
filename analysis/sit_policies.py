"""What do SIT's actor and critic prefer? Greedy rollouts of a sit run's actor and of its critic's argmax.

    .venv/bin/python analysis/sit_policies.py RUN [RUN ...] [--episodes 64] [--out FILE]

Each RUN is a finished ``sit`` run on a discrete-action env (a directory with ``config.json`` and ``model/``,
e.g. ``runs/sit-table1/mpe_cn_3ls3l_low_scripted/sit/seed0``). For each, on the same ``--episodes`` episodes
(env seed 7, the run's env kwargs), two greedy policies play:

* ``actor``: the run's decentralized policy (what the bench evaluates);
* ``critic``: every agent i takes argmax_a Q_i(o_i, a_i^{t-1}, GAT(o_1..o_N), a) over its available actions
  -- the critic's own one-step improvement, with the global observations it was trained on (centralized:
  a diagnostic, not a decentralized policy).

Columns: the per-agent return; ``modal``: the share of each (episode, agent) trajectory's steps spent on
its most frequent action (1 = one action all episode); the action shares over all agents and steps; and
``Q spread``: over the dataset's steps (the run's recorded dataset file), max_k − min_k of the
state-averaged Q_i(·, k), against the spread of the dataset's mean discounted return-to-go given the action
taken (``data G spread``) -- a critic whose spread is much larger than the data's prefers some action
everywhere, whatever the state.

Retrains nothing; CPU-seconds per run. The finding it supports is in results/FINDINGS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _report import emit, sit_run_config  # analysis/, beside this script

from offmarl.data.io import load_dataset
from offmarl.data.returns import discounted_returns
from offmarl.envs import make_env
from offmarl.train.experiment import load_run, run_env

SEED = 7
CHUNK = 8192  # dataset steps per critic forward


def critic_q(algo, obs: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """Q_i(o_i, a_i^{t-1}, GAT(o), ·) of every agent at independent steps: ``obs [S, n, d]``, ``previous [S, n, A]``
    (one-hot) -> ``[S, n, A]``."""
    steps, n = obs.shape[:2]
    if not algo.settings.critic_previous_action:
        previous = previous[..., :0]
    nodes = obs[:, None, None].expand(steps, 1, n, n, obs.shape[-1])  # [S, 1, n, N, d]: agent i's graph
    source = torch.arange(n)[None, None].expand(steps, 1, n)  # agent i is node i
    with torch.no_grad():
        e_global = algo.critic.global_embedding(nodes, source)
        return algo.critic(torch.cat([obs[:, None], previous[:, None]], dim=-1), e_global)[:, 0]


def rollout(algo, env_name: str, env_kwargs: dict, episodes: int, use_critic: bool) -> dict[str, object]:
    env = make_env(env_name, num_envs=episodes, seed=SEED, **env_kwargs)
    try:
        n, n_actions = env.spec.n_agents, env.spec.n_actions
        policy = algo.policies()
        policy.reset(episodes)
        ts = env.reset()
        previous = torch.zeros(episodes, n, n_actions)
        total, taken = np.zeros(episodes), []
        for t in range(env.spec.episode_limit):
            if use_critic:
                q = critic_q(algo, torch.as_tensor(ts.obs, dtype=torch.float32), previous)
                if ts.avail_actions is not None:
                    q = q.masked_fill(~torch.as_tensor(np.array(ts.avail_actions, dtype=bool)), float("-inf"))
                actions = q.argmax(dim=-1).numpy()
            else:
                actions = np.asarray(policy.act(ts, t == 0))
            taken.append(actions)
            previous = F.one_hot(torch.as_tensor(actions, dtype=torch.int64), n_actions).float()
            ts = env.step(actions)
            total += np.asarray(ts.reward).mean(axis=1)
            if (ts.terminated | ts.truncated).all():
                break
    finally:
        env.close()
    acts = np.stack(taken)  # [T, B, n]
    counts = (acts[..., None] == np.arange(n_actions)).sum(axis=0)  # [B, n, A] steps on each action
    modal = (counts.max(axis=-1) / len(acts)).mean()
    shares = np.bincount(acts.ravel(), minlength=n_actions) / acts.size
    return {"return": float(total.mean()), "modal": float(modal), "shares": shares}


def spreads(algo, dataset_path: str, gamma: float) -> tuple[float, float]:
    """(critic's Q spread, the data's return-to-go spread) over actions, on every step of the dataset."""
    ds = load_dataset(dataset_path)
    steps = ds.n_steps
    obs = torch.as_tensor(np.asarray(ds.obs), dtype=torch.float32)
    actions = torch.as_tensor(np.asarray(ds.actions), dtype=torch.int64)  # [S, n]
    n_actions = algo.spec.n_actions
    first = np.zeros(steps, dtype=bool)
    first[np.asarray(ds.episode_starts)] = True
    previous = F.one_hot(torch.roll(actions, 1, dims=0), n_actions).float()
    previous[torch.as_tensor(first)] = 0.0
    q_sum = sum(critic_q(algo, obs[c:c + CHUNK], previous[c:c + CHUNK]).sum(dim=(0, 1)) for c in range(0, steps, CHUNK))
    q_spread = float(np.ptp((q_sum / (steps * obs.shape[1])).numpy()))  # of the state-averaged Q(·, k)
    to_go = discounted_returns(np.asarray(ds.rewards).mean(axis=1), ds.episode_starts, gamma)  # [S] team
    acts = actions.numpy()  # [S, n]: E[G | a_i = k] over every (step, agent) that took k
    to_go_each = np.broadcast_to(to_go[:, None], acts.shape)
    by_action = [to_go_each[acts == k].mean() if (acts == k).any() else np.nan for k in range(n_actions)]
    return q_spread, float(np.nanmax(by_action) - np.nanmin(by_action))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = ["| run | policy | return | modal | action shares | Q spread / data G spread |",
             "|---|---|---|---|---|---|"]
    for run in args.runs:
        config = sit_run_config(run)
        algo, _ = load_run(run)
        if not algo.spec.discrete:
            raise SystemExit(f"{run}: the critic's argmax needs discrete actions")
        env_name, env_kwargs = run_env(config)
        q_spread, g_spread = spreads(algo, config["dataset_source"]["path"], algo.settings.gamma)
        for use_critic in (False, True):
            s = rollout(algo, env_name, env_kwargs, args.episodes, use_critic)
            lines.append(f"| {run} | {'critic argmax' if use_critic else 'actor'} | {s['return']:.2f} | "
                         f"{s['modal']:.2f} | {' '.join(f'{x:.2f}' for x in s['shares'])} | "
                         f"{q_spread:.2f} / {g_spread:.2f} |")
    lines.append(f"\nGreedy policies, {args.episodes} episodes (env seed {SEED}) per row; `analysis/sit_policies.py` "
                 "(module docstring defines the columns).")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
