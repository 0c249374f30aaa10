"""The MaMuJoCo adapters (gymnasium-robotics; SIT App. C, MABCQ §4 / Table 6)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from tests._cli_roundtrip import train_bc_then_eval
from tests._torch_threads import one_torch_thread  # noqa: F401

EXTRA = "needs the 'mamujoco' extra (gymnasium-robotics, mujoco): pip install 'offmarl[mamujoco]'"
# name: (n_agents, act_dim, state_dim = MABCQ Table 6, obs_dims of MaMuJoCo's local observations)
MAPS = {
    "mamujoco_halfcheetah_2x3": (2, 3, 17, (12, 12)),
    "mamujoco_walker2d_2x3": (2, 3, 17, (12, 12)),
    "mamujoco_hopper_3x1": (3, 1, 11, (8, 9, 8)),
    "mamujoco_ant_2x4": (2, 4, 27, (21, 21)),
    "mamujoco_ant_4x2": (4, 2, 27, (18, 18, 18, 18)),
}


@pytest.fixture(scope="module")
def mj():
    pytest.importorskip("gymnasium_robotics", reason=EXTRA)
    import offmarl.envs.mamujoco as module

    return module


def make(name, num_envs=2, seed=0, **kwargs):
    from offmarl.envs import make_env

    return make_env(name, num_envs=num_envs, seed=seed, **kwargs)


def random_actions(rng, env):
    spec = env.spec
    return rng.uniform(-1, 1, (env.num_envs, spec.n_agents, spec.act_dim)).astype(np.float32)


def test_listing_names_the_missing_extra(monkeypatch):
    from offmarl.commands.envs import describe_env

    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)
    monkeypatch.delitem(sys.modules, "offmarl.envs.mamujoco", raising=False)
    row = describe_env("mamujoco_hopper_3x1")
    assert not row["available"] and row["reason"].startswith("needs the extra 'mamujoco'")


@pytest.mark.parametrize("name", list(MAPS))
def test_spec_and_observations_are_mamujocos(mj, name):
    """Spec sizes of the papers; obs = MaMuJoCo's own local observations (zero-padded); state = the robot's."""
    n, act_dim, state_dim, obs_dims = MAPS[name]
    env = make(name, num_envs=2)
    spec = env.spec
    assert (spec.n_agents, spec.act_dim, spec.state_dim, spec.obs_dims) == (n, act_dim, state_dim, obs_dims)
    assert spec.obs_dim == max(obs_dims) and spec.episode_limit == 1000 and not spec.discrete
    np.testing.assert_array_equal(spec.action_space.low, -1.0)
    np.testing.assert_array_equal(spec.action_space.high, 1.0)
    assert spec.kwargs == {"episode_limit": 1000, "agent_obs": "local", "agent_obsk": 1}
    rng = np.random.default_rng(0)
    ts = env.reset()
    for _ in range(3):
        ts = env.step(random_actions(rng, env))
    multiagent = env.sub_envs[1].multiagent
    local = multiagent._get_obs()  # MaMuJoCo builds these from the MuJoCo data, not from our index map
    for i, agent in enumerate(multiagent.possible_agents):
        np.testing.assert_allclose(ts.obs[1, i, : obs_dims[i]], local[agent], rtol=1e-6, atol=1e-6)
        assert np.all(ts.obs[1, i, obs_dims[i]:] == 0)
    np.testing.assert_allclose(ts.state[1], multiagent.state(), rtol=1e-6, atol=1e-6)
    env.close()


def test_actions_reach_mamujocos_actuators_and_reward_is_the_robots(mj):
    import gymnasium as gym

    from offmarl.envs._gym_batch import derive_sub_seed

    env = make("mamujoco_hopper_3x1", num_envs=1, seed=3)
    env.reset()
    reference = gym.make("Hopper-v5")  # the single-agent robot, with the seed the batch gave sub-env 0
    reference.reset(seed=derive_sub_seed(3, 0))
    actions = np.array([[[0.5], [-0.25], [0.75]]], dtype=np.float32)
    multiagent = env.sub_envs[0].multiagent
    want = multiagent.map_local_actions_to_global_action({f"agent_{i}": actions[0, i] for i in range(3)})
    ts = env.step(actions)
    np.testing.assert_allclose(env.sub_envs[0].env.unwrapped.data.ctrl, want)
    state, reward, terminated, _, _ = reference.step(want)
    np.testing.assert_allclose(ts.state[0], state, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ts.reward[0], [reward] * 3, rtol=1e-6)  # the robot's reward, broadcast
    assert ts.terminated[0] == terminated
    env.close()


def test_episode_limit_truncates_and_auto_reset_keeps_the_final_observation(mj):
    import gymnasium as gym

    from offmarl.envs._gym_batch import derive_sub_seed

    env = make("mamujoco_halfcheetah_2x3", num_envs=2, seed=1, episode_limit=3)
    assert env.spec.episode_limit == 3
    reference = gym.make("HalfCheetah-v5")  # sub-env 1 as a plain Gymnasium robot
    want, _ = reference.reset(seed=derive_sub_seed(1, 1))
    ts = env.reset()
    np.testing.assert_allclose(ts.state[1], want, rtol=1e-6)
    zero = np.zeros((2, 2, 3), np.float32)
    for t in range(3):
        ts = env.step(zero)
        want, reward, *_ = reference.step(np.zeros(6))
        assert ts.truncated.all() == (t == 2) and not ts.terminated.any()
    np.testing.assert_allclose(ts.final_state[1], want, rtol=1e-5, atol=1e-6)  # reached by the 3rd action
    assert ts.reward[1, 0] == pytest.approx(reward, rel=1e-5)
    restart, _ = reference.reset()  # the auto-reset continues the sub-env's generator
    np.testing.assert_allclose(ts.state[1], restart, rtol=1e-6)
    assert not np.allclose(ts.final_obs[1], ts.obs[1])
    env.close()


def test_hopper_falls_and_terminates(mj):
    env = make("mamujoco_hopper_3x1", num_envs=1, seed=0)
    env.reset()
    push = np.full((1, 3, 1), 1.0, np.float32)  # every joint at full torque: the hopper falls over
    for step in range(1, 200):
        ts = env.step(push)
        if ts.done[0]:
            break
    assert ts.terminated[0] and not ts.truncated[0] and step < 200
    height = ts.final_state[0, 0]  # qpos[1] (rootz) comes first: x is excluded
    angle = ts.final_state[0, 1]
    assert not (0.7 < height and abs(angle) < 0.2)  # Gymnasium Hopper-v5's healthy range is violated
    env.close()


def test_global_observations_and_same_seed(mj):
    env = make("mamujoco_ant_4x2", num_envs=2, seed=4, agent_obs="global", episode_limit=200)
    assert env.spec.obs_dims == (27,) * 4 and env.spec.kwargs["agent_obs"] == "global"
    ts = env.reset()
    np.testing.assert_array_equal(ts.obs, np.repeat(ts.state[:, None], 4, axis=1))
    again = make("mamujoco_ant_4x2", num_envs=2, seed=4).reset()
    np.testing.assert_array_equal(again.state, ts.state)
    assert not np.array_equal(ts.state[0], ts.state[1])  # sub-envs get distinct seeds


def test_bad_arguments(mj):
    with pytest.raises(ValueError, match="mamujoco_hopper_3x1: episode_limit must be an integer >= 1, got 0"):
        make("mamujoco_hopper_3x1", episode_limit=0)
    with pytest.raises(ValueError, match="agent_obs must be one of local, global, got 'all'"):
        make("mamujoco_hopper_3x1", agent_obs="all")


def test_only_random_until_a_trained_expert_exists(mj, tmp_path):
    from offmarl.cli import app
    from offmarl.policies.registry import behavior_policy_names

    assert behavior_policy_names("mamujoco_walker2d_2x3") == ["random"]
    result = CliRunner().invoke(app, ["collect", "mamujoco_walker2d_2x3", "--tier", "good", "--episodes", "1",
                                      "--num-envs", "1", "--out", str(tmp_path / "x.h5"),
                                      "--env-set", "episode_limit=2"])
    assert result.exit_code == 2 and "has no behaviour policy 'expert'" in result.output


def test_pettingzoo_parallel_api(mj):
    from pettingzoo.test import parallel_api_test

    from offmarl.envs import pettingzoo_env

    env = pettingzoo_env("mamujoco_hopper_3x1", seed=0, episode_limit=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=15)
    assert not [str(w.message) for w in caught if "pettingzoo" in w.filename and "test" in w.filename]
    obs, _ = env.reset(seed=2)
    assert [obs[a].shape for a in env.agents] == [(8,), (9,), (8,)]  # unpadded
    assert env.state().shape == (11,)
    env.close()


def test_render(mj):
    env = make("mamujoco_halfcheetah_2x3", num_envs=1)
    env.reset()
    try:
        frame = env.render(0)
    except Exception as exc:  # no OpenGL (EGL / OSMesa) on this machine
        env.close()
        pytest.skip(f"MuJoCo cannot render here: {type(exc).__name__}: {exc}")
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    env.close()


def test_cli_collect_train_eval(mj, tmp_path):
    from offmarl.cli import app

    runner = CliRunner()
    data, run = tmp_path / "hopper.h5", tmp_path / "run"
    result = runner.invoke(app, ["collect", "mamujoco_hopper_3x1", "--policy", "random", "--episodes", "3",
                                 "--num-envs", "3", "--out", str(data), "--env-set", "episode_limit=6"])
    assert result.exit_code == 0, result.output
    assert "Collected mamujoco_hopper_3x1 with random: 3 episodes" in result.output
    record = train_bc_then_eval(runner, data, run, episodes=2, train_eval_episodes=2)
    assert record["episodes"] == 2 and len(record["per_agent_return"]) == 3
    assert all(1 <= length <= 6 for length in record["lengths"])
    returns = np.array(record["returns"])  # [episodes, n]: the robot's reward, the same for every agent
    np.testing.assert_allclose(returns, returns[:, :1].repeat(3, axis=1))
