"""Mixers (QMIX / linear / VDN) and the agent networks of the value learners."""

from __future__ import annotations

import pytest
import torch
from _torch_threads import one_torch_thread  # noqa: F401  (autouse: tiny networks on one torch thread)

from offmarl.nets.agents import AgentNetwork, GroupLinear
from offmarl.nets.mixers import MIXERS, LinearMixer, QMixer, VDNMixer, make_mixer

N, S = 3, 5


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_shapes_and_broadcasting_over_counterfactual_dims(name):
    torch.manual_seed(0)
    mixer = make_mixer(name, N, S, hidden=8)
    qs, state = torch.randn(4, N), torch.randn(4, S)
    assert mixer(qs, state).shape == (4, 1)
    # [B, L, n, A, n] agent values against [B, L, 1, 1, S] states: every entry mixed with its own state
    many = torch.randn(4, 2, N, 6, N)
    states = torch.randn(4, 2, S)
    out = mixer(many, states[:, :, None, None, :])
    assert out.shape == (4, 2, N, 6, 1)
    b, step, i, k = 3, 1, 2, 4
    torch.testing.assert_close(out[b, step, i, k], mixer(many[b, step, i, k][None], states[b, step][None])[0])


@pytest.mark.parametrize("name", ["qmix", "linear", "vdn"])
def test_monotonic_in_every_agent_value(name):
    """∂Q_tot/∂Q_i ≥ 0 by autograd at random inputs and random weights; agent_weights is that gradient."""
    for seed in range(5):
        torch.manual_seed(seed)
        mixer = make_mixer(name, N, S, hidden=16)
        qs = (3 * torch.randn(64, N)).requires_grad_(True)
        state = 3 * torch.randn(64, S)
        (grad,) = torch.autograd.grad(mixer(qs, state).sum(), qs)
        assert (grad >= 0).all()
        torch.testing.assert_close(mixer.agent_weights(qs.detach(), state), grad)
    # QMIX is not linear: its slope changes with the agent values
    torch.manual_seed(0)
    qmix = make_mixer("qmix", N, S, hidden=16)
    state = torch.randn(1, S)
    low, high = (qmix.agent_weights(torch.full((1, N), -20.0), state),
                 qmix.agent_weights(torch.full((1, N), 20.0), state))
    assert not torch.allclose(low, high)


def test_linear_mixer_is_a_state_weighted_sum_and_vdn_the_plain_sum():
    torch.manual_seed(0)
    mixer = LinearMixer(N, S, hidden=8)
    qs, state = torch.randn(7, N), torch.randn(7, S)
    w, b = mixer.weights(state).abs(), mixer.bias(state)
    torch.testing.assert_close(mixer(qs, state), (w * qs).sum(-1, keepdim=True) + b)
    assert torch.equal(VDNMixer(N)(qs, state), qs.sum(-1, keepdim=True))


def test_tseng_qmix_is_two_layer_hypernetworks_of_width_64():
    mixer = make_mixer("qmix", N, S, hidden=64, hypernet_layers=2)
    assert isinstance(mixer, QMixer) and mixer.embed_dim == 64
    assert [m.out_features for m in mixer.hyper_w1.net if isinstance(m, torch.nn.Linear)] == [64, N * 64]


def test_unknown_mixer_is_named():
    with pytest.raises(ValueError, match="unknown mixer 'sum'; known: qmix, linear, vdn"):
        make_mixer("sum", N, S)


# ---- agent networks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mlp", "gru"])
@pytest.mark.parametrize("shared", [True, False])
def test_agent_i_depends_only_on_its_own_inputs_and_runs_alone(kind, shared):
    torch.manual_seed(0)
    net = AgentNetwork(kind, N, obs_dim=4, out_dim=5, hidden=8, n_layers=3, shared=shared)
    obs = torch.randn(2, 6, N, 4)  # [B, T, n, d]
    out = net(obs)
    assert out.shape == (2, 6, N, 5)
    changed = obs.clone()
    changed[:, :, 1] = torch.randn(2, 6, 4)  # agent 1's observations only
    other = net(changed)
    assert torch.equal(out[:, :, 0], other[:, :, 0]) and torch.equal(out[:, :, 2], other[:, :, 2])
    assert not torch.allclose(out[:, :, 1], other[:, :, 1])
    # decentralized execution: agent 2 stepping through its own observations reproduces the batched pass
    h = None
    for t in range(6):
        f, h = net.features_agent(obs[:, t, 2], 2, h)
        torch.testing.assert_close(net.head(f, group=2), out[:, t, 2])


def test_shared_agents_get_an_id_and_differ():
    torch.manual_seed(0)
    net = AgentNetwork("mlp", N, obs_dim=4, out_dim=2, hidden=8, shared=True)
    same = torch.ones(1, 1, N, 4)
    out = net(same)[0, 0]
    assert not torch.allclose(out[0], out[1])  # same observation, different agent id


def test_group_linear_per_agent_weights_match_separate_layers():
    torch.manual_seed(0)
    layer = GroupLinear(N, 4, 3)
    x = torch.randn(5, N, 4)
    y = layer(x)
    for i in range(N):
        torch.testing.assert_close(y[:, i], x[:, i] @ layer.weight[i] + layer.bias[i])
        torch.testing.assert_close(layer(x[:, i], group=i), y[:, i])
    with pytest.raises(ValueError, match="3 groups got 2 agents"):
        layer(torch.randn(5, 2, 4))


def test_continuous_critic_takes_actions_at_the_head_for_many_candidates():
    torch.manual_seed(0)
    critic = AgentNetwork("gru", N, obs_dim=4, out_dim=1, hidden=8, shared=False, action_in=2)
    feats = critic.features(torch.randn(2, 3, N, 4))  # [B, T, n, H]
    cands = torch.randn(2, 3, 7, N, 2)  # 7 candidate actions per agent
    q = critic.head(feats.unsqueeze(2), cands)
    assert q.shape == (2, 3, 7, N, 1)
    torch.testing.assert_close(q[:, :, 4], critic.head(feats, cands[:, :, 4]))
    with pytest.raises(ValueError, match="pass the actions"):
        critic.head(feats)
