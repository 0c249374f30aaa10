"""The samplers of learners that interact: each ``sample()`` of an env stage is one rollout of the rollout engine.

:func:`training_sampler` is the one place the fit loop gets its sampler from, by the source's mode:

* ``"dataset"``: the algorithm's own ``make_sampler(dataset, seed)``;
* ``"env"``: a :class:`RolloutSampler` -- the algorithm implements the training-side contract
  :class:`~offmarl.data.trajectory.TrainingActor` and says how many steps each rollout plays per sub-env
  (``rollout_length``). A sample of ``T`` steps in ``B`` sub-envs advances the budget by ``T · B``
  environment frames (``last_sample_frames``);
* ``"dataset+env"``: a :class:`StagedSampler`, so the loop stays one loop: each update samples from what the
  running stage trains on (``algo.stage_source(stage)``) -- a batch of ``make_sampler`` over the dataset
  (one step) or a rollout of the env (``T · B`` frames). Both are built before the first update (the engine
  resets the env then), so a run's random streams do not depend on when a stage begins.
"""

from __future__ import annotations

from typing import Any

from offmarl.algos.base import source_mode
from offmarl.collect.engine import RolloutEngine
from offmarl.data.sources import DatasetAndEnv
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


class StagedSampler:
    """A ``"dataset+env"`` source: dataset batches in the stages that train on the dataset, rollouts in the
    others (module docstring); ``last_sample_frames`` is what the last sample advanced the budget by."""

    def __init__(self, algo: Any, source: DatasetAndEnv, seed: int):
        self.algo = algo
        wanted = {algo.stage_source(stage) for stage in algo.schedule.names}
        self.dataset = algo.make_sampler(source.dataset, seed) if "dataset" in wanted else None
        self.rollouts = RolloutSampler(algo, source.env, seed) if "env" in wanted else None
        self.last_sample_frames = 1

    def sample(self) -> Any:
        if self.algo.stage_source(self.algo.stage) == "dataset":
            self.last_sample_frames = 1
            return self.dataset.sample()
        self.last_sample_frames = self.rollouts.last_sample_frames
        return self.rollouts.sample()

    def state_dict(self) -> dict[str, Any]:
        return {part: getattr(self, part).state_dict() for part in ("dataset", "rollouts")
                if getattr(self, part) is not None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for part, value in state.items():
            getattr(self, part).load_state_dict(value)

    def close(self) -> None:
        if self.rollouts is not None:
            self.rollouts.close()


def training_sampler(algo: Any, source: Any, seed: int) -> Any:
    """The sampler the fit loop trains ``algo`` with on ``source`` (module docstring)."""
    mode = source_mode(source)
    if mode == "env":
        return RolloutSampler(algo, source, seed)
    if mode == "dataset+env":
        return StagedSampler(algo, source, seed)
    return algo.make_sampler(source, seed)
