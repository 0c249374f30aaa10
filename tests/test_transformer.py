"""The causal transformer, the ensemble layers and the Decision-Transformer token layout."""

from __future__ import annotations

import pytest
import torch
from _torch_threads import one_torch_thread  # noqa: F401  (autouse)

from offmarl.nets.decision_transformer import DecisionTransformer, DTSpec
from offmarl.nets.ensemble import EnsembleLinear
from offmarl.nets.kernels import use_fast_kernels
from offmarl.nets.transformer import CausalTransformer, attention_mask


def _transformer(members: int = 1, dropout: float = 0.0) -> CausalTransformer:
    torch.manual_seed(0)
    return CausalTransformer(hidden=16, n_layers=2, n_heads=2, max_timestep=10, dropout=dropout, members=members).eval()


def test_attention_mask_is_causal_real_keys_and_diagonal():
    key_mask = torch.tensor([[False, False, True, True]])
    mask = attention_mask(key_mask)[0, 0]
    expected = torch.tensor([[1, 0, 0, 0],   # a pad query sees only itself (no NaN row)
                             [0, 1, 0, 0],
                             [0, 0, 1, 0],   # real queries see real keys at or before them
                             [0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask, expected)
    assert attention_mask(torch.ones(2, 4, dtype=torch.bool)) is None  # no padding: the is_causal fast path


def test_left_padded_rows_are_finite_and_pads_do_not_leak():
    net = _transformer()
    x = torch.randn(1, 3, 6, 16, requires_grad=True)
    t = torch.arange(6).repeat(3, 1)[None]
    key_mask = torch.ones(3, 6, dtype=torch.bool)
    key_mask[0, :4] = False  # mostly padding
    key_mask[1, :5] = False  # a single real token
    out = net(x, t, key_mask)
    assert torch.isfinite(out).all()
    out[0][key_mask].sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.all(x.grad[0][~key_mask] == 0)  # real outputs do not depend on pad tokens
    y = x.detach().clone()
    y[0][~key_mask] = torch.randn(int((~key_mask).sum()), 16) * 100
    assert torch.equal(net(y, t, key_mask)[0][key_mask], out[0][key_mask].detach())


def test_causality_and_fast_path_agree():
    net = _transformer()
    x = torch.randn(1, 2, 5, 16)
    t = torch.arange(5).repeat(2, 1)[None]
    full = net(x, t, torch.ones(2, 5, dtype=torch.bool))  # is_causal path
    x2 = x.clone()
    x2[:, :, 3:] = torch.randn(1, 2, 2, 16)  # change the future
    changed = net(x2, t, None)
    assert torch.allclose(full[:, :, :3], changed[:, :, :3], atol=1e-6)
    assert not torch.allclose(full[:, :, 3:], changed[:, :, 3:])
    # an explicit all-real mask through the masked kernel gives the same numbers as the fast path
    key_mask = torch.ones(2, 5, dtype=torch.bool)
    key_mask[1, 0] = False
    explicit = net(x, t, key_mask)
    assert torch.allclose(explicit[:, 0], full[:, 0], atol=1e-5)


def test_ensemble_members_are_independent():
    net = _transformer(members=3)
    x = torch.randn(3, 2, 5, 16)
    t = torch.arange(5).repeat(2, 1)[None]
    out = net(x, t)
    x2 = x.clone()
    x2[2] = torch.randn(2, 5, 16)  # change member 2's input only
    out2 = net(x2, t)
    assert torch.equal(out[:2], out2[:2])
    single = net(x[1:2], t, member=1)  # member 1 alone, its own weights
    assert torch.allclose(single[0], out[1], atol=1e-5)


def test_ensemble_linear_shared_input_and_member_call():
    torch.manual_seed(0)
    layer = EnsembleLinear(3, 4, 5)
    x = torch.randn(1, 7, 4)
    shared = layer(x)  # one input, three members
    assert shared.shape == (3, 7, 5)
    for e in range(3):
        expected = x[0] @ layer.weight[e].T + layer.bias[e]
        assert torch.allclose(shared[e], expected, atol=1e-6)
        assert torch.allclose(layer(x, member=e)[0], expected, atol=1e-6)
    with pytest.raises(ValueError, match="leading dim 2"):
        layer(torch.randn(2, 7, 4))


def _dt(layout: str, discrete: bool = True) -> DecisionTransformer:
    torch.manual_seed(0)
    spec = DTSpec(layout, n_agents=3, obs_dim=4, discrete=discrete, n_actions=5, act_dim=2, hidden=16, n_layers=1,
                  n_heads=2, dropout=0.0, activation="relu", feature_dim=8, max_timestep=12)
    return DecisionTransformer(spec).eval()


def _window(B: int = 2, K: int = 4, n: int = 3, discrete: bool = True):
    g = torch.Generator().manual_seed(1)
    actions = torch.randint(0, 5, (B, K, n), generator=g) if discrete else torch.rand(B, K, n, 2, generator=g)
    return (torch.randn(B, K, n, generator=g), torch.randn(B, K, n, 4, generator=g), actions,
            torch.arange(K).repeat(B, 1), torch.ones(B, K, dtype=torch.bool))


@pytest.mark.parametrize("layout", ["per_agent", "shared", "joint"])
@pytest.mark.parametrize("discrete", [True, False])
def test_dt_shapes_and_action_read_from_observation_token(layout, discrete):
    dt = _dt(layout, discrete)
    rtg, obs, actions, ts, mask = _window(discrete=discrete)
    out = dt(rtg, obs, actions, ts, mask)
    width = 5 if discrete else 2
    assert out.action.shape == (3, 2, 4, width) and out.features.shape == (3, 2, 4, 8)
    # a_t (same step) cannot influence the prediction of a_t; a_{t-1} does
    changed = actions.clone()
    changed[:, 3] = (changed[:, 3] + 1) % 5 if discrete else changed[:, 3] + 0.5
    assert torch.equal(dt(rtg, obs, changed, ts, mask).action, out.action)
    changed = actions.clone()
    changed[:, 2] = (changed[:, 2] + 1) % 5 if discrete else changed[:, 2] + 0.5
    assert not torch.allclose(dt(rtg, obs, changed, ts, mask).action[:, :, 3], out.action[:, :, 3])


def test_per_agent_dt_reads_only_its_agent():
    dt = _dt("per_agent")
    rtg, obs, actions, ts, mask = _window()
    out = dt(rtg, obs, actions, ts, mask)
    obs2, rtg2 = obs.clone(), rtg.clone()
    obs2[:, :, 0] += 3.0
    rtg2[:, :, 0] -= 1.0
    out2 = dt(rtg2, obs2, actions, ts, mask)
    assert torch.equal(out2.action[1:], out.action[1:]) and not torch.allclose(out2.action[0], out.action[0])
    one = dt(rtg[:, :, 2:], obs[:, :, 2:], actions[:, :, 2:], ts, mask, agent_ids=torch.tensor([2]), member=2)
    assert torch.allclose(one.action[0], out.action[2], atol=1e-5)


def test_shared_dt_uses_agent_id_and_joint_dt_sees_everyone():
    shared = _dt("shared")
    rtg, obs, actions, ts, mask = _window()
    same = (rtg[:, :, :1].expand(-1, -1, 3), obs[:, :, :1].expand(-1, -1, 3, -1), actions[:, :, :1].expand(-1, -1, 3))
    out = shared(*same, ts, mask).action
    assert not torch.allclose(out[0], out[1])  # identical histories, different ids -> different outputs
    joint = _dt("joint")
    base = joint(rtg, obs, actions, ts, mask).action
    obs2 = obs.clone()
    obs2[:, :, 2] += 1.0
    assert not torch.allclose(joint(rtg, obs2, actions, ts, mask).action[0], base[0])  # agent 0's head sees agent 2
    assert not torch.allclose(base[0], base[1])  # agent-specific heads


def test_dt_pad_contents_never_reach_outputs():
    dt = _dt("joint")
    rtg, obs, actions, ts, mask = _window()
    mask[0, :2] = False
    out = dt(rtg, obs, actions, ts, mask)
    rtg2, obs2, actions2, ts2 = rtg.clone(), obs.clone(), actions.clone(), ts.clone()
    rtg2[0, :2], obs2[0, :2], actions2[0, :2], ts2[0, :2] = 7.0, float("nan"), 4, 11
    out2 = dt(rtg2, obs2, actions2, ts2, mask)
    assert torch.equal(out2.action[:, mask], out.action[:, mask])
    assert torch.isfinite(out.action).all()


def test_dropout_rate_scale_and_determinism():
    from offmarl.nets.transformer import dropout, residual_dropout

    x = torch.ones(200_000)
    torch.manual_seed(0)
    y = dropout(x, 0.1)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.1) < 0.003  # p rounded to 6554 / 65536 = 0.100006
    assert torch.allclose(y[kept], torch.full_like(y[kept], 65536 / (65536 - 6554)))
    torch.manual_seed(0)
    assert torch.equal(dropout(x, 0.1), y)  # the global torch generator: seeded runs repeat
    assert dropout(x, 0.1, training=False) is x and dropout(x, 0.0) is x
    torch.manual_seed(0)
    assert torch.equal(residual_dropout(torch.full_like(x, 2.0), x, 0.1), 2.0 + y)
    base, branch = torch.full_like(x, 2.0).requires_grad_(), x.clone().requires_grad_()
    torch.manual_seed(0)
    residual_dropout(base, branch, 0.1).sum().backward()
    assert torch.equal(base.grad, torch.ones_like(x)) and torch.equal(branch.grad, y)  # d/d(branch) = the scaled mask


def test_explicit_softmax_attention_equals_sdpa():
    import torch.nn.functional as F

    from offmarl.nets.transformer import softmax_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 6, 4, generator=g) for _ in range(3))
    key_mask = torch.tensor([[True] * 6, [False, False, True, True, True, True], [False] * 5 + [True]])
    mask = attention_mask(key_mask)
    assert torch.allclose(softmax_attention(q, k, v, mask, 0.0),
                          F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-6)
    assert torch.allclose(softmax_attention(q, k, v, None, 0.0),
                          F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-6)
    q, k, v = (t.double().requires_grad_() for t in (q, k, v))
    for m in (mask, None):  # the mask is added inside the score matmul: gradients as SDPA's
        ours = torch.autograd.grad(softmax_attention(q, k, v, m, 0.0).square().sum(), (q, k, v))
        sdpa = torch.autograd.grad(
            F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=m is None).square().sum(), (q, k, v))
        assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(ours, sdpa))


