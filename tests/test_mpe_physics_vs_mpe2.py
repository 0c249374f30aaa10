"""offmarl's MPE physics against mpe2 itself (the particle physics must be mpe2's: SIT's maps are MPE maps).

mpe2's envs and ours start from the *same* entity positions and velocities (mpe2's are set on its
world after ``reset``, ours through ``ParticleTaskEnv.set_physical_state``) and receive the same random
discrete actions; positions must agree to 1e-4 at each of 25 steps, and rewards and observations to
float32 precision. The start crowds the agents so that contact forces act from the first step.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mpe2")
from mpe2 import simple_spread_v3, simple_tag_v3  # noqa: E402

from offmarl.envs import make_env  # noqa: E402
from offmarl.envs.mpe import predator_prey_world  # noqa: E402

STEPS = 25


def _world_state(world) -> tuple[np.ndarray, np.ndarray]:
    pos = np.array([e.state.p_pos for e in world.entities], dtype=np.float64)  # [E, 2]
    vel = np.array([e.state.p_vel for e in world.entities], dtype=np.float64)
    return pos, vel


def _crowd(world, rng: np.random.Generator, spread: float) -> None:
    """Put mpe2's agents within ``spread`` of each other (overlapping) with random velocities."""
    for agent in world.agents:
        agent.state.p_pos = rng.uniform(-spread, spread, 2)
        agent.state.p_vel = rng.normal(0.0, 0.5, 2)


@pytest.mark.parametrize("local_ratio", [0.0, 0.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_cooperative_navigation_matches_simple_spread(seed: int, local_ratio: float):
    rng = np.random.default_rng(100 + seed)
    theirs = simple_spread_v3.parallel_env(N=3, local_ratio=local_ratio, max_cycles=STEPS, continuous_actions=False,
                                           num_agent_neighbors=1, num_landmark_neighbors=2)
    theirs.reset(seed=seed)
    world = theirs.unwrapped.world
    _crowd(world, rng, spread=0.2)
    names = [a.name for a in world.agents]
    pos, vel = _world_state(world)

    # a horizon beyond 25 so that our env does not auto-reset while we compare
    ours = make_env("mpe_cn_3ls3l", num_envs=1, seed=0, local_ratio=local_ratio, episode_limit=STEPS + 5)
    ts = ours.set_physical_state(pos[None], vel[None])
    their_obs = np.stack([theirs.unwrapped.observe(name) for name in names])  # [3, 12]: ours + 2 comm slots
    np.testing.assert_allclose(ts.obs[0], their_obs[:, :10], atol=1e-6)
    assert np.all(their_obs[:, 10:] == 0)

    min_gap = np.inf
    for t in range(STEPS):
        actions = rng.integers(0, 5, size=3)
        obs, rewards, _, truncations, _ = theirs.step({name: int(a) for name, a in zip(names, actions)})
        ts = ours.step(actions[None])
        their_pos, their_vel = _world_state(world)
        assert np.abs(ours.positions[0] - their_pos).max() < 1e-4, f"positions diverge at step {t + 1}"
        assert np.abs(ours.velocities[0] - their_vel).max() < 1e-4, f"velocities diverge at step {t + 1}"
        np.testing.assert_allclose(ts.reward[0], [rewards[name] for name in names], atol=1e-5)
        np.testing.assert_allclose(ts.obs[0], np.stack([obs[name][:10] for name in names]), atol=1e-5)
        seekers = their_pos[:3]
        gaps = np.linalg.norm(seekers[:, None] - seekers[None], axis=-1)[np.triu_indices(3, 1)]
        min_gap = min(min_gap, gaps.min())
    assert all(truncations.values())
    assert min_gap < 0.3, "the seekers never touched: the contact force was not exercised"


@pytest.mark.parametrize("seed", [0, 1])
def test_predator_prey_physics_matches_simple_tag(seed: int):
    """Predators driven by random actions, the prey by a fixed random action sequence, obstacles in the way."""
    rng = np.random.default_rng(200 + seed)
    theirs = simple_tag_v3.parallel_env(num_good=1, num_adversaries=3, num_obstacles=2, max_cycles=STEPS,
                                        continuous_actions=False)
    theirs.reset(seed=seed)
    world = theirs.unwrapped.world
    _crowd(world, rng, spread=0.25)
    world.landmarks[0].state.p_pos = np.array([0.3, 0.0])  # an obstacle touching the crowd
    names = [a.name for a in world.agents]  # adversary_0..2, agent_0: our predators then the prey
    pos, vel = _world_state(world)

    core = predator_prey_world(3, 2)
    our_pos, our_vel = pos[:, :, None].copy(), vel[:, :, None].copy()  # [E, 2, B=1], the core's layout
    prey_actions = rng.integers(0, 5, size=STEPS)
    for t in range(STEPS):
        actions = np.append(rng.integers(0, 5, size=3), prey_actions[t])
        theirs.step({name: int(a) for name, a in zip(names, actions)})
        core.step(our_pos, our_vel, actions[None])
        their_pos, their_vel = _world_state(world)
        assert np.abs(our_pos[..., 0] - their_pos).max() < 1e-4, f"positions diverge at step {t + 1}"
        assert np.abs(our_vel[..., 0] - their_vel).max() < 1e-4, f"velocities diverge at step {t + 1}"
        speeds = np.linalg.norm(their_vel[:4], axis=-1)
        assert np.all(speeds <= np.array([1.0, 1.0, 1.0, 1.3]) + 1e-9)  # simple_tag's max speeds hold
