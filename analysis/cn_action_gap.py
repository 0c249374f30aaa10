"""How much does one action matter on cooperative navigation? Monte-Carlo Q of uniform random play.

    .venv/bin/python analysis/cn_action_gap.py [--env mpe_cn_3ls3l] [--states 128] [--continuations 512]
        [--runs RUN ...]

SIT's critic (Eq. 9) learns Q of the behaviour policy; on SIT's low-quality CN data the behaviour is mostly
uniform random play. This script measures, without any learning, what such a critic has to resolve: from
``--states`` states reached by ``t0`` steps of uniform random play (t0 = 0, 6, 12, 18; env seed 11), agent 0
takes each of the 5 actions once while the others act at random, then every agent plays at random to the
episode's end; ``--continuations`` rollouts per (state, action) estimate

    Q(s, k) = E[ Σ_{t ≥ t0} γ^{t − t0} r_t | s, a_0 = k ],   γ = 0.99, r the team (per-agent) reward.

Columns per t0: ``per-state gap``: the mean over states of max_k Q(s, k) − min_k Q(s, k) (the signal a critic
must rank), with its Monte-Carlo standard error; ``state-averaged spread``: max_k − min_k of the Q(·, k)
averaged over states (0 up to noise: the map has no preferred direction); ``return sd``: the standard
deviation of one rollout's return (the noise one sampled target carries).

``--runs``: sit runs on this env (``analysis/sit_policies.py``'s critic inputs); for each, on the t0 = 0
states, agent 0's critic Q_0(o_0, 0, GAT(o), ·) against the Monte-Carlo Q: the mean over states of their
Spearman rank correlation across the 5 actions, how often their argmaxes agree (chance: 0.2) and the
critic's own per-state gap. Retrains nothing; ~10 CPU-seconds at the defaults.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.stats import spearmanr
from sit_policies import critic_q  # analysis/, beside this script

from offmarl.envs import make_env
from offmarl.train.experiment import load_run

SEED = 11
GAMMA = 0.99
STARTS = (0, 6, 12, 18)


def monte_carlo_q(env_name: str, t0: int, states: int, continuations: int, rng: np.random.Generator
                  ) -> np.ndarray:
    """Returns ``[states, 5, continuations]`` of agent 0's five first actions at ``t0``."""
    probe = make_env(env_name, num_envs=states, seed=SEED + t0)
    n, n_actions, limit = probe.spec.n_agents, probe.spec.n_actions, probe.spec.episode_limit
    probe.reset()
    for _ in range(t0):
        probe.step(rng.integers(n_actions, size=(states, n)))
    copies = n_actions * continuations
    positions = np.repeat(probe.positions, copies, axis=0)  # [states * 5 * M, E, 2], state-major
    velocities = np.repeat(probe.velocities, copies, axis=0)
    probe.close()
    env = make_env(env_name, num_envs=states * copies, seed=SEED)
    env.reset()
    env.set_physical_state(positions, velocities, steps=t0)
    first = np.tile(np.repeat(np.arange(n_actions), continuations), states)  # agent 0's action per sub-env
    returns = np.zeros(states * copies)
    for k in range(limit - t0):
        actions = rng.integers(n_actions, size=(states * copies, n))
        if k == 0:
            actions[:, 0] = first
        ts = env.step(actions)
        returns += GAMMA ** k * np.asarray(ts.reward)[:, 0]
    env.close()
    return returns.reshape(states, n_actions, continuations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="mpe_cn_3ls3l")
    parser.add_argument("--states", type=int, default=128)
    parser.add_argument("--continuations", type=int, default=512)
    parser.add_argument("--runs", type=str, nargs="*", default=[])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    lines = ["| t0 | per-state gap (± s.e.) | state-averaged spread | return sd |", "|---|---|---|---|"]
    first_q = None
    for t0 in STARTS:
        g = monte_carlo_q(args.env, t0, args.states, args.continuations, rng)  # [S, A, M]
        q = g.mean(axis=2)  # [S, A]
        first_q = q if t0 == 0 else first_q
        gap = q.max(axis=1) - q.min(axis=1)
        spread = np.ptp(q.mean(axis=0))
        lines.append(f"| {t0} | {gap.mean():.3f} ± {gap.std(ddof=1) / np.sqrt(len(gap)):.3f} | {spread:.3f} | "
                     f"{g.std(axis=2).mean():.2f} |")
    lines.append(f"\n{args.env}, uniform random play, {args.states} states x 5 actions x {args.continuations} "
                 f"continuations per t0 (env seed {SEED}); `analysis/cn_action_gap.py`. A per-state gap estimated "
                 "from M continuations is biased upwards by the noise (max of 5 noisy means): about "
                 "return sd / sqrt(M) per action.")
    if args.runs:
        lines += ["", "| run | Spearman(critic, MC) | argmax agrees | critic per-state gap |", "|---|---|---|---|"]
        start = make_env(args.env, num_envs=args.states, seed=SEED)  # the t0 = 0 states (same seed and count)
        obs = torch.as_tensor(start.reset().obs, dtype=torch.float32)
        start.close()
        for run in args.runs:
            algo, _ = load_run(run)
            previous = torch.zeros(*obs.shape[:2], algo.spec.n_actions)  # no action before the first step
            q = critic_q(algo, obs, previous)[:, 0].numpy()  # [S, A] agent 0
            rho = np.nanmean([spearmanr(q[s], first_q[s]).statistic for s in range(len(q))])
            agree = np.mean(q.argmax(axis=1) == first_q.argmax(axis=1))
            lines.append(f"| {run} | {rho:+.2f} | {agree:.2f} | {np.ptp(q, axis=1).mean():.2f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