def test_out_rows_and_last_only_equal_the_full_computation():
    net = _transformer(members=2)
    x = torch.randn(2, 3, 9, 16)
    t = torch.arange(9).repeat(3, 1)[None]
    key_mask = torch.ones(3, 9, dtype=torch.bool)
    key_mask[1, :3] = False
    full = net(x, t, key_mask)
    assert torch.allclose(net(x, t, key_mask, out_rows=slice(1, None, 3)), full[:, :, 1::3], atol=1e-5)
    dt = _dt("per_agent")
    rtg, obs, actions, ts, mask = _window()
    mask[0, :2] = False
    out = dt(rtg, obs, actions, ts, mask)
    last = dt(rtg, obs, actions, ts, mask, last_only=True)
    assert last.action.shape == (3, 2, 1, 5)
    assert torch.allclose(last.action[:, :, 0], out.action[:, :, -1], atol=1e-5)


def test_linear_head_option_and_its_guard():
    spec = DTSpec("shared", n_agents=3, obs_dim=4, discrete=True, n_actions=5, hidden=16, n_layers=1, n_heads=2,
                  dropout=0.0, activation="relu", feature_dim=0, max_timestep=12)
    out = DecisionTransformer(spec)(*_window())
    assert out.action.shape == (3, 2, 4, 5) and out.features.shape == (3, 2, 4, 16)  # features = o_t tokens
    with pytest.raises(ValueError, match="joint .* same feature"):
        DTSpec("joint", n_agents=3, obs_dim=4, discrete=True, n_actions=5, hidden=16, n_layers=1, n_heads=2,
               dropout=0.0, activation="relu", feature_dim=0, max_timestep=12)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("rows", [None, slice(1, None, 3)])
