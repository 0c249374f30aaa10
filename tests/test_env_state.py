"""Saving and restoring an env's state (``BatchedEnv.get_state`` / ``set_state``, ``offmarl.envs.base``).

Every native env (and SMAX when its extra is installed) is stepped, saved through a weights-only
checkpoint, restored into a fresh env built the same way -- but with another seed, so the random
generator must come from the state -- and both are then stepped with the same actions, across
auto-resets: every TimeStep must be identical, bit for bit.
"""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch

from offmarl.core.files import atomic_torch_save
from offmarl.envs import TimeStep, list_envs, make_env
from tests._collect_toy_env import ToyClimbEnv

B = 4
STEPS_BEFORE, STEPS_AFTER = 7, 10
HAS_SMAX = importlib.util.find_spec("jaxmarl") is not None
SMAX_EXTRA = "needs the smax extra: pip install 'offmarl[smax]'"

# (name, kwargs): short episodes, so that the compared steps cross auto-resets
NATIVE_CASES = [
    ("equal_space", {"episode_limit": 5}),
    ("fill_in", {"horizon": 6}),
    ("fill_in", {"height": 4, "width": 5}),  # 6 free cells: episodes also end by termination
    # a small room: agents carry objects when the state is taken, and one is delivered (and respawned) after
    ("grid_world", {"horizon": 12, "objects_per_agent": 2,
                    "layout": ["######", "#....#", "#..T.#", "#....#", "######"]}),
    ("matrix_game", {}),
    ("mpe_cn_3ls3l", {"episode_limit": 6, "local_ratio": 0.5}),
    ("mpe_cn_4ls4l", {"episode_limit": 6}),
    ("mpe_pp_3p1p", {"episode_limit": 6}),
]
SMAX_CASE = pytest.param("smac_3s_vs_3z", {"episode_limit": 6},
                         marks=pytest.mark.skipif(not HAS_SMAX, reason=SMAX_EXTRA))


def random_actions(env, ts: TimeStep, rng: np.random.Generator) -> np.ndarray:
    """Uniform over each agent's available actions (discrete) or over the action box (continuous)."""
    spec = env.spec
    if spec.discrete:
        avail = ts.avail_actions if ts.avail_actions is not None else np.ones((env.num_envs, spec.n_agents,
                                                                              spec.n_actions), bool)
        return np.where(avail, rng.random(avail.shape), -1.0).argmax(axis=-1)
    low, high = spec.action_space.low, spec.action_space.high
    return rng.uniform(low, high, size=(env.num_envs, spec.n_agents, spec.act_dim)).astype(np.float32)


def assert_same_timestep(ours: TimeStep, theirs: TimeStep, step: int) -> None:
    for field in dataclasses.fields(TimeStep):
        a, b = getattr(ours, field.name), getattr(theirs, field.name)
        if field.name == "info":
            assert a.keys() == b.keys(), f"step {step}: info keys differ"
            for key in a:
                assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), f"step {step}: info[{key}]"
        elif a is None or b is None:
            assert a is None and b is None, f"step {step}: {field.name} is None in only one TimeStep"
        else:
            assert a.dtype == b.dtype and np.array_equal(a, b), f"step {step}: {field.name} differs"


