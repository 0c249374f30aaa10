"""Fill-In (offmarl.envs.fill_in): hand-computed rewards, views, collisions, auto-reset, seeding, expert."""

from __future__ import annotations

import numpy as np
import pytest

from offmarl import make_env
from offmarl.envs import _grid
from offmarl.envs.fill_in import CHANNELS, OBS_DIM, VIEW_CELLS, split_state
from offmarl.policies.registry import make_behavior_policy

F, L, R, S = _grid.FORWARD, _grid.TURN_LEFT, _grid.TURN_RIGHT, _grid.NO_MOVE
N, E, SOUTH, W = 0, 1, 2, 3

ROOM_2x3 = ["#####",
            "#...#",
            "#...#",
            "#####"]


def view(obs: np.ndarray) -> np.ndarray:
    """An agent's view ``[3, 5, 4]`` (rows far->near, cols left->right, channels) from its observation."""
    return obs[:VIEW_CELLS * len(CHANNELS)].reshape(3, 5, len(CHANNELS))


def positions(env, ts_state: np.ndarray) -> list[list[tuple[int, int, int]]]:
    s = split_state(ts_state, env.spec)
    return [[(int(r), int(c), int(h)) for r, c, h in zip(s["rows"][b], s["cols"][b], s["heading"][b])]
            for b in range(ts_state.shape[0])]


def test_return_formula_on_a_scripted_three_step_episode():
    """Return = own filled - unfilled: two agents, 6 free cells, 3 steps (hand-computed)."""
    env = make_env("fill_in", num_envs=1, layout=ROOM_2x3, n_agents=2, horizon=3,
                   starts=[[1, 1], [2, 3]], headings=[E, W])
    ts = env.reset()
    assert positions(env, ts.state) == [[(1, 1, E), (2, 3, W)]]
    # start cells are filled by their agent (no reward); 4 cells remain
    s = split_state(ts.state, env.spec)
    assert s["filled_by"][0, 0, 1, 1] and s["filled_by"][0, 1, 2, 3] and s["filled_by"].sum() == 2
    rewards = []
    ts = env.step([[F, F]])  # agent 0 fills (1,2), agent 1 fills (2,2)
    rewards.append(ts.reward[0].tolist())
    assert ts.info["unfilled"].tolist() == [2] and not ts.done[0]
    ts = env.step([[F, L]])  # agent 0 fills (1,3); agent 1 turns west -> south
    rewards.append(ts.reward[0].tolist())
    assert ts.info["unfilled"].tolist() == [1]
    ts = env.step([[R, F]])  # agent 1 walks into the bottom wall: blocked; (2,1) stays unfilled
    rewards.append(ts.reward[0].tolist())
    assert rewards == [[1.0, 1.0], [1.0, 0.0], [-1.0, -1.0]]  # last step: -(1 unfilled) to everyone
    assert ts.truncated.tolist() == [True] and ts.terminated.tolist() == [False]
    returns = np.sum(rewards, axis=0)
    assert returns.tolist() == [2 - 1, 1 - 1]  # own filled - unfilled
    # the final state holds the last positions (agent 1 blocked at (2,2) facing south) ...
    assert positions(env, ts.final_state) == [[(1, 3, SOUTH), (2, 2, SOUTH)]]
    assert split_state(ts.final_state, env.spec)["time"][0] == pytest.approx(1.0)
    # ... while state/obs already belong to the next episode (fixed starts)
    assert positions(env, ts.state) == [[(1, 1, E), (2, 3, W)]]
    assert split_state(ts.state, env.spec)["filled_by"].sum() == 2


def test_no_reward_for_a_cell_filled_by_another_agent_and_blocking_rules():
    corridor = ["#######",
                "#.....#",
                "#######"]
    env = make_env("fill_in", num_envs=1, layout=corridor, n_agents=2, horizon=10,
                   starts=[[1, 2], [1, 3]], headings=[W, E])
    env.reset()
    assert env.step([[R, S]]).reward.tolist() == [[0.0, 0.0]]  # agent 0: west -> north
    assert env.step([[R, S]]).reward.tolist() == [[0.0, 0.0]]  # agent 0: north -> east, facing agent 1
    ts = env.step([[F, F]])
    # agent 1 leaves (1,3) and fills (1,4); agent 0 is blocked: (1,3) was occupied at the start of the step
    assert ts.reward.tolist() == [[0.0, 1.0]]
    assert positions(env, ts.state) == [[(1, 2, E), (1, 4, E)]]
    ts = env.step([[F, S]])  # agent 0 enters (1,3), filled by agent 1: nothing for anyone
    assert ts.reward.tolist() == [[0.0, 0.0]]
    assert positions(env, ts.state) == [[(1, 3, E), (1, 4, E)]]
    s = split_state(ts.state, env.spec)
    assert s["filled_by"][0, 1, 1, 3] and not s["filled_by"][0, 0, 1, 3]  # ownership is not transferred
    # a cell filled by the other agent shows in "filled by others", my own start cell in "filled by me"
    v0 = view(ts.obs[0, 0])  # agent 0 at (1,3) facing east: its own row is view row 2, (1,2) is behind
    assert v0[2, 2].tolist() == [0, 0, 1, 0]  # its own cell: filled by agent 1
    assert v0[1, 2].tolist() == [0, 0, 1, 1]  # (1,4): filled by agent 1, agent 1 there


