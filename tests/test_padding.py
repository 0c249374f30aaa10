"""Padding changes nothing: every learner that reads whole, padded episodes updates identically whether a
batch is padded to the dataset's longest episode or only to the batch's own (``EpisodeSampler(pad=...)``):
the masks keep the padded steps out of every loss, recurrence and target."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from _datasets import EPISODE_LIMIT, make_dataset
from _torch_threads import one_torch_thread  # noqa: F401  (autouse: tiny networks on one torch thread)

from offmarl.algos import make_algo
from offmarl.data.samplers import EpisodeSampler
from offmarl.train import seed_everything

VALUE = {"agent": "gru", "hidden": 8, "mixer_hidden": 8, "batch_size": 2}
SIT = {"members": 2, "reward_hidden": 8, "attention_hidden": 8, "hidden": 8, "critic_hidden": 8, "batch_size": 2}


def _samplers(sampler):
    """The EpisodeSamplers inside ``sampler`` (itself, or a SIT sampler's uniform and prioritized ones)."""
    if isinstance(sampler, EpisodeSampler):
        return [sampler]
    return [sampler.episodes, *sampler.replay.replays]


def _updated(name: str, overrides: dict, pad: str, updates: int, discrete: bool = True):
    ds = make_dataset(n_agents=3, episodes=12, discrete=discrete, seed=4)
    seed_everything(0)
    algo = make_algo(name, ds.spec, **overrides)
    sampler = algo.make_sampler(ds, seed=0)
    for s in _samplers(sampler):
        s.pad = pad
    lengths = []
    if name == "sit":
        algo.plan(updates + 4)
        for stage in ("ardnem", "dper", "policy"):
            algo.enter_stage(stage)
            for _ in range(algo.schedule.length(stage) if stage != "policy" else updates):
                batch = sampler.sample()
                lengths.append(batch["mask"].shape[-1])
                algo.update(batch)
    else:
        for _ in range(updates):
            batch = sampler.sample()
            lengths.append(batch["mask"].shape[-1])
            algo.update(batch)
    return copy.deepcopy(algo.state_dict()), lengths


def _tensors(state, prefix=""):
    if isinstance(state, torch.Tensor):
        yield prefix, state
    elif isinstance(state, dict):
        for k, v in state.items():
            yield from _tensors(v, f"{prefix}.{k}")
    elif isinstance(state, (list, tuple)):
        for k, v in enumerate(state):
            yield from _tensors(v, f"{prefix}.{k}")


@pytest.mark.parametrize("name,overrides,discrete", [
    ("qmix", VALUE, True), ("ma_bcq", VALUE, True), ("ma_cql", VALUE, True), ("ma_icq", VALUE, True),
    ("qmix", VALUE, False), ("sit", SIT, True), ("sit", SIT, False)])
def test_padding_to_the_batch_or_to_the_dataset_updates_identically(name, overrides, discrete):
    full, full_lengths = _updated(name, overrides, "max_len", updates=3, discrete=discrete)
    trimmed, trimmed_lengths = _updated(name, overrides, "batch", updates=3, discrete=discrete)
    assert len(set(full_lengths)) == 1 and min(trimmed_lengths) < full_lengths[0]  # the test bites
    pairs = dict(_tensors(full)), dict(_tensors(trimmed))
    assert pairs[0].keys() == pairs[1].keys()
    for key, value in pairs[0].items():
        if value.is_floating_point():
            torch.testing.assert_close(pairs[1][key], value, rtol=1e-5, atol=1e-6, msg=lambda m: f"{key}: {m}")


def test_a_batch_padded_to_its_own_longest_episode_keeps_the_same_steps():
    ds = make_dataset(n_agents=3, episodes=12, seed=4)
    for seed in range(20):  # a draw of short episodes only
        full, trimmed = (EpisodeSampler(ds, 2, seed=seed, pad=pad).sample() for pad in ("max_len", "batch"))
        L = trimmed["mask"].shape[1]
        assert L == int(full["mask"].sum(dim=1).max()) and full["mask"].shape[1] == EPISODE_LIMIT
        if L < EPISODE_LIMIT:
            break
    assert L < EPISODE_LIMIT
    for key, value in trimmed.items():
        expected = full[key][:, :L] if full[key].dim() > 1 and full[key].shape[1] == EPISODE_LIMIT else full[key]
        assert torch.equal(value, expected), key
    with pytest.raises(ValueError, match="pad must be one of max_len, batch, got 'longest'"):
        EpisodeSampler(ds, 5, seed=1, pad="longest")
    assert np.array_equal(full["episode_index"].numpy(), trimmed["episode_index"].numpy())
