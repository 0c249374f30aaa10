"""The discriminator machinery (offmarl.algos._adversarial, offmarl.nets.discriminator) on tiny hand-computed
tensors: the BCE loss with its per-agent means, the gradient penalty, the GAIL reward forms, AIRL's
f = g + γ h(s') − h(s) with done masking, the next observations of a rollout, the episode buffers (best-K,
resume) and the padding of episode batches."""

from __future__ import annotations

import dataclasses
import io
import math

import _toy_env
import numpy as np
import pytest
import torch
from _torch_threads import one_torch_thread  # noqa: F401  (autouse: tiny networks on one torch thread)

from offmarl.algos import make_algo
from offmarl.algos._adversarial import (
    Episodes,
    airl_logit,
    discriminator_loss,
    gail_reward,
    gradient_penalty,
    next_observations,
)
from offmarl.collect.engine import RolloutEngine
from offmarl.core.files import to_safe
from offmarl.data.replay import EpisodeReplay
from offmarl.nets.discriminator import AIRLDiscriminator, airl_f


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_discriminator_loss_by_hand_with_per_agent_means():
    """[B=2, L=1, n=2] logits; the policy's step (b=1, agent 0) is padding."""
    target = torch.tensor([[[2.0, -1.0]], [[0.0, 1.0]]])
    policy = torch.tensor([[[0.5, -2.0]], [[9.0, 3.0]]])
    target_mask = torch.ones(2, 1, 2, dtype=torch.bool)
    policy_mask = torch.tensor([[[True, True]], [[False, True]]])
    # −log σ(l) = softplus(−l) on the targets, −log(1 − σ(l)) = softplus(l) on the policy's steps
    agent0 = (softplus(-2.0) + softplus(0.0)) / 2 + softplus(0.5)
    agent1 = (softplus(1.0) + softplus(-1.0)) / 2 + (softplus(-2.0) + softplus(3.0)) / 2
    per_agent = discriminator_loss(target, policy, target_mask, policy_mask, per_unit=True)
    assert per_agent.item() == pytest.approx(agent0 + agent1, rel=1e-6)
    pooled = (softplus(-2) + softplus(1) + softplus(0) + softplus(-1)) / 4 + (softplus(0.5) + softplus(-2)
                                                                               + softplus(3)) / 3
    assert discriminator_loss(target, policy, target_mask, policy_mask, per_unit=False).item() == pytest.approx(
        pooled, rel=1e-6)


def test_gradient_penalty_by_hand():
    """A linear logit w·x has gradient w everywhere: (‖w‖ − 1)² = (5 − 1)²; a quadratic ½‖x‖² has gradient x̂,
    the interpolate, so α picks the point: α = ½ between (2, 0) and (0, 0) is (1, 0), norm 1, no penalty."""
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    target, policy = torch.tensor([[[2.0, 0.0]]]), torch.zeros(1, 1, 2)  # [B, G, in]
    alpha = torch.full((1, 1, 1), 0.3)
    penalty = gradient_penalty(lambda x: (x * w).sum(-1, keepdim=True), target, policy, alpha)
    assert penalty.item() == pytest.approx(16.0)
    penalty.sum().backward()  # the penalty trains the discriminator: d/dw (‖w‖ − 1)² = 2 (‖w‖ − 1) w / ‖w‖
    torch.testing.assert_close(w.grad, 2 * 4.0 * torch.tensor([3.0, 4.0]) / 5.0)
    quadratic = lambda x: 0.5 * x.pow(2).sum(-1, keepdim=True)  # noqa: E731
    assert gradient_penalty(quadratic, target, policy, torch.full((1, 1, 1), 0.5)).item() == pytest.approx(0.0)
    assert gradient_penalty(quadratic, target, policy, torch.full((1, 1, 1), 1.0)).item() == pytest.approx(1.0)


def test_gail_reward_forms():
    """D = σ(logit) = 1/2 and 3/4 for logits 0 and ln 3."""
    logits = torch.tensor([0.0, math.log(3.0)])
    torch.testing.assert_close(gail_reward(logits, "logit"), logits)  # log D − log(1 − D)
    torch.testing.assert_close(gail_reward(logits, "neg_log_d"), torch.tensor([math.log(2.0), math.log(4.0)]))
    torch.testing.assert_close(gail_reward(logits, "centered_d"), torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match="unknown GAIL reward 'log_d'"):
        gail_reward(logits, "log_d")


def test_airl_f_masks_the_next_potential_at_a_termination():
    g, h, h_next = torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.5]), torch.tensor([2.0, 2.0])
    f = airl_f(g, h, h_next, torch.tensor([False, True]), gamma=0.9)
    torch.testing.assert_close(f, torch.tensor([1.0 + 0.9 * 2.0 - 0.5, 1.0 - 0.5]))


