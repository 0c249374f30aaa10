"""The algorithm contract: every registered algorithm, and the test-only online learner, through one set of
checks (``Algorithm.contract_overrides`` makes each tiny; ``Algorithm.progress_metric`` says what a tiny
run must improve). An algorithm added to the registry is covered without touching this file.

Dataset learners train on ``toy_pick`` expert data (discrete, two agents, agent 1 may never play action 2);
online learners play it live (``toy_pick`` is restorable, so their resumes are exact too); ``"dataset+env"``
learners get both (the expert data and the live env). Every mode an algorithm learns in is a case (``qmix``
offline, ``qmix@env`` online), and so is every variant it lists in ``contract_variants`` (``dm2[bc_pretrain]``).
"""

from __future__ import annotations

import copy
import json
import zlib
from pathlib import Path
from typing import Any

import _online_learner
import _toy_env
import numpy as np
import pytest
import torch
import yaml
from _drive import drive
from _run_files import assert_same_run_files, same_state

from offmarl.algos import base, list_algos, load_algo, make_algo
from offmarl.data.io import save_dataset
from offmarl.data.sources import DatasetAndEnv
from offmarl.envs.base import TimeStep
from offmarl.envs.registry import EnvSource
from offmarl.errors import CheckpointError
from offmarl.train import TrainConfig, fit, seed_everything
from offmarl.train.experiment import Experiment, run_experiment
from offmarl.train.online import training_sampler

CLASSES = {**{name: base.get_algo_class(name) for name in list_algos()},
           _online_learner.NAME: _online_learner.TabularPG}


def _cases() -> dict[str, tuple[str, str, str | None]]:
    """case -> (algorithm, mode, variant): one per algorithm and mode it learns in -- "qmix" (its first mode,
    offline) and "qmix@env" -- and per variant of ``contract_variants`` ("dm2[bc_pretrain]")."""
    cases = {}
    for name, cls in CLASSES.items():
        for mode in cls.learns_from:
            suffix = "" if mode == cls.learns_from[0] else f"@{mode}"
            cases[name + suffix] = (name, mode, None)
            for variant in cls.contract_variants:
                cases[f"{name}[{variant}]{suffix}"] = (name, mode, variant)
    return cases


CASES = _cases()
ALGORITHMS = list(CASES)
ONLINE_ENV = EnvSource(_toy_env.ENV_NAME, {}, num_envs=16)


@pytest.fixture(scope="module", autouse=True)
def online_learner_registered():
    """The test-only online learner joins the registry for this module only."""
    base._ALGOS[_online_learner.NAME] = _online_learner.TabularPG
    yield
    del base._ALGOS[_online_learner.NAME]


@pytest.fixture(scope="module")
def toy():
    return _toy_env.toy_dataset(episodes=24, seed=0)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks; results independent of the machine's core count
    yield
    torch.set_num_threads(threads)


def algo_name(case: str) -> str:
    return CASES[case][0]


def mode_of(case: str) -> str:
    return CASES[case][1]


def cls_of(case: str) -> type[base.Algorithm]:
    return CLASSES[algo_name(case)]


def online(case: str) -> bool:
    """The case interacts with the env (rollouts): it learns from the env, alone or after a dataset."""
    return mode_of(case) != "dataset"


def source(name: str, toy) -> Any:
    return {"dataset": toy, "env": ONLINE_ENV, "dataset+env": DatasetAndEnv(toy, ONLINE_ENV)}[mode_of(name)]


def spec_of(name: str, toy):
    return ONLINE_ENV.spec() if online(name) else toy.spec


def steps_per_update(name: str, stage: str | None = None) -> int:
    """Budget steps one update takes: 1 offline and in a dataset+env learner's dataset stages; otherwise the env
    frames of one rollout in every sub-env (``stage`` None: the env stages')."""
    if not online(name):
        return 1
    algo = cls_of(name)(ONLINE_ENV.spec(), base.build_config(cls_of(name), tiny(name)))
    if stage is not None and mode_of(name) == "dataset+env" and algo.stage_source(stage) == "dataset":
        return 1
    return algo.rollout_length * ONLINE_ENV.num_envs


def build(name: str, toy, updates: int, seed: int = 0, **overrides: Any) -> base.Algorithm:
    """``name`` made tiny, with a budget of ``updates`` updates (env frames for an online learner)."""
    steps = updates * steps_per_update(name)
    seed_everything(seed)
    return make_algo(algo_name(name), spec_of(name, toy), **{**tiny(name), "steps": steps, **overrides})


