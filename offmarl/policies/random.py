"""The uniform random joint policy (behaviour policy ``random`` of every env)."""

from __future__ import annotations

import numpy as np

from offmarl.envs.base import EnvSpec, TimeStep
from offmarl.policies.base import JointPolicy


class RandomPolicy(JointPolicy):
    """Uniform over each agent's available actions (discrete), or uniform in the Box (continuous).

    Stateless apart from its own generator (``np.random.default_rng(seed)``), so ``reset`` does nothing.
    Unbounded Box dimensions are sampled from a standard normal instead (a uniform law does not exist).
    """

    def __init__(self, spec: EnvSpec, seed: int = 0):
        self.spec = spec
        self.rng = np.random.default_rng(seed)

    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        B, n = ts.obs.shape[:2]
        if self.spec.discrete:
            A = self.spec.n_actions
            avail = ts.avail_actions if ts.avail_actions is not None else np.ones((B, n, A), dtype=bool)
            # Uniform over the available ones: the argmax of independent uniforms restricted to the mask.
            scores = np.where(avail, self.rng.random((B, n, A)), -1.0)
            return scores.argmax(axis=-1).astype(np.int64)
        shape = (B, n, self.spec.act_dim)
        low = np.broadcast_to(np.asarray(self.spec.action_space.low, dtype=np.float64).reshape(-1), shape)
        high = np.broadcast_to(np.asarray(self.spec.action_space.high, dtype=np.float64).reshape(-1), shape)
        bounded = np.isfinite(low) & np.isfinite(high)
        uniform = self.rng.uniform(np.where(bounded, low, 0.0), np.where(bounded, high, 1.0))
        return np.where(bounded, uniform, self.rng.standard_normal(shape)).astype(np.float32)
