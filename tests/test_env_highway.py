"""The ``highway`` adapter (highway-env, Tseng et al. App. C) and its IDM/MOBIL expert.

Runs on tiny highway-fast scenes (few cars, a few seconds): highway-env simulates in pure Python.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from tests._cli_roundtrip import train_bc_then_eval
from tests._torch_threads import one_torch_thread  # noqa: F401

EXTRA = "needs the 'highway' extra (highway-env): pip install 'offmarl[highway]'"
SMALL = {"fast": True, "duration": 4, "vehicles_count": 3}  # a short scene with few traffic cars


@pytest.fixture(scope="module")
def hw():
    pytest.importorskip("highway_env", reason=EXTRA)
    import offmarl.envs.highway as module

    return module


def make(hw, num_envs=2, seed=0, **kwargs):
    from offmarl.envs import make_env

    return make_env("highway", num_envs=num_envs, seed=seed, **{**SMALL, **kwargs})


def place(car, x: float, lane: int, speed: float) -> None:
    """Put a controlled car at longitudinal position ``x`` on lane ``lane`` (straight road: lane k at y = 4k)."""
    car.position = np.array([x, 4.0 * lane])
    car.heading, car.speed = 0.0, speed
    car.on_state_update()
    car.target_lane_index = car.lane_index
    car.speed_index = car.speed_to_index(speed)
    car.target_speed = car.index_to_speed(car.speed_index)


# ---- listing without the extra ---------------------------------------------------------------------------
def test_listing_names_the_missing_extra(monkeypatch):
    from offmarl.commands.envs import describe_env

    monkeypatch.setitem(sys.modules, "highway_env", None)  # import highway_env -> ImportError
    monkeypatch.delitem(sys.modules, "offmarl.envs.highway", raising=False)
    row = describe_env("highway")
    assert not row["available"] and row["source"] == "highway"
    assert row["reason"].startswith("needs the extra 'highway'")
    from offmarl.cli import app

    result = CliRunner().invoke(app, ["envs"])
    assert result.exit_code == 0 and "pip install 'offmarl[highway]'" in " ".join(result.stdout.split())


# ---- spec, observations, actions -------------------------------------------------------------------------
def test_spec_shapes_and_state(hw):
    env = make(hw, num_envs=2)
    spec = env.spec
    assert (spec.n_agents, spec.obs_dim, spec.obs_dims, spec.state_dim) == (3, 25, (25, 25, 25), 75)
    assert spec.n_actions == 5 and spec.has_avail_actions and spec.episode_limit == 4
    assert spec.kwargs == {"fast": True, "controlled_vehicles": 3, "duration": 4, "vehicles_count": 3, "lanes_count": 3,
                           "observed_vehicles": 5, "normalize_reward": True, "expert_hints": True}
    ts = env.reset()
    assert ts.obs.shape == (2, 3, 25) and ts.state.shape == (2, 75) and ts.avail_actions.shape == (2, 3, 5)
    np.testing.assert_array_equal(ts.state, ts.obs.reshape(2, 75))  # state = the agents' observations
    # own row first: presence 1, then highway-env's normalized kinematics of the car itself
    sub = env.sub_envs[0].env
    own = ts.obs[0, :, :5]
    assert np.all(own[:, 0] == 1.0)
    speeds = np.array([car.velocity[0] for car in sub.controlled_vehicles])
    np.testing.assert_allclose(own[:, 3], speeds / 80.0, atol=1e-6)  # vx mapped from [-80, 80] m/s to [-1, 1]
    assert ts.info["expert_action"].shape == (2, 3) and ts.info["crashed"].shape == (2, 3)
    env.close()


def test_action_order_is_the_papers(hw):
    from highway_env.envs.common.action import DiscreteMetaAction

    labels = [DiscreteMetaAction.ACTIONS_ALL[int(i)] for i in hw.TO_HIGHWAY]
    assert labels == ["IDLE", "SLOWER", "FASTER", "LANE_LEFT", "LANE_RIGHT"]
    np.testing.assert_array_equal(hw.FROM_HIGHWAY[hw.TO_HIGHWAY], np.arange(5))

    env = make(hw, num_envs=1, vehicles_count=0)
    env.reset()
    cars = env.sub_envs[0].env.controlled_vehicles
    for car, x in zip(cars, (100.0, 200.0, 300.0)):
        place(car, x, lane=1, speed=25.0)
    env.step(np.array([[hw.FASTER, hw.SLOWER, hw.LANE_LEFT]]))
    assert [car.target_speed for car in cars[:2]] == [30.0, 20.0]
    assert cars[2].target_lane_index[2] == 0  # lane left = towards lane 0


def test_avail_actions_follow_highway_env(hw):
    env = make(hw, num_envs=1, vehicles_count=0)
    env.reset()
    cars = env.sub_envs[0].env.controlled_vehicles
    place(cars[0], 100.0, lane=0, speed=20.0)  # leftmost lane, lowest target speed
    place(cars[1], 200.0, lane=2, speed=30.0)  # rightmost lane, top target speed
    place(cars[2], 300.0, lane=1, speed=25.0)
    ts = env.step(np.zeros((1, 3), dtype=np.int64))  # no-op: keeps lanes and target speeds
    #                    no-op slower faster left  right
    expected = np.array([[True, False, True, False, True],
                         [True, True, False, True, False],
                         [True, True, True, True, True]])
    np.testing.assert_array_equal(ts.avail_actions[0], expected)


# ---- reward, termination, truncation, auto-reset ---------------------------------------------------------
def test_reward_by_hand(hw):
    crashed = np.array([True, False, False])
    speed = np.array([25.0, 35.0, 15.0])  # scaled: 0.5, 1 (clipped), 0 (clipped)
    np.testing.assert_allclose(hw.agent_rewards(crashed, speed, normalize=False), [-24.9, 0.2, 0.0], atol=1e-6)
    np.testing.assert_allclose(hw.agent_rewards(crashed, speed), [0.1 / 25.2, 1.0, 25.0 / 25.2], atol=1e-6)


def test_step_reward_matches_each_cars_speed(hw):
    for normalize in (True, False):
        env = make(hw, num_envs=1, vehicles_count=0, normalize_reward=normalize)
        env.reset()
        ts = env.step(np.full((1, 3), hw.NOOP))
        cars = env.sub_envs[0].env.controlled_vehicles
        forward = np.array([car.speed * np.cos(car.heading) for car in cars])
        np.testing.assert_allclose(ts.info["speed"][0], forward, rtol=1e-6)
        raw = 0.2 * np.clip((forward - 20.0) / 10.0, 0, 1)
        want = (raw + 25.0) / 25.2 if normalize else raw
        np.testing.assert_allclose(ts.reward[0], want, rtol=1e-5)
        assert not ts.done[0]


def test_a_crash_ends_the_episode_and_keeps_the_final_observation(hw):
    env = make(hw, num_envs=2, vehicles_count=0)
    env.reset()
    cars = env.sub_envs[0].env.controlled_vehicles
    place(cars[0], 100.0, lane=1, speed=25.0)
    place(cars[1], 103.0, lane=1, speed=20.0)  # 3 m ahead of car 0: they collide within the step
    place(cars[2], 400.0, lane=0, speed=25.0)
    ts = env.step(np.full((2, 3), hw.NOOP))
    assert ts.terminated.tolist() == [True, False] and not ts.truncated.any()
    np.testing.assert_array_equal(ts.info["crashed"][0], [True, True, False])
    assert ts.reward[0, 0] < 0.05 and ts.reward[0, 1] < 0.05 and ts.reward[0, 2] > 0.99  # ~0 on a crash, ~1 driving
    # final_obs: the crash scene (car 1 right in front of car 0); obs: a fresh episode
    ahead = ts.final_obs[0, 0, 5:10]  # closest other car of agent 0: [presence, dx, dy, dvx, dvy]
    assert ahead[0] == 1.0 and np.hypot(ahead[1] * 200.0, ahead[2] * 12.0) < 6.0  # car 1 within 6 m (x, y: +-200, 12 m)
    assert not np.array_equal(ts.obs[0], ts.final_obs[0])
    np.testing.assert_array_equal(ts.final_obs[1], ts.obs[1])
    np.testing.assert_array_equal(ts.final_state[0], ts.final_obs[0].reshape(-1))


def test_truncation_after_duration_steps(hw):
    env = make(hw, num_envs=1, vehicles_count=0, duration=2)
    ts = env.reset()
    cars = env.sub_envs[0].env.controlled_vehicles
    for car, x in zip(cars, (100.0, 300.0, 500.0)):
        place(car, x, lane=1, speed=25.0)
    ts = env.step(np.full((1, 3), hw.NOOP))
    assert not ts.done[0]
    ts = env.step(np.full((1, 3), hw.NOOP))
    assert ts.truncated[0] and not ts.terminated[0]
    assert ts.final_obs[0, 0, 3] == pytest.approx(25.0 / 80.0, abs=0.02)  # the old episode's speed, not a new one


def test_same_seed_same_episodes(hw):
    runs = []
    for _ in range(2):
        env = make(hw, num_envs=2, seed=5)
        ts = env.reset()
        obs = [ts.obs]
        for _ in range(2):
            ts = env.step(ts.info["expert_action"])
            obs.append(ts.obs)
        runs.append(np.stack(obs))
    np.testing.assert_array_equal(runs[0], runs[1])
    other = make(hw, num_envs=2, seed=6).reset().obs
    assert not np.array_equal(runs[0][0], other)


def test_bad_arguments(hw):
    with pytest.raises(ValueError, match="highway: duration must be an integer >= 1, got 0"):
        make(hw, duration=0)
    with pytest.raises(ValueError, match="highway: controlled_vehicles must be an integer >= 1, got 'x'"):
        make(hw, controlled_vehicles="x")


# ---- the IDM/MOBIL expert --------------------------------------------------------------------------------
def test_idm_mobil_advice_by_hand(hw):
    env = make(hw, num_envs=1, vehicles_count=0)
    env.reset()
    sub = env.sub_envs[0].env
    a, b, c = sub.controlled_vehicles
    place(a, 100.0, lane=1, speed=25.0)
    place(b, 112.0, lane=1, speed=20.0)  # 12 m ahead of a: IDM brakes hard even at 20 m/s -> slow down
    place(c, 600.0, lane=1, speed=25.0)  # alone: IDM accelerates to 30 m/s, MOBIL gains nothing -> accelerate
    assert [hw.idm_mobil_action(sub, car) for car in (a, b, c)] == [hw.SLOWER, hw.FASTER, hw.FASTER]
    # 100 m behind a car 10 m/s slower, free lanes beside: IDM at 30 m/s brakes by 3 (d* = 10 + 45 + 300 / sqrt(60)
    # = 93.7 m; 3 (93.7 / 100)^2 = 2.6 m/s^2 > 2: 25 m/s wanted), but MOBIL's gain (0 - (-2.6)) > 0.2: overtake
    place(a, 100.0, lane=1, speed=30.0)
    place(b, 200.0, lane=1, speed=20.0)
    assert hw.idm_mobil_action(sub, a) in (hw.LANE_LEFT, hw.LANE_RIGHT)
    # 40 m behind: IDM would brake by 3 (93.7 / 40)^2 = 16 > 5 m/s^2 (its comfortable limit): brake first
    place(b, 140.0, lane=1, speed=20.0)
    assert hw.idm_mobil_action(sub, a) == hw.SLOWER
    assert sub.road.vehicles.count(a) == 1  # the car is back on the road after the queries


def test_expert_plays_the_advice_and_needs_hints(hw):
    from offmarl.policies.registry import behavior_policy_names, make_behavior_policy

    env = make(hw, num_envs=2)
    assert "expert" in behavior_policy_names("highway")
    expert = make_behavior_policy("expert", env.spec)
    ts = env.reset()
    actions = expert.act(ts, first=True)
    np.testing.assert_array_equal(actions, ts.info["expert_action"])
    assert np.take_along_axis(ts.avail_actions, actions[..., None], -1).all()  # advice is always available
    no_hints = make(hw, num_envs=1, expert_hints=False)
    assert "expert_action" not in no_hints.reset().info
    with pytest.raises(ValueError, match="expert_hints=True"):
        make_behavior_policy("expert", no_hints.spec)


# ---- PettingZoo, rendering, CLI pipeline -----------------------------------------------------------------
def test_pettingzoo_parallel_api(hw):
    from pettingzoo.test import parallel_api_test

    from offmarl.envs import pettingzoo_env

    env = pettingzoo_env("highway", seed=0, **SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=env.spec.episode_limit + 3)
    assert not [str(w.message) for w in caught if "pettingzoo" in w.filename and "test" in w.filename]
    obs, infos = env.reset(seed=1)
    assert env.agents == ["car_0", "car_1", "car_2"] and obs["car_1"].shape == (25,)
    assert infos["car_0"]["action_mask"].shape == (5,)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    env.close()


def test_cli_collect_train_eval(hw, tmp_path):
    from offmarl.cli import app

    runner = CliRunner()
    data, run = tmp_path / "hw.h5", tmp_path / "run"
    result = runner.invoke(app, ["collect", "highway", "--policy", "expert", "--episodes", "2", "--num-envs", "2",
                                 "--out", str(data), "--env-set", "fast=true", "--env-set", "duration=3",
                                 "--env-set", "vehicles_count=2", "--normalization-episodes", "4"])
    assert result.exit_code == 0, result.output
    assert "Collected highway with expert: 2 episodes, 6 steps" in result.output
    assert "normalized by random" in result.output and "(behaviour expert)" in result.output
    record = train_bc_then_eval(runner, data, run, episodes=2, train_eval_episodes=2)
    assert record["episodes"] == 2 and len(record["per_agent_return"]) == 3
    assert all(1 <= length <= 3 for length in record["lengths"])
    assert -1.0 <= record["return_mean"] <= 3.0  # normalized reward: at most 1 per step


def test_highway_recipes_are_declared():
    from offmarl.collect.recipes import get_recipe

    for tier in ("good", "normal", "poor"):
        recipe = get_recipe(f"tseng/highway/{tier}")
        assert (recipe.env, recipe.tier, recipe.episodes, recipe.env_kwargs) == ("highway", tier, 1000, {"fast": True})
