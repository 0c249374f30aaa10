"""The Decision-Transformer algorithms (idt, madt, teacher, distill): losses and masks, decentralization,
policies with context and return-to-go, save/load, and tiny end-to-end runs in the native envs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _datasets import make_dataset
from _drive import drive
from _torch_threads import one_torch_thread  # noqa: F401  (autouse)

from offmarl.algos import load_algo, make_algo
from offmarl.algos._sequence import action_loss, masked_mean
from offmarl.core.optim import clip_grad_norm_per_member
from offmarl.data.samplers import WindowSampler
from offmarl.data.sources import PerAgentDatasets
from offmarl.envs.base import TimeStep
from offmarl.train import TrainConfig, evaluate_policy, fit, seed_everything

DT_ALGOS = ("idt", "madt", "teacher", "distill")
TINY = dict(hidden=16, n_layers=1, n_heads=2, feature_dim=8, context_len=4, batch_size=8, dropout=0.0,
            warmup_frac=0.0, lr=1e-3)


def _algo(name, ds, steps=6, seed=0, **overrides):
    seed_everything(seed)
    algo = make_algo(name, ds.spec, **dict(TINY, steps=steps, **overrides))
    algo.fit_dataset(ds)
    return algo


def _padded_batch(ds, K=4):
    batch = WindowSampler(ds, 8, 0, K=K).batch_at(np.arange(ds.n_steps)[:20])
    assert (~batch["mask"]).any()
    return batch


# ---- losses and masks --------------------------------------------------------------------------------
def test_masked_mean_ignores_pads_even_nan():
    values = torch.tensor([[[1.0, float("nan"), 3.0]], [[2.0, 5.0, float("inf")]]])  # [m=2, B=1, K=3]
    mask = torch.tensor([[True, False, True]])
    values[1, 0, 2] = 4.0
    assert torch.equal(masked_mean(values, mask), torch.tensor([2.0, 3.0]))


def test_action_loss_masks_unavailable_actions_and_pads():
    from offmarl.nets.action_head import ActionHead

    head = ActionHead(n_actions=3)
    pred = torch.tensor([[[[0.0, 0.0, 9.0], [0.0, 0.0, 9.0]]]])  # [m=1, B=1, K=2, A=3]
    batch = {"actions": torch.tensor([[[0], [1]]]), "mask": torch.tensor([[False, True]]),
             "avail": torch.tensor([[[[True, True, True]], [[True, True, False]]]])}
    # step 1: action 2 unavailable -> softmax over (0, 0) -> CE = log 2; step 0 is a pad
    assert action_loss(head, pred, batch).item() == pytest.approx(np.log(2.0), abs=1e-6)


@pytest.mark.parametrize("name", ["idt", "madt", "teacher"])
def test_padding_never_leaks_into_loss_or_gradients(name):
    ds = make_dataset(n_agents=3, episodes=6, seed=2)
    algo = _algo(name, ds)
    batch = _padded_batch(ds)
    pad = ~batch["mask"]
    noisy = {k: v.clone() for k, v in batch.items()}
    g = torch.Generator().manual_seed(0)
    noisy["obs"][pad] = torch.randn(noisy["obs"][pad].shape, generator=g) * 100
    noisy["rtg"][pad] = 42.0
    noisy["actions"][pad] = 3
    noisy["timesteps"][pad] = 5
    noisy["avail"][pad] = torch.tensor([False, False, False, True, False])

    def loss_and_grads(b):
        algo.model.zero_grad(set_to_none=True)
        loss = action_loss(algo.head, algo.forward(algo.model, b).action, b)
        loss.sum().backward()
        return loss.detach(), [p.grad.clone() for p in algo.model.parameters()]

    loss_a, grads_a = loss_and_grads(batch)
    loss_b, grads_b = loss_and_grads(noisy)
    assert torch.equal(loss_a, loss_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


def test_idt_agent_update_never_sees_other_agents_data():
    ds = make_dataset(n_agents=3, episodes=6, seed=2)
    batch = _padded_batch(ds)
    other = {k: v.clone() for k, v in batch.items()}
    other["obs"][:, :, 1:] *= -3.0
    other["rtg"][:, :, 1:] += 10.0
    other["actions"][:, :, 1:] = (other["actions"][:, :, 1:] + 1) % 5
    results = []
    for b in (batch, other):
        algo = _algo("idt", ds, grad_clip=1e-3)  # a tiny clip: a global norm would couple the agents
        for _ in range(2):
            algo.update(b)
        results.append({k: v[0].clone() for k, v in algo.model.state_dict().items() if v.dim() and v.shape[0] == 3})
    assert results[0].keys() and all(torch.equal(results[0][k], results[1][k]) for k in results[0])


def test_clip_grad_norm_per_member():
    p = torch.nn.Parameter(torch.zeros(2, 3))
    p.grad = torch.tensor([[3.0, 4.0, 0.0], [0.3, 0.4, 0.0]])  # norms 5 and 0.5
    norms = clip_grad_norm_per_member([p], 1.0)
    assert torch.allclose(norms, torch.tensor([5.0, 0.5]))
    assert torch.allclose(p.grad, torch.tensor([[0.6, 0.8, 0.0], [0.3, 0.4, 0.0]]), atol=1e-5)


# ---- policies ----------------------------------------------------------------------------------------
def _timestep(obs, reward, avail=None):
    B, n = obs.shape[:2]
    return TimeStep(obs=obs.astype(np.float32), state=np.zeros((B, 4), np.float32), reward=reward.astype(np.float32),
                    terminated=np.zeros(B, bool), truncated=np.zeros(B, bool), avail_actions=avail)


def _rollout(policy, steps=5, B=4, n=3, seed=0, tweak=None):
    rng = np.random.default_rng(seed)
    policy.reset(B)
    out = []
    for t in range(steps):
        obs = rng.normal(size=(B, n, 6))
        if tweak is not None:
            obs = tweak(obs)
        avail = rng.random((B, n, 5)) < 0.7
        avail[..., 0] = True
        out.append(policy.act(_timestep(obs, rng.normal(size=(B, n)), avail), first=t == 0))
    return np.stack(out)


@pytest.mark.parametrize("name", ["idt", "madt", "distill"])
def test_agent_action_unchanged_when_other_agents_observations_change(name):
    ds = make_dataset(n_agents=3, episodes=6, seed=2)
    algo = _algo(name, ds)
    base = _rollout(algo.policies())

    def tweak(obs):
        obs[:, 1:] = 10.0 * np.sign(obs[:, 1:])
        return obs

    changed = _rollout(algo.policies(), tweak=tweak)
    assert np.array_equal(base[..., 0], changed[..., 0])


@pytest.mark.parametrize("name", DT_ALGOS)
def test_save_load_round_trip_gives_identical_continuous_actions(tmp_path, name):
    """(The discrete case is in the algorithm contract test.)"""
    ds = make_dataset(n_agents=3, episodes=6, seed=2, discrete=False)
    algo = _algo(name, ds, steps=4)
    drive(algo, algo.make_sampler(ds, 0), 3)
    algo.save(tmp_path / "model")
    loaded = load_algo(tmp_path / "model")
    np.testing.assert_array_equal(loaded.target_returns(), ds.episode_returns().max(axis=0))
    a, b = _rollout(algo.policies()), _rollout(loaded.policies())
    np.testing.assert_array_equal(a, b)


def test_target_return_defaults_to_dataset_max_and_can_be_overridden():
    ds = make_dataset(n_agents=3, episodes=6, seed=2)
    algo = _algo("idt", ds)
    best = ds.episode_returns().max(axis=0)
    np.testing.assert_array_equal(algo.target_returns(), best)
    np.testing.assert_array_equal(algo.target_returns(2.5), [2.5, 2.5, 2.5])
    np.testing.assert_array_equal(algo.target_returns([1.0, 2.0, 3.0]), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="1 or 3 values"):
        algo.target_returns([1.0, 2.0])
    policy = algo.policies(target_return=2.0)
    policy.reset(2)
    np.testing.assert_array_equal(algo.stats.reward_scale, 1.0 / np.abs(ds.episode_returns()).max(axis=0))  # per agent
    assert np.allclose(policy.agents[1].context.tracker.current, 2.0 * algo.stats.reward_scale[1])


@pytest.mark.parametrize("name", ["idt", "teacher"])
def test_policy_context_replays_the_training_windows(name):
    """Replaying a dataset episode from target = its return gives the sampler's window at every step."""
    ds = make_dataset(n_agents=3, episodes=6, seed=2)
    algo = _algo(name, ds)
    sampler = WindowSampler(ds, 1, 0, K=4, reward_scale=algo.stats.reward_scale)
    e = int(np.argmax(ds.episode_lengths))
    episode = ds.episode(e)
    policy = algo.policies(target_return=ds.episode_returns()[e])
    policy.reset(1)
    start = int(ds.episode_starts[e])
    for t in range(len(episode["obs"])):
        reward = episode["rewards"][t - 1][None] if t else np.zeros((1, 3))
        policy.act(_timestep(episode["obs"][t][None], reward, episode["avail_actions"][t][None]), first=t == 0)
        window = sampler.batch_at(np.array([start + t]))
        contexts = [policy.context] if name == "teacher" else [a.context for a in policy.agents]
        for i, ctx in enumerate(contexts):
            agents = slice(None) if name == "teacher" else slice(i, i + 1)
            assert torch.equal(ctx.mask, window["mask"])
            assert torch.equal(ctx.timesteps[ctx.mask], window["timesteps"][window["mask"]])
            assert torch.equal(ctx.obs[ctx.mask], window["obs"][:, :, agents][window["mask"]])
            assert torch.allclose(ctx.rtg[ctx.mask], window["rtg"][:, :, agents][window["mask"]], atol=1e-6)


