"""SIT's MPE maps (offmarl.envs.mpe) and their scripted experts (offmarl.policies.scripted.mpe).

Hand-computed rewards, physics and observation layouts on constructed configurations; specs, auto-reset,
determinism, the prey's rule and expert >> random. The match with mpe2 itself is
tests/test_mpe_physics_vs_mpe2.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from offmarl.envs import make_env
from offmarl.envs.mpe import prey_action, state_layout, unpack_state
from offmarl.policies.registry import make_behavior_policy
from offmarl.policies.scripted.mpe import CooperativeNavigationExpert, PredatorPreyExpert, min_cost_assignment

ENVS = {  # name: (n agents, state_dim, entities, agent type)
    "mpe_cn_3ls3l": (3, 18, 6, "seeker"),
    "mpe_cn_4ls4l": (4, 24, 8, "seeker"),
    "mpe_pp_3p1p": (3, 20, 6, "predator"),
}


def _episode_returns(env, policy=None, seed: int = 0) -> np.ndarray:
    """Per-agent-average return of the B episodes of one 25-step pass (uniform random actions without a policy)."""
    rng = np.random.default_rng(seed)
    ts = env.reset(seed=seed)
    total = np.zeros(env.num_envs)
    for _ in range(env.spec.episode_limit):
        actions = rng.integers(0, 5, size=(env.num_envs, env.spec.n_agents)) if policy is None else policy.act(ts)
        ts = env.step(actions)
        total += ts.reward.mean(axis=1)
    assert ts.truncated.all()
    return total


@pytest.mark.parametrize("name", list(ENVS))
def test_spec_and_shapes(name: str):
    n, state_dim, entities, agent_type = ENVS[name]
    env = make_env(name, num_envs=5, seed=0)
    spec = env.spec
    assert (spec.n_agents, spec.obs_dim, spec.obs_dims, spec.state_dim) == (n, 10, (10,) * n, state_dim)
    assert spec.action_space == spaces.Discrete(5) and spec.has_avail_actions and spec.episode_limit == 25
    assert spec.agent_types == (agent_type,) * n
    ts = env.reset()
    assert ts.obs.shape == (5, n, 10) and ts.obs.dtype == np.float32
    assert ts.state.shape == (5, state_dim) and ts.state.dtype == np.float32
    assert ts.avail_actions.shape == (5, n, 5) and ts.avail_actions.all()
    ts = env.step(np.zeros((5, n), dtype=np.int64))
    assert ts.reward.shape == (5, n) and ts.reward.dtype == np.float32
    assert np.all(ts.reward == ts.reward[:, :1])  # team reward broadcast to every agent
    assert np.all(ts.reward < 0)
    assert not ts.terminated.any() and not ts.truncated.any()
    assert env.positions.shape == (5, entities, 2)
    # the state is [agent positions, agent velocities, landmark positions]
    pos, vel, landmarks = unpack_state(ts.state, state_layout(spec))
    np.testing.assert_allclose(pos, env.positions[:, : pos.shape[1]], atol=1e-6)
    np.testing.assert_allclose(vel, env.velocities[:, : pos.shape[1]], atol=1e-6)
    np.testing.assert_allclose(landmarks, env.positions[:, pos.shape[1]:], atol=1e-6)
    # spawn ranges of mpe2's reset_world
    fresh = make_env(name, num_envs=2000, seed=1)
    assert np.abs(fresh.positions).max() <= 1.0 and np.all(fresh.velocities == 0)
    if name == "mpe_pp_3p1p":
        assert np.abs(fresh.positions[:, 4:]).max() <= 0.9  # obstacles in [-0.9, 0.9]^2


def test_spec_kwargs_rebuild_and_bad_input():
    env = make_env("mpe_cn_3ls3l", num_envs=2, seed=0, local_ratio=0.5, episode_limit=10)
    again = make_env("mpe_cn_3ls3l", num_envs=2, seed=0, **env.spec.kwargs)
    assert again.spec == env.spec and again.spec.episode_limit == 10
    with pytest.raises(ValueError, match=r"actions must have shape \[B, n\] = \[2, 3\]"):
        env.step(np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="discrete actions must lie in"):
        env.step(np.full((2, 3), 5))
    with pytest.raises(ValueError, match="local_ratio"):
        make_env("mpe_cn_3ls3l", local_ratio=1.5)
    with pytest.raises(ValueError, match="visible_seekers"):
        make_env("mpe_cn_3ls3l", visible_seekers=3)
    with pytest.raises(ValueError, match=r"positions must have shape \[2, 6, 2\]"):
        env.set_physical_state(np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match="noise must be a probability"):
        CooperativeNavigationExpert(env.spec, noise=1.5)


def test_cooperative_navigation_reward_by_hand():
    """Seekers at rest keep their positions during a step (p += v dt uses the old velocity)."""
    seekers = [(0.0, 0.0), (1.0, 0.0), (-1.0, -1.0)]
    landmarks = [(0.0, 0.5), (1.0, 0.0), (3.0, 4.0)]
    env = make_env("mpe_cn_3ls3l", num_envs=1, seed=0)
    env.set_physical_state(np.array([seekers + landmarks]))
    ts = env.step(np.zeros((1, 3), dtype=np.int64))
    # nearest seeker per landmark: 0.5, 0, |(3,4)-(1,0)| = sqrt(20)
    np.testing.assert_allclose(ts.reward[0], [-(0.5 + 0.0 + np.sqrt(20.0))] * 3, rtol=1e-6)

    # local_ratio 0.5: seekers 0 and 1 overlap (0.2 < 2 * 0.15) -> -1 each, mixed half and half
    seekers = [(0.0, 0.0), (0.2, 0.0), (-1.0, -1.0)]
    landmarks = [(0.0, 1.0), (0.2, 0.0), (-1.0, -1.0)]
    env = make_env("mpe_cn_3ls3l", num_envs=1, seed=0, local_ratio=0.5)
    env.set_physical_state(np.array([seekers + landmarks]))
    ts = env.step(np.zeros((1, 3), dtype=np.int64))
    global_reward = -1.0  # landmark (0, 1) is 1 from seeker 0; the others are occupied
    np.testing.assert_allclose(ts.reward[0], 0.5 * global_reward + 0.5 * np.array([-1.0, -1.0, 0.0]), rtol=1e-6)


def test_predator_prey_reward_and_capture_by_hand():
    # predators at distances 0.1 (touching: < 0.075 + 0.05), 0.5 and 1.0 from the prey; obstacles far away
    pos = [(0.1, 0.0), (0.0, 0.5), (-1.0, 0.0), (0.0, 0.0), (5.0, 5.0), (-5.0, 5.0)]
    env = make_env("mpe_pp_3p1p", num_envs=1, seed=0)
    env.set_physical_state(np.array([pos]))
    ts = env.step(np.zeros((1, 3), dtype=np.int64))  # everybody at rest: positions do not change this step
    np.testing.assert_allclose(ts.reward[0], [-(0.1 + 0.5 + 1.0)] * 3, rtol=1e-6)
    assert ts.info["prey_caught"].tolist() == [True]
    env = make_env("mpe_pp_3p1p", num_envs=1, seed=0, reward_scale=0.5)
    env.set_physical_state(np.array([[(0.3, 0.0)] + pos[1:]]))
    ts = env.step(np.zeros((1, 3), dtype=np.int64))
    np.testing.assert_allclose(ts.reward[0], [-0.5 * (0.3 + 0.5 + 1.0)] * 3, rtol=1e-6)
    assert ts.info["prey_caught"].tolist() == [False]


def test_integration_by_hand():
    """mpe2's order: p += v dt with the old v, then v = 0.75 v + accel dt u(a), then the speed limit."""
    far = [(3.0, 3.0), (-3.0, 3.0), (3.0, -3.0)]
    env = make_env("mpe_cn_3ls3l", num_envs=1, seed=0)
    vel = np.zeros((1, 6, 2))
    vel[0, 0] = (1.0, 0.0)
    env.set_physical_state(np.array([[(0.0, 0.0), (-3.0, -3.0), (0.0, 3.0)] + far]), vel)
    env.step(np.array([[2, 4, 0]]))  # right, up, no-op
    np.testing.assert_allclose(env.positions[0, :3], [(0.1, 0.0), (-3.0, -3.0), (0.0, 3.0)], atol=1e-12)
    np.testing.assert_allclose(env.velocities[0, :3], [(0.75 + 0.5, 0.0), (0.0, 0.5), (0.0, 0.0)], atol=1e-12)

    # a predator at its max speed 1.0 pushing on (accel 3): 0.75 + 0.3 = 1.05 is clipped back to 1.0
    env = make_env("mpe_pp_3p1p", num_envs=1, seed=0)
    pos = [(0.0, 0.0), (-3.0, -3.0), (3.0, -3.0), (3.0, 3.0), (-5.0, 5.0), (5.0, 5.0)]
    vel = np.zeros((1, 6, 2))
    vel[0, 0] = (1.0, 0.0)
    env.set_physical_state(np.array([pos]), vel)
    env.step(np.array([[2, 0, 0]]))
    np.testing.assert_allclose(env.velocities[0, 0], (1.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(env.positions[0, 0], (0.1, 0.0), atol=1e-12)


def test_cooperative_navigation_observation_layout():
    seekers = [(0.0, 0.0), (0.5, 0.0), (-0.9, 0.0)]
    landmarks = [(0.0, 1.0), (0.1, -0.2), (2.0, 2.0)]
    vel = np.zeros((1, 6, 2))
    vel[0, :3] = [(0.1, 0.2), (0.3, 0.4), (0.5, 0.6)]
    env = make_env("mpe_cn_3ls3l", num_envs=1, seed=0)
    obs = env.set_physical_state(np.array([seekers + landmarks]), vel).obs[0]
    # [v (2), p (2), nearest landmark, 2nd nearest landmark, nearest other seeker] (relative positions)
    np.testing.assert_allclose(obs[0], [0.1, 0.2, 0.0, 0.0, 0.1, -0.2, 0.0, 1.0, 0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(obs[1], [0.3, 0.4, 0.5, 0.0, -0.4, -0.2, -0.5, 1.0, -0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(obs[2], [0.5, 0.6, -0.9, 0.0, 1.0, -0.2, 0.9, 1.0, 0.9, 0.0], atol=1e-6)

    # exact ties go to the lower index (mpe2's argsort order); 4 seekers see 1 seeker and 2 of 4 landmarks
    seekers = [(0.0, 0.0), (0.0, 1.0), (0.0, -1.0), (3.0, 3.0)]
    landmarks = [(2.0, 0.0), (-1.0, 0.0), (1.0, 0.0), (0.0, 5.0)]
    env = make_env("mpe_cn_4ls4l", num_envs=1, seed=0)
    obs = env.set_physical_state(np.array([seekers + landmarks])).obs[0]
    np.testing.assert_allclose(obs[0, 4:], [-1.0, 0.0, 1.0, 0.0, 0.0, 1.0], atol=1e-6)

    # visible counts are configurable (full observability: 2 seekers, 3 landmarks)
    env = make_env("mpe_cn_3ls3l", num_envs=1, seed=0, visible_seekers=2, visible_landmarks=3)
    assert env.spec.obs_dim == 14


def test_predator_prey_observation_layout():
    pos = [(0.0, 0.0), (0.3, 0.0), (0.0, -0.2), (1.0, 1.0), (5.0, 5.0), (-5.0, 5.0)]
    vel = np.zeros((1, 6, 2))
    vel[0, 3] = (0.7, -0.1)  # the prey
    vel[0, 0] = (0.2, 0.0)
    env = make_env("mpe_pp_3p1p", num_envs=1, seed=0)
    obs = env.set_physical_state(np.array([pos]), vel).obs[0]
    # [v (2), p (2), nearest other predator, prey, prey velocity]
    np.testing.assert_allclose(obs[0], [0.2, 0.0, 0.0, 0.0, 0.0, -0.2, 1.0, 1.0, 0.7, -0.1], atol=1e-6)
    np.testing.assert_allclose(obs[1], [0.0, 0.0, 0.3, 0.0, -0.3, 0.0, 0.7, 1.0, 0.7, -0.1], atol=1e-6)
    np.testing.assert_allclose(obs[2], [0.0, 0.0, 0.0, -0.2, 0.0, 0.2, 1.0, 1.2, 0.7, -0.1], atol=1e-6)


def test_prey_flees_the_nearest_predator_and_stays_in_the_arena():
    # [n=3, 2, B=4]: columns are four situations
    predators = np.zeros((3, 2, 4))
    predators[:, :, :] = np.array([(5.0, 5.0), (-5.0, 5.0), (5.0, -5.0)])[:, :, None]
    prey = np.array([(0.0, 0.0), (0.0, 0.0), (0.95, 0.0), (0.95, 0.0)]).T  # [2, 4]
    predators[0, :, 0] = (-0.2, 0.05)  # nearest on the left -> flee right (2)
    predators[0, :, 1] = (0.05, 0.3)  # nearest above -> flee down (3)
    predators[0, :, 2] = (0.5, 0.0)  # nearest on the left of a prey at the wall -> right is allowed
    predators[0, :, 3] = (0.5, 0.1)  # same, but the prey coasts past the wall -> no right, slide down
    prey_vel = np.array([(0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.5, 0.0)]).T  # rest x = 0.95 + 0.2
    assert prey_action(predators, prey, prey_vel).tolist() == [2, 3, 2, 3]


def test_auto_reset_keeps_the_final_observation():
    """A 25-step env must end where a 30-step env with the same seed and actions is at step 25."""
    short = make_env("mpe_pp_3p1p", num_envs=4, seed=3)
    long = make_env("mpe_pp_3p1p", num_envs=4, seed=3, episode_limit=30)
    rng = np.random.default_rng(0)
    for t in range(25):
        actions = rng.integers(0, 5, size=(4, 3))
        ts, ref = short.step(actions), long.step(actions)
        assert ts.truncated.all() == (t == 24) and not ts.terminated.any()
    np.testing.assert_array_equal(ts.final_obs, ref.obs)
    np.testing.assert_array_equal(ts.final_state, ref.state)
    np.testing.assert_array_equal(ts.reward, ref.reward)
    assert not np.allclose(ts.obs, ref.obs)  # the new episode started
    assert np.all(short.t == 0) and np.all(short.velocities == 0)

    # sub-envs end independently: only the one at step 24 resets
    env = make_env("mpe_cn_3ls3l", num_envs=2, seed=0)
    env.set_physical_state(env.positions, steps=np.array([24, 3]))
    before = env.positions
    ts = env.step(np.zeros((2, 3), dtype=np.int64))
    assert ts.truncated.tolist() == [True, False]
    assert env.t.tolist() == [0, 4]
    np.testing.assert_array_equal(ts.final_obs[1], ts.obs[1])
    np.testing.assert_allclose(env.positions[1], before[1], atol=1e-6)  # at rest, contact forces ~0
    assert not np.allclose(env.positions[0], before[0])


@pytest.mark.parametrize("name", list(ENVS))
def test_same_seed_same_episodes(name: str):
    runs = []
    for seed in (7, 7, 8):
        env = make_env(name, num_envs=3, seed=seed)
        ts, rng, obs = env.reset(), np.random.default_rng(0), []
        for _ in range(30):  # crosses one auto-reset
            ts = env.step(rng.integers(0, 5, size=(3, env.spec.n_agents)))
            obs.append(ts.obs)
        runs.append(np.stack(obs))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])
    env = make_env(name, num_envs=3, seed=8)
    np.testing.assert_array_equal(env.reset(seed=7).obs, make_env(name, num_envs=3, seed=7).reset().obs)


def test_min_cost_assignment():
    cost = np.array([[[1.0, 2.0, 9.0], [1.0, 9.0, 9.0], [9.0, 9.0, 1.0]]])  # greedy would give agent 0 goal 0
    assert min_cost_assignment(cost).tolist() == [[1, 0, 2]]


@pytest.mark.parametrize("name, margin", [("mpe_cn_3ls3l", 25.0), ("mpe_cn_4ls4l", 25.0), ("mpe_pp_3p1p", 30.0)])
def test_expert_beats_random(name: str, margin: float):
    env = make_env(name, num_envs=256, seed=0)
    expert = make_behavior_policy("expert", env.spec, seed=0)
    assert isinstance(expert, CooperativeNavigationExpert if "cn" in name else PredatorPreyExpert)
    random_return = _episode_returns(env).mean()
    expert_return = _episode_returns(env, expert).mean()
    medium_return = _episode_returns(env, make_behavior_policy("expert", env.spec, seed=0, noise=0.5)).mean()
    assert expert_return > random_return + margin
    assert random_return < medium_return < expert_return


def test_expert_reads_only_the_state():
    env = make_env("mpe_cn_4ls4l", num_envs=16, seed=0)
    ts = env.reset()
    expert = CooperativeNavigationExpert(env.spec)
    blind = type(ts)(**{**ts.__dict__, "obs": np.zeros_like(ts.obs)})
    np.testing.assert_array_equal(expert.act(ts), expert.act(blind))
    # each seeker heads for a different landmark
    pos, vel, landmarks = unpack_state(ts.state.astype(np.float64), state_layout(env.spec))
    gap = np.linalg.norm(landmarks[:, None] - pos[:, :, None], axis=-1)
    goals = min_cost_assignment(gap)
    assert np.all(np.sort(goals, axis=1) == np.arange(4))


def test_noisy_expert_randomizes_the_given_fraction():
    env = make_env("mpe_cn_3ls3l", num_envs=2000, seed=0)
    ts = env.reset()
    clean = CooperativeNavigationExpert(env.spec).act(ts)
    noisy = CooperativeNavigationExpert(env.spec, seed=1, noise=0.4).act(ts)
    # a replaced action differs from the expert's with probability 4/5
    assert abs((noisy != clean).mean() - 0.4 * 0.8) < 0.02


@pytest.mark.parametrize("name", list(ENVS))
def test_render(name: str):
    env = make_env(name, num_envs=2, seed=0)
    ts = env.reset()
    frame = env.render(1)
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    assert (frame != 255).any(axis=-1).mean() > 0.01  # something is drawn
    np.testing.assert_array_equal(env.render_state(ts.state[1]), frame)
    with pytest.raises(ValueError, match="index"):
        env.render(2)
