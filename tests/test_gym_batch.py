"""``GymBatchEnv``: B single sub-envs behind the batched contract (auto-reset, limits, seeds, info)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from offmarl.envs._gym_batch import GymBatchEnv, SubEnv, SubStep, derive_sub_seed
from offmarl.envs.base import EnvSpec


class Counter(SubEnv):
    """obs = state = [t, start]; action 1 terminates; ``hint`` describes the observation, ``last`` the step."""

    def __init__(self):
        self.t, self.start, self.seeds = 0, 0, []

    def reset(self, seed):
        self.seeds.append(seed)
        self.start = 100 if seed is None else seed % 100
        self.t = 0
        return self._view(np.zeros(2, np.float32), last=-1)

    def step(self, action):
        self.t += 1
        view = self._view(np.full(2, float(self.t), np.float32), last=int(action[0]))
        view.terminated = bool(action[0] == 1)
        return view

    def _view(self, reward, last):
        obs = np.array([[self.t, self.start], [self.t, self.start]], np.float32)
        return SubStep(obs=obs, state=obs[0].copy(), reward=reward, info={"hint": 10 * self.t, "last": last})


def make(num_envs=2, limit=3, seed=7):
    spec = EnvSpec(name="counter", n_agents=2, obs_dim=2, obs_dims=(2, 2), state_dim=2,
                   action_space=spaces.Discrete(2), episode_limit=limit, agent_types=("a", "a"))
    return GymBatchEnv(spec, lambda index: Counter(), num_envs, seed,
                       info_fields={"hint": (np.int64, ()), "last": (np.int64, ())}, state_info=("hint",))


def test_auto_reset_keeps_the_last_step_and_starts_the_next_episode():
    env = make()
    env.reset()
    ts = env.step(np.array([[0, 0], [1, 0]]))  # sub-env 1 terminates at t = 1
    assert ts.terminated.tolist() == [False, True] and not ts.truncated.any()
    first_start = derive_sub_seed(7, 1) % 100  # the first episode was seeded from the constructor's seed
    np.testing.assert_array_equal(ts.final_obs[1], [[1, first_start]] * 2)  # reached by the last action (t = 1)
    np.testing.assert_array_equal(ts.obs[1], [[0, 100]] * 2)  # the next episode (unseeded start), t = 0
    np.testing.assert_array_equal(ts.final_state[1], [1, first_start])
    np.testing.assert_array_equal(ts.state[1], [0, 100])
    np.testing.assert_array_equal(ts.reward[1], [1.0, 1.0])  # the ended step's reward
    assert ts.info["last"].tolist() == [0, 1]  # step info: the ended step's
    assert ts.info["hint"].tolist() == [10, 0]  # observation info: the new episode's first state
    np.testing.assert_array_equal(ts.final_obs[0], ts.obs[0])


def test_episode_limit_truncates_and_termination_wins():
    env = make(num_envs=2, limit=2)
    env.reset()
    env.step(np.zeros((2, 2), np.int64))
    ts = env.step(np.array([[0, 0], [1, 0]]))  # step 2 = the limit; sub-env 1 also terminates
    assert ts.truncated.tolist() == [True, False] and ts.terminated.tolist() == [False, True]
    ts = env.step(np.zeros((2, 2), np.int64))  # both restarted: step 1 of new episodes
    assert not ts.done.any() and ts.obs[:, 0, 0].tolist() == [1, 1]


def test_seeds_per_sub_env():
    env = make(num_envs=2, seed=7)
    env.reset()  # first reset: the constructor's seed
    env.step(np.array([[1, 0], [0, 0]]))  # auto-reset of sub-env 0: continues its generator (seed None)
    env.reset(seed=3)
    env.reset()  # later resets without a seed continue the generators
    subs = env.sub_envs
    assert subs[0].seeds == [derive_sub_seed(7, 0), None, derive_sub_seed(3, 0), None]
    assert subs[1].seeds == [derive_sub_seed(7, 1), derive_sub_seed(3, 1), None]
    assert derive_sub_seed(7, 0) != derive_sub_seed(7, 1) and derive_sub_seed(7, 0) == derive_sub_seed(7, 0)


def test_bad_input():
    env = make()
    env.reset()
    with pytest.raises(ValueError, match=r"counter: actions must have shape \[B, n\] = \[2, 2\], got \[2\]"):
        env.step(np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="state_info keys \\['nope'\\] are not in info_fields"):
        GymBatchEnv(env.spec, lambda index: Counter(), 1, 0, info_fields={}, state_info=("nope",))
    with pytest.raises(ValueError, match="counter: render index 5 outside"):
        env.render(5)
