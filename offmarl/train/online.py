"""The sampler of an online learner: each ``sample()`` is one rollout of the rollout engine.

The fit loop builds it when an algorithm learns online (its source is an environment), which
implements the training-side contract :class:`~offmarl.data.trajectory.TrainingActor` and says how many
steps each rollout plays per sub-env (``rollout_length``). A sample of ``T`` steps in ``B`` sub-envs
advances the budget by ``T · B`` environment frames (``last_sample_frames``).
"""

from __future__ import annotations

from typing import Any

from offmarl.collect.engine import RolloutEngine
from offmarl.data.trajectory import Trajectory
from offmarl.envs.registry import EnvSource


class RolloutSampler:
    """``sample()`` → a :class:`~offmarl.data.trajectory.Trajectory` of ``algo.rollout_length`` steps."""

    def __init__(self, algo: Any, source: EnvSource, seed: int):
        self.env = source.make(seed=seed)
        self.engine = RolloutEngine(self.env, algo, seed, device=algo.device)
        self.length = int(algo.rollout_length)
        self.last_sample_frames = self.length * self.env.num_envs

    def sample(self) -> Trajectory:
        return self.engine.collect(self.length)

    def state_dict(self) -> dict[str, Any]:
        return {"engine": self.engine.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.engine.load_state_dict(state["engine"])

    def close(self) -> None:
        self.env.close()
