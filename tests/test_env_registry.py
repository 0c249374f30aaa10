"""The registry's spec functions: ``env_spec(name, kwargs)`` is the spec ``make_env(name, **kwargs)`` has, computed
without building the env, and refuses the arguments the env refuses (the dataset loader checks cards with it)."""

from __future__ import annotations

import inspect

import pytest

from offmarl.envs import env_spec, get_env_entry, list_envs, make_env
from offmarl.envs.registry import _import

NATIVE = [entry.name for entry in list_envs() if entry.source == "native" and entry.spec]
# each native env with arguments that change its spec
VARIANTS = {
    "equal_space": {"n_agents": 5, "episode_limit": 7},
    "fill_in": {"n_agents": 2, "layout": ["#####", "#...#", "#.#.#", "#####"], "starts": [[1, 1], [1, 3]]},
    "grid_world": {"n_agents": 2, "objects_per_agent": 1, "horizon": 9},
    "matrix_game": {"payoff": [[1, 2, 3], [4, 5, 6]]},
    "mpe_cn_3ls3l": {"visible_seekers": 0, "visible_landmarks": 3},
    "mpe_cn_4ls4l": {"episode_limit": 5},
    "mpe_pp_3p1p": {"num_obstacles": 0},
}
EXTRAS = {"highway": "highway_env", "mamujoco": "gymnasium_robotics", "smax": "jaxmarl"}


def keyword_defaults(fn, keyword_only: bool = False) -> dict[str, object]:
    """The keyword arguments of ``fn`` that an env's kwargs may set (they have defaults), with their defaults."""
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.default is not p.empty and p.name not in ("num_envs", "seed")
            and (p.kind is p.KEYWORD_ONLY or not keyword_only)}


def test_every_buildable_catalog_entry_has_a_spec_function():
    assert NATIVE and set(VARIANTS) == set(NATIVE)
    catalog = [e for e in list_envs() if e.factory.startswith("offmarl.envs.")]  # not a test's toy env
    missing = [e.name for e in catalog if e.spec is None and not e.unavailable_reason]
    assert not missing


@pytest.mark.parametrize("name", NATIVE)
def test_native_spec_functions_equal_the_built_envs_spec(name: str):
    for kwargs in ({}, VARIANTS[name]):
        env = make_env(name, **kwargs)
        assert env_spec(name, kwargs) == env.spec, kwargs
        assert env_spec(name, env.spec.kwargs) == env.spec  # a card's env_kwargs are the spec's kwargs


@pytest.mark.parametrize("name", [e.name for e in list_envs() if e.spec])
def test_spec_functions_take_the_factorys_keyword_arguments(name: str):
    entry = get_env_entry(name)
    pytest.importorskip(EXTRAS.get(entry.source, "numpy"), reason=f"needs the {entry.source} extra")
    factory, spec = _import(entry, entry.factory), _import(entry, entry.spec)
    # a map's factory binds the map and forwards **kwargs to the keyword-only arguments of a class or maker
    forwarded = {"offmarl.envs.mpe:cn": "CooperativeNavigationEnv", "offmarl.envs.mpe:pp": "PredatorPreyEnv",
                 "offmarl.envs.smax:": "SMAXEnv", "offmarl.envs.mamujoco:": "make_mamujoco"}
    target = next((t for prefix, t in forwarded.items() if entry.factory.startswith(prefix)), None)
    if target is None:
        assert keyword_defaults(spec) == keyword_defaults(factory)
    else:
        assert keyword_defaults(spec) == keyword_defaults(getattr(inspect.getmodule(factory), target), True)


@pytest.mark.parametrize("name", ["highway", "mamujoco_hopper_3x1", "smac_3s_vs_3z"])
def test_extra_spec_functions_equal_the_built_envs_spec(name: str):
    pytest.importorskip(EXTRAS[get_env_entry(name).source], reason="needs the env's extra")
    env = make_env(name)
    try:
        assert env_spec(name) == env.spec
        assert env_spec(name, env.spec.kwargs) == env.spec
    finally:
        env.close()


def test_every_smax_map_has_its_spec_without_compiling():
    pytest.importorskip("jaxmarl", reason="needs the smax extra")
    specs = {e.name: env_spec(e.name) for e in list_envs() if e.source == "smax" and not e.unavailable_reason}
    assert specs["smac_2s3z"].n_agents == 5 and specs["smac_2s3z"].n_actions == 5 + 5
    assert specs["smac_8m_vs_9m"].obs_dims == (13 * 7 + 13 * 9 + 10,) * 8  # smax.py: 13 (n-1) + 13 m + 10


def test_arguments_the_env_refuses():
    with pytest.raises(KeyError, match="unknown environment 'nope'"):
        env_spec("nope")
    with pytest.raises(ValueError, match=r"environment 'mpe_cn_3ls3l' takes no argument 'bogus' \(its arguments: "
                                         r"episode_limit, local_ratio, visible_landmarks, visible_seekers\)"):
        env_spec("mpe_cn_3ls3l", {"bogus": 1})
    with pytest.raises(ValueError, match="takes no argument 'bogus'"):  # make_env says it the same way
        make_env("mpe_cn_3ls3l", bogus=1)
    with pytest.raises(ValueError, match="equal_space: n_agents must be >= 2"):
        env_spec("equal_space", {"n_agents": 1})
    with pytest.raises(RuntimeError, match="smac_1c3s5z' cannot be built"):
        env_spec("smac_1c3s5z")