def assert_same_state(ours, theirs, where: str = "state") -> None:
    """Saved states equal, arrays with their dtypes (tensors from a checkpoint compared as arrays)."""
    if isinstance(ours, dict):
        assert isinstance(theirs, dict) and ours.keys() == theirs.keys(), where
        for key in ours:
            assert_same_state(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(ours, (np.ndarray, torch.Tensor)):
        a, b = np.asarray(ours), np.asarray(theirs)
        assert a.dtype == b.dtype and np.array_equal(a, b), where
    else:
        assert ours == theirs, where


def save_and_load(state: dict, tmp_path) -> dict:
    """``state`` after a trip through a weights-only checkpoint (arrays come back as tensors)."""
    path = tmp_path / "env_state.pt"
    atomic_torch_save(state, path)
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("name, kwargs", [*NATIVE_CASES, SMAX_CASE])
def test_restored_env_steps_exactly_like_the_original(name, kwargs, tmp_path):
    rng = np.random.default_rng(0)
    original = make_env(name, num_envs=B, seed=0, **kwargs)
    assert original.restorable
    ts = original.reset(seed=1)
    for _ in range(STEPS_BEFORE):
        ts = original.step(random_actions(original, ts, rng))
    loaded = save_and_load(original.get_state(), tmp_path)

    restored = make_env(name, num_envs=B, seed=99, **kwargs)  # another seed: the generator comes from the state
    restored.set_state(loaded)
    assert_same_state(original.get_state(), restored.get_state())
    ended = 0
    for step in range(STEPS_AFTER):
        actions = random_actions(original, ts, rng)
        ts = original.step(actions)
        assert_same_timestep(ts, restored.step(actions), step)
        ended += int(ts.done.sum())
    assert ended > 0, "the compared steps should cross an auto-reset"


def test_every_native_env_is_restorable_and_tested():
    native = {entry.name for entry in list_envs()
              if entry.source == "native" and entry.factory.startswith("offmarl.envs.")}  # not the test envs
    assert native == {name for name, _ in NATIVE_CASES}
    for name in native:
        assert make_env(name, num_envs=1).restorable, name


def test_a_state_saved_before_the_first_reset_restores_an_unreset_env(tmp_path):
    original = make_env("fill_in", num_envs=2, seed=3)
    restored = make_env("fill_in", num_envs=2, seed=4)
    restored.set_state(save_and_load(original.get_state(), tmp_path))
    assert_same_timestep(original.reset(), restored.reset(), step=0)  # the generator came along


@pytest.mark.parametrize("build, mismatch", [
    (lambda: make_env("mpe_cn_4ls4l", num_envs=B, episode_limit=6), "taken from env 'mpe_cn_3ls3l'"),
    (lambda: make_env("mpe_cn_3ls3l", num_envs=2, episode_limit=6), "holds 4 sub-envs, this env has 2"),
    (lambda: make_env("mpe_cn_3ls3l", num_envs=B, episode_limit=7), r"other kwargs: episode_limit=6 \(here 7\)"),
])
def test_a_state_of_another_env_is_refused_with_the_mismatch(build, mismatch):
    state = make_env("mpe_cn_3ls3l", num_envs=B, seed=0, episode_limit=6).get_state()
    with pytest.raises(ValueError, match=mismatch) as error:
        build().set_state(state)
    assert "\n" not in str(error.value)


def test_a_state_of_another_shape_is_refused_and_changes_nothing(tmp_path):
    env = make_env("grid_world", num_envs=2, seed=0)
    env.reset(seed=0)
    before = env.get_state()
    state = save_and_load(before, tmp_path)
    state["attributes"]["_t"] = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"grid_world: saved _t is int64\[3\], the env holds int64\[2\]"):
        env.set_state(state)
    assert_same_state(before, env.get_state())


def test_envs_without_a_restorable_state_say_so():
    env = ToyClimbEnv()
    assert not env.restorable
    for call in (env.get_state, lambda: env.set_state({})):
        with pytest.raises(NotImplementedError, match="toy_climb cannot save or restore its state: a resume restarts"):
            call()


@pytest.mark.parametrize("name, extra, kwargs", [
    ("highway", "highway_env", {"fast": True, "vehicles_count": 3}),
    ("mamujoco_hopper_3x1", "gymnasium_robotics", {}),
])
def test_external_simulator_adapters_are_not_restorable(name, extra, kwargs):
    pytest.importorskip(extra, reason=f"needs the package {extra}")
    env = make_env(name, num_envs=1, seed=0, **kwargs)
    try:
        assert not env.restorable
        with pytest.raises(NotImplementedError, match=f"{name} cannot save or restore its state"):
            env.get_state()
    finally:
        env.close()


@pytest.mark.skipif(not HAS_SMAX, reason=SMAX_EXTRA)
def test_smax_saves_typed_prng_keys_as_their_data(tmp_path):
    """jax's typed key arrays (``jax.random.key``) are saved as ``key_data`` plus the implementation's name."""
    import jax

    env = make_env("smac_3s_vs_3z", num_envs=B, seed=0)  # B as above: the compiled step is reused
    env.reset(seed=0)
    env._keys = jax.random.split(jax.random.key(5), B)  # what the env holds when jax makes typed keys
    state = env.get_state()
    assert state["key_impl"] == str(jax.random.key_impl(env._keys)) and state["keys"].dtype == np.uint32
    restored = make_env("smac_3s_vs_3z", num_envs=B, seed=1)
    restored.set_state(save_and_load(state, tmp_path))
    assert jax.dtypes.issubdtype(restored._keys.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(restored._keys), jax.random.key_data(env._keys))
