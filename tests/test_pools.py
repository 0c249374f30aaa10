"""Policy pools: a tiny IPPO run on toy_pick binned into levels, compositions over it, and the pool commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import _toy_env
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from offmarl.algos import load_algo, make_algo
from offmarl.cli import app
from offmarl.collect import recipes as recipes_module
from offmarl.collect.compositions import component_levels, episode_levels
from offmarl.collect.pools import (
    DEMONSTRATION_EPSILON,
    AgentwisePolicy,
    Pool,
    PoolError,
    PoolLevelPolicy,
    PoolSpec,
    _content_hash,
    bin_pool,
    execution_of,
    find_pool,
    level_edges,
    level_of,
    ship_pool,
    verify_content_hash,
)
from offmarl.collect.recipes import Recipe, build_recipe, cached_pool, collect_dataset, get_recipe
from offmarl.collect.rollout import derive_seed, rollout
from offmarl.envs import make_env
from offmarl.policies.base import JointPolicy
from offmarl.policies.random import RandomPolicy
from offmarl.train.experiment import Experiment, build_pool, run_experiment

FRAMES, SERIES_EVERY = 1600, 160


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """IPPO on toy_pick, slow enough (lr 1e-3) that its series climbs through every level."""
    root = tmp_path_factory.mktemp("pool_run")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({"hidden": 16, "rollout_length": 10, "chunk_length": 5, "ppo_epochs": 4,
                                      "lr": 1e-3}))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_experiment(Experiment(algo="ippo", env=_toy_env.ENV_NAME, num_envs=16, out=root / "run", seed=0,
                                  steps=FRAMES, config=config, eval_episodes=48, series_every=SERIES_EVERY,
                                  progress=False))
    finally:
        torch.set_num_threads(threads)
    return root / "run"


@pytest.fixture(scope="module")
def pool(trained, tmp_path_factory) -> Pool:
    return bin_pool(trained, tmp_path_factory.mktemp("pool") / "pool", progress=False)


def test_levels_split_the_return_range_30_40_30():
    edges = level_edges([2.0, 12.0, 7.0], (0.3, 0.4, 0.3))
    assert edges == pytest.approx([2.0, 5.0, 9.0, 12.0])
    assert [level_of(x, edges) for x in (2.0, 4.99, 5.0, 8.99, 9.0, 12.0)] == ["r", "r", "m", "m", "e", "e"]
    # from a floor (the uniform random policy's return): a checkpoint below it is r
    edges = level_edges([-9.0, 12.0, 7.0], (0.3, 0.4, 0.3), floor=2.0)
    assert edges == pytest.approx([2.0, 5.0, 9.0, 12.0]) and level_of(-9.0, edges) == "r"


def test_binning_from_the_lowest_checkpoint_or_failing_below_random(trained, tmp_path, monkeypatch):
    lowest = bin_pool(trained, tmp_path / "lowest", floor="lowest", progress=False)
    returns = [c.return_mean for level in ("r", "m", "e") for c in lowest.checkpoints(level)]
    assert lowest.card["edges"][0] == min(returns) and lowest.card["floor"] == {"rule": "lowest", "random_return": None}
    with pytest.raises(PoolError, match="floor must be one of random, lowest"):
        bin_pool(trained, tmp_path / "bad", floor="zero", progress=False)
    # a series whose best checkpoint does not beat the floor: the untrained policy alone, against a "random"
    # policy that is in fact the trained one
    untrained = tmp_path / "untrained"
    shutil.copytree(trained, untrained)
    lines = (untrained / "checkpoints" / "series.csv").read_text().splitlines()
    (untrained / "checkpoints" / "series.csv").write_text("\n".join(lines[:2]) + "\n")
    final = load_algo(trained / "checkpoints" / "series" / f"{FRAMES:012d}")
    monkeypatch.setattr("offmarl.policies.random.RandomPolicy", lambda spec, seed: final.policies(sample_seed=seed))
    with pytest.raises(PoolError, match=r"no checkpoint beats the uniform random policy \(0\.75 <= 1\.07 "):
        bin_pool(untrained, tmp_path / "none", progress=False)
    assert not (tmp_path / "none").exists()


def test_a_pool_bins_every_checkpoint_of_the_series_by_the_return_it_plays(pool, trained):
    card = pool.card
    steps = sorted(c["step"] for level in card["levels"].values() for c in level)
    assert steps == list(range(0, FRAMES + 1, SERIES_EVERY))  # the untrained step-0 entry included
    edges = card["edges"]
    returns = [c["return_mean"] for level in card["levels"].values() for c in level]
    # the range starts at the uniform random policy's return on the same episodes (SIT App. C.2)
    env = make_env(_toy_env.ENV_NAME, num_envs=64, seed=0)
    random_play = rollout(env, RandomPolicy(env.spec, seed=derive_seed(0, "random")), 100, 0, progress=False,
                          behavior={})
    assert card["floor"] == {"rule": "random", "random_return": pytest.approx(edges[0])}
    assert edges[0] == pytest.approx(random_play.episode_returns().mean(axis=1).mean()) and edges[3] == max(returns)
    for level in ("r", "m", "e"):
        assert pool.checkpoints(level), level
        for c in pool.checkpoints(level):
            assert level_of(c.return_mean, edges) == level
            # policy-only: the actor, not the critic and optimizers of the run's series checkpoint
            assert json.loads((pool.root / c.path / "algo.json").read_text())["state"] == "policy"
            run_checkpoint = trained / "checkpoints" / "series" / f"{c.step:012d}" / "algo.pt"
            assert (pool.root / c.path / "algo.pt").stat().st_size < run_checkpoint.stat().st_size / 2
    assert 0 in [c.step for c in pool.checkpoints("r")]
    assert card["execution"] == {"mode": "sampled"}  # a policy-gradient learner acts as it trained
    assert card["key"]["algo"] == "ippo" and card["key"]["env_name"] == _toy_env.ENV_NAME and card["key"]["seed"] == 0


def test_binning_again_gives_the_same_pool(pool, trained, tmp_path):
    again = bin_pool(trained, tmp_path / "again", progress=False)
    assert again.card["levels"] == pool.card["levels"] and again.content_hash == pool.content_hash


def test_a_composition_over_the_pool_records_its_levels_and_returns_follow_them(pool):
    returns = {}
    for level in ("r", "m", "e"):
        ds = collect_dataset(_toy_env.ENV_NAME, composition=f"[{level},{level}]", pool=pool.root, episodes=240,
                             seed=1, num_envs=12, progress=False)
        returns[level] = ds.card.return_mean
        assert ds.card.behavior["pool"]["content_hash"] == pool.content_hash
        assert ds.card.extra["components"][0]["levels"] == [level, level]
        assert ds.card.behavior_level_names == [pool.card["level_names"][x] for x in ("r", "m", "e")]
        assert (ds.behavior_levels == "rme".index(level)).all()
    assert returns["r"] < returns["m"] < returns["e"], returns

    mixed = collect_dataset(_toy_env.ENV_NAME, composition="50%[r,e]+50%[e,r]", pool=pool.root, episodes=96,
                            seed=1, num_envs=12, progress=False)
    parts = mixed.card.extra["components"]
    assert [p["levels"] for p in parts] == [["r", "e"], ["e", "r"]] and [p["episodes"] for p in parts] == [48, 48]
    # the stored per-episode levels: each agent's returns follow the level it is recorded at in every episode
    levels, ret = episode_levels(mixed), mixed.episode_returns()  # [E, n] names, [E, n]
    assert (levels[:48] == ["random", "expert"]).all() and (levels[48:] == ["expert", "random"]).all()
    for i in range(2):
        assert ret[levels[:, i] == "random", i].mean() < ret[levels[:, i] == "expert", i].mean(), i
    np.testing.assert_array_equal(episode_levels(mixed), component_levels(parts))  # the card's components agree


def test_each_sub_env_draws_its_agents_checkpoints_from_their_levels_per_episode(pool):
    env = make_env(_toy_env.ENV_NAME, num_envs=64, seed=0)
    policy = PoolLevelPolicy(pool, env.spec, ("r", "e"), seed=3)
    policy.reset(64)
    first = policy.drawn.copy()
    allowed = [{c.step for c in pool.checkpoints(x)} for x in ("r", "e")]
    for i in range(2):
        assert set(first[:, i]) <= allowed[i]
    mask = np.zeros(64, bool)
    mask[:32] = True
    policy.reset(64, mask)
    assert np.array_equal(policy.drawn[32:], first[32:])  # running episodes keep their checkpoints
    if len(allowed[1]) > 1:
        assert not np.array_equal(policy.drawn[:32, 1], first[:32, 1])  # new episodes draw again
    actions = policy.act(env.reset())
    assert actions.shape == (64, 2)


def test_a_value_learner_acts_epsilon_greedily_with_dm2s_epsilon():
    qmix = make_algo("qmix", _toy_env.ToyPickEnv().spec, hidden=8, mixer_hidden=8)
    assert execution_of(qmix, "smac_3s_vs_3z") == {"mode": "epsilon-greedy", "epsilon": 0.1}
    assert DEMONSTRATION_EPSILON["smac_5m_vs_6m"] == 0.0
    assert execution_of(qmix, "mpe_cn_3ls3l") == {"mode": "epsilon-greedy", "epsilon": 0.0}
    assert execution_of(qmix, "mpe_cn_3ls3l", epsilon=0.2)["epsilon"] == 0.2


def test_an_empty_level_fails_naming_it_and_the_best_return(trained, tmp_path):
    run = tmp_path / "two"
    shutil.copytree(trained, run)
    lines = (run / "checkpoints" / "series.csv").read_text().splitlines()
    (run / "checkpoints" / "series.csv").write_text("\n".join([lines[0], lines[1], lines[-1]]) + "\n")
    with pytest.raises(PoolError, match=r"level 'm' \(medium\) is empty.*best return reached is"):
        bin_pool(run, tmp_path / "pool", progress=False)
    assert not (tmp_path / "pool").exists()


def test_bad_runs_and_pools_are_named(trained, tmp_path):
    with pytest.raises(PoolError, match="not a run directory"):
        bin_pool(tmp_path, tmp_path / "p", progress=False)
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "config.json").write_text(json.dumps({"algo": "bc"}))
    with pytest.raises(PoolError, match="did not train online"):
        bin_pool(offline, tmp_path / "p", progress=False)
    with pytest.raises(PoolError, match="split"):
        bin_pool(trained, tmp_path / "p", split="0.5,0.5", progress=False)
    with pytest.raises(PoolError, match="not a policy pool"):
        Pool.load(tmp_path)
    with pytest.raises(PoolError, match="not a policy pool"):
        collect_dataset(_toy_env.ENV_NAME, pool=tmp_path, episodes=4)


def test_a_pool_is_keyed_by_what_trained_it_not_by_the_offmarl_version(monkeypatch, tmp_path):
    monkeypatch.setenv("OFFMARL_HOME", str(tmp_path))
    spec = PoolSpec(env="mpe_cn_3ls3l", algo="qmix", steps=1000)
    assert spec.cache_dir().parent == tmp_path / "pools" / "mpe_cn_3ls3l"
    assert spec.cache_dir() == PoolSpec(env="mpe_cn_3ls3l", algo="qmix", steps=1000).cache_dir()
    for other in (PoolSpec(env="mpe_cn_3ls3l", algo="qmix", steps=1000, seed=1),
                  PoolSpec(env="mpe_cn_3ls3l", algo="qmix", steps=1000, sets=("lr=0.001",)),
                  PoolSpec(env="mpe_cn_3ls3l", algo="qmix", steps=1000, env_kwargs={"visible_landmarks": 3})):
        assert other.cache_dir() != spec.cache_dir()
    assert "version" not in json.dumps(spec.key())


def test_pool_bin_and_show_commands(trained, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["pool", "bin", str(trained), "--out", str(tmp_path / "p"), "--episodes", "50"])
    assert result.exit_code == 0, result.output
    assert "r (random)" in result.output and "e (expert)" in result.output
    result = runner.invoke(app, ["pool", "show", str(tmp_path / "p"), "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.png").stat().st_size > 0
    result = runner.invoke(app, ["pool", "show", str(tmp_path)])
    assert result.exit_code == 2 and "not a policy pool" in result.output


# ---- trained experts and trained recipes ---------------------------------------------------------------
def test_a_pools_best_checkpoint_is_the_expert_of_rollouts_and_tiers(pool):
    expert = collect_dataset(_toy_env.ENV_NAME, pool=pool.root, episodes=96, seed=1, num_envs=12, progress=False,
                             normalization_episodes=48)
    low = collect_dataset(_toy_env.ENV_NAME, composition="[r,r]", pool=pool.root, episodes=96, seed=1, num_envs=12,
                          progress=False, normalization_episodes=0)
    assert expert.card.extra["behaviour"] == "trained" and low.card.extra["behaviour"] == "trained"
    assert [p["content_hash"] for p in expert.card.extra["pools"]] == [pool.content_hash]
    assert expert.card.return_mean > low.card.return_mean
    # the reference of normalized scores is the pool expert measured at collection, near the data's own return
    assert expert.card.reference_return == pytest.approx(expert.card.return_mean, abs=0.25)
    normal = collect_dataset(_toy_env.ENV_NAME, tier="normal", pool=pool.root, episodes=96, seed=1, num_envs=12,
                             progress=False)
    assert low.card.return_mean < normal.card.return_mean < expert.card.return_mean
    scripted = collect_dataset(_toy_env.ENV_NAME, policy="random", episodes=8, num_envs=8, progress=False,
                               normalization_episodes=0)
    assert scripted.card.extra["behaviour"] == "scripted" and "pools" not in scripted.card.extra


def test_experts_of_separate_runs_act_each_for_its_own_agent():
    class Constant(JointPolicy):
        def __init__(self, value):
            self.value, self.resets = value, []

        def reset(self, batch_size, mask=None):
            self.resets.append(batch_size)

        def act(self, ts, first=False):
            return np.full((4, 2), self.value, dtype=np.int64)

    team = AgentwisePolicy([Constant(1), Constant(2)])
    team.reset(4)
    assert [p.resets for p in team.policies] == [[4], [4]]
    assert team.act(None).tolist() == [[1, 2]] * 4


def test_pools_that_do_not_fit_are_named(pool):
    with pytest.raises(ValueError, match="takes its levels from one pool, got 2"):
        collect_dataset(_toy_env.ENV_NAME, composition="[r,e]", pool=[pool.root, pool.root], episodes=4, progress=False)
    with pytest.raises(ValueError, match="needs --policy expert, not 'random'"):
        collect_dataset(_toy_env.ENV_NAME, policy="random", pool=pool.root, episodes=4, progress=False)
    with pytest.raises(PoolError, match="3 pools for 2 agents"):
        collect_dataset(_toy_env.ENV_NAME, pool=[pool.root] * 3, episodes=4, progress=False, normalization_episodes=0)
    # two pools for two agents: agent i acts as pool i's expert
    separate = collect_dataset(_toy_env.ENV_NAME, pool=[pool.root, pool.root], episodes=8, num_envs=8,
                               progress=False, normalization_episodes=0)
    assert len(separate.card.extra["pools"]) == 2


def test_a_trained_recipe_takes_its_pools_from_the_provider(pool, monkeypatch):
    spec = PoolSpec(env=_toy_env.ENV_NAME, algo="ippo", steps=FRAMES, series_every=SERIES_EVERY)
    recipe = Recipe("test/toy/trained", "a toy trained recipe", env=_toy_env.ENV_NAME, episodes=16,
                    composition="[m,e]", num_envs=8, pools=(spec,))
    monkeypatch.setitem(recipes_module._RECIPES, recipe.name, recipe)
    assert recipe.behaviour == "trained" and get_recipe("tseng/fill_in").behaviour == "scripted"
    with pytest.raises(FileNotFoundError, match="is not built .* `offmarl collect RECIPE` builds it"):
        build_recipe(recipe.name)  # the default provider only reads the cache
    asked = []
    ds = build_recipe(recipe.name, pool_provider=lambda s: asked.append(s) or pool)
    assert asked == [spec]
    assert ds.card.recipe == recipe.name and ds.card.extra["behaviour"] == "trained"
    assert ds.card.extra["pools"][0]["content_hash"] == pool.content_hash


# ---- shipped pools ------------------------------------------------------------------------------------
def _full_checkpoint_pool(pool: Pool, trained: Path, out: Path) -> Pool:
    """The pool as pools were binned before policy-only checkpoints: the run's full checkpoints, no spec."""
    shutil.copytree(pool.root, out)
    for c in pool.rows():
        shutil.rmtree(out / c["path"])
        shutil.copytree(trained / "checkpoints" / "series" / f"{c['step']:012d}", out / c["path"])
    card = {key: value for key, value in pool.card.items() if key != "spec"}
    card["content_hash"] = _content_hash(out, card["levels"])
    (out / "pool.json").write_text(json.dumps(card))
    return Pool.load(out)


