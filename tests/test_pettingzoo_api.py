"""Every native env passes PettingZoo's parallel API test through ``offmarl.envs.pettingzoo_env``."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from offmarl.envs import list_envs, make_env, pettingzoo_env

NATIVE = [entry for entry in list_envs() if entry.source == "native"]


def module_built(factory: str) -> bool:
    try:
        return importlib.util.find_spec(factory.partition(":")[0]) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize("entry", NATIVE, ids=[entry.name for entry in NATIVE])
def test_parallel_api(entry):
    if not module_built(entry.factory):
        pytest.skip("module not built yet")
    env = pettingzoo_env(entry.name, seed=0)
    spec = env.spec
    # enough cycles to reach the end of an episode (the test stops when every agent is done)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=spec.episode_limit + 5)
    # some API violations (live agents without observations, revived agents, ...) are only warnings
    complaints = [str(w.message) for w in caught if "pettingzoo" in w.filename and "test" in w.filename]
    assert not complaints, complaints

    obs, infos = env.reset(seed=1)
    assert env.agents == [f"{kind}_{i}" for i, kind in enumerate(spec.agent_types)] == env.possible_agents
    for i, agent in enumerate(env.agents):
        assert obs[agent].shape == (spec.obs_dims[i],) and obs[agent] in env.observation_space(agent)
        assert ("action_mask" in infos[agent]) == spec.has_avail_actions
    assert env.state().shape == (spec.state_dim,)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3
    steps = 0
    while env.agents:
        actions = {agent: env.action_space(agent).sample() for agent in env.agents}
        obs, rewards, terminations, truncations, infos = env.step(actions)
        steps += 1
    assert steps <= spec.episode_limit
    assert all(terminations[a] or truncations[a] for a in env.possible_agents)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})
    env.close()


def test_adapter_matches_batched_env_and_final_obs():
    """Observations are the batched env's unpadded slices; the last step returns ``final_obs``."""
    env = pettingzoo_env("equal_space", seed=7)
    batched = make_env("equal_space", num_envs=1, seed=7)
    obs, _ = env.reset()
    ts = batched.reset()
    np.testing.assert_array_equal(obs["agent_2"], ts.obs[0, 2])
    action = np.array([0.5, -0.5], dtype=np.float32)
    for t in range(25):
        obs, rewards, terms, truncs, _ = env.step({a: action for a in env.agents})
        ts = batched.step(np.tile(action, (1, 3, 1)))
    assert all(truncs.values()) and not any(terms.values()) and env.agents == []
    np.testing.assert_array_equal(obs["agent_0"], ts.final_obs[0, 0])
    np.testing.assert_array_equal(env.state(), ts.final_state[0])
    assert rewards["agent_1"] == pytest.approx(float(ts.reward[0, 1]))


def test_adapter_matrix_game_masks_and_errors():
    env = pettingzoo_env("matrix_game", payoff=[[1, 2, 3], [4, 5, 6]])
    _, infos = env.reset()
    np.testing.assert_array_equal(infos["agent_0"]["action_mask"], [1, 1, 0])
    np.testing.assert_array_equal(infos["agent_1"]["action_mask"], [1, 1, 1])
    with pytest.raises(ValueError, match="missing"):
        env.step({"agent_0": 0})
    env.step({"agent_0": 1, "agent_1": 2})
    _, rewards, terms, _, _ = env.step({"agent_0": 0, "agent_1": 0})
    assert rewards == {"agent_0": 6.0, "agent_1": 6.0} and all(terms.values())
    with pytest.raises(ValueError, match="render_mode"):
        pettingzoo_env("matrix_game", render_mode="human")
