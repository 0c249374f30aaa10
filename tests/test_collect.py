"""Collection machinery on a toy env: rollout assembly, ε-mixing, tiers, compositions, per-agent mixtures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _collect_toy_env import ToyClimbEnv, ToyUpExpert

from offmarl.collect import tiers as tiers_module
from offmarl.collect.compositions import (
    BEHAVIOR_LEVEL_NAMES,
    Component,
    collect_composition,
    collect_per_agent,
    episode_levels,
    mabcq_components,
    parse_composition,
    split_episodes,
)
from offmarl.collect.mixing import MixedPolicy, PerAgentLevelPolicy
from offmarl.collect.rollout import concatenate, make_card, rollout
from offmarl.collect.tiers import bisect_rate, collect_tier, normalized_score
from offmarl.envs.base import TimeStep

pytestmark = pytest.mark.timeout(60)


def _move(actions: np.ndarray) -> np.ndarray:
    return np.select([actions == 1, actions == 2], [1.0, -1.0], 0.0)


def _collect(env: ToyClimbEnv, rate: float = 0.5, episodes: int = 23, seed: int = 3, policy_seed: int = 1, **kw):
    policy = MixedPolicy(ToyUpExpert(env.spec), env.spec, rate, seed=policy_seed)
    return rollout(env, policy, episodes, seed, progress=False, behavior={"policy": "mixed", "rate": rate}, **kw)


# ---- rollout ------------------------------------------------------------------------------------------
def test_rollout_episode_boundaries_and_transitions():
    env = ToyClimbEnv(num_envs=4, seed=0, n_agents=3, horizon=8, goal=5)
    ds = _collect(env)
    n = 3
    assert ds.n_episodes == 23 and ds.obs.shape == (ds.n_steps, n, 3)
    assert ds.actions.dtype == np.int64 and ds.actions.shape == (ds.n_steps, n)
    lengths = ds.episode_lengths
    assert lengths.sum() == ds.n_steps and lengths.max() <= 8
    # flags only on the last step of each episode; exactly one of them there
    last = ds.episode_ends - 1
    end_mask = np.zeros(ds.n_steps, bool)
    end_mask[last] = True
    assert not (ds.terminals | ds.truncations)[~end_mask].any()
    assert (ds.terminals[last] ^ ds.truncations[last]).all()
    assert ds.terminals.any() and ds.truncations.any()  # both kinds occur at rate 0.5
    assert (lengths[ds.truncations[last]] == 8).all()
    # every episode starts at t = 0 and counts up
    t = ds.obs[:, 0, 1]
    assert (t[ds.episode_starts] == 0).all()
    np.testing.assert_array_equal(t, np.concatenate([np.arange(k) for k in lengths]))
    # within an episode, positions follow the actions; rewards are "moved up"
    pos, nxt = ds.obs[:, :, 0], np.maximum(ds.obs[:, :, 0] + _move(ds.actions), 0)
    inner = ~end_mask
    np.testing.assert_array_equal(pos[1:][inner[:-1]], nxt[:-1][inner[:-1]])
    np.testing.assert_array_equal(ds.rewards, (ds.actions == 1).astype(np.float32))
    # final_obs = the observation reached by the last action (not the auto-reset one)
    np.testing.assert_array_equal(ds.final_obs[:, :, 0], nxt[last])
    np.testing.assert_array_equal(ds.final_obs[:, 0, 1], lengths)
    terminated = ds.terminals[last]
    assert (ds.final_obs[terminated, :, 0] >= 5).all()
    assert not (ds.final_obs[~terminated, :, 0] >= 5).all(axis=1).any()
    # avail actions and state are stored and consistent with the observation
    np.testing.assert_array_equal(ds.avail_actions[:, :, 2], ds.obs[:, :, 0] > 0)
    assert ds.avail_actions[:, :, :2].all()
    np.testing.assert_array_equal(ds.state[:, :n], ds.obs[:, :, 0])
    np.testing.assert_array_equal(ds.state[:, n], t)
    np.testing.assert_array_equal(ds.final_state[:, :n], ds.final_obs[:, :, 0])
    np.testing.assert_array_equal(ds.final_state[:, n], lengths)
    _validate(ds)


def _validate(ds) -> None:
    validate = pytest.importorskip("offmarl.data.validate", reason="offmarl.data.validate not written yet")
    validate.validate_dataset(ds, "toy")


def _reference_episodes(env: ToyClimbEnv, policy, episodes: int, seed: int) -> list[np.ndarray]:
    """Naive collector: step long enough, list every finished episode with its (start step, sub-env),
    sort by that key and keep the first ``episodes``."""
    B = env.num_envs
    ts = env.reset(seed=seed)
    policy.reset(B)
    running, starts, finished = [[] for _ in range(B)], [0] * B, []
    for step in range((episodes // B + 2) * env.horizon):
        actions = policy.act(ts, first=step == 0)
        for b in range(B):
            running[b].append(ts.obs[b].copy())
        ts = env.step(actions)
        for b in np.flatnonzero(ts.done):
            finished.append(((starts[b], b), np.stack(running[b])))
            running[b], starts[b] = [], step + 1
        policy.reset(B, ts.done)
    finished.sort(key=lambda item: item[0])
    return [obs for _, obs in finished[:episodes]]


def test_rollout_keeps_the_first_started_episodes():
    env = ToyClimbEnv(num_envs=3, seed=0, horizon=8, goal=5)
    ds = _collect(env, episodes=11, seed=5)
    ref = _reference_episodes(ToyClimbEnv(num_envs=3, seed=0, horizon=8, goal=5),
                              MixedPolicy(ToyUpExpert(env.spec), env.spec, 0.5, seed=1), 11, 5)
    assert len(ref) == 11
    for e, obs in enumerate(ref):
        np.testing.assert_array_equal(ds.episode(e)["obs"], obs)


@pytest.mark.parametrize("episodes,num_envs", [(1, 4), (3, 8), (17, 4), (40, 5)])
def test_rollout_exact_episode_count(episodes, num_envs):
    ds = _collect(ToyClimbEnv(num_envs=num_envs, seed=0), episodes=episodes)
    assert ds.n_episodes == episodes == ds.card.episodes
    assert ds.card.steps == ds.n_steps


def test_rollout_is_deterministic_and_seed_dependent():
    a = _collect(ToyClimbEnv(num_envs=4, seed=0))
    b = _collect(ToyClimbEnv(num_envs=4, seed=99))  # the reset seed decides, not the constructor's
    c = _collect(ToyClimbEnv(num_envs=4, seed=0), seed=4)
    for name in ("obs", "actions", "rewards", "terminals", "truncations", "episode_starts", "final_obs", "state",
                 "avail_actions", "final_state"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.obs[:50], c.obs[:50]) or not np.array_equal(a.actions[:50], c.actions[:50])


def test_rollout_continuous_without_state():
    env = ToyClimbEnv(num_envs=4, seed=0, continuous=True, goal=3, with_state=False)
    ds = _collect(env, rate=0.3, episodes=9)
    assert ds.actions.dtype == np.float32 and ds.actions.shape == (ds.n_steps, 3, 1)
    assert ds.state is None and ds.final_state is None and ds.avail_actions is None
    assert np.abs(ds.actions).max() <= 1.0
    np.testing.assert_allclose(ds.rewards, ds.actions[..., 0])
    last = ds.episode_ends - 1
    np.testing.assert_allclose(ds.final_obs[:, :, 0], np.maximum(ds.obs[last, :, 0] + ds.actions[last, :, 0], 0),
                               atol=1e-6)
    assert ds.card.action_kind == "continuous"
    _validate(ds)


def test_rollout_state_only_and_card():
    env = ToyClimbEnv(num_envs=4, seed=0)
    full = _collect(env, recipe="toy/recipe", extra={"note": 1}, quality_tier="poor")
    ds = _collect(env, state_only=True)
    assert ds.actions is None and ds.card.state_only and ds.state_only
    _validate(ds)
    np.testing.assert_array_equal(ds.obs, full.obs)  # dropping actions changes nothing else
    card = full.card
    assert card.env_name == "toy_climb" and card.env_kwargs["horizon"] == 8 and card.n_agents == 3
    assert card.env_spec["action_space"] == {"kind": "discrete", "n": 3}
    assert card.behavior == {"policy": "mixed", "rate": 0.5} and card.seed == 3 and card.recipe == "toy/recipe"
    assert card.extra == {"note": 1} and card.quality_tier == "poor" and not card.state_only
    assert card.return_mean == pytest.approx(full.episode_returns().mean())
    assert card.created and card.offmarl_version


def test_rollout_resets_the_policy_per_sub_env():
    env = ToyClimbEnv(num_envs=4, seed=0)
    expert = ToyUpExpert(env.spec)  # asserts its step counter == env t on every act
    ds = rollout(env, expert, 10, 0, progress=False, behavior={})
    assert expert.reset_calls[0] is None
    masks = expert.reset_calls[1:]
    assert masks and all(m.shape == (4,) and m.any() for m in masks)
    assert ds.terminals[ds.episode_ends - 1].all()  # the expert always reaches the goal


def test_rollout_errors():
    env = ToyClimbEnv(num_envs=2, seed=0, goal=None, horizon=8)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        rollout(env, ToyUpExpert(env.spec), 0, 0, progress=False, behavior={})
    env.spec = dataclasses.replace(env.spec, episode_limit=3)  # the env lies about its horizon
    with pytest.raises(RuntimeError, match="did not end within episode_limit=3"):
        rollout(env, ToyUpExpert(env.spec), 4, 0, progress=False, behavior={})


def test_concatenate():
    env = ToyClimbEnv(num_envs=4, seed=0)
    a, b = _collect(env, episodes=5), _collect(env, episodes=7, seed=8)
    card = make_card(env.spec, behavior={"policy": "cat"}, seed=0)
    ds = concatenate([a, b], card)
    assert ds.n_episodes == 12 and ds.n_steps == a.n_steps + b.n_steps
    np.testing.assert_array_equal(ds.episode(5)["obs"], b.episode(0)["obs"])
    np.testing.assert_array_equal(ds.final_obs[5:], b.final_obs)
    _validate(ds)
    with pytest.raises(ValueError, match="only some hold 'actions'"):
        concatenate([a, _collect(env, state_only=True)], card)
    # behaviour levels go along, the parts' level names onto the card
    for part, level in ((a, 0), (b, 2)):
        part.behavior_levels = np.full((part.n_episodes, 3), level, np.uint8)
        part.card.behavior_level_names = ["low", "mid", "high"]
    ds = concatenate([a, b], card)
    assert ds.card.behavior_level_names == ["low", "mid", "high"] and card.behavior_level_names is None
    np.testing.assert_array_equal(ds.behavior_levels[:, 0], [0] * 5 + [2] * 7)
    _validate(ds)
    with pytest.raises(ValueError, match="only some hold 'behavior_levels'"):
        concatenate([a, _collect(env)], card)
    b.card.behavior_level_names = ["r", "m", "e"]
    with pytest.raises(ValueError, match="behaviour levels are named differently"):
        concatenate([a, b], card)


# ---- mixing --------------------------------------------------------------------------------------------
def _actions(policy, env, steps: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    ts = env.reset(seed=seed)
    policy.reset(env.num_envs)
    acts, avails = [], []
    for k in range(steps):
        a = policy.act(ts, first=k == 0)
        acts.append(a)
        avails.append(ts.avail_actions)
        ts = env.step(a)
        policy.reset(env.num_envs, ts.done)
    return np.stack(acts), None if avails[0] is None else np.stack(avails)


def test_mixing_rate_extremes_discrete():
    env = ToyClimbEnv(num_envs=64, seed=0, goal=None, horizon=50)
    expert_only, _ = _actions(MixedPolicy(ToyUpExpert(env.spec), env.spec, 0.0, seed=0), env)
    assert (expert_only == 1).all()
    rand, avail = _actions(MixedPolicy(ToyUpExpert(env.spec), env.spec, 1.0, seed=0), env)
    chosen = np.take_along_axis(avail, rand[..., None], -1)
    assert chosen.all()  # never an unavailable action
    full = avail.all(-1)  # where all three are available the draw is uniform over them
    freq = np.bincount(rand[full], minlength=3) / full.sum()
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.03)
    freq0 = np.bincount(rand[~full], minlength=3) / (~full).sum()
    np.testing.assert_allclose(freq0, [0.5, 0.5, 0.0], atol=0.04)


def test_mixing_rate_is_per_step_per_agent():
    env = ToyClimbEnv(num_envs=64, seed=0, goal=None, horizon=50, n_actions=2)
    acts, _ = _actions(MixedPolicy(ToyUpExpert(env.spec), env.spec, [0.0, 0.4, 1.0], seed=2), env, steps=40)
    non_expert = (acts == 0).mean(axis=(0, 1))  # a random action is "stay" with probability 1/2
    np.testing.assert_allclose(non_expert, [0.0, 0.2, 0.5], atol=0.03)
    # independence across agents: the joint frequency factorizes
    both = ((acts[..., 1] == 0) & (acts[..., 2] == 0)).mean()
    assert both == pytest.approx(0.2 * 0.5, abs=0.02)


def test_mixing_continuous_extremes_and_noise():
    env = ToyClimbEnv(num_envs=64, seed=0, continuous=True, goal=None, horizon=50)
    expert_only, _ = _actions(MixedPolicy(ToyUpExpert(env.spec), env.spec, 0.0, seed=0), env)
    assert (expert_only == 1.0).all()
    rand, _ = _actions(MixedPolicy(ToyUpExpert(env.spec), env.spec, 1.0, seed=0), env)
    assert rand.min() >= -1 and rand.max() <= 1
    assert rand.mean() == pytest.approx(0.0, abs=0.03) and rand.var() == pytest.approx(1 / 3, abs=0.02)
    noisy, _ = _actions(MixedPolicy(ToyUpExpert(env.spec), env.spec, 0.0, seed=0, noise=0.1), env)
    assert noisy.max() <= 1.0 and (noisy < 1.0).mean() == pytest.approx(0.5, abs=0.05)  # half clipped at the top
    below = 1.0 - noisy[noisy < 1.0]
    assert below.mean() == pytest.approx(0.1 * np.sqrt(2 / np.pi), rel=0.15)  # half-normal with std 0.1


def test_per_agent_levels():
    env = ToyClimbEnv(num_envs=64, seed=0, goal=None, horizon=50, n_actions=2)
    policy = PerAgentLevelPolicy(ToyUpExpert(env.spec), env.spec, ["r", "m", "e"], seed=0, medium_rate=0.3)
    np.testing.assert_array_equal(policy.rates, [1.0, 0.3, 0.0])
    acts, _ = _actions(policy, env, steps=40)
    np.testing.assert_allclose((acts == 0).mean(axis=(0, 1)), [0.5, 0.15, 0.0], atol=0.03)
    with pytest.raises(ValueError, match="level 'x' is not one of r"):
        PerAgentLevelPolicy(ToyUpExpert(env.spec), env.spec, ["r", "x", "e"], seed=0)
    with pytest.raises(ValueError, match="2 levels \\['r', 'm'\\] given for 3 agents"):
        PerAgentLevelPolicy(ToyUpExpert(env.spec), env.spec, ["r", "m"], seed=0)
    with pytest.raises(ValueError, match="needs an expert"):
        PerAgentLevelPolicy(None, env.spec, ["r", "r", "e"], seed=0)
    with pytest.raises(ValueError, match="mixing rate must lie in \\[0, 1\\]"):
        MixedPolicy(ToyUpExpert(env.spec), env.spec, 1.5, seed=0)
    all_random = PerAgentLevelPolicy(None, env.spec, ["r", "r", "r"], seed=0)  # no expert needed
    assert _actions(all_random, env, steps=2)[0].shape == (2, 64, 3)


# ---- compositions --------------------------------------------------------------------------------------
def test_parse_composition():
    comps = parse_composition("50%[r,r,r]+50%[r,r,m]", 3)
    assert comps == [Component(50.0, ("r", "r", "r")), Component(50.0, ("r", "r", "m"))]
    assert parse_composition(" 100% [ r , m , e ] ", 3) == [Component(100.0, ("r", "m", "e"))]
    assert parse_composition("[r,m,e]") == [Component(100.0, ("r", "m", "e"))]
    assert parse_composition("33.5%[e,e]+66.5%[r,e]", 2)[0].weight == 33.5


@pytest.mark.parametrize("text,message", [
    ("", "composition is empty"),
    ("50%[r,r,r]+40%[r,r,m]", "weights sum to 90%, not 100%"),
    ("50%[r,x,r]+50%[r,r,r]", "component 1 '50%\\[r,x,r\\]' has level 'x'; levels are r"),
    ("50%[r,r]+50%[r,r]", "component 1 '50%\\[r,r\\]' lists 2 levels but the env has 3 agents"),
    ("50%r,r,r+50%[r,r,r]", "component 1 '50%r,r,r' is not of the form 50%\\[r,m,e\\]"),
    ("[r,r,r]+[r,r,m]", "component 1 '\\[r,r,r\\]' has no weight"),
    ("0%[r,r,r]+100%[r,r,m]", "has weight 0%; weights must be > 0"),
    ("50%[ls_1^r,r,r]+50%[r,r,r]", "has level 'ls_1\\^r'"),
    ("50%[r,r,r]+50%[r,r,m", "component 2 '50%\\[r,r,m' is not of the form"),
])
def test_parse_composition_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_composition(text, 3)


def test_parse_composition_mismatched_components_without_n():
    with pytest.raises(ValueError, match="component 2 '50%\\[r,r\\]' lists 2 levels but component 1 lists 3"):
        parse_composition("50%[r,r,r]+50%[r,r]")


def test_split_episodes():
    assert split_episodes(10, [50, 50]) == [5, 5]
    assert split_episodes(7, [20, 35, 35, 10]) == [1, 3, 2, 1]  # exact 1.4, 2.45, 2.45, 0.7: largest remainders
    assert sum(split_episodes(1000, [33.3, 33.3, 33.4])) == 1000
    assert split_episodes(1, [50, 50]) == [1, 1]  # at least one episode per component


def test_collect_composition():
    env = ToyClimbEnv(num_envs=8, seed=0, goal=None, horizon=10, n_actions=2)
    ds = collect_composition(env, lambda s: ToyUpExpert(env.spec), "25%[r,r,r]+75%[e,m,e]", 20, 0, progress=False,
                             medium_rate=0.5, recipe="toy/mix")
    assert ds.n_episodes == 20 and ds.card.recipe == "toy/mix"
    assert ds.card.behavior["composition"] == "25%[r,r,r]+75%[e,m,e]" and ds.card.behavior["medium_rate"] == 0.5
    parts = ds.card.extra["components"]
    assert [p["episodes"] for p in parts] == [5, 15] and [p["levels"] for p in parts] == [["r"] * 3, ["e", "m", "e"]]
    # first 5 episodes: random (return ≈ 5 of 10 per agent); then agents 0 and 2 always "up"
    ret = ds.episode_returns()
    np.testing.assert_array_equal(ret[5:, [0, 2]], 10.0)
    assert ret[5:, 1].mean() == pytest.approx(7.5, abs=0.6) and ret[:5].mean() == pytest.approx(5.0, abs=0.8)
    assert parts[1]["return_mean"] == pytest.approx(ret[5:].mean())
    # the recorded levels are the ones the agents acted at: an expert agent always climbs (return 10), a medium
    # one half the time at random (7.5), a random one (5)
    assert ds.card.behavior_level_names == list(BEHAVIOR_LEVEL_NAMES) == ["random", "medium", "expert"]
    assert ds.behavior_levels.dtype == np.uint8 and ds.behavior_levels.shape == (20, 3)
    levels = episode_levels(ds)  # [E, n] names
    assert (levels[:5] == "random").all() and (levels[5:] == ["expert", "medium", "expert"]).all()
    np.testing.assert_array_equal(ret[levels == "expert"], 10.0)
    assert ret[levels == "random"].mean() < ret[levels == "medium"].mean() < 10.0
    _validate(ds)
    with pytest.raises(ValueError, match="lists 2 levels but the env has 3 agents"):
        collect_composition(env, lambda s: ToyUpExpert(env.spec), "[r,e]", 20, 0, progress=False)


# ---- per-agent datasets (MABCQ) ---------------------------------------------------------------------------
def test_mabcq_components():
    comps = mabcq_components(1, 3, noise=0.1)
    assert [str(c) for c in comps] == ["20%[r,r,r]", "35%[e,m,e]", "35%[m,e,m]", "10%[e,e,e]"]
    assert [c.noise for c in comps] == [0.0, 0.1, 0.1, 0.1]


def test_per_agent_datasets_mixture():
    env = ToyClimbEnv(num_envs=16, seed=0, goal=None, horizon=80, n_actions=2)
    datasets = collect_per_agent(env, lambda s: ToyUpExpert(env.spec), 60, 0, medium_rate=0.5, noise=0.1,
                                 progress=False)
    assert len(datasets) == 3
    for i, ds in enumerate(datasets):
        assert ds.n_episodes == 60 and ds.card.extra["per_agent"]["agent"] == i and ds.card.seed == 0
        parts = ds.card.extra["components"]
        assert [p["episodes"] for p in parts] == [12, 21, 21, 6]
        stay = (ds.actions == 0).reshape(60, 80, 3).mean(axis=1)  # [episode, agent] fraction of random "stay"
        bounds = np.cumsum([0, 12, 21, 21, 6])
        frac = [stay[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]
        others = [j for j in range(3) if j != i]
        # random: 1/2; expert + noise 0.1: 0.05; medium (0.5) + noise: (1 - 0.5 * 0.9) / 2 = 0.275
        np.testing.assert_allclose(frac[0], 0.5, atol=0.06)
        assert frac[1][i] == pytest.approx(0.275, abs=0.05) and frac[1][others] == pytest.approx(0.05, abs=0.03)
        assert frac[2][i] == pytest.approx(0.05, abs=0.03) and frac[2][others] == pytest.approx(0.275, abs=0.05)
        np.testing.assert_allclose(frac[3], 0.05, atol=0.05)
        # the recorded levels say the same per (episode, agent): agent i's own column is r, m, e, e by part
        levels = episode_levels(ds)
        assert [levels[b - 1, i] for b in bounds[1:]] == ["random", "medium", "expert", "expert"]
        for name, expected, tolerance in (("random", 0.5, 0.06), ("medium", 0.275, 0.05), ("expert", 0.05, 0.03)):
            assert stay[levels == name].mean() == pytest.approx(expected, abs=tolerance), name
    assert not np.array_equal(datasets[0].obs, datasets[1].obs)  # collected separately


def test_per_agent_datasets_file_roundtrip(tmp_path):
    io = pytest.importorskip("offmarl.data.io", reason="offmarl.data.io not written yet")
    env = ToyClimbEnv(num_envs=4, seed=0, goal=None, horizon=5, n_actions=2)
    datasets = collect_per_agent(env, lambda s: ToyUpExpert(env.spec), 6, 0, progress=False)
    path = tmp_path / "per_agent.h5"
    io.save_per_agent_datasets(datasets, path)
    for i, ds in enumerate(datasets):
        back = io.load_dataset(path, agent=i, validate=False)
        np.testing.assert_array_equal(back.actions, ds.actions)
        np.testing.assert_array_equal(back.behavior_levels, ds.behavior_levels)
        assert back.card.extra["per_agent"]["agent"] == i


# ---- tiers ---------------------------------------------------------------------------------------------
def test_normalized_score_and_bisection():
    assert normalized_score(-3.0, -10.0, 0.0) == pytest.approx(0.7)
    rate, score = bisect_rate(lambda r: 1 - r ** 2, 0.8, 0.001)
    assert abs(score - 0.8) <= 0.001 and rate == pytest.approx(np.sqrt(0.2), abs=0.002)
    # unreachable (a jump over the target): the closest point is returned
    rate, score = bisect_rate(lambda r: 1.0 if r < 0.3 else 0.0, 0.8, 0.01, max_halvings=8)
    assert score == 1.0 and rate < 0.3


@pytest.mark.parametrize("tier,target", [("normal", 0.80), ("poor", 0.65)])
def test_tier_reaches_the_target_score(tier, target):
    # with 2 actions and no goal, the score of rate eps is exactly 1 - eps in expectation
    env = ToyClimbEnv(num_envs=64, seed=0, n_agents=2, goal=None, horizon=10, n_actions=2)
    ds = collect_tier(env, lambda s: ToyUpExpert(env.spec), tier, 300, 7, progress=False, recipe="toy/tier")
    info = ds.card.extra["tier"]
    assert abs(info["achieved_score"] - target) <= 0.03
    assert info["rate"] == pytest.approx(1 - target, abs=0.05)
    assert info["r_expert"] == 10.0 and info["r_random"] == pytest.approx(5.0, abs=0.3)
    assert info["rule"] == "(R - R_random) / (R_expert - R_random)" and info["target"] == target
    achieved = normalized_score(ds.card.return_mean, info["r_random"], info["r_expert"])
    assert info["achieved_score"] == pytest.approx(achieved)
    assert ds.card.quality_tier == tier and ds.card.behavior["rate"] == info["rate"] and ds.n_episodes == 300


def test_tier_good_is_the_expert():
    env = ToyClimbEnv(num_envs=64, seed=0, n_agents=2, goal=None, horizon=10, n_actions=2)
    ds = collect_tier(env, lambda s: ToyUpExpert(env.spec), "good", 50, 0, progress=False)
    assert (ds.actions == 1).all() and ds.card.behavior == {"policy": "expert"}
    assert ds.card.extra["tier"]["rate"] == 0.0 and ds.card.extra["tier"]["achieved_score"] == 1.0


def test_tier_errors(monkeypatch):
    env = ToyClimbEnv(num_envs=16, seed=0, n_agents=2, goal=None, horizon=10, n_actions=2)
    with pytest.raises(ValueError, match="unknown quality tier 'bad'"):
        collect_tier(env, lambda s: ToyUpExpert(env.spec), "bad", 10, 0, progress=False)

    class Stay(ToyUpExpert):
        def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
            return np.zeros(ts.obs.shape[:2], np.int64)

    with pytest.raises(ValueError, match="expert's mean return 0 is not above the random policy's"):
        collect_tier(env, lambda s: Stay(env.spec), "normal", 10, 0, progress=False, pilot_episodes=32)

    # a return that drops from expert to random at any eps > 0: never an off-tier dataset, a clear error
    real = tiers_module._mixed
    monkeypatch.setattr(tiers_module, "_mixed", lambda env_, mk, rate, seed: real(env_, mk, float(rate > 0), seed))
    with pytest.raises(RuntimeError, match="could not collect tier 'normal' at normalized score 0.80 ± 0.03"):
        collect_tier(env, lambda s: ToyUpExpert(env.spec), "normal", 20, 0, progress=False, pilot_episodes=16)