def tiny(name: str) -> dict[str, Any]:
    """The algorithm's contract overrides, over its online preset when the case learns online, and the case's
    variant with its own overrides."""
    preset = getattr(cls_of(name), "online_preset", None) if mode_of(name) == "env" else None
    variant = CASES[name][2]
    extra = {} if variant is None else {"variant": variant, **cls_of(name).contract_variants[variant]}
    return {**({"preset": preset} if preset else {}), **cls_of(name).contract_overrides, **extra}


def started(name: str, toy, updates: int, seed: int = 0):
    """An algorithm and its sampler, ready for updates (as the fit loop leaves them before the first)."""
    algo = build(name, toy, updates, seed)
    src = source(name, toy)
    algo.check_source(src)
    sampler = training_sampler(algo, src, seed)
    algo.on_fit_start(src)
    return algo, sampler


# ---- the checks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALGORITHMS)
def test_a_checkpoint_continues_bit_exactly(name, toy):
    """A learner loaded from another's state (optimizer included) continues with the same losses and
    weights; interleaving their updates also proves they share no optimizer tensors."""
    a, sampler_a = started(name, toy, updates=6)
    drive(a, sampler_a, 3)
    b, sampler_b = started(name, toy, updates=6, seed=1)  # other initial weights, all overwritten by the state
    b.load_state_dict(a.state_dict())
    sampler_b.load_state_dict(sampler_a.state_dict())
    b.enter_stage(a.stage)
    b.driven_steps = a.driven_steps
    for k in range(3):
        seed_everything(100 + k)
        losses_a = drive(a, sampler_a, 1)
        seed_everything(100 + k)
        assert drive(b, sampler_b, 1) == losses_a
    assert same_state(a.state_dict(), b.state_dict())


def rollout_actions(policy, name: str, steps: int = 6, seed: int = 3) -> np.ndarray:
    env = (ONLINE_ENV.make(seed) if online(name) else _toy_env.ToyPickEnv(num_envs=8, seed=seed))
    ts = env.reset(seed=seed)
    policy.reset(env.num_envs)
    actions = []
    for t in range(steps):
        act = policy.act(ts, first=t == 0)
        actions.append(act)
        ts = env.step(act)
        if ts.done.any():
            policy.reset(env.num_envs, ts.done)
    return np.stack(actions)


def joint(policy):
    from offmarl.policies.base import DecentralizedPolicy

    return DecentralizedPolicy(policy) if isinstance(policy, (list, tuple)) else policy


@pytest.mark.parametrize("name", ALGORITHMS)
def test_save_and_load_give_identical_actions(name, toy, tmp_path):
    algo, sampler = started(name, toy, updates=4)
    drive(algo, sampler, 4)
    algo.save(tmp_path / "model")
    loaded = load_algo(tmp_path / "model")
    assert loaded.name == algo_name(name) and loaded.config == algo.config
    np.testing.assert_array_equal(rollout_actions(joint(algo.policies()), name),
                                  rollout_actions(joint(loaded.policies()), name))


@pytest.mark.parametrize("name", ALGORITHMS)
def test_a_policy_only_save_acts_as_the_full_algorithm_and_refuses_to_train(name, toy, tmp_path):
    """``save(policy_only=True)`` keeps what ``policies()`` reads: loaded, it plays the trained algorithm's actions
    (greedy, and sampled where its policies sample), its file is no larger than the full save, and training it
    is refused with one error naming the file."""
    algo, sampler = started(name, toy, updates=4)
    drive(algo, sampler, 4)
    algo.save(tmp_path / "full")
    algo.save(tmp_path / "policy", policy_only=True)
    assert json.loads((tmp_path / "policy" / "algo.json").read_text())["state"] == "policy"
    assert (tmp_path / "policy" / "algo.pt").stat().st_size <= (tmp_path / "full" / "algo.pt").stat().st_size
    seed_everything(5)  # the loaded algorithm's untouched parts start from other weights than the trained one's
    loaded = load_algo(tmp_path / "policy")
    assert loaded.config == algo.config and loaded.policy_only_file == tmp_path / "policy" / "algo.pt"
    np.testing.assert_array_equal(rollout_actions(joint(algo.policies()), name),
                                  rollout_actions(joint(loaded.policies()), name))
    if base.policies_take(algo, "sample_seed"):
        np.testing.assert_array_equal(rollout_actions(joint(algo.policies(sample_seed=4)), name),
                                      rollout_actions(joint(loaded.policies(sample_seed=4)), name))
    refused = rf"{tmp_path / 'policy' / 'algo.pt'}: a policy-only saved {algo_name(name)} .* cannot be trained"
    with pytest.raises(CheckpointError, match=refused):
        loaded.update(sampler.sample())
    with pytest.raises(CheckpointError, match=refused):
        fit(loaded, source(name, toy), None, TrainConfig(seed=0, progress=False))
    loaded.save(tmp_path / "again")  # it holds no training state: it saves policy-only whatever is asked
    assert json.loads((tmp_path / "again" / "algo.json").read_text())["state"] == "policy"


