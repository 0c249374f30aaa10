"""The PPO machinery (GAE, value normalization, the losses, per-agent statistics), the rollout engine's
bookkeeping (truncation bootstrap, hidden-state resets, masks) and the PPO learners' networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from offmarl.algos import make_algo
from offmarl.algos._ppo import ValueNorm, clipped_surrogate, clipped_value_loss, gae, masked_mean, normalize_advantages
from offmarl.collect.engine import RolloutEngine
from offmarl.data.trajectory import ActStep
from offmarl.envs.base import BatchedEnv, EnvSpec, TimeStep
from offmarl.nets.actor_critic import Trunk


def _t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 1, 1)  # [T, B=1, n=1]


def test_gae_by_hand_with_a_truncation_and_a_termination():
    """γ = 0.9, λ = 0.8, V = 0.5 everywhere; the episode is cut by the time limit after step 1
    (V(final obs) = 10) and a new one runs into the rollout's end (V(next obs) = 4)."""
    rewards, values = _t([1, 2, 3]), _t([0.5, 0.5, 0.5])
    bootstrap, last = _t([0, 10, 0]), torch.tensor([[4.0]])
    none = torch.zeros(3, 1, dtype=torch.bool)
    cut = torch.tensor([[False], [True], [False]])
    adv, ret = gae(rewards, values, bootstrap, last, none, cut, gamma=0.9, lam=0.8)
    # δ2 = 3 + 0.9·4 − 0.5 = 6.1; δ1 = 2 + 0.9·10 − 0.5 = 10.5 (ends: no A2 in A1); A0 = 0.95 + 0.72·10.5
    np.testing.assert_allclose(adv.flatten().numpy(), [0.95 + 0.72 * 10.5, 10.5, 6.1], rtol=1e-6)
    np.testing.assert_allclose(ret.flatten().numpy(), adv.flatten().numpy() + 0.5, rtol=1e-6)
    terminated_adv, _ = gae(rewards, values, bootstrap, last, cut, none, gamma=0.9, lam=0.8)
    assert terminated_adv[1].item() == pytest.approx(2 - 0.5)  # a termination bootstraps from 0, not V(final)


def _gae_by_loops(rewards, values, bootstrap, last, terminated, truncated, gamma, lam):
    """The textbook recursion, one (sub-env, agent) at a time, as a reference."""
    T, B, n = rewards.shape
    adv = np.zeros((T, B, n))
    for b in range(B):
        for i in range(n):
            running = 0.0
            for t in reversed(range(T)):
                if terminated[t, b]:
                    nxt, cont = 0.0, 0.0
                elif truncated[t, b]:
                    nxt, cont = bootstrap[t, b, i], 0.0
                else:
                    nxt, cont = (values[t + 1, b, i] if t + 1 < T else last[b, i]), 1.0
                delta = rewards[t, b, i] + gamma * nxt - values[t, b, i]
                running = delta + gamma * lam * cont * running
                adv[t, b, i] = running
    return adv


def test_gae_equals_the_loop_reference_on_random_rollouts():
    g = torch.Generator().manual_seed(0)
    T, B, n = 17, 5, 3
    rewards, values, bootstrap = (torch.randn(T, B, n, generator=g, dtype=torch.float64) for _ in range(3))
    last = torch.randn(B, n, generator=g, dtype=torch.float64)
    ends = torch.rand(T, B, generator=g) < 0.2
    terminated = ends & (torch.rand(T, B, generator=g) < 0.5)
    truncated = ends & ~terminated
    adv, _ = gae(rewards, values, bootstrap, last, terminated, truncated, 0.97, 0.9)
    expected = _gae_by_loops(*(x.numpy() for x in (rewards, values, bootstrap, last, terminated, truncated)), 0.97, 0.9)
    np.testing.assert_allclose(adv.numpy(), expected, rtol=1e-12)


def test_value_norm_is_mappos_debiased_running_statistics():
    norm = ValueNorm(1, beta=0.5)
    x = torch.tensor([[1.0], [3.0]])
    norm.update(x, torch.ones_like(x, dtype=torch.bool))
    # one update: debiased mean 2, second moment 5 -> variance 1
    assert norm.normalize(torch.tensor([3.0])).item() == pytest.approx(1.0)
    y = torch.randn(6)
    torch.testing.assert_close(norm.denormalize(norm.normalize(y)), y)
    per_agent = ValueNorm(2, beta=0.5)
    per_agent.update(torch.tensor([[0.0, 10.0], [2.0, 30.0]]), torch.ones(2, 2, dtype=torch.bool))
    torch.testing.assert_close(per_agent.normalize(torch.tensor([1.0, 20.0])), torch.zeros(2))


def test_advantages_are_normalized_over_active_entries_per_agent():
    adv = torch.tensor([[[1.0, 100.0]], [[3.0, 300.0]], [[50.0, -7.0]]])  # [T=3, B=1, n=2]
    active = torch.tensor([[[True, True]], [[True, True]], [[False, True]]])
    out = normalize_advantages(adv, active, per_agent=True)
    assert out[2, 0, 0] == 0  # an inactive entry
    for i in range(2):
        kept = out[..., i][active[..., i]]
        assert kept.mean().abs() < 1e-6 and (kept.var(unbiased=False).sqrt() - 1).abs() < 1e-4


def test_a_per_agent_mean_keeps_one_agents_count_out_of_anothers_gradient():
    x = torch.ones(4, 2, requires_grad=True)
    fewer = torch.tensor([[True, True], [True, False], [True, False], [True, False]])
    masked_mean(x, fewer, per_agent=True).backward()
    assert torch.equal(x.grad[:, 0], torch.full((4,), 0.25))  # agent 0: 1 / its own 4 active steps
    x.grad = None
    masked_mean(x, fewer, per_agent=False).backward()
    assert torch.equal(x.grad[:, 0], torch.full((4,), 0.2))  # the joint mean: 1 / 5 active entries