def test_reset_with_mask_clears_only_those_sub_envs():
    ds = make_dataset(n_agents=3, episodes=6, seed=2)
    algo = _algo("idt", ds)
    policy = algo.policies()
    _rollout(policy, steps=3, B=3)
    ctx = policy.agents[0].context
    before = ctx.mask.clone()
    policy.reset(3, np.array([False, True, False]))
    assert not ctx.mask[1].any() and torch.equal(ctx.mask[[0, 2]], before[[0, 2]])
    assert ctx.t.tolist() == [3, 0, 3]


# ---- tiny end-to-end runs in the native envs -------------------------------------------------------
@pytest.fixture(scope="module")
def native_datasets():
    from offmarl.collect.recipes import collect_dataset

    return {"equal_space": collect_dataset("equal_space", episodes=6, seed=0, num_envs=6, progress=False),
            "fill_in": collect_dataset("fill_in", policy="random", episodes=6, seed=0, num_envs=6, progress=False)}


@pytest.mark.parametrize("env", ["equal_space", "fill_in"])
@pytest.mark.parametrize("name", DT_ALGOS)
def test_smoke_end_to_end_in_the_native_envs(native_datasets, env, name):
    ds = native_datasets[env]
    algo = _algo(name, ds, steps=4, context_len=3)
    summary = fit(algo, ds, None, TrainConfig(steps=4, progress=False, tensorboard=False))
    assert summary["steps"] == 4
    result = evaluate_policy(algo.policies(), env, ds.card.env_kwargs, episodes=3, seed=0)
    assert len(result["per_agent_return"]) == 3 and np.isfinite(result["return_mean"])