@pytest.mark.parametrize("name", [n for n in ALGORITHMS if cls_of(n).supports_discrete])
def test_unavailable_actions_are_never_played(name, toy):
    """Random observations under random action masks (about half the actions unavailable): every action
    the policies pick is available. Without masking an argmax would pick an unavailable one often."""
    algo, sampler = started(name, toy, updates=4)
    drive(algo, sampler, 2)
    spec = algo.spec
    policy = joint(algo.policies())
    rng = np.random.default_rng(0)
    B, n, A = 64, spec.n_agents, spec.n_actions
    policy.reset(B)
    for t in range(6):
        avail = rng.random((B, n, A)) < 0.5
        avail[np.arange(B)[:, None], np.arange(n)[None], rng.integers(0, A, (B, n))] = True  # one at least
        obs = np.eye(spec.obs_dim, dtype=np.float32)[rng.integers(0, spec.obs_dim, (B, n))]
        ts = TimeStep(obs=obs, state=rng.normal(size=(B, max(spec.state_dim, 1))).astype(np.float32),
                      reward=rng.normal(size=(B, n)).astype(np.float32), terminated=np.zeros(B, bool),
                      truncated=np.zeros(B, bool), avail_actions=avail)
        actions = policy.act(ts, first=t == 0)
        assert avail[np.arange(B)[:, None], np.arange(n)[None], actions].all(), f"step {t}: an unavailable action"
    if online(name):  # the stochastic training-side policy too
        rollout = sampler.sample()
        assert rollout.avail.gather(-1, rollout.actions.unsqueeze(-1)).all(), "a rollout played an unavailable action"


@pytest.mark.parametrize("name", [n for n in ALGORITHMS if cls_of(n).decentralized_training and not online(n)])
def test_a_decentralized_learner_is_unchanged_by_another_agents_data(name, toy):
    """Agent 1's observations, actions and rewards replaced: agent 0's learner ends bit for bit the same."""
    other = copy.deepcopy(toy)
    rng = np.random.default_rng(1)
    other.obs[:, 1] = np.eye(3, dtype=np.float32)[rng.integers(0, 3, other.n_steps)]
    other.actions[:, 1] = rng.integers(0, 2, other.n_steps)
    other.rewards[:, 1] = (10.0 * rng.normal(size=other.n_steps)).astype(np.float32)  # other return scales too
    runs = []
    for data in (toy, other):
        algo = build(name, toy, updates=6)
        fit(algo, data, None, TrainConfig(seed=0, progress=False))
        runs.append(algo)
    assert all(torch.equal(p, q) for p, q in zip(runs[0].agent_parameters(0), runs[1].agent_parameters(0)))
    assert not all(torch.equal(p, q) for p, q in zip(runs[0].agent_parameters(1), runs[1].agent_parameters(1)))


@pytest.mark.parametrize("name", [n for n in ALGORITHMS if cls_of(n).decentralized_training and online(n)])
def test_a_decentralized_online_learner_is_unchanged_by_another_agents_experience(name, toy):
    """One rollout, and a copy where agent 1's observations, actions and rewards (and what its own policy
    recorded of them) differ: after an update on each, agent 0's learner is bit for bit the same."""
    algo, sampler = started(name, toy, updates=4)
    drive(algo, sampler, _updates_until(algo, algo.schedule.start(algo.schedule.names[-1]), name))
    rollout = sampler.sample()
    other = copy.deepcopy(rollout)
    rng = torch.Generator().manual_seed(1)
    for field in ("obs", "rewards", "log_probs", "values", "bootstrap"):
        part = getattr(other, field)[:, :, 1]
        part.copy_(torch.randn(part.shape, generator=rng))
    other.actions[:, :, 1] = 1 - other.actions[:, :, 1]  # agent 1 of toy_pick plays action 0 or 1
    other.last_values[:, 1] = torch.randn(other.last_values[:, 1].shape, generator=rng)
    learners = [copy.deepcopy(algo), copy.deepcopy(algo)]
    for learner, data in zip(learners, (rollout, other)):
        seed_everything(3)
        learner.update(data)
    assert all(torch.equal(p, q) for p, q in zip(learners[0].agent_parameters(0), learners[1].agent_parameters(0)))
    assert not all(torch.equal(p, q) for p, q in zip(learners[0].agent_parameters(1), learners[1].agent_parameters(1)))