def test_two_agents_moving_into_the_same_cell_both_stay():
    env = make_env("fill_in", num_envs=1, layout=["#####", "#...#", "#####"], n_agents=2, horizon=5,
                   starts=[[1, 1], [1, 3]], headings=[E, W])
    ts = env.reset()
    ts = env.step([[F, F]])
    assert ts.reward.tolist() == [[0.0, 0.0]]
    assert positions(env, ts.state) == [[(1, 1, E), (1, 3, W)]]
    assert ts.info["unfilled"].tolist() == [1]


def test_egocentric_view_hand_computed():
    room = ["#######",
            "#.....#",
            "#.....#",
            "#.....#",
            "#######"]
    env = make_env("fill_in", num_envs=1, layout=room, n_agents=2, horizon=5, starts=[[2, 4], [1, 5]], headings=[E, N])
    ts = env.reset()
    v = view(ts.obs[0, 0])  # agent 0 at (2,4) facing east: ahead = east, left = north
    walls = v[..., 0]
    # row 0 = 2 ahead (col 6, the east wall); row 1 = col 5 (rows 0..4); row 2 = own column 4
    assert walls.tolist() == [[1, 1, 1, 1, 1],
                              [1, 0, 0, 0, 1],
                              [1, 0, 0, 0, 1]]
    assert np.argwhere(v[..., 1]).tolist() == [[2, 2]]  # filled by me: my start cell, my own position
    assert np.argwhere(v[..., 2]).tolist() == [[1, 1]]  # filled by others: agent 1's start (1,5)
    assert np.argwhere(v[..., 3]).tolist() == [[1, 1]]  # agent 1 is at (1,5): one ahead, one to the left
    pose = ts.obs[0, 0, VIEW_CELLS * len(CHANNELS):]
    np.testing.assert_allclose(pose, [0, 1, 0, 0, 2 / 4, 4 / 6])  # heading east, row 2 / (H-1), col 4 / (W-1)
    v1 = view(ts.obs[0, 1])  # agent 1 at (1,5) facing north: 2 ahead is outside the map (walls)
    assert v1[..., 0].tolist() == [[1, 1, 1, 1, 1],
                                   [1, 1, 1, 1, 1],
                                   [0, 0, 0, 1, 1]]
    assert np.argwhere(v1[..., 3]).tolist() == []  # agent 0 is behind-left, out of view


def reference_view(maps: np.ndarray, row: int, col: int, heading: int) -> np.ndarray:
    """View ``[3, 5, C]`` by rotating the (wall-padded) map so the agent faces up and cropping."""
    pad = 4
    padded = np.pad(maps, ((pad, pad), (pad, pad), (0, 0)))
    padded[:pad, :, 0] = padded[-pad:, :, 0] = padded[:, :pad, 0] = padded[:, -pad:, 0] = 1  # outside = wall
    marker = np.zeros(padded.shape[:2], dtype=bool)
    marker[row + pad, col + pad] = True
    rotated, marker = np.rot90(padded, k=heading), np.rot90(marker, k=heading)  # heading h -> up
    r, c = np.argwhere(marker)[0]
    return rotated[r - 2:r + 1, c - 2:c + 3]


def test_egocentric_view_matches_rotated_map_for_every_heading():
    env = make_env("fill_in", num_envs=64, seed=3, n_agents=3, height=7, width=9)
    ts = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(6):
        ts = env.step(rng.integers(0, 4, size=(64, 3)))
    s = split_state(ts.state, env.spec)
    seen_headings = set()
    for b in range(64):
        for i in range(3):
            maps = np.zeros((7, 9, 4), dtype=np.float32)
            maps[..., 0] = s["walls"][b]
            maps[..., 1] = s["filled_by"][b, i]
            maps[..., 2] = s["filled_by"][b].any(0) & ~s["filled_by"][b, i]
            for j in range(3):
                if j != i:
                    maps[s["rows"][b, j], s["cols"][b, j], 3] = 1
            expected = reference_view(maps, s["rows"][b, i], s["cols"][b, i], s["heading"][b, i])
            np.testing.assert_array_equal(view(ts.obs[b, i]), expected)
            seen_headings.add(int(s["heading"][b, i]))
    assert seen_headings == {0, 1, 2, 3}