def test_train_cli_distill_writes_teacher_artifact_and_eval(tmp_path, native_datasets):
    from offmarl.commands.train import run_eval, run_train
    from offmarl.data.io import save_dataset

    path = save_dataset(native_datasets["fill_in"], tmp_path / "fill_in.h5")
    sets = [f"{k}={v}" for k, v in TINY.items()]
    run = tmp_path / "run"
    run_train(algo="distill", dataset=str(path), out=run, steps=4, sets=sets, ablation="no_kl", eval_episodes=2,
              quiet=True)
    assert (run / "teacher" / "algo.pt").exists() and load_algo(run / "teacher").name == "teacher"
    record = json.loads((run / "eval.json").read_text())
    assert record["algo"] == "distill[no_kl]" and len(record["per_agent_return"]) == 3
    again = run_eval(run_dir=run, episodes=2, target_return=-5.0)
    assert again["protocol"]["target_return"] == -5.0


def test_bf16_autocast_training_of_continuous_distill_is_finite():
    """(Discrete bf16 runs are in the algorithm contract test.)"""
    ds = make_dataset(n_agents=3, episodes=6, seed=2, discrete=False)
    algo = _algo("distill", ds, steps=4)
    summary = fit(algo, ds, None, TrainConfig(steps=4, precision="bf16", progress=False, tensorboard=False,
                                              log_every=1))
    assert summary["losses"] and all(np.isfinite(v) for v in summary["losses"].values())
    assert all(p.dtype == torch.float32 for p in algo.model.parameters())  # master weights stay fp32


def test_per_agent_dataset_is_rejected_with_a_named_error():
    ds = make_dataset(n_agents=3, episodes=2, seed=2)
    algo = _algo("idt", ds)
    with pytest.raises(ValueError, match=r"idt cannot train on the per-agent dataset \(3 groups\) of env .*: it is a "
                                         "per-agent dataset .*; this algorithm trains on a joint one"):
        algo.check_source(PerAgentDatasets((ds, ds, ds)))
