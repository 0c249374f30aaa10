"""The value-based baselines (qmix, ma_cql, ma_icq, ma_bcq) and dec_mabcq through train/eval, masks, resume."""

from __future__ import annotations

import json

import _toy_env
import numpy as np
import pytest
import torch
from _torch_threads import one_torch_thread  # noqa: F401  (autouse: tiny networks on one torch thread)
from _toy_env import ToyPickEnv

from offmarl.algos import get_algo_class, make_algo
from offmarl.algos._value import masked_argmax
from offmarl.collect.recipes import collect_dataset
from offmarl.commands.train import run_eval, run_train
from offmarl.data.io import save_dataset, save_per_agent_datasets
from offmarl.nets.mixers import LinearMixer, QMixer
from offmarl.train import TrainConfig, evaluate_policy, fit, seed_everything

CENTRAL = ("qmix", "ma_cql", "ma_icq", "ma_bcq")
TINY = {"hidden": 16, "mixer_hidden": 8, "batch_size": 8}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("value_data")
    return {
        "discrete": save_dataset(collect_dataset("matrix_game", policy="behavior", episodes=40, seed=0, progress=False),
                                 root / "matrix.h5"),
        "continuous": save_dataset(collect_dataset("equal_space", episodes=6, seed=0, progress=False),
                                   root / "equal.h5"),
        "per_agent": save_per_agent_datasets(collect_dataset("equal_space", per_agent=True, episodes=4, seed=0,
                                                             progress=False), root / "equal_per_agent.h5"),
    }


def _sets(values: dict) -> list[str]:
    return [f"{k}={v}" for k, v in values.items()]


# One preset per (algorithm, env) so that both presets run in both envs.
RUNS = [(name, kind, preset) for name in CENTRAL for kind, preset in
        (("discrete", "tseng" if name in ("qmix", "ma_cql") else "sit"),
         ("continuous", "sit" if name in ("qmix", "ma_cql") else "tseng"))]


@pytest.mark.parametrize("name,kind,preset", RUNS)
def test_smoke_train_and_eval_through_the_cli(files, tmp_path, name, kind, preset):
    out = tmp_path / "run"
    summary = run_train(algo=name, dataset=str(files[kind]), out=out, steps=6, sets=_sets(TINY), preset=preset,
                        eval_episodes=0, quiet=True)
    assert summary["steps"] == 6 and all(np.isfinite(v) for v in summary["losses"].values())
    record = run_eval(run_dir=out, episodes=4)
    saved = json.loads((out / "eval.json").read_text())
    assert saved["algo"] == name and saved["episodes"] == 4 and np.isfinite(record["return_mean"])
    config = json.loads((out / "config.json").read_text())["algo_config"]
    assert config["preset"] == preset and config["agent"] == ("gru" if preset == "sit" else "mlp")


@pytest.mark.parametrize("kind", ["discrete", "per_agent"])
def test_smoke_dec_mabcq_through_the_cli(files, tmp_path, kind):
    out = tmp_path / "run"
    summary = run_train(algo="dec_mabcq", dataset=str(files[kind]), out=out, steps=10,
                        sets=["hidden=16", "batch_size=16", "value_diff_states=8", "value_diff_every=2"],
                        eval_episodes=0, quiet=True)
    assert summary["steps"] == 10 and np.isfinite(summary["losses"]["value_diff"])
    record = run_eval(run_dir=out, episodes=4)
    assert record["algo"] == "dec_mabcq[vd_tn]" and np.isfinite(record["return_mean"])