def test_clipped_losses_by_hand():
    log_old = torch.zeros(3)
    log_new = torch.log(torch.tensor([1.5, 0.5, 1.1]))
    adv = torch.tensor([2.0, -1.0, 1.0])
    # ratios 1.5, 0.5, 1.1 with ε = 0.2: −min(1.5·2, 1.2·2) = −2.4; −min(−0.5, −0.8) = 0.8; −1.1
    torch.testing.assert_close(clipped_surrogate(log_new, log_old, adv, 0.2), torch.tensor([-2.4, 0.8, -1.1]))
    values, old, target = torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([3.0])
    # unclipped error 2 -> 2; clipped prediction 0.2 -> error 2.8 -> 3.92 (squared/2, inside δ = 10)
    assert clipped_value_loss(values, old, target, 0.2, 10.0).item() == pytest.approx(0.5 * 2.8 ** 2)


# ---- the rollout engine ---------------------------------------------------------------------------------
class CountingEnv(BatchedEnv):
    """Two sub-envs, one agent, obs = [steps into the episode]: sub-env 0 terminates after 2 steps, sub-env 1
    is truncated by its time limit after 3; agent 0 is reported dead on odd steps."""

    def __init__(self, num_envs: int = 2, seed: int | None = None):
        self.num_envs = num_envs
        self.spec = EnvSpec(name="counting", n_agents=1, obs_dim=1, obs_dims=(1,), state_dim=1,
                            action_space=spaces.Discrete(2), episode_limit=3, agent_types=("a",))
        self.t = np.zeros(2, np.int64)

    def _ts(self, reward, terminated, truncated, final=None):
        obs = self.t.astype(np.float32)[:, None, None]
        return TimeStep(obs=obs, state=obs[:, 0], reward=reward, terminated=terminated, truncated=truncated,
                        final_obs=final, final_state=None if final is None else final[:, 0],
                        info={"alive": (self.t % 2 == 0)[:, None]})

    def reset(self, seed=None):
        self.t[:] = 0
        return self._ts(np.zeros((2, 1), np.float32), np.zeros(2, bool), np.zeros(2, bool))

    def step(self, actions):
        self.t += 1
        terminated, truncated = np.array([self.t[0] == 2, False]), np.array([False, self.t[1] == 3])
        final = self.t.astype(np.float32)[:, None, None].copy()
        self.t[terminated | truncated] = 0
        return self._ts(np.ones((2, 1), np.float32), terminated, truncated, final)


class CountingActor:
    """Value = 100 + observation; the hidden state counts the steps since the episode started."""

    def initial_hidden(self, batch_size):
        return torch.zeros(batch_size, 1, 1)

    def act_train(self, obs, state, avail, hidden, generator):
        return ActStep(action=torch.zeros(obs.shape[:2], dtype=torch.long), log_prob=torch.zeros(obs.shape[:2]),
                       value=100 + obs[..., 0], hidden=hidden + 1)

    def bootstrap_value(self, obs, state, avail, hidden):
        return 100 + obs[..., 0]


def test_the_engine_bootstraps_truncations_from_the_final_observation_and_resets_hidden_states():
    rollout = RolloutEngine(CountingEnv(), CountingActor(), seed=0).collect(5)
    # sub-env 0 terminates at steps 1 and 3; sub-env 1 is truncated at step 2 (final obs 3: V = 103)
    assert rollout.terminated[:, 0].tolist() == [False, True, False, True, False]
    assert rollout.truncated[:, 1].tolist() == [False, False, True, False, False]
    assert rollout.bootstrap[:, :, 0].tolist() == [[0, 0], [0, 0], [0, 103], [0, 0], [0, 0]]
    assert rollout.starts.tolist() == [[True, True], [False, False], [True, False], [False, True], [True, False]]
    assert rollout.hidden[:, :, 0, 0].tolist() == [[0, 0], [1, 1], [0, 2], [1, 0], [0, 1]]  # zero at every start
    assert rollout.active[:, 0, 0].tolist() == [True, False, True, False, True]  # info["alive"] of each step
    assert rollout.last_values[:, 0].tolist() == [101, 102]  # obs after the last step: 1 and 2
    assert sorted(rollout.episode_returns.tolist()) == [2.0, 2.0, 3.0] and rollout.frames == 10


# ---- the networks ----------------------------------------------------------------------------------------
def test_ippos_stacked_networks_equal_n_separate_networks():
    """Agent i's slice of the stacked trunk computes what a one-agent trunk with those weights computes."""
    spec = EnvSpec(name="three", n_agents=3, obs_dim=4, obs_dims=(4, 4, 4), state_dim=0,
                   action_space=spaces.Discrete(5), episode_limit=10, agent_types=("a",) * 3)
    algo = make_algo("ippo", spec, hidden=8)
    stacked = algo.actor
    x, h = torch.randn(6, 3, 4), torch.randn(6, 3, 8)
    f, h_next = stacked.step(x, h)
    for i in range(3):
        single = Trunk(1, 4, 8, 2, recurrent=True)
        single.load_state_dict({k: v[i:i + 1] for k, v in stacked.state_dict().items()})
        f_i, h_i = single.step(x[:, i:i + 1], h[:, i:i + 1])
        torch.testing.assert_close(f_i[:, 0], f[:, i], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(h_i[:, 0], h_next[:, i], rtol=1e-6, atol=1e-6)
