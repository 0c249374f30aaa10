"""Grid-World (offmarl.envs.grid_world): pickups, delivery and respawn, views, auto-reset, seeding, expert."""

from __future__ import annotations

import numpy as np
import pytest

from offmarl import make_env
from offmarl.envs import _grid
from offmarl.envs.grid_world import CHANNELS, DEFAULT_LAYOUT, OBS_DIM, VIEW_CELLS, split_state
from offmarl.policies.registry import make_behavior_policy

F, L, R, S = _grid.FORWARD, _grid.TURN_LEFT, _grid.TURN_RIGHT, _grid.NO_MOVE
N, E, SOUTH, W = 0, 1, 2, 3

ROOM = ["#######",
        "#.....#",
        "#..T..#",
        "#.....#",
        "#######"]
# agent 0 owns (1,3), (1,4); agent 1 owns (1,2) -- on agent 0's path -- and (3,2)
SCENE = dict(layout=ROOM, n_agents=2, objects_per_agent=2, horizon=20, starts=[[1, 1], [3, 1]], headings=[E, E],
             objects=[[[1, 3], [1, 4]], [[1, 2], [3, 2]]])


def object_cells(env, state: np.ndarray, b: int, agent: int) -> set[tuple[int, int]]:
    return {(int(r), int(c)) for r, c in np.argwhere(split_state(state, env.spec)["objects"][b, agent])}