def test_airl_discriminator_is_g_plus_shaping_per_agent():
    torch.manual_seed(0)
    disc = AIRLDiscriminator(groups=2, in_dim=4, obs_in_dim=3, out_dim=1, hidden=5, layers=2, activation="relu")
    x, obs, nxt = torch.randn(6, 2, 4), torch.randn(6, 2, 3), torch.randn(6, 2, 3)
    terminal = torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0, 0.0])[:, None, None]
    f = disc(x, obs, nxt, terminal, 0.99)
    torch.testing.assert_close(f, disc.g(x) + 0.99 * (1 - terminal) * disc.h(nxt) - disc.h(obs))
    moved = x.clone()
    moved[:, 1] += 1.0  # agent 1's input: agent 0's f does not move
    torch.testing.assert_close(disc(moved, obs, nxt, terminal, 0.99)[:, 0], f[:, 0])


def _rollout(steps: int = 7):
    env = _toy_env.ToyPickEnv(num_envs=3, seed=0)
    algo = make_algo("ippo", env.spec, hidden=8, rollout_length=10, chunk_length=5)
    engine = RolloutEngine(env, algo, seed=0)
    return engine, engine.collect(steps)


def test_next_observations_of_a_rollout():
    """toy_pick's sub-env b ends every b + 1 steps: there the next observation is the episode's final one,
    otherwise the next step's, and after the rollout's last step the one it stopped at."""
    _, r = _rollout()
    nxt = next_observations(r)
    T, B = r.rewards.shape[:2]
    for t in range(T):
        for b in range(B):
            ended = bool(r.terminated[t, b] or r.truncated[t, b])
            expected = r.final_obs[t, b] if ended else (r.obs[t + 1, b] if t + 1 < T else r.last_obs[b])
            torch.testing.assert_close(nxt[t, b], expected)
    assert r.terminated[:, 0].all() and not r.terminated[0, 2]  # both cases are covered


def test_best_episodes_buffer_keeps_the_top_discounted_returns():
    engine, _ = _rollout(0)
    best = EpisodeReplay(capacity=4, max_len=3, n_agents=2, obs_dim=3, state_dim=2, n_actions=3, keep="best",
                         gamma=0.5)
    scores = []
    for _ in range(4):
        r = engine.collect(6)
        best.add(r)
        for b in range(3):  # every episode's Σ γ^t r_t, averaged over the agents, from the rollout
            start = 0
            for t in range(6):
                if r.terminated[t, b]:
                    rewards = r.rewards[start:t + 1, b].double().numpy()
                    scores.append(float((0.5 ** np.arange(len(rewards)) @ rewards).mean()))
                    start = t + 1
    kept = np.sort(best.scores[:best.size])
    assert best.size == 4 and best.added == len(scores) > 4
    np.testing.assert_allclose(kept, np.sort(scores)[-4:])


def test_an_episode_buffer_resumes_its_unfinished_episodes_from_a_checkpoint():
    """A checkpoint keeps the episodes still running (their 0-d termination flags included); a buffer loaded from
    it stores them as the original does."""
    engine, first = _rollout(2)
    fields = dict(capacity=8, max_len=3, n_agents=2, obs_dim=3, state_dim=2, n_actions=3)
    original = EpisodeReplay(**fields)
    original.add(first)
    buffer = io.BytesIO()
    torch.save(to_safe(original.state_dict()), buffer)
    buffer.seek(0)
    resumed = EpisodeReplay(**fields)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    nxt = engine.collect(4)
    assert original.add(nxt) == resumed.add(nxt)
    for key in EpisodeReplay.FIELDS:
        np.testing.assert_array_equal(original.store[key], resumed.store[key])


def test_episode_batches_are_padded_to_the_time_limit():
    batch = {"obs": torch.ones(2, 2, 1, 3), "next_obs": torch.ones(2, 2, 1, 3), "actions": torch.ones(2, 2, 1).long(),
             "avail": torch.zeros(2, 2, 1, 4, dtype=torch.bool), "done": torch.tensor([[0.0, 1.0], [0.0, 0.0]]),
             "mask": torch.tensor([[True, True], [True, False]])}
    ep = Episodes.from_batch(batch, length=4, obs_dim=5)
    assert ep.obs.shape == (2, 4, 1, 5) and ep.obs[..., 3:].eq(0).all() and ep.obs[:, 2:].eq(0).all()
    assert ep.mask[:, :, 0].tolist() == [[True, True, False, False], [True, False, False, False]]
    assert ep.terminal[:, :, 0].tolist() == [[False, True, False, False], [False] * 4]
    assert ep.avail[:, 2:].all() and not ep.avail[:, :2].any()  # padding leaves every action available
    both = Episodes.cat([ep, dataclasses.replace(ep, obs=ep.obs + 1)])
    assert both.obs.shape == (2, 4, 2, 5) and both.obs[:, 0, 1, 0].eq(2).all()