def _level_actions(pool: Pool) -> np.ndarray:
    env = make_env(_toy_env.ENV_NAME, num_envs=32, seed=0)
    policy = PoolLevelPolicy(pool, env.spec, ("r", "e"), seed=3)
    ts, actions = env.reset(seed=5), []
    policy.reset(32)
    for t in range(8):
        actions.append(policy.act(ts, first=t == 0))
        ts = env.step(actions[-1])
        if ts.done.any():
            policy.reset(32, ts.done)
    return np.stack(actions)


def test_a_shipped_pool_is_converted_policy_only_and_found_when_the_cache_has_none(pool, trained, tmp_path,
                                                                                     monkeypatch):
    from offmarl.collect import pools as pools_module

    spec = PoolSpec(env=_toy_env.ENV_NAME, algo="ippo", steps=FRAMES, series_every=SERIES_EVERY)
    recipe = Recipe("test/toy/shipped", "a toy trained recipe", env=_toy_env.ENV_NAME, episodes=16,
                    composition="[m,e]", num_envs=8, pools=(spec,))
    monkeypatch.setitem(recipes_module._RECIPES, recipe.name, recipe)
    monkeypatch.setenv("OFFMARL_HOME", str(tmp_path / "home"))
    (tmp_path / "checkout").mkdir()
    (tmp_path / "checkout" / "pyproject.toml").write_text("")
    monkeypatch.setattr(pools_module, "SHIPPED_POOLS", tmp_path / "checkout" / "pools")
    cached = _full_checkpoint_pool(pool, trained, spec.pool_dir)  # in the cache, as the pools built so far are
    assert find_pool(spec).root == spec.pool_dir

    result = CliRunner().invoke(app, ["pool", "ship", str(spec.cache_dir())])
    assert result.exit_code == 0, result.output
    shipped = Pool.load(spec.shipped_dir)
    assert spec.shipped_dir == tmp_path / "checkout" / "pools" / spec.relative_dir / "pool"
    assert f"shipped {shipped.root}" in result.output
    # its own content hash over its new files, tied to the cache copy's by converted_from; the levels as binned
    assert shipped.card["converted_from"] == cached.content_hash != shipped.content_hash
    verify_content_hash(shipped)
    assert shipped.card["levels"] == cached.card["levels"] and PoolSpec.from_key(shipped.card["spec"]) == spec
    sizes = [sum(f.stat().st_size for f in p.root.joinpath("checkpoints").rglob("*") if f.is_file())
             for p in (shipped, cached)]
    assert sizes[0] < sizes[1] / 2, sizes
    np.testing.assert_array_equal(_level_actions(shipped), _level_actions(cached))

    # the cache first; with none there, the shipped copy -- for recipes and builders alike, nothing trained
    assert find_pool(spec).root == cached.root
    shutil.rmtree(spec.cache_dir())
    assert cached_pool(spec).root == shipped.root
    assert build_pool(spec, progress=False).root == shipped.root and not spec.cache_dir().exists()
    ds = build_recipe(recipe.name)
    assert ds.card.extra["pools"][0]["content_hash"] == shipped.content_hash
    # shipping again does not overwrite; a pool whose spec is unknown is refused, naming why
    result = CliRunner().invoke(app, ["pool", "ship", str(cached.root), "--to", str(tmp_path / "checkout" / "pools")])
    assert result.exit_code != 0 and "not a policy pool" in result.output  # the cache copy was removed
    with pytest.raises(PoolError, match="is already shipped"):
        ship_pool(shipped.root)
    with pytest.raises(PoolError, match="is among the shipped pools"):
        bin_pool(trained, shipped.root, progress=False)
    with pytest.raises(PoolError, match="records no pool spec and no known pool spec is kept at"):
        ship_pool(_full_checkpoint_pool(pool, trained, tmp_path / "elsewhere" / "pool").root, [spec])
    # without a checkout (an installed wheel) there are no shipped pools
    monkeypatch.setattr(pools_module, "SHIPPED_POOLS", tmp_path / "site-packages" / "pools")
    assert pools_module.shipped_pools_dir() is None and spec.shipped_dir is None and find_pool(spec) is None
