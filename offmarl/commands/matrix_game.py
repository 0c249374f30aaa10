"""``offmarl matrix-game``: MABCQ's matrix game (Jiang & Lu, *Offline Decentralized MARL*, Tables 1–4, App. B).

For the variants ``bcq``, ``vd``, ``tn``, ``vd_tn`` it computes, two ways:

* ``tabular`` -- the exact operator (:mod:`offmarl.algos.matrix_game_tabular`): each agent's modified
  transition probabilities over its outcomes (indexed by the other agent's action; outcomes of zero
  behaviour probability dropped), the expected return of each action, the joint action of the
  agents' argmaxes and its payoff;
* ``deep`` -- the ``dec_mabcq`` learners (discrete form, λ_tn from counts) trained on a dataset of
  ``episodes`` games sampled from the behaviour policies in the two-step ``matrix_game`` env, with the
  per-env defaults of ``offmarl/algos/env_defaults/dec_mabcq.yaml``; their expected returns are
  ``Q_i(s₀, a_i) / γ`` and their joint action is what their policies play at s₀.

Defaults: payoff ``1,5;6,1`` and behaviour ``0.8,0.2;0.4,0.6`` (Table 1), no clipping of λ_vd (the
paper's matrix game), which reproduce Tables 2–4 (``tabular``). ``--epsilon E`` clips λ_vd to
[1 − E, 1 + E] before renormalising, in both computations.

``--json`` prints only ``{"tabular": {VARIANT: {"joint_action": [a1, a2], "payoff": x, "agents":
[{"expected_return": [...], "transition": [[...], ...]}, ...]}}, "deep": {VARIANT: {"joint_action":
[a1, a2], "payoff": x, "agents": [{"expected_return": [...]}, ...]}}}`` (actions from 0; an action an
agent never plays has expected return null and no transition row in ``tabular``).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import torch
import typer

from offmarl.algos.matrix_game_tabular import VARIANTS, tabular_mabcq
from offmarl.envs.matrix_game import DEFAULT_BEHAVIOR, DEFAULT_PAYOFF, validate_behavior, validate_payoff

DEFAULT_EPISODES = 10_000  # enough that each agent's empirical outcome frequencies are within ~0.01 of β
DEFAULT_SEED = 0


def parse_matrix(text: str, option: str) -> list[list[float]]:
    """``"1,5;6,1"`` → ``[[1, 5], [6, 1]]`` (rows separated by ``;``, entries by ``,``)."""
    try:
        rows = [[float(x) for x in row.split(",")] for row in text.strip().split(";")]
    except ValueError as exc:
        raise ValueError(f"{option} {text!r}: expected numbers like \"1,5;6,1\" (rows separated by ';', entries "
                         f"by ',')") from exc
    return rows


def deep_learners(payoff: np.ndarray, behavior: list[np.ndarray], epsilon: float | None, *,
                  episodes: int = DEFAULT_EPISODES, seed: int = DEFAULT_SEED, steps: int | None = None
                  ) -> dict[str, dict[str, Any]]:
    """Train ``dec_mabcq`` per variant on sampled games; each variant's joint action, payoff and the
    learners' ``Q_i(s₀, ·)/γ``."""
    from offmarl.algos import make_algo
    from offmarl.collect.recipes import collect_dataset
    from offmarl.envs import make_env
    from offmarl.train import TrainConfig, fit, seed_everything
    from offmarl.train.experiment import env_defaults

    env_kwargs = {"payoff": payoff.tolist(), "behavior": [b.tolist() for b in behavior]}
    data = collect_dataset("matrix_game", env_kwargs=env_kwargs, policy="behavior", episodes=episodes, seed=seed,
                           progress=False)
    start = make_env("matrix_game", num_envs=1, **env_kwargs).reset()  # s₀ and the action masks
    overrides = env_defaults("dec_mabcq", "matrix_game")
    overrides["epsilon"] = math.inf if epsilon is None else float(epsilon)
    if steps is not None:
        overrides["steps"] = int(steps)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 64-unit networks gain nothing from a second intra-op thread
    try:
        algos = {}
        for variant in VARIANTS:
            seed_everything(seed)
            algos[variant] = make_algo("dec_mabcq", data.spec, variant=variant, **overrides)
            fit(algos[variant], data, None, TrainConfig(seed=seed, progress=False, log_every=10**9, tensorboard=False))
    finally:
        torch.set_num_threads(threads)
    out = {}
    for variant, algo in algos.items():
        joint = algo.policies().act(start, first=True)[0].tolist()
        agents = []
        with torch.no_grad():
            for i, learner in enumerate(algo.learners):
                s0 = torch.as_tensor(start.obs[:, i, :learner.obs_dim])
                q = learner.q_value(s0)[0] / algo.config.gamma
                agents.append({"expected_return": [float(x) for x in q[: payoff.shape[i]]]})
        out[variant] = {"joint_action": [int(a) for a in joint], "payoff": float(payoff[joint[0], joint[1]]),
                        "agents": agents}
    return out