def test_capabilities_and_paper_defaults():
    for name in CENTRAL:
        cls = get_algo_class(name)
        assert cls.supports_discrete and cls.supports_continuous and not cls.decentralized_training
        assert cls.Config().preset == "tseng"
    assert get_algo_class("ma_cql").Config().beta_cql == 2.0
    icq = get_algo_class("ma_icq").Config()
    assert (icq.beta_icq, icq.lambda_icq) == (0.1, 0.8)
    assert get_algo_class("ma_bcq").Config().zeta == 0.3
    dec = get_algo_class("dec_mabcq")
    assert dec.decentralized_training and dec.variants == ("vd_tn", "vd", "tn", "bcq", "ddpg", "behavior")
    c = dec.Config()
    assert (c.batch_size, c.hidden, c.lr, c.perturb_lr, c.vae_lr, c.phi, c.n_candidates, c.latent_dim, c.gamma,
            c.variant) == (1024, 64, 1e-3, 1e-4, 1e-4, 0.05, 10, 10, 0.99, "vd_tn")


def test_presets_build_the_papers_networks():
    spec = _toy_env.ToyPickEnv().spec
    tseng = make_algo("ma_cql", spec)
    critic = tseng.nets["critic"]
    assert isinstance(tseng.nets["mixer"], QMixer) and critic.kind == "mlp" and critic.hidden == 256
    optimizer = tseng.optims["critic"].optimizer
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["lr"] == 1e-4
    sit = make_algo("ma_icq", spec, preset="sit")
    assert isinstance(sit.nets["mixer"], LinearMixer) and sit.nets["critic"].kind == "gru"
    actor, critic = sit.optims["actor"].optimizer, sit.optims["critic"].optimizer
    assert isinstance(actor, torch.optim.RMSprop) and sit.config.batch_size == 32
    assert critic.param_groups[0]["lr"] == 1e-4 and actor.param_groups[0]["lr"] == 5e-4






def test_targets_mask_unavailable_next_actions():
    toy = _toy_env.toy_dataset(episodes=10, seed=0)
    algo = make_algo("qmix", toy.spec, mixer="vdn", **TINY)
    with torch.no_grad():
        algo.nets["target_critic"].head_net.layers[-1].bias[..., 2] = 1e3
    batch = algo.make_sampler(toy, 0).sample()
    from offmarl.algos._centralized import to_sequences

    seq = to_sequences(batch, algo.device)
    seq.avail[..., 2] = False  # nobody may play action 2 next
    with torch.no_grad():
        y = algo.td_targets(seq, algo.nets["critic"].features(seq.obs)[:, 1:])
    assert y.abs().max() < 100


def _train(name, data, seed=0, **overrides):
    seed_everything(seed)
    algo = make_algo(name, data.spec, **overrides)
    fit(algo, data, None, TrainConfig(seed=seed, progress=False, log_every=10))
    return algo


@pytest.mark.parametrize("name,preset", [(n, "sit") for n in CENTRAL])
def test_state_dict_continues_exactly_with_gru_agents(name, preset):
    """(The tseng preset's MLP agents are in the algorithm contract test.)"""
    toy = _toy_env.toy_dataset(episodes=10, seed=0)
    extra = {"behavior_fraction": 0.34} if name == "ma_bcq" else {}  # 1 behaviour step, then the main stage
    a = _train(name, toy, preset=preset, steps=3, **extra, **TINY)
    b = make_algo(name, toy.spec, **a.config_dict())
    b.load_state_dict(a.state_dict())
    b.enter_stage(a.stage)  # the stage follows from the step, which the fit loop keeps
    batch = a.make_sampler(toy, 9).sample()
    torch.manual_seed(5)
    la = a.update(batch)
    torch.manual_seed(5)
    lb = b.update(batch)
    assert la == lb
    for (k, p), (_, q) in zip(a.nets.state_dict().items(), b.nets.state_dict().items()):
        assert torch.equal(p, q), k


def test_centralized_learners_refuse_a_per_agent_file(files):
    from offmarl.train.run_dir import resolve_dataset

    data, _ = resolve_dataset(str(files["per_agent"]))
    algo = make_algo("qmix", data[0].spec, **TINY)
    with pytest.raises(ValueError, match=r"qmix cannot train on the per-agent dataset \(3 groups\) .*: it is a "
                                         "per-agent dataset"):
        algo.check_source(data)


