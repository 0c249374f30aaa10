"""Finetuning an offline run online with MAPPO (``offmarl finetune``, :mod:`offmarl.algos.finetune`).

The online policy at step 0 is the offline one (same greedy actions, its log-probabilities the offline network's,
recomputed exactly on the stored K-step windows); execution stays decentralized; a fresh critic warms up alone
and the first actor update does not make the policy worse; a killed finetuning run resumes to the same files;
bad input is one line. (The combined learner -- offline stages, then online -- is in the algorithm contract.)
"""

from __future__ import annotations

import json
from pathlib import Path

import _toy_env
import numpy as np
import pytest
import torch
from _run_files import assert_same_run_files
from typer.testing import CliRunner

from offmarl.algos import get_algo_class, make_algo
from offmarl.algos.finetune import Finetune, Windows
from offmarl.cli import app
from offmarl.collect.engine import RolloutEngine
from offmarl.collect.recipes import env_normalization
from offmarl.data.io import save_dataset
from offmarl.envs.base import EnvSpec
from offmarl.envs.registry import EnvSource
from offmarl.nets.action_head import mask_logits
from offmarl.policies.base import DecentralizedPolicy
from offmarl.train.evaluate import evaluate_policy
from offmarl.train.experiment import (
    Experiment,
    _resolve_source,
    build_algorithm,
    initialize,
    load_run,
    run_experiment,
    run_normalization,
)
from offmarl.train.finetune import finetune_experiment

runner = CliRunner()
TINY = {"madt": ["hidden=16", "n_layers=1", "n_heads=2", "feature_dim=8", "context_len=3", "batch_size=16",
                 "lr=3e-3"],
        "bc": ["hidden=16", "history=2", "batch_size=16", "lr=3e-3"]}
