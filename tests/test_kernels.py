"""offmarl.nets.kernels: the switch, the fast paths' equality to plain PyTorch, and the fallback without the ops."""

from __future__ import annotations

import types
import warnings
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from _torch_threads import one_torch_thread  # noqa: F401  (autouse)

from offmarl.nets import kernels
from offmarl.nets import linear as L
from offmarl.nets.kernels import fast_kernels_enabled, use_fast_kernels
from offmarl.nets.transformer import Block, CausalTransformer, attention_mask

needs_onednn = pytest.mark.skipif(not L.onednn_linear_available(), reason="this PyTorch has no oneDNN linear op")
FAST_FUNCTIONS = {"_OneDNNLinearBackward", "_OneDNNReLUMLPBackward", "_OneHeadAttentionBackward"}


@pytest.fixture
def fresh_op_lookups():
    """Forget the looked-up ops before the test (which hides one) and after it (which restores it)."""
    kernels.private_op.cache_clear()
    yield
    kernels.private_op.cache_clear()


def _autograd_nodes(out: torch.Tensor) -> set[str]:
    """Names of every backward node ``out`` depends on."""
    seen, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack.extend(parent for parent, _ in node.next_functions)
    return {node.name() for node in seen}


def _run(fn: Callable[[], torch.Tensor], leaves: tuple[torch.Tensor, ...], fast: bool, seed: int = 0):
    """``fn()`` with the fast kernels on or off (the same dropout draws: seeded), the names of its backward
    nodes, and the gradients of a loss that weighs every output randomly (a smooth weight would cancel in a
    LayerNorm's backward, leaving gradients of rounding size)."""
    with use_fast_kernels(fast):
        torch.manual_seed(seed)
        out = fn()
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return out, _autograd_nodes(out), torch.autograd.grad((out * weight).sum(), leaves)


def _assert_paths_agree(fn: Callable[[], torch.Tensor], leaves: tuple[torch.Tensor, ...], fast_functions: set[str],
                        rtol: float) -> None:
    """The fast path runs ``fast_functions``, the reference none of them, and their outputs and gradients
    agree to ``rtol`` (plus ``rtol`` of each tensor's largest entry, for entries that cancel to near 0)."""
    fast_out, fast_nodes, fast_grads = _run(fn, leaves, fast=True)
    ref_out, ref_nodes, ref_grads = _run(fn, leaves, fast=False)
    assert fast_functions <= fast_nodes and not FAST_FUNCTIONS & ref_nodes
    for ours, ref in zip((fast_out, *fast_grads), (ref_out, *ref_grads)):
        torch.testing.assert_close(ours, ref, rtol=rtol, atol=rtol * ref.abs().max().item())


def test_switch_as_call_and_as_context_manager():
    before = fast_kernels_enabled()
    with use_fast_kernels(True):
        with use_fast_kernels(False):
            assert not fast_kernels_enabled()
        assert fast_kernels_enabled()  # the block restored the setting it found
        use_fast_kernels(False)  # a plain call lasts until the next one
        assert not fast_kernels_enabled()
    assert fast_kernels_enabled() is before


@pytest.mark.parametrize("value, enabled", [(None, True), ("1", True), (" On ", True), ("0", False),
                                            ("false", False), ("off", False)])
def test_environment_variable(monkeypatch, value, enabled):
    if value is None:
        monkeypatch.delenv(kernels.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(kernels.ENV_VAR, value)
    assert kernels._setting_from_environment() is enabled


def test_environment_variable_rejects_other_values(monkeypatch):
    monkeypatch.setenv(kernels.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="OFFMARL_FAST_KERNELS='fast'"):
        kernels._setting_from_environment()


@needs_onednn
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_fast_path_equals_f_linear(relu, bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 683, 128, generator=g, requires_grad=True)  # 1366 x 128 x 384 >= ONEDNN_MIN_MACS
    w = (torch.randn(384, 128, generator=g) / 128 ** 0.5).requires_grad_()
    b = torch.randn(384, generator=g, requires_grad=True) if bias else None
    assert x.numel() * w.shape[0] >= L.ONEDNN_MIN_MACS
    leaves = (x, w) + ((b,) if bias else ())
    _assert_paths_agree(lambda: L.linear(x, w, b, relu), leaves, {"_OneDNNLinearBackward"}, rtol=1e-5)


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
def test_relu_mlp_fast_path_equals_f_linear_relu_f_linear(bias):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 512, 128, generator=g, requires_grad=True)  # 1024 x 128 x 512 = ONEDNN_MIN_MACS
    w1 = (torch.randn(512, 128, generator=g) / 128 ** 0.5).requires_grad_()
    w2 = (torch.randn(128, 512, generator=g) / 512 ** 0.5).requires_grad_()
    b1, b2 = (torch.randn(n, generator=g, requires_grad=True) if bias else None for n in (512, 128))
    leaves = (x, w1, w2) + ((b1, b2) if bias else ())
    _assert_paths_agree(lambda: L.relu_mlp(x, w1, b1, w2, b2), leaves, {"_OneDNNReLUMLPBackward"}, rtol=1e-5)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("rows", [None, slice(1, None, 3)])