def test_gru_policy_resets_only_the_masked_sub_envs():
    spec = ToyPickEnv().spec
    agent = make_algo("qmix", spec, preset="sit", **TINY).policies().agents[0]
    agent.reset(3)
    agent.act(np.ones((3, 3), np.float32), np.ones((3, 3), bool), None)
    before = agent.hidden[0].clone()
    agent.reset(3, np.array([False, True, False]))
    assert agent.hidden[0][1].abs().sum() == 0
    assert torch.equal(agent.hidden[0][[0, 2]], before[[0, 2]]) and before[1].abs().sum() > 0


@pytest.mark.parametrize("name", ["ma_bcq", "ma_cql"])
def test_constrained_learners_recover_the_expert_from_expert_data(name):
    toy = _toy_env.toy_dataset(episodes=40, seed=0)
    algo = _train(name, toy, steps=100, hidden=32, batch_size=32, lr=3e-3, preset="sit")
    result = evaluate_policy(algo.policies(), _toy_env.ENV_NAME, {}, episodes=6, seed=7)
    assert result["return_mean"] == 2.0


def test_greedy_policy_matches_the_training_time_q_values():
    """The decentralized GRU policy sees exactly what training computes for the same episode."""
    toy = _toy_env.toy_dataset(episodes=10, seed=0)
    algo = make_algo("qmix", toy.spec, preset="sit", **TINY)
    ep = int(np.argmax(toy.episode_lengths))
    s, length = int(toy.episode_starts[ep]), int(toy.episode_lengths[ep])
    obs = torch.as_tensor(toy.obs[s:s + length])[None]  # [1, L, n, d]
    q = algo.nets["critic"](obs)[0]  # [L, n, A]
    policy = algo.policies()
    policy.reset(1)
    for t in range(length):
        for i, agent in enumerate(policy.agents):
            a = agent.act(toy.obs[s + t:s + t + 1, i], toy.avail_actions[s + t:s + t + 1, i], None)
            assert a[0] == masked_argmax(q[t, i], torch.as_tensor(toy.avail_actions[s + t, i])).item()


def _tensors(state):
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, dict):
        for value in state.values():
            yield from _tensors(value)
    elif isinstance(state, (list, tuple)):
        for value in state:
            yield from _tensors(value)


@pytest.mark.parametrize("name,kind,overrides", [
    ("ma_icq", "discrete", {"preset": "sit", **TINY}),  # GRU agents on episodes, two optimizers
    ("ma_bcq", "continuous", {"behavior_fraction": 0.25, **TINY}),  # two stages, VAE noise from the global RNG
    ("dec_mabcq", "per_agent", {"hidden": 16, "batch_size": 16, "vae_fraction": 0.25}),  # per-learner generators
])
def test_a_crashed_run_resumes_to_the_same_weights(tmp_path, files, name, kind, overrides):
    from offmarl.train.run_dir import resolve_dataset

    data = _toy_env.toy_dataset(episodes=10, seed=0, continuous=kind == "continuous") if kind != "per_agent" else \
        resolve_dataset(str(files["per_agent"]))[0]
    spec = data.spec
    cfg = dict(seed=3, progress=False, log_every=1, checkpoint_every=2, eval_every=5)

    def build():
        seed_everything(3)
        return make_algo(name, spec, steps=8, **overrides)

    def evaluator(step):
        return {"return_mean": 0.0, "return_std": 0.0}

    def crash(step):
        raise RuntimeError("simulated crash")

    reference = build()
    fit(reference, data, tmp_path / "ref", TrainConfig(**cfg), evaluator=evaluator)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(build(), data, tmp_path / "run", TrainConfig(**cfg), evaluator=crash)  # dies at step 5, checkpoint at 4
    resumed = build()
    fit(resumed, data, tmp_path / "run", TrainConfig(**cfg, resume=True), evaluator=evaluator)
    pairs = list(zip(_tensors(reference.state_dict()), _tensors(resumed.state_dict())))
    assert pairs and all(torch.equal(a, b) for a, b in pairs)
