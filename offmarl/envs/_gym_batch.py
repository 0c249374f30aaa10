"""``B`` single (non-batched) environments of another package behind the :class:`BatchedEnv` contract.

highway-env and MaMuJoCo simulate one world per Python object, so a batch of ``B`` of them is a Python
loop over sub-envs: this module is the one place that loop lives. An adapter describes one sub-env as a
:class:`SubEnv` (reset / step returning offmarl's per-agent arrays in a :class:`SubStep`) and
:class:`GymBatchEnv` runs ``B`` of them:

* **auto-reset** (:mod:`offmarl.envs.base`): a sub-env whose step ends its episode is reset inside
  :meth:`GymBatchEnv.step`; the returned ``obs[b]`` / ``state[b]`` / ``avail_actions[b]`` belong to the
  new episode and ``final_obs[b]`` / ``final_state[b]`` hold what the last action reached;
* **episode limit**: the batch counts steps and truncates at ``spec.episode_limit`` whatever the
  package does (a package's own time limit may end the episode earlier, never later);
  ``terminated`` wins over ``truncated`` when both happen on one step (the last transition is then a
  true terminal);
* **seeding**: ``reset(seed)`` reseeds sub-env ``b`` with ``derive_sub_seed(seed, b)`` (stable, distinct
  per sub-env); the first ``reset()`` without a seed uses the constructor's ``seed`` the same way; later
  resets without a seed (and every auto-reset) continue each sub-env's own generator, so a run is
  determined by the constructor / first reset seed;
* **info**: each :class:`SubStep` carries a dict of scalars or small arrays; the batch stacks the keys
  named in ``info_fields`` into ``[B, ...]`` arrays of the declared dtype and shape. Most keys describe
  the step that just happened (``crashed``), as the contract says; keys listed in ``state_info``
  describe the *returned observation* instead (e.g. an expert's advice for it), so after an auto-reset
  they come from the new episode's first state;
* **not restorable** (:mod:`offmarl.envs.base`): the packages' simulators keep their state in Python
  objects that a weights-only checkpoint cannot hold, so ``get_state`` / ``set_state`` raise
  ``NotImplementedError`` and a resume restarts their episodes.

Cost: one Python call per sub-env per step on top of the package's own step (measured in
``benchmarks/env_adapters_throughput.py``); everything else (actions in, arrays out) is batched numpy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from offmarl.envs.base import BatchedEnv, EnvSpec, TimeStep


@dataclass
class SubStep:
    """One sub-env's view after a reset or a step.

    Shapes: ``obs [n, obs_dim]`` float32 (zero-padded beyond ``obs_dims[i]``), ``state [state_dim]``
    float32, ``avail [n, A]`` bool or None, ``reward [n]`` float32 (zeros after a reset).
    """

    obs: np.ndarray
    state: np.ndarray
    reward: np.ndarray
    terminated: bool = False
    truncated: bool = False
    avail: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


class SubEnv(ABC):
    """One environment of a package, seen through offmarl's per-agent arrays (see :class:`SubStep`)."""

    @abstractmethod
    def reset(self, seed: int | None) -> SubStep:
        """Start an episode; ``seed`` None continues the sub-env's own generator."""

    @abstractmethod
    def step(self, action: np.ndarray) -> SubStep:
        """Apply ``action`` (``[n]`` int64 or ``[n, act_dim]`` float32, already validated)."""

    def render(self) -> np.ndarray:
        """An RGB frame ``[H, W, 3] uint8`` of the current state."""
        raise NotImplementedError(f"{type(self).__name__} has no renderer")

    def close(self) -> None:
        """Release the package's resources."""


