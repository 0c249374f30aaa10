"""The episode replay of online value learners, and online QMIX's exploration and target schedule."""

from __future__ import annotations

import dataclasses

import _toy_env
import numpy as np
import pytest
import torch
from test_ppo import CountingActor, CountingEnv

from offmarl.algos import make_algo
from offmarl.collect.engine import RolloutEngine
from offmarl.data.replay import EpisodeReplay


def test_episodes_are_gathered_across_rollouts_and_keep_their_final_observation():
    engine = RolloutEngine(CountingEnv(), CountingActor(), seed=0)
    replay = EpisodeReplay(capacity=10, max_len=3, n_agents=1, obs_dim=1, state_dim=1, n_actions=2)
    assert replay.add(engine.collect(2)) == 1  # sub-env 0 terminated after 2 steps; sub-env 1 runs on
    assert replay.add(engine.collect(2)) == 2  # sub-env 1 truncated at 3 steps; sub-env 0 again at 2
    assert len(replay) == 3 and sorted(replay.lengths[:3].tolist()) == [2, 2, 3]
    truncated = int(np.flatnonzero(replay.lengths[:3] == 3)[0])
    np.testing.assert_array_equal(replay.store["obs"][truncated, :, 0, 0], [0, 1, 2, 3])  # + the final obs
    assert not replay.store["terminated"][truncated].any()  # a time limit is no termination: bootstrap there
    batch = replay.sample(4, np.random.default_rng(0))
    assert batch["obs"].shape == (4, 3, 1, 1) and batch["mask"].shape == (4, 3)
    assert torch.equal(batch["next_obs"][:, :-1], batch["obs"][:, 1:])


class MaskedCountingEnv(CountingEnv):
    """CountingEnv with action masks: action 1 is available only at even observations; ``final_avail`` is
    reported unless ``report_final`` is False."""

    def __init__(self, report_final: bool = True):
        super().__init__()
        self.spec = dataclasses.replace(self.spec, has_avail_actions=True)
        self.report_final = report_final

    @staticmethod
    def _mask(t):
        avail = np.ones((len(t), 1, 2), bool)
        avail[:, 0, 1] = t % 2 == 0
        return avail

    def _ts(self, reward, terminated, truncated, final=None):
        ts = super()._ts(reward, terminated, truncated, final)
        ts.avail_actions = self._mask(self.t)
        if final is not None and self.report_final:
            ts.final_avail = self._mask(final[:, 0, 0].astype(np.int64))
        return ts


@pytest.mark.parametrize("report_final", [True, False])
def test_a_time_limit_keeps_the_action_mask_of_its_final_observation(report_final):
    """Sub-env 1 is cut at 3 steps: its final observation 3 is odd, so action 1 is unavailable there; a
    Q-learner's bootstrap maximizes over that mask (all actions where the env reports no final mask)."""
    rollout = RolloutEngine(MaskedCountingEnv(report_final), CountingActor(), seed=0).collect(3)
    assert rollout.final_avail.shape == (3, 2, 1, 2)
    expected = np.ones((3, 2, 1, 2), bool)
    if report_final:
        expected[2, 1, 0, 1] = False  # the truncated step; sub-env 0's termination at obs 2 keeps both
    np.testing.assert_array_equal(rollout.final_avail.numpy(), expected)
    replay = EpisodeReplay(capacity=10, max_len=3, n_agents=1, obs_dim=1, state_dim=1, n_actions=2)
    replay.add(rollout)
    truncated = int(np.flatnonzero(replay.lengths[:2] == 3)[0])
    np.testing.assert_array_equal(replay.store["avail"][truncated, :, 0, 1], [True, False, True, not report_final])
    batch = replay.sample(8, np.random.default_rng(0))
    cut = batch["mask"].sum(1) == 3
    assert cut.any() and (batch["next_avail"][cut, 2, 0, 1] == (not report_final)).all()


def test_the_ring_overwrites_the_oldest_and_a_state_restores_it_all():
    engine = RolloutEngine(CountingEnv(), CountingActor(), seed=0)
    replay = EpisodeReplay(capacity=2, max_len=3, n_agents=1, obs_dim=1, state_dim=1, n_actions=2)
    replay.add(engine.collect(7))
    assert len(replay) == 2 and replay.added == 5
    copy = EpisodeReplay(capacity=2, max_len=3, n_agents=1, obs_dim=1, state_dim=1, n_actions=2)
    copy.load_state_dict(replay.state_dict())
    more = engine.collect(3)
    assert replay.add(more) == copy.add(more)
    for key in EpisodeReplay.FIELDS:
        np.testing.assert_array_equal(replay.store[key], copy.store[key])


