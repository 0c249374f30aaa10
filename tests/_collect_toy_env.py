"""A tiny batched env and scripted expert for the collection tests (not part of the library).

``ToyClimbEnv``: ``n`` agents each hold a position ``p_i >= 0`` (initially 0 or 1, drawn from the env's
generator); ``t`` counts the steps of the episode.

* discrete (``continuous=False``): actions ``0`` stay, ``1`` up, ``2`` down (only with ``n_actions=3``);
  "down" is unavailable at ``p_i = 0`` (``avail_actions``). Reward of agent i: 1 when it moved up.
* continuous: ``a_i in [-1, 1]`` moves ``p_i`` by ``a_i`` (clipped at 0); reward ``a_i``.

An episode terminates when every ``p_i >= goal`` (``goal=None``: never) and is truncated at ``horizon``.
obs_i = ``[p_i, t, sum_j p_j]``; state = ``[p_1 .. p_n, t]`` (``with_state=False``: no state).

With ``n_actions=2`` and ``goal=None`` the per-agent return of the policy that takes a uniform random
action with probability ``eps`` and "up" otherwise is ``horizon * (1 - eps / 2)`` in expectation, so
its normalized score ``(R - R_random) / (R_expert - R_random)`` is exactly ``1 - eps``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from offmarl.envs.base import BatchedEnv, EnvSpec, TimeStep
from offmarl.policies.base import JointPolicy


class ToyClimbEnv(BatchedEnv):
    def __init__(self, num_envs: int = 4, seed: int | None = 0, n_agents: int = 3, horizon: int = 8,
                 goal: float | None = 5, n_actions: int = 3, continuous: bool = False, with_state: bool = True):
        self.num_envs = num_envs
        self.n = n_agents
        self.horizon = horizon
        self.goal = goal
        self.continuous = continuous
        space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32) if continuous else spaces.Discrete(n_actions)
        self.spec = EnvSpec(
            name="toy_climb", n_agents=n_agents, obs_dim=3, obs_dims=(3,) * n_agents,
            state_dim=n_agents + 1 if with_state else 0, action_space=space, episode_limit=horizon,
            agent_types=("climber",) * n_agents, has_avail_actions=not continuous,
            kwargs={"n_agents": n_agents, "horizon": horizon, "goal": goal, "n_actions": n_actions,
                    "continuous": continuous, "with_state": with_state},
        )
        self.rng = np.random.default_rng(seed)
        self.pos = np.zeros((num_envs, n_agents), np.float64)
        self.t = np.zeros(num_envs, np.int64)

    # ---- views -------------------------------------------------------------------------------
    def _obs(self) -> np.ndarray:
        t = np.broadcast_to(self.t[:, None], self.pos.shape)
        total = np.broadcast_to(self.pos.sum(1, keepdims=True), self.pos.shape)
        return np.stack([self.pos, t, total], axis=-1).astype(np.float32)  # [B, n, 3]

    def _state(self) -> np.ndarray:
        if self.spec.state_dim == 0:
            return np.zeros((self.num_envs, 0), np.float32)
        return np.concatenate([self.pos, self.t[:, None]], axis=1).astype(np.float32)

    def _avail(self) -> np.ndarray | None:
        if self.continuous:
            return None
        avail = np.ones((self.num_envs, self.n, self.spec.n_actions), bool)
        if self.spec.n_actions > 2:
            avail[:, :, 2] = self.pos > 0
        return avail

    def _new_episodes(self, mask: np.ndarray) -> None:
        self.pos[mask] = self.rng.integers(0, 2, size=(int(mask.sum()), self.n))
        self.t[mask] = 0

    # ---- BatchedEnv --------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> TimeStep:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._new_episodes(np.ones(self.num_envs, bool))
        B = self.num_envs
        return TimeStep(obs=self._obs(), state=self._state(), reward=np.zeros((B, self.n), np.float32),
                        terminated=np.zeros(B, bool), truncated=np.zeros(B, bool), avail_actions=self._avail())

    def step(self, actions: np.ndarray) -> TimeStep:
        actions = self.check_actions(actions)
        if self.continuous:
            move = np.clip(actions[..., 0], -1.0, 1.0).astype(np.float64)
            reward = move.astype(np.float32)
        else:
            avail = self._avail()
            taken = np.take_along_axis(avail, actions[..., None], axis=-1)[..., 0]
            if not taken.all():
                raise ValueError("toy_climb: an unavailable action was taken")
            move = np.select([actions == 1, actions == 2], [1.0, -1.0], 0.0)
            reward = (actions == 1).astype(np.float32)
        self.pos = np.maximum(self.pos + move, 0.0)
        self.t += 1
        terminated = np.zeros(self.num_envs, bool) if self.goal is None else (self.pos >= self.goal).all(1)
        truncated = (self.t >= self.horizon) & ~terminated
        done = terminated | truncated
        final_obs, final_state = self._obs(), self._state()
        if done.any():
            self._new_episodes(done)
        return TimeStep(obs=self._obs(), state=self._state(), reward=reward, terminated=terminated,
                        truncated=truncated, avail_actions=self._avail(), final_obs=final_obs,
                        final_state=final_state)


class ToyUpExpert(JointPolicy):
    """Always "up" (action 1, or +1 when continuous). Checks that the collector resets it correctly:
    its own per-sub-env step counter must equal the env's ``t`` (obs feature 1) at every call."""

    def __init__(self, spec: EnvSpec, seed: int = 0):
        self.spec = spec
        self.steps: np.ndarray | None = None
        self.reset_calls: list[np.ndarray | None] = []

    def reset(self, batch_size: int, mask: np.ndarray | None = None) -> None:
        self.reset_calls.append(None if mask is None else mask.copy())
        if mask is None or self.steps is None:
            self.steps = np.zeros(batch_size, np.int64)
        else:
            self.steps[mask] = 0

    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        assert self.steps is not None, "act before reset"
        np.testing.assert_array_equal(self.steps, ts.obs[:, 0, 1].astype(np.int64))
        self.steps += 1
        B, n = ts.obs.shape[:2]
        if self.spec.discrete:
            return np.ones((B, n), np.int64)
        return np.ones((B, n, 1), np.float32)