TINY["idt"] = TINY["madt"]
CRITIC = ["hidden=16", "rollout_length=6", "num_minibatches=2", "ppo_epochs=2"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("finetune_data")
    return {kind: save_dataset(_toy_env.toy_dataset(episodes=24, seed=0, continuous=kind == "continuous"),
                               root / f"{kind}.h5") for kind in ("discrete", "continuous")}


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory) -> dict[str, Path]:
    """Offline runs of madt, idt and bc on the discrete toy data, and of madt on the continuous one."""
    root = tmp_path_factory.mktemp("offline_runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks
    out = {}
    for key, algo, kind, steps in (("madt", "madt", "discrete", 60), ("idt", "idt", "discrete", 40),
                                   ("bc", "bc", "discrete", 300), ("madt_continuous", "madt", "continuous", 40)):
        run_experiment(Experiment(algo=algo, dataset=str(data[kind]), out=root / key / algo / "seed0", steps=steps,
                                  sets=tuple(TINY[algo]), eval_episodes=0, progress=False))
        out[key] = root / key / algo / "seed0"
    torch.set_num_threads(threads)
    return out


def finetuner(run: Path, **sets: object) -> Finetune:
    """The finetune learner ``offmarl finetune RUN`` builds, started from RUN's weights, in its online stage."""
    exp = finetune_experiment(run, steps=240, sets=[*CRITIC, *(f"{k}={v}" for k, v in sets.items())],
                              progress=False)
    config = json.loads((run / "config.json").read_text())
    learner = build_algorithm(exp, EnvSpec.from_dict(config["env_spec"]))
    initialize(learner, run)
    learner.plan(learner.total_steps)
    learner.enter_stage("online")
    return learner


# ---- step 0: the online policy is the offline one -------------------------------------------------------------
def expected_raw(policy: DecentralizedPolicy) -> torch.Tensor:
    """The offline network's raw outputs ``[B, n, A]`` at the step each agent policy just acted on, from the
    policy's own context (a DT's buffers, bc's observation history)."""
    outs = []
    for agent in policy.agents:
        if hasattr(agent, "context"):
            c = agent.context
            out = c.model(c.rtg, c.obs, c.actions, c.timesteps, c.mask, c.agent_ids, c.member, last_only=True)
            outs.append(out.action[0, :, -1])
        else:
            outs.append(agent.net(agent.buffer.flatten(1)))
    return torch.stack(outs, dim=1)


@pytest.mark.parametrize("key", ["madt", "idt", "bc", "madt_continuous"])
@torch.no_grad()
def test_at_step_0_the_online_policy_acts_as_the_offline_one(runs, key):
    """Through two episodes of every sub-env: the training-side actor's windows make the offline network give
    exactly the offline policy's outputs (greedy action = the offline action; log-probabilities = its
    log-softmax), and the learner's evaluation policies play the offline run's actions."""
    offline, _ = load_run(runs[key])
    learner = finetuner(runs[key])
    continuous = key.endswith("continuous")
    env = _toy_env.ToyPickEnv(num_envs=6, seed=5, continuous=continuous)
    ts = env.reset(seed=5)
    policy = offline.policies()
    policy.reset(env.num_envs)
    hidden = learner.initial_hidden(env.num_envs)
    for t in range(7):  # episodes of 1, 2, 3 steps: every sub-env starts new episodes on the way
        actions = policy.act(ts, first=t == 0)
        windows = learner.push(hidden, torch.as_tensor(ts.obs))
        avail = None if ts.avail_actions is None else torch.as_tensor(ts.avail_actions)
        dist = learner.distribution(windows, avail)
        raw = expected_raw(policy)
        if continuous:
            torch.testing.assert_close(dist.mean, offline.head.squash(raw), rtol=0, atol=1e-6)
            np.testing.assert_allclose(dist.mean.numpy(), actions, rtol=0, atol=1e-6)
        else:
            np.testing.assert_array_equal(dist.logits.argmax(-1).numpy(), actions)
            torch.testing.assert_close(dist.logits, torch.log_softmax(mask_logits(raw, avail), -1), rtol=0,
                                       atol=1e-6)
        hidden = learner.windows.with_action(windows, torch.as_tensor(actions))
        ts = env.step(actions)
        hidden = learner.carry_hidden(hidden, torch.as_tensor(ts.reward))
        hidden = hidden * torch.as_tensor(~ts.done)[:, None, None]  # the engine zeroes ended episodes' state
        if ts.done.any():
            policy.reset(env.num_envs, ts.done)
    kwargs = {"continuous": continuous}
    ours = evaluate_policy(learner.policies(), _toy_env.ENV_NAME, kwargs, 12, 3)
    theirs = evaluate_policy(offline.policies(), _toy_env.ENV_NAME, kwargs, 12, 3)
    assert ours["return_mean"] == theirs["return_mean"] and ours["per_agent_return"] == theirs["per_agent_return"]


@pytest.mark.parametrize("key", ["madt", "bc", "madt_continuous"])
def test_the_update_recomputes_the_log_probs_on_the_windows_acted_with(runs, key):
    """A rollout of the rollout engine, then the PPO side's log-probabilities of its actions (windows rebuilt from
    the stored hidden state and the step's observation): exactly those recorded when acting."""
    learner = finetuner(runs[key])
    continuous = key.endswith("continuous")
    engine = RolloutEngine(_toy_env.ToyPickEnv(num_envs=4, seed=1, continuous=continuous), learner, seed=1)
    rollout = engine.collect(12)  # several episodes per sub-env, across a window's length
    rollout_b = engine.collect(12)  # windows carried over from the previous rollout
    for r in (rollout, rollout_b):
        T, B = r.rewards.shape[:2]
        chunks = torch.arange(T * B)
        batch = learner._minibatch(r, torch.zeros_like(r.rewards), torch.zeros_like(r.rewards), chunks,
                                   list(range(T)), 1)
        log_prob, _ = learner.evaluate_actions(batch)
        torch.testing.assert_close(log_prob, batch.old_log_probs, rtol=0, atol=1e-6)


def test_windows_by_hand():
    """Push, action, reward and reset arithmetic of one agent's window (K = 2, d = 1, a = 1)."""
    w = Windows(2, 1, 1)
    h = torch.zeros(1, 1, w.width, dtype=torch.float64)
    target, scale = torch.tensor([5.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    h = w.push(h, torch.tensor([[[7.0]]]), target, scale, max_t=10)
    h = w.carry(w.with_action(h, torch.tensor([[2]])), torch.tensor([[1.5]]))
    h = w.push(h, torch.tensor([[[8.0]]]), target, scale, max_t=10)
    v = w.unpack(h)
    assert v["remaining"].item() == 3.5  # 5 − 1.5
    assert v["rtg"][0, 0].tolist() == [2.5, 1.75]  # 0.5 · 5, 0.5 · 3.5
    assert v["timesteps"][0, 0].tolist() == [0, 1] and v["mask"][0, 0].tolist() == [1, 1]
    assert v["obs"][0, 0, :, 0].tolist() == [7.0, 8.0] and v["actions"][0, 0, :, 0].tolist() == [2, 0]
    h = w.push(w.carry(h, torch.tensor([[0.5]])), torch.tensor([[[9.0]]]), target, scale, max_t=1)
    v = w.unpack(h)  # the oldest step dropped; the timestep clamped
    assert v["obs"][0, 0, :, 0].tolist() == [8.0, 9.0] and v["timesteps"][0, 0].tolist() == [1, 1]
    assert v["rtg"][0, 0].tolist() == [1.75, 1.5]
    v = w.unpack(w.push(torch.zeros_like(h), torch.tensor([[[4.0]]]), target, scale, max_t=1))  # a new episode
    assert v["remaining"].item() == 5.0 and v["mask"][0, 0].tolist() == [0, 1] and v["rtg"][0, 0].tolist() == [0, 2.5]


# ---- decentralized execution ----------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["madt", "idt", "bc"])
@torch.no_grad()
def test_agent_0_acts_on_its_own_window_only(runs, key):
    """Agent 1's window replaced by noise: agent 0's action distribution is bit for bit the same; the evaluation
    policies are per-agent policies (each sees its own observation, mask and reward)."""
    learner = finetuner(runs[key])
    rng = torch.Generator().manual_seed(0)
    h = learner.initial_hidden(5)
    for _ in range(3):
        h = learner.push(h, torch.eye(3)[torch.randint(0, 3, (5, 2), generator=rng)])
    other = h.clone()
    other[:, 1] = torch.randn(other[:, 1].shape, generator=rng, dtype=torch.float64)
    other[:, 1, 1 + 2 * learner.windows.K:1 + 3 * learner.windows.K] = 1.0  # agent 1's mask stays valid
    a, b = learner.distribution(h, None).logits, learner.distribution(other, None).logits
    assert torch.equal(a[:, 0], b[:, 0]) and not torch.equal(a[:, 1], b[:, 1])
    assert isinstance(learner.policies(), DecentralizedPolicy)


# ---- going online: the critic warms up first, and the policy does not get worse --------------------------------
def test_the_first_online_updates_do_not_make_the_policy_worse(runs):
    """bc's offline policy (near-perfect on the toy task) finetuned with the paper's settings (lr 1e-4, a critic
    warm-up update): the warm-up update moves the critic and the value normalizer only; after the first actor
    update the greedy return is not lower than the offline policy's, and the actor did move."""
    learner = finetuner(runs["bc"], critic_warmup=1, rollout_length=12)
    source = EnvSource(_toy_env.ENV_NAME, {}, 8)
    env = source.make(seed=0)
    engine = RolloutEngine(env, learner, seed=0)

    def greedy_return() -> float:
        return evaluate_policy(learner.policies(), _toy_env.ENV_NAME, {}, 48, 11)["return_mean"]

    actor = [p.detach().clone() for p in learner.network.parameters()]
    critic = [p.detach().clone() for p in learner.critic.parameters()]
    offline_return = greedy_return()
    learner.on_fit_start(None)
    logs = learner.update(engine.collect(learner.rollout_length))  # the warm-up
    assert "actor_grad_norm" not in logs and logs["value_loss"] > 0
    assert all(torch.equal(p, q) for p, q in zip(actor, learner.network.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(critic, learner.critic.parameters()))
    assert learner.value_norm.debias.item() > 0
    logs = learner.update(engine.collect(learner.rollout_length))  # the first actor update
    assert "actor_grad_norm" in logs
    assert not all(torch.equal(p, q) for p, q in zip(actor, learner.network.parameters()))
    assert greedy_return() >= offline_return


# ---- the command: a run from step 0, exact resume, bad input ---------------------------------------------------
def finetune_cli(run: Path, out: Path, *extra: str):
    return runner.invoke(app, ["finetune", str(run), "--steps", "288", "--out", str(out), "--eval-episodes", "6",
                               "--eval-every", "96", "--checkpoint-every", "48", "--quiet",
                               *[a for s in CRITIC for a in ("--set", s)], *extra])


def test_finetune_starts_at_the_offline_return_and_resumes_exactly_after_a_kill(runs, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    result = finetune_cli(runs["madt"], reference)
    assert result.exit_code == 0, result.output
    offline = evaluate_policy(load_run(runs["madt"])[0].policies(), _toy_env.ENV_NAME, {}, 6, 12345)
    curve = json.loads((reference / "curve.json").read_text())
    assert curve[0] == [0, offline["return_mean"], offline["return_std"]]  # step 0: the offline policy
    config = json.loads((reference / "config.json").read_text())
    assert config["algo_label"] == "finetune[madt]" and config["init_run"]["run"] == str(runs["madt"])
    assert config["algo_config"]["offline_steps"] == 0

    killed = tmp_path / "killed"
    calls = {"n": 0}
    original = Finetune.update

    def dying(self, batch):
        calls["n"] += 1
        if calls["n"] == 4:  # the 4th online update: after two checkpoints
            raise KeyboardInterrupt
        return original(self, batch)

    with monkeypatch.context() as patch:
        patch.setattr(Finetune, "update", dying)
        killed_result = finetune_cli(runs["madt"], killed)  # the interrupt ends the command (exit 130)
    assert killed_result.exit_code == 130 and calls["n"] == 4
    assert not (killed / "eval.json").exists() and (killed / "checkpoints" / "last.pt").exists()
    result = finetune_cli(runs["madt"], killed, "--resume")
    assert result.exit_code == 0, result.output
    assert_same_run_files(killed, reference)
    assert len(json.loads((killed / "config.json").read_text())["resumes"]) == 1


def test_bad_input_is_one_line(runs, tmp_path):
    qmix = tmp_path / "qmix_run"
    qmix.mkdir()
    (qmix / "config.json").write_text(json.dumps({"algo": "qmix", "algo_config": {}}))
    cases = [([str(tmp_path / "nowhere")], "is not a run directory"),
             ([str(runs["madt"].parent)], "is not a run directory"),
             ([str(qmix)], "is a run of qmix: offmarl finetune continues a run of distill, idt, madt, bc"),
             ([str(runs["madt"]), "--steps", "0"], "--steps must be >= 1"),
             ([str(runs["madt"]), "--steps", "-5"], "--steps must be >= 1"),
             ([str(runs["madt"]), "--algo", "ippo"], "--algo 'ippo': offmarl finetunes with mappo"),
             ([str(runs["madt"]), "--weights", "best"], "has no best checkpoint")]
    for args, message in cases:
        result = runner.invoke(app, ["finetune", *args, "--out", str(tmp_path / "out"), "--quiet"])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output


def test_the_default_budget_is_table_10s_online_epochs(runs):
    """Without --steps: 10 online epochs x 64 episodes x the episode limit (3) frames, one update per 64
    episodes' frames with 8 sub-envs (rollout_length 8 x 3); a combined run adds the offline algorithm's steps,
    and a scaled budget scales both."""
    learner = make_algo("finetune", _toy_env.ToyPickEnv().spec, variant="bc", offline_steps=0)
    assert learner.total_steps == 10 * 64 * 3 and learner.rollout_length == 24
    combined = make_algo("finetune", _toy_env.ToyPickEnv().spec, variant="madt")
    assert combined.config.offline_steps == 100_000 and combined.total_steps == 100_000 + 1920
    assert combined.schedule.names == ["offline", "online"]
    distill = make_algo("finetune", _toy_env.ToyPickEnv().spec, offline_steps=10, steps=100)
    assert distill.schedule.stages == (("teacher", 5), ("student", 5), ("online", 90))
    # a scaled budget keeps the offline algorithm's share: half of (4000 offline steps + 64000 frames)
    half = make_algo("finetune", _toy_env.ToyPickEnv().spec, variant="bc", offline=("steps=4000",),
                     online_frames=64000, steps=34000)
    assert half.schedule.stages == (("offline", 2000), ("online", 32000))


def test_a_run_in_an_env_column_is_normalized_by_the_env(data):
    """A dataset+env run that names its env (a bench's env entry with demonstrations, beside mappo's online runs)
    takes the env's normalization returns, as the online runs of that column do; one whose env is its dataset's
    keeps the card's (beside the offline runs of a dataset column)."""
    card = {"random_return": -1.0, "reference_return": 5.0}
    env = {"env_name": _toy_env.ENV_NAME, "env_kwargs": {}}
    assert run_normalization({"dataset": card, "env_source": env}) == card
    measured = env_normalization(_toy_env.ENV_NAME, {})
    assert run_normalization({"dataset": card, "env_source": env, "normalized_by": "env"}) == {
        "random_return": measured["random_return"], "reference_return": measured["reference_return"]}
    exp = Experiment(algo="finetune", dataset=str(data["discrete"]), env=_toy_env.ENV_NAME, steps=200, eval_episodes=0,
                     progress=False)
    assert _resolve_source(exp, get_algo_class("finetune")).meta["normalized_by"] == "env"
    no_env = Experiment(algo="finetune", dataset=str(data["discrete"]), steps=200, eval_episodes=0, progress=False)
    assert "normalized_by" not in _resolve_source(no_env, get_algo_class("finetune")).meta
