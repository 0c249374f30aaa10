"""Behaviour policies made by mixing an expert with uniform random actions.

ε-mixing (per step, per agent): independently for every sub-env, agent and time step, the action is a
uniform random one with probability ``rate`` (uniform over the *available* discrete actions, or uniform
in the ``Box``), else the expert's action. The expert is queried on every step even when all of its
actions are replaced, so a stateful expert (a Decision Transformer's context) sees every observation.

Per-agent levels (SIT, Tian et al., App. C notation, Tables 7–8): ``e`` = expert, ``m`` = "medium" =
the expert ε-mixed at ``medium_rate``, ``r`` = random.

Departure (SIT, MABCQ): SIT samples each agent's behaviour policy from *policy pools* of QMIX/FacMAC
checkpoints binned by return (App. C.2, Tables 4–6), and MABCQ (Jiang & Lu, §4.1) uses an
intermediate SAC checkpoint as its "medium" policy. We have no trained checkpoints for our envs, so the
medium level is our stand-in: the scripted expert with a uniform random action at probability
``DEFAULT_MEDIUM_RATE = 0.5`` per step and agent. SIT's medium pools sit in the middle of the
random-to-best return range (e.g. CN_3ls3l: 30 %–70 % of it, Table 5). An all-medium team of ours
scores, as (R − R_random) / (R_expert − R_random) over 300 episodes: equal_space 0.71, fill_in 0.59,
grid_world 0.47, mpe_cn_3ls3l 0.74, mpe_cn_4ls4l 0.70, mpe_pp_3p1p 0.62 -- the middle to the upper
edge of that band (measure it with ``offmarl collect ENV --composition "100%[m,m,m]"``).

Expert noise (MABCQ §4.1: "we add a small noise to the policy"): ``noise`` perturbs the actions that
come from the expert — for continuous actions a Gaussian of std ``noise × (high − low) / 2`` per
dimension (std ``noise`` on unbounded dimensions), clipped to the box; for discrete actions a uniform
random action with probability ``noise`` (so the effective random rate is ``1 − (1 − rate)(1 − noise)``).
``DEFAULT_EXPERT_NOISE = 0.1``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from offmarl.collect.rollout import derive_seed
from offmarl.envs.base import EnvSpec, TimeStep
from offmarl.policies.base import JointPolicy
from offmarl.policies.random import RandomPolicy

DEFAULT_MEDIUM_RATE = 0.5
DEFAULT_EXPERT_NOISE = 0.1
LEVELS = ("r", "m", "e")
LEVEL_NAMES = {"r": "random", "m": "medium", "e": "expert"}


class MixedPolicy(JointPolicy):
    """The expert's actions, each replaced by a uniform random action with probability ``rate``.

    Args:
        expert: the joint expert (may be None when every agent's rate is 1: a purely random policy).
            Random actions come from :class:`~offmarl.policies.random.RandomPolicy`.
        spec: the env spec (action space, agents).
        rate: one ε for all agents, or ``[n]`` per-agent rates, each in [0, 1].
        seed: seed of the mixing coins, random actions and noise.
        noise: small noise on the expert's actions (module docstring), 0 = none.
    """

    def __init__(self, expert: JointPolicy | None, spec: EnvSpec, rate: float | Sequence[float], seed: int,
                 noise: float = 0.0):
        rates = np.broadcast_to(np.asarray(rate, dtype=np.float64), (spec.n_agents,)).copy()
        if np.any(rates < 0) or np.any(rates > 1):
            raise ValueError(f"mixing rate must lie in [0, 1], got {rates.tolist()}")
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"expert noise must lie in [0, 1], got {noise}")
        if expert is None and np.any(rates < 1):
            raise ValueError("MixedPolicy needs an expert unless every agent's rate is 1")
        self.expert, self.spec, self.noise = expert, spec, float(noise)
        self.rates = rates  # [n]
        self.rng = np.random.default_rng(seed)  # coins and noise
        self.random = RandomPolicy(spec, seed=derive_seed(seed, "random"))
        if spec.discrete:
            # discrete noise = more random replacement: P(random) = 1 - (1 - rate)(1 - noise)
            self._coin = 1.0 - (1.0 - rates) * (1.0 - noise)
        else:
            self._coin = rates
            self._low = np.asarray(spec.action_space.low, np.float64).reshape(-1)  # [act_dim]
            self._high = np.asarray(spec.action_space.high, np.float64).reshape(-1)
            half = (self._high - self._low) / 2
            self._noise_std = noise * np.where(np.isfinite(half), half, 1.0)  # unbounded dims: std = noise

    def reset(self, batch_size: int, mask: np.ndarray | None = None) -> None:
        if self.expert is not None:
            self.expert.reset(batch_size, mask)

    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        B, n = ts.obs.shape[:2]
        random = self.random.act(ts, first)
        if self.expert is None:
            return random
        expert = np.asarray(self.expert.act(ts, first))
        take_random = self.rng.random((B, n)) < self._coin  # [B, n]
        if self.spec.discrete:
            return np.where(take_random, random, expert).astype(np.int64)
        if self.noise > 0:
            expert = np.clip(expert + self.rng.normal(size=expert.shape) * self._noise_std, self._low, self._high)
        return np.where(take_random[..., None], random, expert).astype(np.float32)


def check_levels(levels: Sequence[str], n_agents: int) -> tuple[str, ...]:
    """Validate a per-agent level list (``r``/``m``/``e``, one per agent)."""
    levels = tuple(str(x).strip() for x in levels)
    bad = [x for x in levels if x not in LEVELS]
    if bad:
        raise ValueError(f"level {bad[0]!r} is not one of r (random), m (medium), e (expert)")
    if len(levels) != n_agents:
        raise ValueError(f"{len(levels)} levels {list(levels)} given for {n_agents} agents")
    return levels


class PerAgentLevelPolicy(MixedPolicy):
    """Agent i acts at level ``levels[i]``: ``e`` expert, ``m`` expert ε-mixed at ``medium_rate``, ``r`` random.

    ``noise`` (MABCQ's "small noise", module docstring) applies to the expert-derived actions of the
    ``e`` and ``m`` agents."""

    def __init__(self, expert: JointPolicy | None, spec: EnvSpec, levels: Sequence[str], seed: int,
                 medium_rate: float = DEFAULT_MEDIUM_RATE, noise: float = 0.0):
        self.levels = check_levels(levels, spec.n_agents)
        rate_of = {"r": 1.0, "m": float(medium_rate), "e": 0.0}
        super().__init__(expert, spec, [rate_of[x] for x in self.levels], seed, noise=noise)
