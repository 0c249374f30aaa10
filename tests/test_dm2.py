"""DM² and its relatives on the toy env (tests/_toy_env.py): the demonstration styles' draws, decentralization
(agent i's networks unchanged by agent j's demonstrations), the reward each variant trains on, the styles' and
variants' dataset checks, and tiny ``offmarl train`` + ``offmarl eval`` runs of dm2 (and its variants), sil,
ma_gail and ma_airl."""

from __future__ import annotations

import copy
import dataclasses
import json

import _toy_env
import numpy as np
import pytest
import torch
import yaml
from _drive import drive
from _torch_threads import one_torch_thread  # noqa: F401  (autouse: tiny networks on one torch thread)
from typer.testing import CliRunner

from offmarl.algos import get_algo_class, make_algo
from offmarl.algos._adversarial import GAILPPO, AdversarialPPO, Demonstrations
from offmarl.algos._ppo import PPOLearner
from offmarl.data.io import save_dataset
from offmarl.data.sources import DatasetAndEnv, PerAgentDatasets
from offmarl.envs.registry import EnvSource
from offmarl.train import TrainConfig, fit, seed_everything
from offmarl.train.online import training_sampler

ENV = EnvSource(_toy_env.ENV_NAME, {}, num_envs=16)
FRAMES = ENV.num_envs * get_algo_class("dm2").contract_overrides["rollout_length"]  # one rollout


@pytest.fixture(scope="module")
def toy():
    return _toy_env.toy_dataset(episodes=24, seed=0)


def numbered(ds, offset: int = 0):
    """``ds`` with every observation's first feature = 1 + offset + its episode's index (0 marks padding)."""
    out = copy.deepcopy(ds)
    out.obs[:, :, 0] = 1 + offset + ds.episode_index[:, None]
    return out


def drawn_episodes(demos: Demonstrations) -> np.ndarray:
    """The episode each agent drew for each batch row ``[B, n]`` (from :func:`numbered` data)."""
    return demos.sample().obs[:, 0, :, 0].numpy().astype(int) - 1


def test_concurrent_sampling_draws_the_same_episodes_for_every_agent(toy):
    demos = Demonstrations(numbered(toy), toy.spec, episodes=10, sampling="concurrent", batch=64, seed=0,
                           require_actions=False)
    for _ in range(3):
        ids = drawn_episodes(demos)
        assert (ids[:, 0] == ids[:, 1]).all() and ids.min() >= 0 and ids.max() < 10
    assert len(np.unique(ids)) > 5


def test_independent_sampling_gives_each_agent_its_own_block_and_draws(toy):
    for episodes, block in ((10, 10), (1000, 12)):  # 24 episodes: at most 12 per agent
        demos = Demonstrations(numbered(toy), toy.spec, episodes=episodes, sampling="independent", batch=64, seed=0,
                               require_actions=False)
        ids = drawn_episodes(demos)
        assert ids[:, 0].min() >= 0 and ids[:, 0].max() < block
        assert ids[:, 1].min() >= block and ids[:, 1].max() < 2 * block
        assert not (ids[:, 1] - block == ids[:, 0]).all()  # agent 1 does not mirror agent 0's draws


def test_per_agent_demonstrations_come_from_each_agents_group(toy):
    groups = PerAgentDatasets((numbered(toy), numbered(toy, offset=100)))
    concurrent = drawn_episodes(Demonstrations(groups, toy.spec, 1000, "concurrent", 32, 0, False))
    assert (concurrent[:, 1] == concurrent[:, 0] + 100).all()  # the same episodes, each from its agent's group
    independent = drawn_episodes(Demonstrations(groups, toy.spec, 1000, "independent", 32, 0, False))
    assert independent[:, 0].max() < 12 and (independent[:, 1] - 100 >= 12).all()


def train(algo: str, source, frames: int, seed: int = 0, **overrides):
    seed_everything(seed)
    learner = make_algo(algo, ENV.spec(), **{**get_algo_class(algo).contract_overrides, **overrides,
                                              "steps": frames})
    fit(learner, source, None, TrainConfig(seed=seed, progress=False))
    return learner


