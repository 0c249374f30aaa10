"""Recipes, the recipe cache, collection by arguments on the real envs, and ``offmarl collect``."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from typer.testing import CliRunner

from offmarl.algos.base import list_algos
from offmarl.collect import recipes as recipes_module
from offmarl.collect.compositions import parse_composition
from offmarl.collect.recipes import (
    build_recipe,
    collect_dataset,
    get_recipe,
    get_recipe_dataset,
    is_recipe,
    list_recipes,
    recipe_dataset_path,
)
from offmarl.collect.tiers import TIER_TARGETS
from offmarl.data.sources import PerAgentDatasets, datasets_of
from offmarl.envs.registry import env_spec, get_env_entry
from offmarl.policies.registry import behavior_policy_names

pytestmark = pytest.mark.timeout(60)


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _env_or_skip(name: str):
    """The env ``name`` with one sub-env, or a skip naming why it cannot be built yet."""
    try:
        from offmarl import make_env

        return make_env(name, num_envs=1, seed=0)
    except (ImportError, AttributeError, RuntimeError) as exc:
        pytest.skip(f"env {name!r} cannot be built yet: {exc}")


needs_io = pytest.mark.skipif(not _has("offmarl.data.io"), reason="offmarl.data.io not written yet")

REQUIRED = ["tseng/fill_in", "tseng/equal_space", "tseng/grid_world/good", "tseng/grid_world/normal",
            "tseng/grid_world/poor", "sit/mpe_cn_3ls3l/random", "sit/mpe_cn_3ls3l/medium", "sit/mpe_cn_4ls4l/random",
            "sit/mpe_cn_4ls4l/medium", "sit/mpe_pp_3p1p/random", "sit/mpe_pp_3p1p/medium",
            "mabcq/equal_space/per_agent", "mabcq/matrix_game"]


# ---- the recipe registry ---------------------------------------------------------------------------------
def test_required_recipes_are_listed():
    names = [name for name, _ in list_recipes()]
    assert names == sorted(names)
    for name in REQUIRED:
        assert is_recipe(name) and get_recipe(name).name in names  # an old name is an alias of a listed recipe
    assert not is_recipe("tseng/nope")
    # old names resolve to the recipes that now carry them; SIT's random quality is now low
    assert get_recipe("tseng/equal_space").name == "tseng/equal_space/scripted"
    assert get_recipe("sit/mpe_cn_3ls3l/random").name == "sit/mpe_cn_3ls3l/low/scripted"
    assert recipe_dataset_path("tseng/grid_world/good") == recipe_dataset_path("tseng/grid_world/good/scripted")
    assert get_recipe("sit/mpe_cn_3ls3l/low/trained").behaviour == "trained"
    with pytest.raises(KeyError, match="unknown recipe 'tseng/nope'; see `offmarl collect --list`"):
        get_recipe("tseng/nope")


def test_paper_episode_counts_and_modes():
    assert get_recipe("tseng/fill_in").policy == "random" and get_recipe("tseng/fill_in").episodes == 1000
    assert get_recipe("tseng/equal_space").policy == "expert" and get_recipe("tseng/equal_space").episodes == 1000
    for tier in ("good", "normal", "poor"):
        r = get_recipe(f"tseng/grid_world/{tier}")
        assert (r.env, r.tier, r.episodes) == ("grid_world", tier, 4000)
    # SIT App. C Table 8
    assert get_recipe("sit/mpe_cn_3ls3l/random").composition == "50%[r,r,r]+50%[r,r,m]"
    assert get_recipe("sit/mpe_cn_3ls3l/medium").composition == "100%[r,m,e]"
    assert get_recipe("sit/mpe_cn_4ls4l/random").composition == "50%[r,r,r,r]+50%[r,r,r,m]"
    assert get_recipe("sit/mpe_cn_4ls4l/medium").composition == "100%[r,r,e,e]"
    assert get_recipe("sit/mpe_pp_3p1p/medium").composition == "100%[r,m,e]"
    assert all(get_recipe(n).episodes == 10000 for n in REQUIRED if n.startswith("sit/"))
    assert get_recipe("mabcq/equal_space/per_agent").per_agent
    assert get_recipe("mabcq/matrix_game").policy == "behavior"
    # SIT App. C Table 7 on SMAX, Fig. 4b's extreme and Fig. 4c's balanced 2s3z data, scripted and trained alike
    for behaviour in ("scripted", "trained"):
        assert get_recipe(f"sit/smac_2s3z/low/{behaviour}").composition == "50%[r,r,r,r,r]+50%[m,m,m,m,m]"
        assert get_recipe(f"sit/smac_2s3z/medium/{behaviour}").composition == "100%[r,e,r,e,e]"
        assert get_recipe(f"sit/smac_3s_vs_5z/low/{behaviour}").composition == "50%[r,r,r]+50%[r,r,m]"
        assert get_recipe(f"sit/smac_8m/medium/{behaviour}").composition == "100%[r,e,e,e,e,e,e,e]"
        assert get_recipe(f"sit/smac_10m_vs_11m/medium/{behaviour}").composition == "100%[e,e,e,e,e,e,e,e,e,e]"
        assert get_recipe(f"sit/smac_2s3z/extreme/{behaviour}").composition == "99.5%[r,r,r,r,r]+0.5%[m,m,m,m,m]"
        assert get_recipe(f"sit/smac_2s3z/balanced_expert/{behaviour}").composition == "100%[e,e,e,e,e]"
        assert get_recipe(f"sit/smac_2s3z/low/{behaviour}").behaviour == behaviour


@pytest.mark.parametrize("name", [name for name, _ in list_recipes()])
def test_recipe_definition_is_valid(name):
    recipe = get_recipe(name)
    get_env_entry(recipe.env)  # registered
    assert recipe.tier is None or recipe.tier in TIER_TARGETS
    assert sum(x is not None and x is not False
               for x in (recipe.tier, recipe.composition, recipe.per_agent or None)) <= 1
    try:
        spec = env_spec(recipe.env, recipe.env_kwargs)  # without building it (SMAX compiles for seconds)
    except ImportError as exc:
        pytest.skip(f"env {recipe.env!r} needs an optional extra: {exc}")
    if recipe.composition is not None:
        parse_composition(recipe.composition, spec.n_agents)
    if recipe.behaviour == "scripted":
        assert recipe.policy in behavior_policy_names(recipe.env)
        assert not is_recipe(f"{name}/trained")  # a trained counterpart's scripted data is named .../scripted
    else:  # a trained recipe: its pools train online on its env, one pool or one per agent
        assert name.endswith("/trained") and recipe.policy == "expert"
        assert all(p.env == recipe.env and p.env_kwargs == recipe.env_kwargs for p in recipe.pools)
        assert len(recipe.pools) in (1, spec.n_agents)
        assert all(p.algo in list_algos() for p in recipe.pools)
        assert recipe.cost.startswith("≈")


def test_scaled_episodes():
    recipe = get_recipe("tseng/grid_world/poor")
    assert recipe.scaled_episodes(0.1) == 400 and recipe.scaled_episodes(1e-9) == 1
    with pytest.raises(ValueError, match="--scale must be > 0, got 0"):
        recipe.scaled_episodes(0)


def test_recipe_dataset_path(monkeypatch, tmp_path):
    from offmarl import __version__

    monkeypatch.setenv("OFFMARL_HOME", str(tmp_path))
    path = recipe_dataset_path("tseng/grid_world/normal", seed=3, scale=0.1)
    assert path == (tmp_path / "datasets" / f"{__version__}-r{recipes_module.RECIPES_VERSION}"
                    / "tseng__grid_world__normal__scripted__seed3__scale0.1.h5")  # an old name's file is its recipe's
    assert recipe_dataset_path("tseng/fill_in").name == "tseng__fill_in__seed0__scale1.h5"
    monkeypatch.delenv("OFFMARL_HOME")
    assert str(recipe_dataset_path("tseng/fill_in")).startswith(
        str(__import__("pathlib").Path.home() / ".cache/offmarl"))


# ---- collection by arguments -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,message", [
    ({"tier": "normal", "composition": "[r,r,r]"}, "--tier and --composition cannot be combined"),
    ({"per_agent": True, "composition": "[r,r,r]"}, "--composition and --per-agent cannot be combined"),
    ({"tier": "normal", "policy": "random"}, "--tier mixes the expert with random actions; it needs --policy expert"),
    ({"tier": "great"}, "unknown quality tier 'great'"),
    ({"composition": "[r,r,m]", "policy": "random"}, "--composition derives the medium/expert levels"),
    ({"episodes": 0}, "episodes must be >= 1"),
])
def test_collect_dataset_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        collect_dataset("equal_space", **{"episodes": 4, **kwargs})


def test_collect_equal_space_modes():
    _env_or_skip("equal_space")
    expert = collect_dataset("equal_space", episodes=12, seed=1, num_envs=8, progress=False)
    random = collect_dataset("equal_space", policy="random", episodes=12, seed=1, num_envs=8, progress=False)
    assert expert.n_episodes == 12 and expert.card.behavior == {"policy": "expert"}
    assert expert.card.return_mean > random.card.return_mean
    assert expert.card.extra["collect"]["num_envs"] == 8 and expert.card.extra["collect"]["policy"] == "expert"
    again = collect_dataset(**{**expert.card.extra["collect"], "progress": False})  # the card regenerates it
    np.testing.assert_array_equal(again.obs, expert.obs)
    np.testing.assert_array_equal(again.actions, expert.actions)
    demo = collect_dataset("equal_space", state_only=True, episodes=3, progress=False)
    assert demo.actions is None and demo.card.state_only
    n = expert.n_agents
    mix = collect_dataset("equal_space", composition=f"50%[{','.join('r' * n)}]+50%[{','.join('e' * n)}]",
                          episodes=10, progress=False)
    parts = mix.card.extra["components"]
    assert [p["episodes"] for p in parts] == [5, 5] and parts[0]["return_mean"] < parts[1]["return_mean"]
    per_agent = collect_dataset("equal_space", per_agent=True, episodes=10, progress=False)
    assert len(per_agent) == n and all(d.n_episodes == 10 for d in per_agent)


def test_cards_record_the_normalization_returns():
    _env_or_skip("equal_space")
    small = {"episodes": 6, "seed": 3, "num_envs": 16, "normalization_episodes": 16, "progress": False}
    random = collect_dataset("equal_space", policy="random", **small)
    expert = collect_dataset("equal_space", **small)
    # the same uniform random policy on the same episodes (one env seed, derived from the collection seed)
    assert random.card.random_return == expert.card.random_return
    assert random.card.extra["normalization"] == {"episodes": 16, "seed": expert.card.extra["normalization"]["seed"],
                                                  "reference": "best episode in the dataset"}
    assert random.card.reference_return == random.card.return_max  # random data: no behaviour expert
    assert expert.card.extra["normalization"]["reference"] == "behaviour expert"
    assert expert.card.reference_return > expert.card.random_return
    mixture = collect_dataset("equal_space", composition="[r,r,e]", **small)
    assert (mixture.card.random_return, mixture.card.reference_return) == (expert.card.random_return,
                                                                           expert.card.reference_return)
    tier = collect_dataset("equal_space", tier="normal", episodes=200, seed=0, num_envs=128, progress=False)
    calibration = tier.card.extra["tier"]  # measured by the calibration's pilot rollouts, not again
    assert (tier.card.random_return, tier.card.reference_return) == (calibration["r_random"], calibration["r_expert"])
    unmeasured = collect_dataset("equal_space", **{**small, "normalization_episodes": 0})
    assert unmeasured.card.random_return is None and unmeasured.card.reference_return is None


def test_online_tasks_measure_their_normalization_once(monkeypatch, tmp_path):
    _env_or_skip("matrix_game")
    monkeypatch.setenv("OFFMARL_HOME", str(tmp_path))
    first = recipes_module.env_normalization("matrix_game")
    assert first["reference"] == "scripted expert" and first["reference_return"] > first["random_return"]
    assert recipes_module.env_normalization_path("matrix_game", {}).is_relative_to(tmp_path / "random_returns")

    def fail(*args, **kwargs):
        raise AssertionError("measured a cached environment again")

    monkeypatch.setattr(recipes_module, "measure_returns", fail)
    assert recipes_module.env_normalization("matrix_game") == first


# ---- tiny recipe builds and the cache --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tseng/equal_space", "tseng/fill_in"])
def test_tiny_recipe_build_is_deterministic(name):
    _env_or_skip(get_recipe(name).env)
    a = build_recipe(name, seed=0, scale=0.005)
    b = build_recipe(name, seed=0, scale=0.005)
    assert a.n_episodes == 5 and a.card.recipe == get_recipe(name).name and a.card.extra["recipe_scale"] == 0.005
    assert a.card.behavior["policy"] == get_recipe(name).policy
    for field in ("obs", "actions", "rewards", "terminals", "truncations", "final_obs"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


# Every SMAX map compiles its own JAX step (20-40 s each on this machine), and collecting a composition on
# SMAX is tested in test_env_smax: the scripted SMAX recipes' definitions are checked above, not built here.
@pytest.mark.parametrize("name", [name for name, _ in list_recipes()
                                  if get_recipe(name).tier is None and get_recipe(name).behaviour == "scripted"
                                  and not get_recipe(name).env.startswith("smac_")])
def test_every_untiered_scripted_recipe_builds_at_a_tiny_scale(name):
    """(Trained recipes need their pools: tests/test_pools.py builds one from a tiny pool.)"""
    recipe = get_recipe(name)
    _env_or_skip(recipe.env)
    result = build_recipe(name, scale=0.001)
    datasets = datasets_of(result)
    assert isinstance(result, PerAgentDatasets) == recipe.per_agent
    assert len(datasets) == (datasets[0].n_agents if recipe.per_agent else 1)
    for ds in datasets:
        assert ds.card.recipe == name and ds.card.env_name == recipe.env and ds.n_episodes >= 1
        assert ds.state_only == recipe.state_only and ds.card.extra["behaviour"] == "scripted"
        if recipe.composition is not None:
            assert ds.card.behavior["composition"] == recipe.composition


def test_equal_space_tiers_hit_their_scores():
    _env_or_skip("equal_space")
    for tier, target in (("normal", 0.80), ("poor", 0.65)):
        ds = collect_dataset("equal_space", tier=tier, episodes=200, seed=0, num_envs=128, progress=False)
        info = ds.card.extra["tier"]
        assert abs(info["achieved_score"] - target) <= 0.03 and 0 < info["rate"] < 1
        assert ds.card.quality_tier == tier and info["r_expert"] > info["r_random"]


@needs_io
def test_get_recipe_dataset_builds_once(monkeypatch, tmp_path):
    from offmarl.data.io import load_dataset

    _env_or_skip("equal_space")
    monkeypatch.setenv("OFFMARL_HOME", str(tmp_path))
    path = get_recipe_dataset("tseng/equal_space", seed=1, scale=0.004)
    assert path.exists() and path == recipe_dataset_path("tseng/equal_space", 1, 0.004)
    ds = load_dataset(path)
    assert ds.n_episodes == 4 and ds.card.recipe == "tseng/equal_space/scripted" and ds.card.seed == 1

    def fail(*args, **kwargs):
        raise AssertionError("rebuilt a cached recipe")

    monkeypatch.setattr(recipes_module, "build_recipe", fail)
    assert get_recipe_dataset("tseng/equal_space", seed=1, scale=0.004) == path
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@needs_io
def test_per_agent_recipe_file(monkeypatch, tmp_path):
    from offmarl.data.io import load_dataset

    _env_or_skip("equal_space")
    monkeypatch.setenv("OFFMARL_HOME", str(tmp_path))
    path = get_recipe_dataset("mabcq/equal_space/per_agent", scale=0.002)  # 8 episodes per agent
    for i in range(3):
        ds = load_dataset(path, agent=i)
        assert ds.n_episodes == 8 and ds.card.extra["per_agent"]["agent"] == i
        assert ds.card.behavior["policy"] == "mabcq_per_agent"


# ---- the CLI ----------------------------------------------------------------------------------------------
def _cli(args: list[str]):
    from offmarl.cli import app

    return CliRunner().invoke(app, args, catch_exceptions=False)


def test_cli_list(monkeypatch, tmp_path):
    monkeypatch.setenv("OFFMARL_HOME", str(tmp_path))  # an empty cache: pools come from the checkout's pools/
    result = _cli(["collect", "--list"])
    assert result.exit_code == 0
    for name in ("tseng/grid_world/normal", "sit/mpe_pp_3p1p/medium", "mabcq/equal_space/per_agent"):
        assert name in result.output
    # each recipe's behaviour and, for a trained one, what its pools cost; the old names and what they name now
    assert "scripted (expert)" in result.output and "trained (qmix seed 0)" in result.output
    assert "CPU-h est." in result.output
    assert "pools shipped;" in result.output  # the SIT QMIX pools committed under pools/
    assert "Old names (still accepted): " in result.output
    assert "sit/mpe_cn_3ls3l/random -> sit/mpe_cn_3ls3l/low/scripted" in result.output


@pytest.mark.parametrize("args,message", [
    (["collect"], "give an environment name"),
    (["collect", "equal_space", "--recipe", "tseng/fill_in"], "give either ENV ('equal_space') or --recipe"),
    (["collect", "equal_space", "--episodes", "3"], "--out PATH is required"),
    (["collect", "--recipe", "tseng/fill_in", "--tier", "poor"], "--tier cannot be combined with --recipe"),
    (["collect", "--recipe", "tseng/fill_in", "--policy", "random"], "--policy cannot be combined with --recipe"),
    (["collect", "--recipe", "tseng/nope"], "unknown recipe 'tseng/nope'"),
    (["collect", "equal_space", "--out", "x.h5", "--policy", "random", "--tier", "poor"], "needs --policy expert"),
    (["collect", "equal_space", "--out", "x.h5", "--composition", "60%[r,r,r]+60%[e,e,e]"], "weights sum to 120%"),
    (["collect", "equal_space", "--out", "x.h5", "--env-set", "n_agents"], "--env-set expects key=value"),
])
def test_cli_errors(args, message):
    result = _cli(args)
    assert result.exit_code == 2
    assert message in result.output


@needs_io
def test_cli_collect_env_and_recipe(tmp_path, monkeypatch):
    from offmarl.data.io import load_dataset

    _env_or_skip("equal_space")
    _env_or_skip("fill_in")
    out = tmp_path / "es.h5"
    result = _cli(["collect", "equal_space", "--policy", "expert", "--episodes", "6", "--seed", "2",
                   "--num-envs", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "6 episodes" in result.output and str(out) in result.output and "return" in result.output
    ds = load_dataset(out)
    assert ds.n_episodes == 6 and ds.card.seed == 2 and ds.card.extra["collect"]["num_envs"] == 4

    monkeypatch.chdir(tmp_path)
    result = _cli(["collect", "--recipe", "tseng/fill_in", "--scale", "0.003"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "data" / "tseng" / "fill_in.h5"
    assert path.exists() and load_dataset(path).n_episodes == 3
    assert "data/tseng/fill_in.h5" in result.output


def test_imbalanced_recipes_give_each_agent_its_level_per_episode():
    """The distillation investigation's agent-wise imbalanced data: in ``rotating`` each agent is the expert in
    one part of the episodes (the parts are concatenated in order), and scores best there (Fill-In rewards
    are per agent)."""
    for env in ("equal_space", "fill_in", "grid_world"):
        assert get_recipe(f"distill/{env}/imbalanced/scripted").composition == "100%[r,m,e]"
        assert get_recipe(f"distill/{env}/rotating/scripted").composition == "34%[e,m,r]+33%[r,e,m]+33%[m,r,e]"
    _env_or_skip("fill_in")
    ds = build_recipe("distill/fill_in/rotating/scripted", scale=0.03)
    returns = ds.episode_returns()  # [30, 3]
    parts = ds.card.extra["components"]
    bounds = np.cumsum([0] + [part["episodes"] for part in parts])
    for k, part in enumerate(parts):
        expert = part["levels"].index("e")
        per_agent = returns[bounds[k]:bounds[k + 1]].mean(axis=0)
        assert per_agent.argmax() == expert, (part["levels"], per_agent)
