"""Behaviour and expert policies of the MABCQ matrix game (Jiang & Lu, §3.1, Table 1).

:class:`MatrixGameBehavior` is the paper's data-collecting policy: each agent independently samples its
action from its own distribution (``spec.kwargs["behavior"]``; default ``[0.8, 0.2]`` and ``[0.4, 0.6]``),
at both steps of the two-step game (the second step's action has no effect). With Table 1's payoff its
expected per-agent return is 0.8·(0.4·1 + 0.6·5) + 0.2·(0.4·6 + 0.6·1) = 3.32.

:class:`MatrixGameExpert` plays the joint action with the largest payoff (the first in row-major order
on ties) at every step: the paper's ``(a_2, a_1)``, action indices ``(1, 0)``, return 6 for Table 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from offmarl.envs.base import EnvSpec, TimeStep
from offmarl.envs.matrix_game import validate_behavior, validate_payoff
from offmarl.policies.base import JointPolicy


def _payoff(spec: EnvSpec) -> np.ndarray:
    if spec.name != "matrix_game":
        raise ValueError(f"matrix-game policies drive env 'matrix_game', got {spec.name!r}")
    return validate_payoff(spec.kwargs["payoff"])


class MatrixGameBehavior(JointPolicy):
    """Independent per-agent sampling from the behaviour distributions.

    Args:
        spec: the env's spec (``kwargs["payoff"]`` and ``kwargs["behavior"]``).
        seed: seed of the sampling.
        behavior: optional ``[p₁, p₂]`` replacing the env's distributions (validated the same way).
    """

    def __init__(self, spec: EnvSpec, seed: int = 0, behavior: Any = None):
        payoff = _payoff(spec)
        self.behavior = validate_behavior(spec.kwargs["behavior"] if behavior is None else behavior, payoff.shape)
        width = max(len(p) for p in self.behavior)
        self._cdf = np.ones((2, width))  # [2, A], padded with 1 beyond an agent's actions
        self._last = np.array([len(p) - 1 for p in self.behavior])  # [2]
        for i, p in enumerate(self.behavior):
            self._cdf[i, : len(p)] = np.cumsum(p)
        self._rng = np.random.default_rng(seed)

    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        u = self._rng.random((ts.obs.shape[0], 2, 1))
        # inverse-CDF sampling; the minimum guards against a last CDF entry of 1 - 1e-16
        return np.minimum((u >= self._cdf).sum(-1), self._last).astype(np.int64)  # [B, 2]


class MatrixGameExpert(JointPolicy):
    """Plays ``argmax payoff`` as a joint action (Table 1: agent 1 → index 1, agent 2 → index 0)."""

    def __init__(self, spec: EnvSpec, seed: int = 0):
        payoff = _payoff(spec)
        best = np.unravel_index(int(np.argmax(payoff)), payoff.shape)
        self.joint_action = np.array(best, dtype=np.int64)  # [2]

    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        return np.broadcast_to(self.joint_action, (ts.obs.shape[0], 2)).copy()
