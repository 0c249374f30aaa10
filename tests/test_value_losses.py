"""The pure pieces of the value learners (offmarl.algos._value), against hand-computed small cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _torch_threads import one_torch_thread  # noqa: F401  (autouse: tiny networks on one torch thread)
from torch import nn

from offmarl.algos import _value as V
from offmarl.algos.ma_cql import Config as CQLConfig

T = torch.tensor
close = torch.testing.assert_close


def test_masked_operations_ignore_unavailable_actions():
    q = T([[1.0, 9.0, 3.0]])
    avail = T([[True, False, True]])
    assert V.masked_max(q, avail)[0].item() == 3.0 and V.masked_argmax(q, avail).item() == 2
    close(V.masked_logsumexp(q, avail), T([math.log(math.e + math.e ** 3)]))
    log_p = V.masked_log_softmax(q, avail)
    assert log_p[0, 1].item() == -math.inf
    close(log_p[0, [0, 2]].exp().sum(), T(1.0))


def test_cql_gap_hand_computed():
    # n = 2 agents, A = 2 actions: Q_tot with agent i's action varied, the others at their data actions
    q_tot_alt = T([[1.0, 2.0], [0.0, 3.0]])
    q_data = T(1.5)
    expected = (math.log(math.e + math.e ** 2) - 1.5) + (math.log(1 + math.e ** 3) - 1.5)
    close(V.cql_gap(q_tot_alt, q_data), T(expected))
    # agent 1's action 1 unavailable: only exp(0) remains in its sum
    avail = T([[True, True], [True, False]])
    close(V.cql_gap(q_tot_alt, q_data, avail), T(math.log(math.e + math.e ** 2) - 1.5 + 0.0 - 1.5))
    # sampled form: log of the mean
    close(V.cql_gap(q_tot_alt, q_data, log_mean=True), T(expected - 2 * math.log(2)))


def test_counterfactual_agent_values_replace_one_agent_at_a_time():
    q_alt = T([[10.0, 11.0], [20.0, 21.0]])  # [n=2, K=2]
    q_data = T([1.0, 2.0])
    out = V.counterfactual_agent_qs(q_alt, q_data)  # [n, K, n]
    assert out.tolist() == [[[10.0, 2.0], [11.0, 2.0]], [[1.0, 20.0], [1.0, 21.0]]]


def test_cql_gap_with_a_linear_mixer_is_eq_13s_per_agent_logsumexp():
    """For Q_tot = Σ w_i Q_i + b the deviation form equals Σ_i [LSE_a(w_i Q_i(a)) − w_i Q_i(a_data)]."""
    w, b = T([0.5, 2.0]), 0.7
    q = T([[1.0, -1.0, 0.5], [0.2, 0.3, -2.0]])  # [n, A]
    data = T([2, 0])
    q_data = q.gather(-1, data[:, None]).squeeze(-1)
    mix = lambda qs: (qs * w).sum(-1) + b  # noqa: E731
    q_tot_alt = mix(V.counterfactual_agent_qs(q, q_data))  # [n, A]
    expected = sum(torch.logsumexp(w[i] * q[i], 0) - w[i] * q_data[i] for i in range(2))
    close(V.cql_gap(q_tot_alt, mix(q_data)), expected)


def test_icq_batch_normalized_weights():
    w = V.batch_softmax_weights(T([0.0, math.log(3.0)]))
    close(w, T([0.5, 1.5]))  # 2 * softmax([0, ln 3]) = 2 * [1/4, 3/4]: average 1
    masked = V.batch_softmax_weights(T([0.0, math.log(3.0), 50.0]), T([True, True, False]))
    close(masked, T([0.5, 1.5, 0.0]))
    # per agent (the actor's Z_i): normalised over the batch axis for each column separately
    x = T([[0.0, 0.0], [math.log(3.0), 0.0]])
    close(V.batch_softmax_weights(x, dims=(0,)), T([[0.5, 1.0], [1.5, 1.0]]))
    # large values do not overflow (the max is subtracted)
    assert torch.isfinite(V.batch_softmax_weights(T([1000.0, 999.0]))).all()


def test_bcq_zeta_mask():
    logits = torch.log(T([0.5, 0.1, 0.4, 0.15]))
    # ratios μ(a)/max μ = [1, 0.2, 0.8, 0.3]; ≤ ζ = 0.3 is unfamiliar (masked), 0.3 itself included
    assert V.bcq_allowed_actions(logits, None, 0.3).tolist() == [True, False, True, False]
    # unavailable actions are masked too, and the ratio is taken among available ones
    avail = T([False, True, True, True])
    assert V.bcq_allowed_actions(logits, avail, 0.3).tolist() == [False, False, True, True]


def test_value_deviation_and_its_clipping():
    v, e = T([5.0, 1.0]), T([3.4, 3.4])
    close(V.value_deviation(v, e, math.inf), T([1 + 1.6 / 3.4, 1 - 2.4 / 3.4]))  # = V / E V for E V > 0
    close(V.value_deviation(v, e, 0.3), T([1.3, 0.7]))
    close(V.value_deviation(T([-1.0]), T([-2.0]), math.inf), T([1.5]))  # |E V| in the denominator
    close(V.value_deviation(v, e, 0.3, done=T([0.0, 1.0])), T([1.3, 1.0]))  # terminal transitions keep 1
    close(V.expected_next_value(T([3.0]), T([1.0]), 0.5), T([4.0]))  # (Q̂(s,a) − r) / γ


def test_transition_normalization_ratio():
    mu1, mu2 = T([[1.0, 0.0], [0.0, 0.0]]), T([[0.0, 0.0], [1.0, 1.0]])
    # ρ_N(0,I)(μ¹)/ρ_N(0,I)(μ²) = exp(−|μ¹|²/2) / exp(−|μ²|²/2)
    close(V.transition_normalization_from_latents(mu1, mu2), T([math.exp(-0.5), math.exp(1.0)]))
    # counts: from (s=0, a=0) the next state was 1 twice and 2 once; (s=0, a=1) always 3
    s = np.array([[0], [0], [0], [0]], dtype=np.float32)
    a = np.array([0, 0, 0, 1])
    s2 = np.array([[1], [1], [2], [3]], dtype=np.float32)
    np.testing.assert_allclose(V.transition_normalization_from_counts(s, a, s2), [1.5, 1.5, 3.0, 1.0])


def test_tree_backup_targets():
    gamma = 0.5
    r = T([[1.0, 2.0, 4.0]])
    done = T([[0.0, 0.0, 1.0]])
    v_next = T([[10.0, 20.0, 99.0]])  # V(s_{t+1}) under the greedy policy
    q_data = T([[10.0, 7.0, 0.0]])  # Q(s_{t+1}, a_{t+1}) of the dataset's next action
    pi = T([[1.0, 0.0, 0.0]])  # a_1 is greedy, a_2 is not, step 3 has no successor
    one = V.tree_backup_targets(r, done, v_next, q_data, pi, gamma, 1)
    close(one, T([[1 + 0.5 * 10, 2 + 0.5 * 20, 4.0]]))
    close(V.one_step_targets(r, done, v_next, gamma), one)
    two = V.tree_backup_targets(r, done, v_next, q_data, pi, gamma, 2)
    # t=0 follows the data (a_1 greedy): 1 + γ (10 − 10 + G^(1)_1) = 1 + 0.5 * 12; t=1 stops (π(a_2) = 0)
    close(two, T([[1 + 0.5 * 12, 12.0, 4.0]]))
    with pytest.raises(ValueError, match="n_step >= 1"):
        V.tree_backup_targets(r, done, v_next, q_data, pi, gamma, 0)


def test_lambda_returns():
    gamma = 0.5
    r = T([[1.0, 2.0, 4.0]])
    done = T([[0.0, 0.0, 1.0]])
    v_next = T([[8.0, 6.0, 100.0]])
    has_next = T([[True, True, False]])
    close(V.lambda_return_targets(r, done, v_next, has_next, gamma, 0.0), T([[5.0, 5.0, 4.0]]))  # one-step
    close(V.lambda_return_targets(r, done, v_next, has_next, gamma, 1.0), T([[1 + 0.5 * (2 + 0.5 * 4), 4.0, 4.0]]))
    # λ = 0.5: G_2 = 4; G_1 = 2 + γ (0.5·6 + 0.5·4) = 4.5; G_0 = 1 + γ (0.5·8 + 0.5·4.5) = 4.125
    close(V.lambda_return_targets(r, done, v_next, has_next, gamma, 0.5), T([[4.125, 4.5, 4.0]]))
    # a sequence cut before its end (has_next False, not done) bootstraps fully there
    close(V.lambda_return_targets(T([[1.0]]), T([[0.0]]), T([[8.0]]), T([[False]]), gamma, 0.5), T([[5.0]]))


def test_weighted_mse():
    pred, target, w = T([1.0, 2.0]), T([0.0, 0.0]), T([3.0, 1.0])
    close(V.weighted_mse(pred, target, w), T((3 * 1 + 1 * 4) / 4))
    close(V.weighted_mse(pred, target, w, self_normalize=False), T((3 * 1 + 1 * 4) / 2))


def test_target_updates():
    src, dst = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        src.weight.fill_(1.0), dst.weight.fill_(0.0)
    V.update_target(dst, src, tau=0.25)
    assert dst.weight.item() == 0.25
    V.update_target(dst, src, tau=0.0)  # a hard copy
    assert dst.weight.item() == 1.0
    frozen = V.frozen_copy(src)
    assert not any(p.requires_grad for p in frozen.parameters())


def test_presets_are_the_papers_and_explicit_values_win():
    tseng = V.resolve_preset(CQLConfig(preset="tseng"), {"tseng": {"n_step": 1}})
    assert (tseng.agent, tseng.hidden, tseng.agent_layers, tseng.mixer, tseng.mixer_hidden, tseng.hypernet_layers,
            tseng.lr, tseng.batch_size, tseng.weight_decay, tseng.n_step) == ("mlp", 256, 3, "qmix", 64, 2, 1e-4,
                                                                              128, 1e-4, 1)
    sit = V.resolve_preset(CQLConfig(preset="sit", lr=1e-3))
    assert (sit.agent, sit.hidden, sit.mixer, sit.mixer_hidden, sit.optimizer, sit.batch_size, sit.grad_clip,
            sit.target_update_interval, sit.tau) == ("gru", 64, "linear", 32, "rmsprop", 32, 10.0, 100, 0.0)
    assert sit.lr == 1e-3  # set explicitly: kept
    with pytest.raises(ValueError, match="unknown preset 'cql'; known: tseng, sit"):
        V.resolve_preset(CQLConfig(preset="cql"))
