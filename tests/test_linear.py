"""offmarl.nets.linear: the oneDNN-backed affine maps equal torch's, forward and backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _torch_threads import one_torch_thread  # noqa: F401  (autouse)

from offmarl.nets import linear as L
from offmarl.nets.kernels import use_fast_kernels

needs_onednn = pytest.mark.skipif(not L.onednn_linear_available(),
                                  reason="this PyTorch build has no oneDNN (mkldnn) linear op")


def _backward_of(out: torch.Tensor) -> str:
    """The autograd node under the final reshape of ``out``."""
    return out.grad_fn.next_functions[0][0].name()


def _grads(out: torch.Tensor, *leaves: torch.Tensor) -> tuple[torch.Tensor, ...]:
    weight = torch.linspace(-1, 1, out.numel()).view(out.shape)  # a loss that weighs every output differently
    return torch.autograd.grad((out * weight).sum(), leaves)


@pytest.fixture(autouse=True)
def fast_kernels_on():
    """These tests check the fast path, whatever ``OFFMARL_FAST_KERNELS`` says."""
    with use_fast_kernels(True):
        yield


@pytest.fixture
def onednn_for_all_sizes(monkeypatch):
    """Small test products take oneDNN too (normally only products of ``ONEDNN_MIN_MACS`` and more)."""
    monkeypatch.setattr(L, "ONEDNN_MIN_MACS", 0)


@needs_onednn
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_equals_torch_forward_and_backward(relu, bias, onednn_for_all_sizes):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 16, generator=g, requires_grad=True)  # [..., in]: leading dims are flattened
    w = torch.randn(24, 16, generator=g, requires_grad=True)
    b = torch.randn(24, generator=g, requires_grad=True) if bias else None
    ours = L.linear(x, w, b, relu=relu)
    assert _backward_of(ours) == "_OneDNNLinearBackward"  # the oneDNN path ran, not the fallback
    ref = F.linear(x, w, b)
    ref = torch.relu(ref) if relu else ref
    assert ours.shape == (3, 7, 24)
    assert torch.allclose(ours, ref, atol=1e-5)
    leaves = (x, w) + ((b,) if bias else ())
    for a, r in zip(_grads(ours, *leaves), _grads(ref, *leaves)):
        assert torch.allclose(a, r, atol=1e-4)


@needs_onednn
def test_relu_mlp_equals_torch_and_skips_frozen_weights(onednn_for_all_sizes):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 9, 8, generator=g, requires_grad=True)
    w1, w2 = torch.randn(32, 8, generator=g, requires_grad=True), torch.randn(6, 32, generator=g, requires_grad=True)
    b1, b2 = torch.randn(32, generator=g, requires_grad=True), torch.randn(6, generator=g, requires_grad=True)
    ours = L.relu_mlp(x, w1, b1, w2, b2)
    assert _backward_of(ours) == "_OneDNNReLUMLPBackward"
    ref = F.linear(torch.relu(F.linear(x, w1, b1)), w2, b2)
    assert torch.allclose(ours, ref, atol=1e-5)
    for a, r in zip(_grads(ours, x, w1, b1, w2, b2), _grads(ref, x, w1, b1, w2, b2)):
        assert torch.allclose(a, r, atol=1e-4)
    # frozen weights (a frozen teacher) and an input without gradient: only what is asked for is computed
    w1.requires_grad_(False)
    x_const = x.detach()
    (gw2,) = torch.autograd.grad(L.relu_mlp(x_const, w1, b1, w2, b2).sum(), (w2,))
    assert torch.allclose(gw2, torch.autograd.grad(F.linear(torch.relu(F.linear(x_const, w1, b1)), w2, b2).sum(),
                                                   (w2,))[0], atol=1e-4)


@needs_onednn
def test_only_large_products_take_onednn():
    x, w = torch.randn(2048, 128, requires_grad=True), torch.randn(256, 128)  # 2^26 multiply-adds: oneDNN
    assert _backward_of(L.linear(x, w)) == "_OneDNNLinearBackward"
    assert L.linear(x[:2047], w).grad_fn.name() == "MmBackward0"  # one row fewer: torch's own F.linear


def test_fallbacks_keep_torch_semantics(onednn_for_all_sizes):
    g = torch.Generator().manual_seed(2)
    x, w, b = torch.randn(4, 8, generator=g), torch.randn(3, 8, generator=g), torch.randn(3, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast: F.linear, so the matmul runs in bf16
        y = L.linear(x, w, b)
        z = L.relu_mlp(x, torch.randn(5, 8, generator=g), None, w[:, :5], b)
    assert y.dtype == torch.bfloat16 and z.dtype == torch.bfloat16
    x64, w64 = x.double(), w.double()  # float64: not oneDNN's, torch's own kernels, exact as ever
    assert torch.equal(L.linear(x64, w64, None, relu=True), torch.relu(F.linear(x64, w64)))
    empty = L.linear(torch.zeros(0, 8), w, b)  # no rows
    assert empty.shape == (0, 3)
