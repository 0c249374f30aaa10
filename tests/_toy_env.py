"""A tiny 2-agent env with a known optimal policy, for the training/evaluation tests (not library code).

``ToyPickEnv`` (registered as ``toy_pick``): every step each agent sees a target. Discrete: obs_i is the
one-hot of target_i in {0, 1, 2} (agent 1's target is in {0, 1}, and its action 2 is never available);
reward r_i = 1 if a_i == target_i else 0. Continuous (``continuous=True``): obs_i = [target_i, 0, 0]
with target_i in {-0.5, 0.5}, action in [-1, 1]^1, reward r_i = -|a_i - target_i|.

Sub-env ``b``'s episodes all last ``lengths[b % len(lengths)]`` steps (default lengths (1, 2, 3)) and end
by termination (``episode_limit`` = max length), so with B = 3 the optimal discrete policy's first-episode
returns are exactly 1, 2, 3 per agent.
``info["win"]`` on an episode's last step: both agents were right on every step of the episode.
``render(b)``: an 8x8 RGB frame whose red channel encodes the step count.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from offmarl.collect.rollout import rollout
from offmarl.data.dataset import MultiAgentDataset
from offmarl.envs.base import BatchedEnv, EnvSpec, TimeStep
from offmarl.envs.registry import list_envs, register_env
from offmarl.policies.base import JointPolicy

ENV_NAME = "toy_pick"
N_ACTIONS = 3


class ToyPickEnv(BatchedEnv):
    restorable = True
    state_attributes = ("rng", "length", "t", "all_right", "target")

    def __init__(self, num_envs: int = 3, seed: int | None = 0, continuous: bool = False,
                 lengths: tuple[int, ...] = (1, 2, 3)):
        self.num_envs = num_envs
        self.continuous = continuous
        space = (spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32) if continuous
                 else spaces.Discrete(N_ACTIONS))
        self.spec = EnvSpec(name=ENV_NAME, n_agents=2, obs_dim=3, obs_dims=(3, 3), state_dim=2, action_space=space,
                            episode_limit=max(lengths), agent_types=("picker", "picker"),
                            has_avail_actions=not continuous,
                            kwargs={"continuous": continuous, "lengths": list(lengths)})
        self.rng = np.random.default_rng(seed)
        self.length = np.asarray(lengths)[np.arange(num_envs) % len(lengths)]  # [B]
        self.t = np.zeros(num_envs, np.int64)
        self.all_right = np.ones(num_envs, bool)
        self.target = np.zeros((num_envs, 2), np.float64)

    def _draw_targets(self, mask: np.ndarray) -> None:
        k = int(mask.sum())
        if self.continuous:
            self.target[mask] = self.rng.choice([-0.5, 0.5], size=(k, 2))
        else:
            self.target[mask] = np.stack([self.rng.integers(0, 3, k), self.rng.integers(0, 2, k)], axis=1)

    def _timestep(self, reward, terminated, final_obs=None, final_state=None, info=None) -> TimeStep:
        B = self.num_envs
        if self.continuous:
            obs = np.zeros((B, 2, 3), np.float32)
            obs[..., 0] = self.target
            avail = None
        else:
            obs = np.eye(3, dtype=np.float32)[self.target.astype(np.int64)]
            avail = np.ones((B, 2, N_ACTIONS), bool)
            avail[:, 1, 2] = False
        state = np.stack([self.t, self.length], axis=1).astype(np.float32)
        return TimeStep(obs=obs, state=state, reward=reward, terminated=terminated, truncated=np.zeros(B, bool),
                        avail_actions=avail, final_obs=final_obs, final_state=final_state, info=info or {})

    def reset(self, seed: int | None = None) -> TimeStep:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t[:] = 0
        self.all_right[:] = True
        self._draw_targets(np.ones(self.num_envs, bool))
        return self._timestep(np.zeros((self.num_envs, 2), np.float32), np.zeros(self.num_envs, bool))

    def step(self, actions: np.ndarray) -> TimeStep:
        actions = self.check_actions(actions)
        if self.continuous:
            reward = -np.abs(actions[..., 0] - self.target)
            right = np.abs(actions[..., 0] - self.target) < 0.1
        else:
            right = actions == self.target
            reward = right.astype(np.float64)
        self.all_right &= right.all(axis=1)
        self.t += 1
        done = self.t >= self.length
        win = self.all_right.copy()
        self._draw_targets(np.ones(self.num_envs, bool))
        before = self._timestep(None, None)  # the next observation of every sub-env before any reset
        self.t[done] = 0
        self.all_right[done] = True
        return self._timestep(reward.astype(np.float32), done, final_obs=before.obs, final_state=before.state,
                              info={"win": win})

    def render(self, index: int = 0) -> np.ndarray:
        frame = np.zeros((8, 8, 3), np.uint8)
        frame[..., 0] = 60 * self.t[index]
        return frame


class ToyExpert(JointPolicy):
    """The optimal policy: the target itself (``wrong_agent`` plays the worst available action instead)."""

    def __init__(self, continuous: bool = False, wrong_agent: int | None = None):
        self.continuous = continuous
        self.wrong_agent = wrong_agent

    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        if self.continuous:
            actions = ts.obs[..., :1].copy()  # [B, 2, 1]
            if self.wrong_agent is not None:
                actions[:, self.wrong_agent] = -actions[:, self.wrong_agent]
            return actions.astype(np.float32)
        actions = ts.obs.argmax(axis=-1)  # [B, 2]
        if self.wrong_agent is not None:
            actions[:, self.wrong_agent] = (actions[:, self.wrong_agent] + 1) % 2  # always available, never right
        return actions.astype(np.int64)


def toy_dataset(episodes: int = 30, seed: int = 0, continuous: bool = False) -> MultiAgentDataset:
    """Expert episodes of ``toy_pick`` collected with the library's rollout."""
    env = ToyPickEnv(num_envs=6, seed=seed, continuous=continuous)
    return rollout(env, ToyExpert(continuous), episodes, seed, progress=False, behavior={"policy": "expert"})


if ENV_NAME not in {entry.name for entry in list_envs()}:
    register_env(ENV_NAME, "_toy_env:ToyPickEnv", "test env: pick the target action (tests/_toy_env.py)")
