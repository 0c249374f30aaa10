"""offmarl.nets.blocked: the blocked ReLU MLP and q/k/v projection compute the plain layers' values and
gradients (fp64, one and several members, blocks that do not divide the rows), and a transformer block
trains through them with the same gradients as through the plain layers."""

from __future__ import annotations

import pytest
import torch
from _torch_threads import one_torch_thread  # noqa: F401  (autouse)

from offmarl.nets import blocked
from offmarl.nets.blocked import qkv_projection, relu_mlp
from offmarl.nets.transformer import Block


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 16 rows, so that a few hundred rows span many blocks and a partial last one."""
    monkeypatch.setattr(blocked, "_BLOCK_BYTES", 1)


def _params(E: int, shapes: list[tuple[int, ...]], dtype=torch.float64) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(E)
    return [torch.randn(E, *s, generator=g, dtype=dtype).requires_grad_() for s in shapes]


def _grads(out, inputs, seed=1):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
    return torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("E,N", [(1, 200), (3, 37)])
def test_relu_mlp_equals_the_plain_layers(small_blocks, E, N):
    d = 8
    inputs = _params(E, [(N, d), (4 * d, d), (4 * d,), (d, 4 * d), (d,)])
    z, w1, b1, w2, b2 = inputs
    plain = torch.relu(z @ w1.transpose(1, 2) + b1[:, None]) @ w2.transpose(1, 2) + b2[:, None]
    out = relu_mlp(*inputs)
    assert out.shape == (E, N, d)
    assert torch.allclose(out, plain, rtol=1e-12, atol=1e-12)
    for got, want in zip(_grads(out, inputs), _grads(plain, inputs)):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("E,N", [(1, 200), (3, 37)])
def test_qkv_projection_equals_the_plain_layer_even_with_an_unused_output(small_blocks, E, N):
    d = 8
    inputs = _params(E, [(N, d), (3 * d, d), (3 * d,)])
    z, w, b = inputs
    plain = (z @ w.transpose(1, 2) + b[:, None]).split(d, dim=-1)
    q, k, v = qkv_projection(*inputs)
    assert q.shape == k.shape == v.shape == (E, N, d)
    assert all(torch.allclose(a, c, rtol=1e-12, atol=1e-12) for a, c in zip((q, k, v), plain))
    for got, want in zip(_grads((q, k, v), inputs), _grads(plain, inputs)):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)
    q, k, v = qkv_projection(*inputs)  # keys unused: their gradient is zero, the others flow
    plain = (z @ w.transpose(1, 2) + b[:, None]).split(d, dim=-1)
    for got, want in zip(torch.autograd.grad((q.sum() + 2 * v.sum()), inputs),
                         torch.autograd.grad((plain[0].sum() + 2 * plain[2].sum()), inputs)):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)


def test_bf16_autocast_keeps_activations_bf16_and_weight_gradients_fp32():
    z = torch.randn(1, 40, 8, dtype=torch.bfloat16, requires_grad=True)
    w1, b1, w2, b2, wq, bq = _params(1, [(32, 8), (32,), (8, 32), (8,), (24, 8), (24,)], dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = relu_mlp(z, w1, b1, w2, b2)
        q, _, v = qkv_projection(z, wq, bq)
    assert out.dtype == q.dtype == torch.bfloat16
    (out.float().sum() + q.float().sum() + v.float().sum()).backward()
    assert z.grad.dtype == torch.bfloat16
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in (w1, b1, w2, b2, wq, bq))
    reference = torch.relu(z.float() @ w1[0].T + b1[0]) @ w2[0].T + b2[0]
    assert (out.float() - reference).norm() < 0.02 * reference.norm()  # bf16 rounding only


@pytest.mark.parametrize("members,member", [(1, None), (3, None), (3, 1)])
def test_a_block_trains_through_the_blocked_layers_with_the_plain_gradients(small_blocks, members, member):
    torch.manual_seed(0)
    block = Block(members, hidden=16, n_heads=2, dropout=0.0, activation="relu", n_layers=2).double()
    x = torch.randn(members if member is None else 1, 2, 30, 16, dtype=torch.float64)
    assert block.blocked(x, member)
    out = block(x, None, member)
    grads = torch.autograd.grad(out.square().sum(), list(block.parameters()), allow_unused=True)
    block.blocked = lambda z, member: False  # the plain layers, same weights
    plain = block(x, None, member)
    plain_grads = torch.autograd.grad(plain.square().sum(), list(block.parameters()), allow_unused=True)
    assert torch.allclose(out, plain, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, plain_grads):
        assert (got is None) == (want is None)
        if got is not None:
            assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)
    if member is not None:  # the other members' weights get exactly zero gradient
        w = grads[[name for name, _ in block.named_parameters()].index("fc.weight")]
        assert w[member].abs().sum() > 0 and w[[0, 2]].abs().sum() == 0


def test_blocks_fill_about_a_megabyte():
    assert blocked.rows_per_block(1, 512, 4) == 512
    assert blocked.rows_per_block(1, 512, 2) == 1024
    assert blocked.rows_per_block(64, 4096, 4) == 16  # never fewer than 16 rows