def run_matrix_game(*, payoff: str | None = None, behavior: str | None = None, epsilon: float | None = None,
                    as_json: bool = False, episodes: int = DEFAULT_EPISODES, seed: int = DEFAULT_SEED,
                    steps: int | None = None) -> dict[str, Any]:
    """The command (module docstring); returns the JSON-able result."""
    matrix = validate_payoff(parse_matrix(payoff, "--payoff") if payoff is not None else DEFAULT_PAYOFF)
    if behavior is not None:
        betas = validate_behavior(parse_matrix(behavior, "--behavior"), matrix.shape)
    else:
        m, k = matrix.shape
        betas = validate_behavior(DEFAULT_BEHAVIOR if (m, k) == (2, 2) else [[1 / m] * m, [1 / k] * k], matrix.shape)
    if epsilon is not None and not epsilon > 0:
        raise ValueError(f"--epsilon must be > 0 (λ_vd is clipped to [1 - E, 1 + E]), got {epsilon}")
    tabular_full = {v: tabular_mabcq(matrix, betas, v, epsilon) for v in VARIANTS}
    tabular = {v: {"joint_action": r["joint_action"], "payoff": r["payoff"],
                   "agents": [{"expected_return": a["expected_return"], "transition": a["transition"]}
                              for a in r["agents"]]}
               for v, r in tabular_full.items()}
    deep = deep_learners(matrix, betas, epsilon, episodes=episodes, seed=seed, steps=steps)
    result = {"tabular": tabular, "deep": deep}
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(format_report(matrix, betas, epsilon, tabular_full, deep))
    return result


def format_report(payoff: np.ndarray, betas: list[np.ndarray], epsilon: float | None,
                  tabular: dict[str, dict[str, Any]], deep: dict[str, dict[str, Any]]) -> str:
    """The human-readable tables (one block per variant)."""
    fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    rows = ";".join(",".join(f"{x:g}" for x in row) for row in payoff)
    lines = [f"matrix game: payoff {rows}, behaviour {' / '.join(','.join(f'{p:g}' for p in b) for b in betas)}, "
             f"epsilon {'none (no clipping)' if epsilon is None else epsilon}",
             "actions are indexed from 0; agent i's outcomes are the other agent's actions",
             ""]
    for variant in VARIANTS:
        t, d = tabular[variant], deep[variant]
        lines.append(f"[{variant}]  tabular: joint action ({t['joint_action'][0]}, {t['joint_action'][1]}), payoff "
                     f"{t['payoff']:g}   |   deep: joint action ({d['joint_action'][0]}, {d['joint_action'][1]}), "
                     f"payoff {d['payoff']:g}")
        lines.append(f"  {'agent':<6}{'action':<8}{'transition p(outcome)':<36}{'expected return':>16}{'deep':>9}")
        for i, agent in enumerate(t["agents"]):
            for a, (ret, trans) in enumerate(zip(agent["expected_return"], agent["transition"])):
                probs = ", ".join(f"{o}: {p:.2f}" for o, p in zip(agent["outcomes"], trans)) or "(never played)"
                lines.append(f"  {i + 1:<6}{a:<8}{probs:<36}{fmt(ret):>16}"
                             f"{fmt(d['agents'][i]['expected_return'][a]):>9}")
        lines.append("")
    return "\n".join(lines).rstrip()