def test_one_head_attention_equals_the_generic_path_with_the_same_dropout(padded, rows):
    from offmarl.nets.transformer import Block, softmax_attention

    block = Block(members=1, hidden=8, n_heads=1, dropout=0.3, activation="relu", n_layers=1).train()
    g = torch.Generator().manual_seed(0)
    qkv = torch.randn(3, 7, 24, generator=g, dtype=torch.float64, requires_grad=True)  # [N, L, 3d]
    key_mask = torch.ones(3, 7, dtype=torch.bool)
    if padded:
        key_mask[1, :3] = False
        key_mask[2, :6] = False
    mask = attention_mask(key_mask)
    torch.manual_seed(5)
    with use_fast_kernels(True):  # whatever OFFMARL_FAST_KERNELS says
        ours = block.attend(qkv, mask, rows)  # one head with dropout: the fused-gradient function
    assert ours.grad_fn.name() == "_OneHeadAttentionBackward"
    q, k, v = (t[:, None] for t in qkv.split(8, dim=-1))  # [N, 1, L, d]
    ref_mask = torch.ones(7, 7, dtype=torch.bool).tril_() if mask is None else mask
    if rows is not None:
        q, ref_mask = q[:, :, rows], ref_mask[..., rows, :]
    torch.manual_seed(5)  # the same dropout draws
    ref = softmax_attention(q, k, v, ref_mask, 0.3)[:, 0]
    assert ours.shape == ref.shape == (3, 7 if rows is None else 2, 8)
    assert torch.allclose(ours, ref, atol=1e-12)
    weight = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    (ours_grad,) = torch.autograd.grad((ours * weight).sum(), qkv)
    (ref_grad,) = torch.autograd.grad((ref * weight).sum(), qkv)
    assert torch.allclose(ours_grad, ref_grad, atol=1e-12)
    if rows is not None:  # queries that were not kept get no gradient
        dropped_rows = [i for i in range(7) if i not in range(7)[rows]]
        assert torch.all(ours_grad[:, dropped_rows, :8] == 0)