@pytest.mark.parametrize("name", ALGORITHMS)
def test_a_mismatched_source_is_refused_with_an_error_naming_it(name, toy):
    algo_cls = cls_of(name)
    if mode_of(name) == "env":
        if "dataset" not in algo_cls.learns_from:
            wants = ("a dataset and an environment" if "dataset+env" in algo_cls.learns_from
                     else r"an environment \(--env\)")
            with pytest.raises(ValueError, match=f"{algo_name(name)} cannot train on MultiAgentDataset: it learns from "
                                                 f"{wants}"):
                build(name, toy, updates=2).check_source(toy)
        return
    import dataclasses

    narrow = dataclasses.replace(toy.spec, obs_dims=(3, 2))
    algo = make_algo(algo_name(name), narrow, **{**tiny(name), "steps": 4 * steps_per_update(name)})
    with pytest.raises(ValueError, match=rf"{algo_name(name)} cannot train on the dataset of env 'toy_pick' "
                                         r"\(24 episodes\): its observation widths are \[3, 3\], the algorithm was "
                                         r"built for \[3, 2\]"):
        fit(algo, source(name, toy), None, TrainConfig(seed=0, progress=False))


@pytest.mark.parametrize("name", ALGORITHMS)
def test_bf16_training_stays_finite(name, toy):
    algo = build(name, toy, updates=4)
    summary = fit(algo, source(name, toy), None, TrainConfig(seed=0, precision="bf16", log_every=1, progress=False))
    assert summary["losses"] and all(np.isfinite(v) for v in summary["losses"].values())
    assert all(torch.isfinite(t).all() for t in _tensors(algo.state_dict()))


def _tensors(state: Any) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state] if state.is_floating_point() else []
    if isinstance(state, dict):
        return [t for v in state.values() for t in _tensors(v)]
    if isinstance(state, (list, tuple)):
        return [t for v in state for t in _tensors(v)]
    return []


PROGRESS_UPDATES = 60


def rises(metric: str) -> bool:
    """A return rises as training goes well; any other progress metric is a loss, which falls."""
    return metric.endswith("return")


@pytest.mark.parametrize("name", ALGORITHMS)
def test_a_tiny_run_improves_its_progress_metric(name, toy):
    """The registered metric over the last stage. A loss on a fixed batch falls (measured on a copy, so
    measuring trains nothing); an online learner's logged episode return rises from its first five
    updates to its last five."""
    algo, sampler = started(name, toy, updates=PROGRESS_UPDATES)
    metric = "episode_return" if online(name) else algo.progress_metric
    last = algo.schedule.names[-1]
    drive(algo, sampler, _updates_until(algo, algo.schedule.start(last), name))
    if rises(metric):
        logs = [log[metric] for log in drive(algo, sampler, _updates_until(algo, algo.schedule.total, name))]
        before, after = float(np.mean(logs[:5])), float(np.mean(logs[-5:]))
    else:
        fixed = sampler.sample()

        def measure() -> float:
            probe = copy.deepcopy(algo)
            seed_everything(7)
            return probe.update(copy.deepcopy(fixed))[metric]

        before = measure()
        drive(algo, sampler, _updates_until(algo, algo.schedule.total, name))
        after = measure()
    assert (after > before) if rises(metric) else (after < before), f"{metric}: {before} -> {after}"


def _updates_until(algo, step: int, case: str) -> int:
    """Updates from the algorithm's current step to ``step`` (online: one update plays many frames)."""
    return _updates_between(algo.schedule, case, getattr(algo, "driven_steps", 0), step)


def _updates_between(schedule, case: str, start: int, end: int) -> int:
    """The updates that fit from step ``start`` to ``end``, each as long as its stage's updates."""
    updates = 0
    while True:
        start += steps_per_update(case, schedule.stage_at(start))
        if start > end:
            return updates
        updates += 1