def test_trimming_the_padding_changes_no_loss():
    """A batch padded to 6 steps whose longest episode has 3: trimmed to 3 steps, the masked losses are the same."""
    torch.manual_seed(0)
    mask = torch.zeros(2, 6, 2, dtype=torch.bool)
    mask[0, :3], mask[1, :1] = True, True
    ep = Episodes(obs=torch.randn(2, 6, 2, 4), next_obs=torch.randn(2, 6, 2, 4), actions=None, avail=None,
                  terminal=torch.zeros(2, 6, 2, dtype=torch.bool), mask=mask)
    assert ep.real_length == 3
    short = ep.trim(ep.real_length)
    assert short.obs.shape == (2, 3, 2, 4) and short.mask.sum() == mask.sum()
    logits = lambda e: e.obs.sum(-1)  # noqa: E731
    full = discriminator_loss(logits(ep), -logits(ep), ep.mask, ep.mask, per_unit=True)
    torch.testing.assert_close(discriminator_loss(logits(short), -logits(short), short.mask, short.mask, True), full)


def test_airl_discriminator_and_its_loss_by_hand():
    """D = exp f / (exp f + π): f = 1, π = 1/4 gives D = e / (e + 1/4), logit 1 + ln 4; on the policy side f = 0,
    π = 1/2 gives D = 2/3. The loss −log D_target − log(1 − D_policy) = −log(e / (e + 1/4)) − log(1/3)."""
    target = airl_logit(torch.tensor([[[1.0]]]), torch.log(torch.tensor([[[0.25]]])))  # [B, L, n]
    policy = airl_logit(torch.tensor([[[0.0]]]), torch.log(torch.tensor([[[0.5]]])))
    assert target.item() == pytest.approx(1 + math.log(4))
    assert torch.sigmoid(target).item() == pytest.approx(math.e / (math.e + 0.25))
    assert torch.sigmoid(policy).item() == pytest.approx(2 / 3)
    ones = torch.ones(1, 1, 1, dtype=torch.bool)
    expected = -math.log(math.e / (math.e + 0.25)) - math.log(1 / 3)
    assert discriminator_loss(target, policy, ones, ones, per_unit=True).item() == pytest.approx(expected, rel=1e-6)
    # f itself from g, h: g = 0.5, h(s) = 0.2, h(s') = 1, γ = 0.9, not terminal: f = 0.5 + 0.9 − 0.2 = 1.2
    f = airl_f(torch.tensor(0.5), torch.tensor(0.2), torch.tensor(1.0), torch.tensor(False), 0.9)
    assert f.item() == pytest.approx(1.2)


@pytest.mark.parametrize("algo, discriminator, coupled", [("ma_gail", "centralized", True),
                                                          ("ma_gail", "decentralized", False),
                                                          ("ma_airl", "centralized", True),
                                                          ("ma_airl", "decentralized", False)])
def test_a_centralized_discriminator_reads_every_agent_a_decentralized_one_its_own(algo, discriminator, coupled):
    """ma_gail's default is centralized (Song et al.), ma_airl's decentralized (Yu et al.); a centralized
    discriminator's output for agent 0 moves with agent 1's observation, a decentralized one's does not."""
    from offmarl.algos import get_algo_class

    spec = _toy_env.ToyPickEnv().spec
    torch.manual_seed(0)
    learner = make_algo(algo, spec, **{**get_algo_class(algo).contract_overrides, "discriminator": discriminator})
    assert make_algo(algo, spec).config.discriminator == {"ma_gail": "centralized", "ma_airl": "decentralized"}[algo]
    obs, actions = torch.eye(3)[[0, 1]][None, None].repeat(1, 2, 1, 1), torch.tensor([[[0, 1], [2, 0]]])
    mask = torch.ones(1, 2, 2, dtype=torch.bool)
    ep = Episodes(obs=obs, next_obs=obs.flip(1), actions=actions, avail=None, terminal=~mask, mask=mask)
    other = dataclasses.replace(ep, obs=ep.obs.clone())
    other.obs[..., 1, :] = torch.tensor([0.0, 0.0, 1.0])
    with torch.no_grad():
        before, after = learner.step_logits(ep, True), learner.step_logits(other, True)
    assert before.shape == (1, 2, 2)
    assert torch.equal(before[..., 0], after[..., 0]) != coupled
    assert not torch.equal(before[..., 1], after[..., 1])