@pytest.mark.parametrize("style", ["cotrained_concurrent", "cotrained_independent", "separate_independent"])
def test_agent_0_is_unchanged_when_agent_1s_demonstrations_change(toy, style):
    """Agent 1's demonstrated observations replaced: agent 0's actor, critic and discriminator end bit for bit
    the same, agent 1's do not."""
    other = copy.deepcopy(toy)
    rng = np.random.default_rng(1)
    other.obs[:, 1] = np.eye(3, dtype=np.float32)[rng.integers(0, 3, other.n_steps)]
    other.final_obs[:, 1] = np.eye(3, dtype=np.float32)[rng.integers(0, 3, other.n_episodes)]
    if style.startswith("separate"):
        sources = [PerAgentDatasets((toy, data)) for data in (toy, other)]
    else:
        sources = [toy, other]
    runs = [train("dm2", DatasetAndEnv(data, ENV), 4 * FRAMES, demo_style=style) for data in sources]
    assert all(torch.equal(p, q) for p, q in zip(runs[0].agent_parameters(0), runs[1].agent_parameters(0)))
    assert not all(torch.equal(p, q) for p, q in zip(runs[0].agent_parameters(1), runs[1].agent_parameters(1)))


def test_each_style_takes_the_dataset_that_matches_it(toy):
    joint, per_agent = DatasetAndEnv(toy, ENV), DatasetAndEnv(PerAgentDatasets((toy, toy)), ENV)
    for style in ("separate_concurrent", "separate_independent"):  # experts run together, or one file per agent
        make_algo("dm2", toy.spec, demo_style=style).check_source(joint)
        make_algo("dm2", toy.spec, demo_style=style).check_source(per_agent)
    with pytest.raises(ValueError, match=r"demo_style=cotrained_concurrent takes a joint dataset"):
        make_algo("dm2", toy.spec).check_source(per_agent)
    for kind, style, wants in (("separate", "cotrained_independent", "co-trained"),
                               ("cotrained", "separate_concurrent", "separately trained")):
        named = copy.deepcopy(toy)
        named.card = dataclasses.replace(named.card, recipe=f"dm2/toy_pick/{kind}/trained")
        with pytest.raises(ValueError, match=rf"recipe dm2/toy_pick/{kind}/trained holds {kind} experts' "
                                             rf"demonstrations, demo_style={style} asks for {wants} ones"):
            make_algo("dm2", toy.spec, demo_style=style).check_source(DatasetAndEnv(named, ENV))
    with pytest.raises(ValueError, match="demo_style must be one of"):
        make_algo("dm2", toy.spec, demo_style="concurrent")
    state_only = copy.deepcopy(toy)
    state_only.actions = None
    make_algo("dm2", toy.spec).check_source(DatasetAndEnv(state_only, ENV))  # DM² needs observations only
    with pytest.raises(ValueError, match="it is state-only"):  # behaviour cloning needs actions
        make_algo("dm2", toy.spec, variant="bc_pretrain").check_source(DatasetAndEnv(state_only, ENV))
    with pytest.raises(ValueError, match="it is state-only"):
        make_algo("ma_gail", toy.spec).check_source(DatasetAndEnv(state_only, ENV))


@pytest.mark.parametrize("variant, mixed", [(None, True), ("gail_only", False)])
def test_the_reward_ppo_trains_on(toy, monkeypatch, variant, mixed):
    """DM²: r = r_env + c · r_GAIL; gail_only: r = r_GAIL (no environment reward)."""
    seen: dict[str, list[torch.Tensor]] = {"env": [], "imitation": [], "ppo": []}
    adversarial_update, imitation, ppo_update = AdversarialPPO.update, GAILPPO.imitation_reward, PPOLearner.update

    def record(key, fn, field=None):
        def wrapper(self, x):
            if key != "imitation":
                seen[key].append(x.rewards.clone())
            out = fn(self, x)
            if key == "imitation":
                seen[key].append(out.cpu().clone())
            return out
        return wrapper

    monkeypatch.setattr(AdversarialPPO, "update", record("env", adversarial_update))
    monkeypatch.setattr(GAILPPO, "imitation_reward", record("imitation", imitation))
    monkeypatch.setattr(PPOLearner, "update", record("ppo", ppo_update))
    learner = train("dm2", DatasetAndEnv(toy, ENV), 3 * FRAMES, variant=variant)
    c = learner.config.reward_coef
    assert len(seen["ppo"]) == len(seen["imitation"]) == 3
    for env, r_gail, trained in zip(seen["env"], seen["imitation"], seen["ppo"]):
        torch.testing.assert_close(trained, env + c * r_gail if mixed else r_gail, rtol=0, atol=0)