def test_spec_kwargs_rebuild_and_shapes():
    env = make_env("fill_in", num_envs=3, seed=0, n_agents=4, height=6, width=8, horizon=12)
    spec = env.spec
    assert spec.n_agents == 4 and spec.obs_dim == OBS_DIM == 66 and spec.n_actions == 4
    assert spec.state_dim == 6 * 8 * 5 + 6 * 4 + 1 and spec.episode_limit == 12 and spec.has_avail_actions
    rebuilt = make_env(spec.name, num_envs=3, seed=0, **spec.kwargs)
    assert rebuilt.spec == spec
    a, b = env.reset(), rebuilt.reset()
    np.testing.assert_array_equal(a.obs, b.obs)
    assert a.obs.shape == (3, 4, 66) and a.obs.dtype == np.float32 and a.state.shape == (3, spec.state_dim)
    assert a.avail_actions.shape == (3, 4, 4) and a.avail_actions.all()
    frame = env.render(2)
    assert frame.shape == (6 * 16, 8 * 16, 3) and frame.dtype == np.uint8


def test_auto_reset_returns_final_obs_of_the_ended_episode():
    short = make_env("fill_in", num_envs=8, seed=5, horizon=4)
    long = make_env("fill_in", num_envs=8, seed=5, horizon=50)
    short.reset(), long.reset()
    rng = np.random.default_rng(1)
    for t in range(4):
        actions = rng.integers(0, 4, size=(8, 3))
        ts, ref = short.step(actions), long.step(actions)
        np.testing.assert_array_equal(ts.reward[:, :] + (t == 3) * ref.info["unfilled"][:, None], ref.reward)
    assert ts.truncated.all() and not ts.terminated.any()
    np.testing.assert_array_equal(ts.final_obs, ref.obs)  # the observation reached by the last action
    np.testing.assert_array_equal(ts.final_state[:, :-1], ref.state[:, :-1])  # all but the time fraction
    # the new episodes: time 0, only the start cells filled, a fresh observation
    s = split_state(ts.state, short.spec)
    assert (s["time"] == 0).all() and (s["filled_by"].sum((1, 2, 3)) == 3).all()
    assert not np.array_equal(ts.obs, ts.final_obs)


def test_terminates_when_every_cell_is_filled():
    env = make_env("fill_in", num_envs=1, layout=["####", "#..#", "####"], n_agents=1, horizon=9,
                   starts=[[1, 1]], headings=[E])
    env.reset()
    ts = env.step([[F]])
    assert ts.reward.tolist() == [[1.0]] and ts.terminated.tolist() == [True] and not ts.truncated[0]
    assert ts.info["unfilled"].tolist() == [0]


def test_same_seed_same_trajectory():
    def rollout(seed):
        env = make_env("fill_in", num_envs=16, seed=seed, horizon=7)
        rng = np.random.default_rng(0)
        out = [env.reset().obs]
        for _ in range(15):
            ts = env.step(rng.integers(0, 4, size=(16, 3)))
            out += [ts.obs, ts.reward, ts.state]
        return out

    a, b, c = rollout(11), rollout(11), rollout(12)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_bad_actions_and_kwargs_are_rejected():
    env = make_env("fill_in", num_envs=2, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((2, 3), dtype=np.int64))
    env.reset()
    with pytest.raises(ValueError, match=r"shape \[B, n\] = \[2, 3\]"):
        env.step(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        env.step(np.full((2, 3), 4))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        env.step(np.full((2, 3), -1))
    with pytest.raises(ValueError, match="starts cell \\[0, 0\\] is not a free cell"):
        make_env("fill_in", starts=[[0, 0], [1, 1], [1, 2]])
    with pytest.raises(ValueError, match="starts cells must be distinct"):
        make_env("fill_in", starts=[[1, 1], [1, 1], [1, 2]])
    with pytest.raises(ValueError, match="headings must be 3 ints"):
        make_env("fill_in", headings=[0, 1, 4])
    with pytest.raises(ValueError, match="unknown characters"):
        make_env("fill_in", layout=["###", "#x#", "###"], n_agents=1)
    with pytest.raises(ValueError, match="do not match"):
        make_env("fill_in", layout=ROOM_2x3, height=10)
    with pytest.raises(ValueError, match="fewer than n_agents"):
        make_env("fill_in", layout=ROOM_2x3, n_agents=7)


def test_expert_fills_nearly_everything_and_beats_random_by_far():
    env = make_env("fill_in", num_envs=24, seed=0)
    n = env.spec.n_agents
    expert = make_behavior_policy("expert", env.spec, seed=0)
    returns = {}
    for name in ("expert", "random"):
        ts, rng = env.reset(seed=1), np.random.default_rng(2)
        total, finished, unfilled = np.zeros((24, n)), np.zeros(24, bool), np.zeros(24)
        while not finished.all():
            actions = expert.act(ts) if name == "expert" else rng.integers(0, 4, size=(24, n))
            ts = env.step(actions)
            total += ts.reward * ~finished[:, None]
            unfilled = np.where(ts.done & ~finished, ts.info["unfilled"], unfilled)
            finished |= ts.done
        returns[name] = total.mean()
        if name == "expert":
            assert unfilled.mean() <= 1.0  # nearly all of the 64 cells
        else:
            assert unfilled.mean() >= 30  # a random walk leaves many
    assert returns["expert"] > 15 and returns["random"] < -25