def derive_sub_seed(seed: int, index: int) -> int:
    """The 31-bit seed of sub-env ``index`` under batch seed ``seed`` (distinct per index, stable)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(1)[0] & 0x7FFFFFFF)


class GymBatchEnv(BatchedEnv):
    """``num_envs`` sub-envs built by ``make_sub(index)``, stepped in a loop (module docstring).

    Args:
        spec: the env spec (all sub-envs share it).
        make_sub: ``make_sub(index) -> SubEnv``.
        num_envs: ``B``.
        seed: seed of the first ``reset()`` without one (None: the package's own unseeded default).
        info_fields: ``{key: (dtype, shape)}`` of the per-sub-env info entries stacked into ``TimeStep.info``
            (shape ``()`` for a scalar per sub-env); every :class:`SubStep` must carry all of them.
        state_info: the keys of ``info_fields`` that describe the returned observation (module docstring).
    """

    def __init__(self, spec: EnvSpec, make_sub: Callable[[int], SubEnv], num_envs: int, seed: int | None,
                 info_fields: dict[str, tuple[Any, tuple[int, ...]]] | None = None,
                 state_info: tuple[str, ...] = ()):
        if num_envs < 1:
            raise ValueError(f"{spec.name}: num_envs must be >= 1, got {num_envs}")
        self.spec = spec
        self.num_envs = int(num_envs)
        self._seed = seed
        self._seeded = False
        self._info_fields = dict(info_fields or {})
        unknown = set(state_info) - set(self._info_fields)
        if unknown:
            raise ValueError(f"{spec.name}: state_info keys {sorted(unknown)} are not in info_fields")
        self._state_info = tuple(state_info)
        self._subs: list[SubEnv] = []
        try:
            for b in range(self.num_envs):
                self._subs.append(make_sub(b))
        except BaseException:
            self.close()
            raise
        self._steps = np.zeros(self.num_envs, dtype=np.int64)  # [B] steps into the current episode

    @property
    def sub_envs(self) -> list[SubEnv]:
        """The ``B`` sub-envs (read-only access to the package's objects, e.g. for tests and experts)."""
        return list(self._subs)

    # ---- contract ------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> TimeStep:
        if seed is None and not self._seeded:
            seed = self._seed
        self._seeded = self._seeded or seed is not None
        views = [sub.reset(None if seed is None else derive_sub_seed(seed, b)) for b, sub in enumerate(self._subs)]
        self._steps[:] = 0
        ts = self._stack(views)
        ts.reward = np.zeros((self.num_envs, self.spec.n_agents), np.float32)
        return ts

    def step(self, actions: np.ndarray) -> TimeStep:
        actions = self.check_actions(actions)
        views: list[SubStep] = []
        finals: list[SubStep | None] = []
        self._steps += 1
        for b, sub in enumerate(self._subs):
            view = sub.step(actions[b])
            view.truncated = (view.truncated or bool(self._steps[b] >= self.spec.episode_limit)) and not view.terminated
            if view.terminated or view.truncated:
                start = sub.reset(None)
                # the new episode's observation, the ended step's reward / flags / step info
                finals.append(view)
                info = {**view.info, **{key: start.info[key] for key in self._state_info}}
                view = SubStep(obs=start.obs, state=start.state, reward=view.reward, terminated=view.terminated,
                               truncated=view.truncated, avail=start.avail, info=info)
                self._steps[b] = 0
            else:
                finals.append(None)
            views.append(view)
        ts = self._stack(views)
        ts.final_obs = ts.obs.copy()
        ts.final_state = ts.state.copy()
        ts.final_avail = None if ts.avail_actions is None else ts.avail_actions.copy()
        for b, final in enumerate(finals):
            if final is not None:
                ts.final_obs[b] = final.obs
                ts.final_state[b] = final.state
                if ts.final_avail is not None:
                    ts.final_avail[b] = final.avail
        return ts

    def render(self, index: int = 0) -> np.ndarray:
        if not 0 <= index < self.num_envs:
            raise ValueError(f"{self.spec.name}: render index {index} outside [0, {self.num_envs})")
        return self._subs[index].render()

    def close(self) -> None:
        for sub in self._subs:
            sub.close()

    # ---- helpers -------------------------------------------------------------------------------------
    def _stack(self, views: list[SubStep]) -> TimeStep:
        avail = None
        if self.spec.has_avail_actions:
            avail = np.stack([v.avail for v in views]).astype(bool, copy=False)  # [B, n, A]
        info = {key: np.array([v.info[key] for v in views], dtype=dtype).reshape(self.num_envs, *shape)
                for key, (dtype, shape) in self._info_fields.items()}
        return TimeStep(
            obs=np.stack([v.obs for v in views]).astype(np.float32, copy=False),  # [B, n, obs_dim]
            state=np.stack([v.state for v in views]).astype(np.float32, copy=False),  # [B, state_dim]
            reward=np.stack([v.reward for v in views]).astype(np.float32, copy=False),  # [B, n]
            terminated=np.array([v.terminated for v in views], dtype=bool),
            truncated=np.array([v.truncated for v in views], dtype=bool),
            avail_actions=avail, info=info,
        )
