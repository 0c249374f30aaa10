"""Behaviour cloning: learns, masks, decentralized, train/eval inputs agree, save/load round trip."""

from __future__ import annotations

import _toy_env
import numpy as np
import pytest
import torch
from _toy_env import ToyPickEnv

from offmarl.algos import get_algo_class, make_algo
from offmarl.data.samplers import WindowSampler
from offmarl.train import TrainConfig, evaluate_policy, fit, seed_everything
from offmarl.train.experiment import env_defaults

torch.set_num_threads(1)
SMALL = {"hidden": 32, "history": 3, "batch_size": 32, "lr": 3e-3}


def train(dataset, steps: int, seed: int = 0, **overrides):
    seed_everything(seed)
    algo = make_algo("bc", dataset.spec, **{**SMALL, "steps": steps, **overrides})
    out = fit(algo, dataset, None, TrainConfig(seed=seed, progress=False, log_every=10))
    return algo, out


@pytest.fixture(scope="module")
def toy():
    return _toy_env.toy_dataset(episodes=40, seed=0)


def test_defaults_follow_tseng_table_5():
    config = get_algo_class("bc").Config()
    assert (config.hidden, config.n_layers, config.lr, config.weight_decay) == (128, 3, 2e-4, 1e-4)
    assert config.batch_size == 128
    assert env_defaults("bc", "fill_in") == {"lr": 5e-4} and env_defaults("bc", "equal_space") == {"lr": 5e-4}
    assert env_defaults("bc", "grid_world") == {}


def test_learns_the_expert_and_scores_optimally(toy):
    seed_everything(0)
    algo = make_algo("bc", toy.spec, **SMALL, steps=150)
    first = algo.update(algo.make_sampler(toy, 0).sample())["loss"]
    algo, out = train(toy, steps=150)
    assert out["losses"]["loss"] < 0.05 < first
    result = evaluate_policy(algo.policies(), _toy_env.ENV_NAME, {}, episodes=6, seed=7)
    assert result["return_mean"] == 2.0 and result["win_rate"] == 1.0  # the optimum: every pick right


def test_continuous_actions_are_regressed_inside_the_box():
    data = _toy_env.toy_dataset(episodes=40, seed=0, continuous=True)
    algo, out = train(data, steps=200)
    assert out["losses"]["loss"] < 0.01
    env = ToyPickEnv(num_envs=16, seed=3, continuous=True)
    ts = env.reset()
    policy = algo.policies()
    policy.reset(16)
    actions = policy.act(ts, first=True)
    assert actions.shape == (16, 2, 1) and actions.dtype == np.float32
    np.testing.assert_allclose(actions[..., 0], ts.obs[..., 0], atol=0.1)  # the target is the action


def test_unavailable_actions_get_no_probability(toy):
    algo = make_algo("bc", toy.spec, **SMALL)
    with torch.no_grad():
        for net in algo.nets:
            net.net[-1].bias[2] = 1e3  # make action 2 every agent's favourite
    ts = ToyPickEnv(num_envs=8, seed=0).reset()
    policy = algo.policies()
    policy.reset(8)
    actions = policy.act(ts, first=True)
    assert (actions[:, 0] == 2).all() and (actions[:, 1] != 2).all()  # agent 1 may not play action 2
    batch = algo.make_sampler(toy, 0).sample()
    assert np.isfinite(algo.update(batch)["loss"])




def test_policy_input_at_evaluation_equals_the_training_window(toy):
    """Agent i's history at step t of an episode is what the window sampler gives for t (zero-padded start)."""
    algo = make_algo("bc", toy.spec, **SMALL)
    seen: list[torch.Tensor] = []
    net = algo.nets[0]
    net.register_forward_hook(lambda module, args, output: seen.append(args[0].clone()))
    episode = int(np.argmax(toy.episode_lengths))  # a 3-step episode: two steps with padding
    start, length = int(toy.episode_starts[episode]), int(toy.episode_lengths[episode])
    agent = algo.policies().agents[0]
    agent.reset(1)
    for t in range(start, start + length):
        agent.act(toy.obs[t:t + 1, 0], toy.avail_actions[t:t + 1, 0], None)
    window = WindowSampler(toy, 1, 0, K=SMALL["history"]).batch_at(np.arange(start, start + length))["obs"]
    expected = window[:, :, 0, :3].flatten(1)  # [length, H * d_0]
    assert torch.equal(torch.cat(seen), expected)
    assert expected[0, :6].abs().sum() == 0  # two pads before the first observation


def test_reset_with_a_mask_clears_only_those_sub_envs(toy):
    agent = make_algo("bc", toy.spec, **SMALL).policies().agents[0]
    agent.reset(3)
    agent.act(np.ones((3, 3), np.float32), None, None)
    agent.reset(3, np.array([False, True, False]))
    assert agent.buffer[:, -1].sum(dim=1).tolist() == [3.0, 0.0, 3.0]








def test_bf16_autocast_training_learns_too(toy):
    seed_everything(0)
    algo = make_algo("bc", toy.spec, **SMALL, steps=150)
    out = fit(algo, toy, None, TrainConfig(precision="bf16", progress=False, log_every=10))
    assert algo.precision == "bf16" and out["losses"]["loss"] < 0.1


# ---- percentile behaviour cloning (top_fraction) ----------------------------------------------------------------
def test_best_episodes_ranks_by_team_return_and_keeps_the_dataset_order_on_ties():
    from _datasets import make_dataset

    ds = make_dataset(n_agents=2, episodes=5, seed=0)
    rewards = np.zeros_like(ds.rewards)
    team = [1.0, 3.0, 3.0, -2.0, 0.5]  # episode 1 and 2 tie: dataset order
    for e, value in enumerate(team):
        rewards[ds.episode_starts[e], 0] = value  # agent 0 alone: the team sum
    ds.rewards = rewards
    assert ds.best_episodes(0.4).tolist() == [1, 2]
    assert ds.best_episodes(0.5).tolist() == [1, 2, 0]  # ⌈2.5⌉
    assert ds.best_episodes(1.0).tolist() == [1, 2, 0, 4, 3]
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="fraction in \\(0, 1\\]"):
            ds.best_episodes(bad)


def test_top_fraction_clones_only_the_best_episodes(toy):
    team = toy.episode_returns().sum(axis=1)
    best = np.sort(team)[::-1][:4]  # ⌈0.1 · 40⌉
    algo = make_algo("bc", toy.spec, **SMALL, top_fraction=0.1)
    sampler = algo.make_sampler(toy, seed=0)
    assert sampler.dataset.n_episodes == 4
    np.testing.assert_allclose(sampler.dataset.episode_returns().sum(axis=1), best)
    assert make_algo("bc", toy.spec, **SMALL).make_sampler(toy, seed=0).dataset is toy
    with pytest.raises(ValueError, match="bc: top_fraction must be in \\(0, 1\\], got 0"):
        make_algo("bc", toy.spec, **SMALL, top_fraction=0.0)