def test_online_qmix_explores_less_as_frames_pass_and_copies_targets_every_200_episodes():
    spec = _toy_env.ToyPickEnv().spec
    algo = make_algo("qmix", spec, preset="pymarl", hidden=8)
    assert algo.config.agent == "gru" and algo.epsilon() == 1.0
    algo.frames_seen = 25_000
    assert algo.epsilon() == 1.0 + 0.5 * (0.05 - 1.0)
    algo.frames_seen = 10**6
    assert algo.epsilon() == pytest.approx(0.05)
    algo.replay = EpisodeReplay(10, 3, 2, 3, spec.state_dim, 3)
    algo.replay.added = 199
    assert not algo.targets_due()
    algo.replay.added = 200
    assert algo.targets_due() and not algo.targets_due()  # once per 200 episodes


def test_offline_targets_are_copied_every_target_update_interval_updates():
    algo = make_algo("qmix", _toy_env.ToyPickEnv().spec, preset="sit", hidden=8)
    algo.updates = 99
    assert not algo.targets_due()
    algo.updates = 100
    assert algo.targets_due()


def test_a_saved_online_qmix_leaves_its_replay_to_the_checkpoint(tmp_path):
    """The checkpoint series, best weights and pool checkpoints are saved algorithms: they act, so they skip the
    replay (1.5 GB a copy on SMAX 2s3z); the fit loop's checkpoint keeps it to resume exactly."""
    from offmarl.algos import load_algo

    spec = _toy_env.ToyPickEnv().spec
    algo = make_algo("qmix", spec, preset="pymarl", hidden=8)
    algo.replay = EpisodeReplay(10, 3, 2, 3, spec.state_dim, 3)
    engine = RolloutEngine(_toy_env.ToyPickEnv(num_envs=4), algo, seed=0)
    algo.replay.add(engine.collect(6))
    algo.frames_seen, algo.target_syncs = 24, 1
    assert "replay" in algo.state_dict()["online"] and "replay" not in algo.saved_state()["online"]
    algo.save(tmp_path / "saved")
    loaded = load_algo(tmp_path / "saved")
    assert "online" in torch.load(tmp_path / "saved" / "algo.pt", weights_only=False)
    for name, net in algo.nets.items():
        for (key, value), (_, other) in zip(net.state_dict().items(), loaded.nets[name].state_dict().items()):
            assert torch.equal(value, other), (name, key)
    resumed = make_algo("qmix", spec, preset="pymarl", hidden=8)
    resumed.replay = EpisodeReplay(10, 3, 2, 3, spec.state_dim, 3)
    resumed.load_state_dict(algo.state_dict())
    assert len(resumed.replay) == len(algo.replay) > 0 and resumed.frames_seen == 24


@pytest.mark.parametrize("per_rollout", [1, 3])
def test_online_qmix_makes_updates_per_rollout_gradient_updates_on_fresh_batches(per_rollout):
    """pymarl's episode runner updates once per episode: with B sub-envs, updates_per_rollout = B matches it."""
    spec = _toy_env.ToyPickEnv().spec
    torch.manual_seed(0)
    algo = make_algo("qmix", spec, preset="pymarl", hidden=8, batch_size=2, updates_per_rollout=per_rollout)
    algo.replay = EpisodeReplay(10, spec.episode_limit, spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions)
    engine = RolloutEngine(_toy_env.ToyPickEnv(num_envs=4), algo, seed=0)
    sampled = []
    original = algo.replay.sample
    algo.replay.sample = lambda n, rng: sampled.append(rng.bit_generator.state["state"]["state"]) or original(n, rng)
    algo.update(engine.collect(algo.rollout_length))
    assert algo.updates == per_rollout and len(sampled) == per_rollout
    assert len(set(sampled)) == per_rollout  # each update draws its own batch


def test_online_qmix_refuses_zero_updates_per_rollout():
    with pytest.raises(ValueError, match="updates_per_rollout must be >= 1, got 0"):
        make_algo("qmix", _toy_env.ToyPickEnv().spec, preset="pymarl", updates_per_rollout=0)