KILL_UPDATES = 12
EVALUATIONS, SERIES, CHECKPOINTS = 4, 2, 3  # what _experiment's budget fractions give; the last step adds one more
# Where a kill can land, each killing at the n-th time the loop reaches it: in an update; after an evaluation
# (its point not yet in the curve); after a new best was saved (ahead of the checkpoint); after a series entry
# was saved; just before a checkpoint lands; just after a stage's hand-over was saved (before its checkpoint).
KILL_SITES = {"update": KILL_UPDATES, "evaluation": EVALUATIONS, "best": EVALUATIONS, "series": SERIES,
              "checkpoint": CHECKPOINTS, "hand-over": 0}


def _kill_points(name: str) -> list[tuple[str, int]]:
    """Three seeded kills, and at every stage hand-over of a multi-stage algorithm: right after its artifact is
    saved, and at the first update of the next stage."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    sites = [site for site, count in KILL_SITES.items() if count]
    points = set()
    while len(points) < 3:
        site = sites[int(rng.integers(len(sites)))]
        points.add((site, int(rng.integers(1, KILL_SITES[site] + 1))))
    algo_cls = cls_of(name)
    config = base.build_config(algo_cls, {**tiny(name), "steps": KILL_UPDATES * steps_per_update(name)})
    schedule = algo_cls(_toy_env.ToyPickEnv().spec, config).schedule
    for k, stage in enumerate(schedule.names[1:], start=1):
        points |= {("hand-over", k), ("update", _updates_between(schedule, name, 0, schedule.start(stage)) + 1)}
    return sorted(points)


def _experiment(name: str, data_file: Path, out: Path, config: Path, **kw: Any) -> Experiment:
    budget = KILL_UPDATES * steps_per_update(name)
    env = dict(env=ONLINE_ENV.env_name, num_envs=ONLINE_ENV.num_envs)
    where = {"dataset": dict(dataset=str(data_file)), "env": env,
             "dataset+env": dict(dataset=str(data_file), **env)}[mode_of(name)]
    return Experiment(algo=algo_name(name), **where, out=out, seed=2, steps=budget, config=config, eval_episodes=3,
                      eval_every=budget // EVALUATIONS, series_every=budget // SERIES,
                      checkpoint_every=budget // CHECKPOINTS, checkpoint="best", progress=False, **kw)


def _dies_at(monkeypatch, name: str, site: str, n: int) -> None:
    """Make the ``n``-th arrival at ``site`` raise KeyboardInterrupt, which is what a kill looks like to the loop:
    nothing after that point is written."""
    from offmarl.train import loop

    def dying(original, before: bool):
        calls = {"n": 0}

        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if before and calls["n"] == n:
                raise KeyboardInterrupt
            out = original(*args, **kwargs)
            if not before and calls["n"] == n:
                raise KeyboardInterrupt
            return out
        return wrapper

    if site == "update":
        monkeypatch.setattr(cls_of(name), "update", dying(cls_of(name).update, before=True))
    else:
        target = {"evaluation": "_isolated", "best": "keep_if_best", "series": "_keep_in_series",
                  "checkpoint": "save_checkpoint", "hand-over": "_save_stage_artifact"}[site]
        monkeypatch.setattr(loop, target, dying(getattr(loop, target), before=site == "checkpoint"))


@pytest.mark.parametrize("name, site, n", [(name, *point) for name in ALGORITHMS for point in _kill_points(name)])
def test_a_kill_resumes_to_the_same_files(name, site, n, toy, tmp_path, monkeypatch):
    """Killed at the ``n``-th arrival at ``site`` and resumed: metrics.csv (but for timing), the curve, the best
    checkpoint, the checkpoint series, the stage hand-overs, eval.json's scores and the final weights equal an
    uninterrupted run's."""
    data_file = save_dataset(toy, tmp_path / "toy.h5")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny(name)))
    reference = run_experiment(_experiment(name, data_file, tmp_path / "reference", config))

    with monkeypatch.context() as patch:
        _dies_at(patch, name, site, n)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(_experiment(name, data_file, tmp_path / "killed", config))
    checkpointed = (tmp_path / "killed" / "checkpoints" / "last.pt").exists()  # else the rerun starts afresh
    resumed = run_experiment(_experiment(name, data_file, tmp_path / "killed", config, resume=checkpointed))

    assert_same_run_files(tmp_path / "killed", tmp_path / "reference")
    assert resumed["eval"]["return_mean"] == reference["eval"]["return_mean"]
    resumes = json.loads((tmp_path / "killed" / "config.json").read_text()).get("resumes", [])
    assert len(resumes) == int(checkpointed)