def test_one_head_attention_equals_the_general_path(padded, rows):
    block = Block(members=1, hidden=8, n_heads=1, dropout=0.3, activation="relu", n_layers=1).train()
    g = torch.Generator().manual_seed(0)
    qkv = torch.randn(3, 7, 24, generator=g, dtype=torch.float64, requires_grad=True)  # [N, L, 3d]
    key_mask = torch.ones(3, 7, dtype=torch.bool)
    if padded:
        key_mask[1, :3] = False
        key_mask[2, :6] = False
    mask = attention_mask(key_mask)
    _assert_paths_agree(lambda: block.attend(qkv, mask, rows), (qkv,), {"_OneHeadAttentionBackward"}, rtol=1e-12)


@needs_onednn
def test_transformer_training_step_equal_on_both_paths():
    """kzl's width with one head, dropout and left padding, enough rows for the q/k/v projection and the MLP to
    take oneDNN: the whole forward and every gradient agree (fp32: the oneDNN linears force it)."""
    torch.manual_seed(0)
    net = CausalTransformer(hidden=128, n_layers=2, n_heads=1, max_timestep=64, dropout=0.1).train()
    g = torch.Generator().manual_seed(1)
    tokens = torch.randn(1, 24, 59, 128, generator=g, requires_grad=True)  # 1416 rows
    timesteps = torch.arange(59).repeat(24, 1)[None]
    key_mask = torch.ones(24, 59, dtype=torch.bool)
    key_mask[:6, :20] = False
    _assert_paths_agree(lambda: net(tokens, timesteps, key_mask), (tokens, *net.parameters()), FAST_FUNCTIONS,
                        rtol=1e-5)


def _assert_warns_once(match: str, fn: Callable[[], torch.Tensor]) -> list[torch.Tensor]:
    """Two calls of ``fn``: the first warns once (naming ``match``), the second not at all."""
    with pytest.warns(RuntimeWarning, match=match) as first:
        outs = [fn()]
    assert len(first) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outs.append(fn())
    return outs


@needs_onednn
def test_linear_without_the_onednn_op_falls_back_and_warns_once(monkeypatch, fresh_op_lookups):
    monkeypatch.setattr(torch.ops, "mkldnn", types.SimpleNamespace())  # a PyTorch whose oneDNN lacks the op
    g = torch.Generator().manual_seed(2)
    x, w, b = torch.randn(2048, 128, generator=g), torch.randn(256, 128, generator=g), torch.randn(256, generator=g)
    w2 = torch.randn(64, 256, generator=g)
    with use_fast_kernels(True):
        outs = _assert_warns_once("torch.ops.mkldnn._linear_pointwise",
                                  lambda: L.relu_mlp(x, w, b, w2, None) + L.linear(x, w, b, relu=True).sum())
    reference = F.linear(F.relu(F.linear(x, w, b)), w2) + F.relu(F.linear(x, w, b)).sum()
    assert all(torch.equal(out, reference) for out in outs)  # the reference path, the same kernels


def test_linear_without_onednn_takes_f_linear_silently(monkeypatch, fresh_op_lookups):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    x, w = torch.randn(2048, 128), torch.randn(256, 128)
    with use_fast_kernels(True), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(L.linear(x, w, relu=True), F.relu(F.linear(x, w)))


def test_attention_without_softmax_backward_falls_back_and_warns_once(monkeypatch, fresh_op_lookups):
    block = Block(members=1, hidden=8, n_heads=1, dropout=0.3, activation="relu", n_layers=1).train()
    qkv = torch.randn(3, 7, 24, generator=torch.Generator().manual_seed(3), dtype=torch.float64, requires_grad=True)
    mask = attention_mask(torch.tensor([[True] * 7, [False] * 3 + [True] * 4, [False] * 6 + [True]]))

    def attend() -> torch.Tensor:
        torch.manual_seed(5)
        return block.attend(qkv, mask, None)

    with use_fast_kernels(True):
        fast = attend()
        monkeypatch.delattr(torch, "_softmax_backward_data")  # a PyTorch without it
        kernels.private_op.cache_clear()  # the call above looked it up
        outs = _assert_warns_once("torch._softmax_backward_data", attend)
    for out in outs:
        assert "_OneHeadAttentionBackward" not in _autograd_nodes(out)
        torch.testing.assert_close(out, fast, rtol=1e-12, atol=1e-12)
        out.sum().backward()  # the general path's backward needs no private op
