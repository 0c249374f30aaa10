"""A PettingZoo ``ParallelEnv`` view of any offmarl environment (one sub-env of ``make_env(name)``).

``offmarl.envs.pettingzoo_env(name, **kwargs)`` returns a :class:`PettingZooParallelEnv`, which passes
``pettingzoo.test.parallel_api_test``. Mapping from the batched contract (:mod:`offmarl.envs.base`):

* agents are named ``f"{agent_types[i]}_{i}"`` (e.g. ``agent_0``, ``seeker_2``), in agent order;
* ``observation_space(agent)`` is a float32 ``Box(-inf, inf, (obs_dims[i],))``: the observation is
  agent i's *unpadded* slice ``obs[0, i, :obs_dims[i]]``;
* ``action_space(agent)`` is (a copy of) the env's shared ``spec.action_space``;
* ``infos[agent]`` holds ``"action_mask"`` (int8 ``[A]``) when the env reports ``avail_actions``,
  plus the env's ``info`` entries of sub-env 0;
* at the end of an episode the returned observations are the ones reached by the last action
  (``final_obs``), ``terminations``/``truncations`` say which happened, and ``agents`` becomes empty;
  call ``reset()`` to start the next episode (the batched env has already auto-reset underneath);
* ``state()`` is the global state (``final_state`` after the last step);
* ``render()`` returns an RGB array (``render_mode="rgb_array"``); after the last step it draws the
  final state when the env offers ``render_state`` (see :mod:`offmarl.envs.rendering`).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

from offmarl.envs.base import TimeStep
from offmarl.envs.registry import make_env


class PettingZooParallelEnv(ParallelEnv):
    """PettingZoo parallel API over ``make_env(name, num_envs=1, seed=seed, **kwargs)``.

    Args:
        name: registered environment name.
        render_mode: only ``"rgb_array"`` (or None).
        seed: seed of the underlying env (``reset(seed=...)`` re-seeds it).
        **kwargs: environment keyword arguments.
    """

    metadata = {"render_modes": ["rgb_array"], "name": "offmarl", "is_parallelizable": True}

    def __init__(self, name: str, render_mode: str | None = "rgb_array", seed: int | None = None, **kwargs: Any):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"PettingZooParallelEnv({name!r}): render_mode must be 'rgb_array' or None, "
                             f"got {render_mode!r}")
        self.env = make_env(name, num_envs=1, seed=seed, **kwargs)
        spec = self.env.spec
        self.spec = spec
        self.render_mode = render_mode
        self.metadata = {**type(self).metadata, "name": name}
        self.possible_agents = [f"{kind}_{i}" for i, kind in enumerate(spec.agent_types)]
        self.agents: list[str] = []
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self._observation_spaces = {
            agent: spaces.Box(-np.inf, np.inf, shape=(spec.obs_dims[i],), dtype=np.float32)
            for agent, i in self._index.items()
        }
        self._action_spaces = {agent: copy.deepcopy(spec.action_space) for agent in self.possible_agents}
        self._ts: TimeStep | None = None
        self._state: np.ndarray | None = None
        self._final_frame_state: np.ndarray | None = None

    # ---- spaces (the same object on every call, as the API requires) -------------------------------
    def observation_space(self, agent: str) -> spaces.Space:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self._action_spaces[agent]

    # ---- API ---------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            for i, agent in enumerate(self.possible_agents):
                self._action_spaces[agent].seed(seed + i)
        ts = self.env.reset(seed=seed)
        self._ts = ts
        self._state = ts.state[0]
        self._final_frame_state = None
        self.agents = list(self.possible_agents)
        return self._observations(ts.obs[0]), self._infos(ts)

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError(f"{self.metadata['name']}: the episode has ended; call reset() before step()")
        missing = [agent for agent in self.agents if agent not in actions]
        if missing:
            raise ValueError(f"{self.metadata['name']}: step() needs an action for every live agent; missing {missing}")
        spec = self.spec
        if spec.discrete:
            batch = np.array([[int(np.asarray(actions[a]).item()) for a in self.possible_agents]], dtype=np.int64)
        else:
            batch = np.stack([np.asarray(actions[a], dtype=np.float32).reshape(spec.act_dim)
                              for a in self.possible_agents])[None]
        ts = self.env.step(batch)
        self._ts = ts
        done = bool(ts.done[0])
        obs = ts.final_obs[0] if done else ts.obs[0]
        self._state = ts.final_state[0] if done else ts.state[0]
        self._final_frame_state = self._state if done else None
        observations = self._observations(obs)
        rewards = {agent: float(ts.reward[0, i]) for agent, i in self._index.items()}
        terminations = {agent: bool(ts.terminated[0]) for agent in self.possible_agents}
        truncations = {agent: bool(ts.truncated[0]) for agent in self.possible_agents}
        infos = self._infos(ts, with_mask=not done)
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        if self._state is None:
            raise RuntimeError(f"{self.metadata['name']}: call reset() before state()")
        return self._state.copy()

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        if self._final_frame_state is not None and hasattr(self.env, "render_state"):
            return self.env.render_state(self._final_frame_state)
        return self.env.render(0)

    def close(self) -> None:
        self.env.close()

    # ---- helpers -----------------------------------------------------------------------------------
    def _observations(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """``obs [n, obs_dim]`` of sub-env 0 -> each agent's unpadded observation."""
        return {agent: obs[i, : self.spec.obs_dims[i]].astype(np.float32, copy=True)
                for agent, i in self._index.items()}

    def _infos(self, ts: TimeStep, with_mask: bool = True) -> dict[str, dict[str, Any]]:
        shared = {key: np.asarray(value)[0] for key, value in ts.info.items()}
        infos = {agent: dict(shared) for agent in self.possible_agents}
        if with_mask and ts.avail_actions is not None:
            for agent, i in self._index.items():
                infos[agent]["action_mask"] = ts.avail_actions[0, i].astype(np.int8)
        return infos