def test_behaviour_cloning_comes_first_trains_the_actor_only_and_imitates(toy):
    """``bc_pretrain``: a ``bc`` stage of ``bc_steps`` updates on the demonstrations (1000 unless set) before the
    online stage; it moves the actors alone, and 40 steps on toy_pick's expert data make the greedy agents play
    the targets."""
    overrides = {**get_algo_class("dm2").contract_overrides, "variant": "bc_pretrain"}
    assert make_algo("dm2", toy.spec, **overrides, steps=10 * FRAMES).schedule.stages == (
        ("bc", 1000), ("main", 10 * FRAMES - 1000))
    seed_everything(0)
    learner = make_algo("dm2", toy.spec, **{**overrides, "bc_steps": 40, "lr": 1e-2, "steps": 40 + FRAMES})
    source = DatasetAndEnv(toy, ENV)
    sampler = training_sampler(learner, source, seed=0)
    learner.on_fit_start(source)
    initial = copy.deepcopy(learner)
    losses = [log["bc_loss"] for log in drive(learner, sampler, 40)]
    assert learner.stage == "main" and losses[-1] < losses[0]
    assert not torch.equal(learner.actor.fcs[0].weight, initial.actor.fcs[0].weight)
    for name in ("critic", "value_head", "discriminator"):
        assert all(torch.equal(p, q) for p, q in zip(getattr(learner, name).parameters(),
                                                     getattr(initial, name).parameters()))
    obs = torch.eye(3)[:, None, :].expand(3, 2, 3)  # target k for both agents
    f, _ = learner.actor.step(learner.actor_inputs(obs), None)
    greedy = learner.policy_head.greedy(f, None)
    assert greedy[:2].tolist() == [[0, 0], [1, 1]] and greedy[2, 0] == 2
    sampler.close()


TINY_ALGOS = {"dm2": [], "dm2[bc_pretrain]": ["--variant", "bc_pretrain", "--set", "bc_steps=2"],
              "dm2[gail_only]": ["--variant", "gail_only"], "sil": [], "ma_gail": [], "ma_airl": []}


@pytest.mark.parametrize("label", list(TINY_ALGOS))
def test_offmarl_train_and_eval(toy, tmp_path, label):
    """``offmarl train ALGO --dataset DEMOS.h5`` (the env defaults to the dataset's; sil: ``--env``) then
    ``offmarl eval``."""
    from offmarl.cli import app

    name = label.split("[")[0]
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(get_algo_class(name).contract_overrides))
    where = ["--env", ENV.env_name] if name == "sil" else ["--dataset", str(save_dataset(toy, tmp_path / "demos.h5"))]
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["train", name, *where, "--num-envs", "16", "--out", str(run), "--steps",
                                 str(3 * FRAMES), "--config", str(config), "--eval-episodes", "4", "--quiet",
                                 *TINY_ALGOS[label]])
    assert result.exit_code == 0, result.output
    record = json.loads((run / "eval.json").read_text())
    assert record["algo"] == label and record["protocol"]["steps"] >= 3 * FRAMES - 1
    assert record["dataset"] is None and record["protocol"]["steps_unit"] == "frames"  # it interacted with the env
    assert runner.invoke(app, ["eval", str(run), "--episodes", "4"]).exit_code == 0
    again = json.loads((run / "eval.json").read_text())  # a re-evaluation says the same of how it learned
    assert again["dataset"] is None and again["protocol"]["steps_unit"] == "frames"


@pytest.mark.parametrize("name", ["dm2-fig2", "dm2-ablations", "dm2-ablations-separate", "dm2-quality",
                                  "tseng-imitation"])
def test_the_dm2_and_imitation_suites_resolve(name):
    """The suite files parse, name registered algorithms, variants and recipes, and state their CPU scale."""
    from pathlib import Path

    from offmarl.bench.suite import check_algorithms, check_datasets, load_suite, run_mode

    suite = load_suite(Path(__file__).resolve().parent.parent / "benchmarks" / "suites" / f"{name}.yaml")
    check_algorithms(suite)
    check_datasets(suite)
    assert suite.cpu_scale and suite.frames and suite.eval_every
    for algo in suite.algorithms:
        assert any(run_mode(algo.name, d) for d in suite.datasets)
    if name == "dm2-fig2":
        seeds = {a.label: sum(a.runs_seed(s, suite.seeds) for s in suite.seeds) for a in suite.algorithms}
        assert seeds == {"dm2": 5, "ippo": 5, "mappo": 3, "qmix": 3, "sil": 3}
        assert {run_mode("dm2", d) for d in suite.datasets} == {"dataset+env"}
