"""MABCQ matrix game: payoffs by hand, validation errors, two-step structure, behaviour/expert policies."""

from __future__ import annotations

import numpy as np
import pytest

from offmarl import make_env
from offmarl.envs.matrix_game import MatrixGameEnv
from offmarl.policies.registry import make_behavior_policy

TABLE_1 = {(0, 0): 1.0, (0, 1): 5.0, (1, 0): 6.0, (1, 1): 1.0}


def one_hot(index: int, size: int = 9) -> np.ndarray:
    v = np.zeros(size, dtype=np.float32)
    v[index] = 1.0
    return v


def test_defaults_are_table_1():
    env = make_env("matrix_game", num_envs=1)
    spec = env.spec
    assert spec.kwargs == {"payoff": [[1.0, 5.0], [6.0, 1.0]], "behavior": [[0.8, 0.2], [0.4, 0.6]]}
    assert (spec.n_agents, spec.n_actions, spec.obs_dim, spec.state_dim, spec.episode_limit) == (2, 2, 9, 9, 2)
    assert spec.has_avail_actions


def test_every_joint_action_two_steps():
    env = MatrixGameEnv(num_envs=4)
    joint = np.array(list(TABLE_1))  # [4, 2]: (0,0), (0,1), (1,0), (1,1)
    ts = env.reset()
    np.testing.assert_array_equal(ts.obs, np.broadcast_to(one_hot(0), (4, 2, 9)))
    assert ts.avail_actions.shape == (4, 2, 2) and ts.avail_actions.all()

    ts = env.step(joint)  # s0 -> s' = (a1, a2), reward 0
    assert (ts.reward == 0).all() and not ts.done.any() and ts.final_obs is None
    for b, (a1, a2) in enumerate(joint):
        np.testing.assert_array_equal(ts.state[b], one_hot(1 + 2 * a1 + a2))
        np.testing.assert_array_equal(ts.obs[b, 0], ts.obs[b, 1])

    ts = env.step(np.array([[1, 1], [0, 0], [1, 0], [0, 1]]))  # second step: actions do not matter
    want = np.array([TABLE_1[tuple(a)] for a in joint], dtype=np.float32)
    np.testing.assert_array_equal(ts.reward, np.stack([want, want], 1))
    assert ts.terminated.all() and not ts.truncated.any()
    for b, (a1, a2) in enumerate(joint):  # end state keeps (a1, a2); then auto-reset to s0
        np.testing.assert_array_equal(ts.final_obs[b, 0], one_hot(5 + 2 * a1 + a2))
        np.testing.assert_array_equal(ts.final_state[b], one_hot(5 + 2 * a1 + a2))
        np.testing.assert_array_equal(ts.obs[b, 0], one_hot(0))


def test_rectangular_payoff_and_avail_actions():
    env = make_env("matrix_game", num_envs=1, payoff=[[0, 1, 2], [3, 4, 5]])
    assert env.spec.n_actions == 3 and env.spec.obs_dim == 13
    assert env.spec.kwargs["behavior"] == [[0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]]  # uniform default off 2x2
    ts = env.reset()
    np.testing.assert_array_equal(ts.avail_actions[0], [[True, True, False], [True, True, True]])
    with pytest.raises(ValueError, match="action 2 of agent 0"):
        env.step(np.array([[2, 0]]))
    env.step(np.array([[1, 2]]))
    ts = env.step(np.array([[0, 0]]))
    assert ts.reward[0, 0] == 5.0 and ts.terminated[0]


@pytest.mark.parametrize("payoff, message", [
    ([[1, -5], [6, 1]], r"payoff entries must be >= 0 .*payoff\[0\]\[1\] = -5"),
    ([1, 2, 3], "2-D matrix"),
    ([[1, 2], [3]], "matrix of numbers"),
])
def test_bad_payoff_rejected(payoff, message):
    with pytest.raises(ValueError, match=message):
        make_env("matrix_game", payoff=payoff)


@pytest.mark.parametrize("behavior, message", [
    ([[0.8, 0.3], [0.4, 0.6]], r"behavior\[0\] must sum to 1"),
    ([[0.8, 0.2], [0.4, 0.3, 0.3]], r"behavior\[1\] must have 2 probabilities"),
    ([[1.2, -0.2], [0.4, 0.6]], r"behavior\[0\] must hold probabilities >= 0"),
    ([[1.0, 0.0]], "two action distributions"),
])
def test_bad_behavior_rejected(behavior, message):
    with pytest.raises(ValueError, match=message):
        make_env("matrix_game", behavior=behavior)


def test_behavior_policy_frequencies_and_return():
    env = make_env("matrix_game", num_envs=20000)
    policy = make_behavior_policy("behavior", env.spec, seed=0)
    ts = env.reset()
    first = policy.act(ts, first=True)
    assert first.dtype == np.int64 and first.shape == (20000, 2)
    np.testing.assert_allclose(first.mean(0), [0.2, 0.6], atol=0.015)  # P(a_2) of each agent
    ts = env.step(first)
    ts = env.step(policy.act(ts))
    # E[R] = 0.8 (0.4·1 + 0.6·5) + 0.2 (0.4·6 + 0.6·1) = 3.32
    assert ts.reward[:, 0].mean() == pytest.approx(3.32, abs=0.05)
    custom = make_behavior_policy("behavior", env.spec, seed=0, behavior=[[0, 1], [1, 0]])
    np.testing.assert_array_equal(custom.act(ts)[:3], [[1, 0]] * 3)


def test_expert_plays_argmax():
    env = make_env("matrix_game", num_envs=3)
    expert = make_behavior_policy("expert", env.spec)
    ts = env.reset()
    ts = env.step(expert.act(ts, first=True))
    ts = env.step(expert.act(ts))
    np.testing.assert_array_equal(ts.reward, np.full((3, 2), 6.0))
    env = make_env("matrix_game", num_envs=1, payoff=[[0, 1, 9], [3, 4, 5]])
    np.testing.assert_array_equal(make_behavior_policy("expert", env.spec).act(env.reset()), [[0, 2]])


def test_render_shows_each_step():
    env = MatrixGameEnv(num_envs=1)
    frames = [env.render()]
    env.reset()
    frames.append(env.render())
    ts = env.step(np.array([[1, 0]]))
    frames.append(env.render())
    ts = env.step(np.array([[0, 0]]))
    frames.append(env.render_state(ts.final_state[0]))
    assert all(f.dtype == np.uint8 and f.shape == frames[0].shape for f in frames)
    assert not np.array_equal(frames[1], frames[2]) and not np.array_equal(frames[2], frames[3])