def test_pickup_pays_half_only_for_own_objects_and_delivery_respawns():
    env = make_env("grid_world", num_envs=1, **SCENE)
    ts = env.reset()
    assert (object_cells(env, ts.state, 0, 0) == {(1, 3), (1, 4)}
            and object_cells(env, ts.state, 0, 1) == {(1, 2), (3, 2)})
    rewards = []
    ts = env.step([[F, F]])  # agent 0 walks over agent 1's object (nothing); agent 1 collects its own
    rewards.append(ts.reward[0].tolist())
    assert object_cells(env, ts.state, 0, 1) == {(1, 2)}  # the foreign object stays
    ts = env.step([[F, L]])  # agent 0 collects (1,3); agent 1 turns north
    rewards.append(ts.reward[0].tolist())
    assert split_state(ts.state, env.spec)["carrying"].tolist() == [[True, True]]
    ts = env.step([[F, F]])  # agent 0, carrying, steps on its other object: capacity one, nothing happens
    rewards.append(ts.reward[0].tolist())
    assert object_cells(env, ts.state, 0, 0) == {(1, 4)}
    ts = env.step([[S, R]])
    rewards.append(ts.reward[0].tolist())
    ts = env.step([[S, F]])  # agent 1 reaches the target (2,3): delivers (no reward), a new object appears
    rewards.append(ts.reward[0].tolist())
    assert rewards == [[0.0, 0.5], [0.5, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    assert ts.info["delivered"].tolist() == [[False, True]]
    s = split_state(ts.state, env.spec)
    assert s["carrying"].tolist() == [[True, False]]
    assert (s["rows"][0, 1], s["cols"][0, 1]) == (2, 3)
    assert len(object_cells(env, ts.state, 0, 1)) == 2  # agent 1 owns two objects again


def test_respawn_is_uniform_over_free_empty_cells():
    b = 300
    env = make_env("grid_world", num_envs=b, seed=4, **SCENE)
    env.reset()
    for actions in ([F, F], [F, L], [F, F], [S, R], [S, F]):
        ts = env.step(np.tile(actions, (b, 1)))
    assert ts.info["delivered"][:, 1].all()
    spawned = [object_cells(env, ts.state, k, 1) - {(1, 2)} for k in range(b)]
    assert all(len(cells) == 1 for cells in spawned)
    spawned = [next(iter(cells)) for cells in spawned]
    free = {(r, c) for r in range(1, 4) for c in range(1, 6)}
    # not the target (2,3), not agent 1's other object (1,2), not agent 0 (1,4) on its own object
    allowed = free - {(2, 3), (1, 2), (1, 4)}
    assert set(spawned) == allowed  # every allowed cell, and only those (12 cells, 300 draws)
    counts = np.array([spawned.count(cell) for cell in sorted(allowed)])
    assert counts.min() >= 8 and counts.max() <= 45  # ~25 each


def test_view_channels_hand_computed():
    env = make_env("grid_world", num_envs=1, layout=ROOM, n_agents=2, objects_per_agent=1, horizon=5,
                   starts=[[3, 3], [1, 5]], headings=[N, W], objects=[[[1, 1]], [[3, 4]]])
    ts = env.reset()
    v = ts.obs[0, 0, :VIEW_CELLS * len(CHANNELS)].reshape(5, 5, 4)  # agent 0 at (3,3) facing north
    other, objects, obstacles, target = (v[..., c] for c in range(4))
    assert obstacles.tolist() == [[1] * 5, [1] * 5, [0] * 5, [0] * 5, [0] * 5]  # row -1 (outside) and row 0
    assert np.argwhere(target).tolist() == [[3, 2]]  # (2,3): one ahead
    assert np.argwhere(other).tolist() == [[2, 4]]  # agent 1 at (1,5): two ahead, two right
    assert objects[2, 0] == 1.0 and objects[4, 3] == -1.0 and np.count_nonzero(objects) == 2  # mine (1,1), its (3,4)
    np.testing.assert_allclose(ts.obs[0, 0, 100:], [1, 0, 0, 0, 3 / 4, 3 / 6, 0])  # north, (row, col), not carrying
    # agent 1 at (1,5) facing west: ahead = west, right = north, left = south; cell (i, j) = (1 - (j-2), 5 - (4-i))
    v1 = ts.obs[0, 1, :100].reshape(5, 5, 4)
    assert v1[4, 2].tolist() == [0, 0, 0, 0]  # its own cell
    assert v1[:, 3:, 2].tolist() == [[1, 1]] * 5  # right: row 0 (wall) and row -1 (outside)
    assert v1[2, 0].tolist() == [1, 0, 0, 0]  # agent 0 at (3,3): two ahead, two left
    assert v1[3, 0].tolist() == [0, 1, 0, 0]  # its own object at (3,4)
    assert v1[0, 2].tolist() == [0, -1, 0, 0]  # agent 0's object at (1,1), four ahead
    assert v1[2, 1].tolist() == [0, 0, 0, 1]  # the target (2,3)
    assert np.count_nonzero(v1) == 4 + 10

def test_spec_kwargs_rebuild_shapes_and_render():
    env = make_env("grid_world", num_envs=3, seed=0)
    spec = env.spec
    assert spec.kwargs["layout"] == list(DEFAULT_LAYOUT) and spec.kwargs["horizon"] == 100
    assert spec.n_agents == 3 and spec.obs_dim == OBS_DIM == 107 and spec.state_dim == 100 * 5 + 7 * 3 + 1
    rebuilt = make_env(spec.name, num_envs=3, seed=0, **spec.kwargs)
    assert rebuilt.spec == spec
    a, b = env.reset(), rebuilt.reset()
    np.testing.assert_array_equal(a.state, b.state)
    s = split_state(a.state, spec)
    assert (s["objects"].sum((2, 3)) == 3).all() and s["target"].sum() == 3 and not s["carrying"].any()
    assert a.avail_actions.shape == (3, 3, 4) and a.avail_actions.all()
    frame = env.render(1)
    assert frame.shape == (160, 160, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(env.render_state(a.state[1]), frame)


def test_auto_reset_returns_final_obs_of_the_ended_episode():
    short = make_env("grid_world", num_envs=8, seed=5, horizon=6)
    long = make_env("grid_world", num_envs=8, seed=5, horizon=60)
    short.reset(), long.reset()
    rng = np.random.default_rng(1)
    for _ in range(6):
        actions = rng.integers(0, 4, size=(8, 3))
        ts, ref = short.step(actions), long.step(actions)
        np.testing.assert_array_equal(ts.reward, ref.reward)
    assert ts.truncated.all() and not ts.terminated.any() and not ref.done.any()
    np.testing.assert_array_equal(ts.final_obs, ref.obs)
    np.testing.assert_array_equal(ts.final_state[:, :-1], ref.state[:, :-1])  # all but the time fraction
    s = split_state(ts.state, short.spec)
    assert (s["time"] == 0).all() and not s["carrying"].any() and (s["objects"].sum((2, 3)) == 3).all()
    assert not np.array_equal(ts.state, ts.final_state)


def test_same_seed_same_trajectory():
    def rollout(seed):
        env = make_env("grid_world", num_envs=16, seed=seed, horizon=9)
        rng = np.random.default_rng(0)
        out = [env.reset().state]
        for _ in range(20):
            ts = env.step(rng.integers(0, 4, size=(16, 3)))
            out += [ts.obs, ts.reward, ts.state]
        return out

    a, b, c = rollout(2), rollout(2), rollout(3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_bad_actions_and_kwargs_are_rejected():
    env = make_env("grid_world", num_envs=2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=r"shape \[B, n\] = \[2, 3\]"):
        env.step(np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        env.step(np.full((2, 3), 7))
    with pytest.raises(ValueError, match="exactly one target"):
        make_env("grid_world", layout=["#####", "#T.T#", "#####"], n_agents=1, objects_per_agent=1)
    with pytest.raises(ValueError, match="exactly one target"):
        make_env("grid_world", layout=ROOM[:2] + ["#.....#"] + ROOM[3:])
    with pytest.raises(ValueError, match="14 free non-target cells; 3 agents with 4 objects each need 15"):
        make_env("grid_world", layout=ROOM, n_agents=3, objects_per_agent=4)
    with pytest.raises(ValueError, match="objects needs 2 cells per agent"):
        make_env("grid_world", **{**SCENE, "objects": [[[1, 3]], [[1, 2], [3, 2]]]})
    with pytest.raises(ValueError, match="objects and starts share"):
        make_env("grid_world", **{**SCENE, "objects": [[[1, 1], [1, 4]], [[1, 2], [3, 2]]]})
    with pytest.raises(ValueError, match="objects cell \\[2, 3\\] is not a free cell other than the target"):
        make_env("grid_world", **{**SCENE, "objects": [[[2, 3], [1, 4]], [[1, 2], [3, 2]]]})  # the target


def test_expert_collects_about_six_objects_and_beats_random_by_far():
    env = make_env("grid_world", num_envs=16, seed=0)
    expert = make_behavior_policy("expert", env.spec, seed=0)
    returns = {}
    for name in ("expert", "random"):
        ts, rng, total = env.reset(seed=1), np.random.default_rng(2), np.zeros((16, 3))
        for _ in range(env.spec.episode_limit):
            ts = env.step(expert.act(ts) if name == "expert" else rng.integers(0, 4, size=(16, 3)))
            total += ts.reward
        assert ts.truncated.all()
        returns[name] = total.mean()
    assert 2.6 < returns["expert"] < 3.5  # Tseng Table 11: 3.02 per agent for the good data
    assert returns["random"] < 0.6
