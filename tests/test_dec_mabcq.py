"""dec_mabcq (Jiang & Lu's fully decentralized MABCQ): decentralization, λ_tn counts, variants, resume."""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np
import pytest
import torch
from _drive import drive
from _torch_threads import one_torch_thread  # noqa: F401  (autouse: tiny networks on one torch thread)

from offmarl.algos import make_algo
from offmarl.algos.base import build_config, get_algo_class
from offmarl.collect.recipes import collect_dataset
from offmarl.data.sources import PerAgentDatasets
from offmarl.train import TrainConfig, fit, seed_everything
from offmarl.train.experiment import parse_sets

SMALL = {"hidden": 16, "batch_size": 32, "value_diff_states": 16, "value_diff_every": 1}


@pytest.fixture(scope="module")
def equal_space():
    return collect_dataset("equal_space", per_agent=True, episodes=4, seed=0, progress=False)


@pytest.fixture(scope="module")
def matrix():
    return collect_dataset("matrix_game", policy="behavior", episodes=200, seed=0, progress=False)


def train(data, steps=8, seed=0, **overrides):
    spec = data.spec
    seed_everything(seed)
    algo = make_algo("dec_mabcq", spec, **{**SMALL, "steps": steps, **overrides})
    out = fit(algo, data, None, TrainConfig(seed=seed, progress=False, log_every=1))
    return algo, out


def _same(a, b) -> bool:
    sa, sb = a.learner_state(), b.learner_state()
    tensors = lambda s: [*s["nets"].values(), *s["targets"].values()]  # noqa: E731
    return (all(torch.equal(x, y) for x, y in zip(tensors(sa), tensors(sb)))
            and torch.equal(sa["generator"], sb["generator"]))


def test_changing_another_agents_dataset_leaves_agent_i_bit_for_bit_unchanged(equal_space):
    """Continuous form, λ_tn from the VAEs: replacing B_1 changes only learner 1."""
    other = collect_dataset("equal_space", per_agent=True, episodes=4, seed=1, progress=False)
    changed = PerAgentDatasets((equal_space[0], other[1], equal_space[2]))
    a, _ = train(equal_space, vae_fraction=0.25)
    b, _ = train(changed, vae_fraction=0.25)
    assert _same(a.learners[0], b.learners[0]) and _same(a.learners[2], b.learners[2])
    assert not _same(a.learners[1], b.learners[1])


def test_decentralization_in_the_discrete_form_with_counts(matrix):
    shuffled = dataclasses.replace(matrix, actions=matrix.actions.copy())
    shuffled.actions[:, 1] = 1 - shuffled.actions[:, 1]  # agent 1's own actions differ
    a, _ = train(PerAgentDatasets((matrix, matrix)), **{"epsilon": math.inf})
    b, _ = train(PerAgentDatasets((matrix, shuffled)), **{"epsilon": math.inf})
    assert a.learners[0].tn_from_counts and _same(a.learners[0], b.learners[0])
    assert not _same(a.learners[1], b.learners[1])


def test_count_weights_are_one_over_the_empirical_transition_probability(matrix):
    algo = make_algo("dec_mabcq", matrix.spec, **SMALL)
    sampler = algo.make_sampler(matrix, 0)
    tn = sampler.tn[0]
    s = matrix.obs[:, 0].argmax(-1)
    nxt = np.where(np.isin(np.arange(matrix.n_steps), matrix.episode_ends - 1),
                   matrix.final_obs[:, 0].argmax(-1)[np.searchsorted(matrix.episode_ends - 1, np.arange(matrix.n_steps))
                                                       .clip(0, matrix.n_episodes - 1)],
                   matrix.obs[np.minimum(np.arange(matrix.n_steps) + 1, matrix.n_steps - 1), 0].argmax(-1))
    a = matrix.actions[:, 0]
    sa = collections.Counter(zip(s, a))
    sas = collections.Counter(zip(s, a, nxt))
    expected = [sa[(x, y)] / sas[(x, y, z)] for x, y, z in zip(s, a, nxt)]
    np.testing.assert_allclose(tn, expected, rtol=1e-6)
    first = s == 0  # from s0 agent 1's a_1 leads to two outcomes, weighted back to uniform
    assert len(set(np.round(tn[first & (a == 0)], 5))) == 2


def test_variants_switch_the_weights_and_the_stages(matrix, equal_space):
    _, out = train(matrix, variant="vd", epsilon=0.5, vd_warmup=0.0)
    assert out["losses"]["lambda_tn"] == 1.0 and out["losses"]["lambda_vd"] != 1.0
    _, out = train(matrix, variant="tn")
    assert out["losses"]["lambda_vd"] == 1.0 and out["losses"]["lambda_tn"] != 1.0
    ddpg, out = train(equal_space, variant="ddpg")
    assert ddpg.schedule.names == ["main"] and "g1" not in ddpg.learners[0].nets and "policy_loss" in out["losses"]
    behavior, out = train(equal_space, variant="behavior")
    assert behavior.schedule.names == ["vae"] and set(out["losses"]) == {"g1_loss"}
    fresh = make_algo("dec_mabcq", equal_space.spec, **SMALL, variant="behavior")
    assert all(torch.equal(p, q) for p, q in zip(fresh.learners[0].nets["q"].parameters(),
                                                 behavior.learners[0].nets["q"].parameters()))  # Q untouched


def test_value_deviation_waits_for_the_warmup(matrix):
    algo = make_algo("dec_mabcq", matrix.spec, **{**SMALL, "steps": 10, "vae_fraction": 0.2, "vd_warmup": 0.5,
                                                  "epsilon": 0.5})
    sampler = algo.make_sampler(matrix, 0)
    algo.on_fit_start(matrix)
    logs = drive(algo, sampler, 10)
    assert algo.schedule.stages == (("vae", 2), ("main", 8))  # and λ_vd held at 1 for half the main stage
    assert all(log["lambda_vd"] == 1.0 for log in logs[2:6]) and logs[6]["lambda_vd"] != 1.0


def test_value_difference_is_zero_for_identical_learners(matrix):
    algo, out = train(matrix)
    assert out["losses"]["value_diff"] > 0
    algo.learners[1].load_learner_state(algo.learners[0].learner_state())
    states = torch.as_tensor(matrix.obs[:32])
    assert algo.value_difference(states) == 0.0


def test_state_dict_continues_exactly_with_the_generators(equal_space):
    a, _ = train(equal_space, steps=6, vae_fraction=0.5)
    config = {**SMALL, "steps": 6, "vae_fraction": 0.5}
    b = make_algo("dec_mabcq", equal_space.spec, **config)
    batch = b.make_sampler(equal_space, 3).sample()  # (make_sampler seeds the learners' generators: before loading)
    b.on_fit_start(equal_space)
    b.load_state_dict(a.state_dict())
    b.enter_stage(a.stage)  # the stage follows from the step, which the fit loop keeps
    assert a.update(batch) == b.update(batch)
    assert all(_same(x, y) for x, y in zip(a.learners, b.learners))


def test_config_errors_name_the_problem(matrix, equal_space):
    cls = get_algo_class("dec_mabcq")
    assert build_config(cls, parse_sets(cls, ["epsilon=inf"])).epsilon == math.inf
    with pytest.raises(ValueError, match=r"epsilon \(optimism level\) must be > 0"):
        make_algo("dec_mabcq", matrix.spec, epsilon=0.0)
    with pytest.raises(ValueError, match="tn_estimator 'counts' needs discrete actions"):
        make_algo("dec_mabcq", equal_space.spec, tn_estimator="counts")
    with pytest.raises(ValueError, match="has no variant 'qmix'"):
        make_algo("dec_mabcq", matrix.spec, variant="qmix")
    with pytest.raises(ValueError, match=r"dec_mabcq cannot train on the per-agent dataset \(2 groups\) of env "
                                         "'equal_space' .*: it has 2 per-agent groups for 3 agents"):
        make_algo("dec_mabcq", equal_space.spec, **SMALL).check_source(PerAgentDatasets(equal_space.datasets[:2]))

