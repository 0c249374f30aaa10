"""One affine map ``y = x Wᵀ + b`` (optionally followed by ReLU) for the layers of offmarl's own networks.

Two paths compute it. The fast one (on by default, :mod:`offmarl.nets.kernels`) runs on the CPU in fp32
without autocast for products of at least ``ONEDNN_MIN_MACS`` multiply-adds (rows x in x out): the forward
and the input gradient on oneDNN's matmul (``torch.ops.mkldnn._linear_pointwise``, the op PyTorch's own
inductor emits for CPU linears), with the bias added and the ReLU fused inside the matmul (no separate pass
over the wide activation, no stored pre-activation), and the weight gradient on MKL's (``torch.mm``);
:func:`relu_mlp`'s backward also applies ReLU's mask in place. Everything else takes the reference path,
``F.linear`` (+ ``F.relu``): smaller products, CUDA, other dtypes, autocast (under which PyTorch already
runs bf16 matmuls on oneDNN), a PyTorch without oneDNN or without the op, or the fast kernels switched off.

Both paths compute the same function; their outputs and the gradients of input, weight and bias agree up
to fp32 rounding (the kernels sum in another order), not bit for bit. Which kernel is the faster for each
product depends on the CPU: ``benchmarks/linear_kernels.py`` measures it, and ``BENCHMARKS.md`` ("Decision
Transformer training speed") has the figures behind this split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from offmarl.nets.kernels import fast_kernels_enabled, private_op

ONEDNN_LINEAR_OP = "torch.ops.mkldnn._linear_pointwise"
# oneDNN's fixed cost per call is higher than MKL's, which only large products repay: the DT's training
# batches at kzl's size are above the threshold (q/k/v 185 M, MLP 247 M), a policy's forward in evaluation below
ONEDNN_MIN_MACS = 2 ** 26


def onednn_linear_available() -> bool:
    """Whether this PyTorch has oneDNN and its linear op (warns once if it has oneDNN but not the op)."""
    return torch.backends.mkldnn.is_available() and private_op(ONEDNN_LINEAR_OP) is not None


def _onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
            relu: bool = False) -> torch.Tensor:
    """oneDNN's ``relu?(x Wᵀ + b)`` for 2-D tensors."""
    return private_op(ONEDNN_LINEAR_OP)(x, weight, bias, "relu" if relu else "none", [], "")


def _input_grad(grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``g W`` on oneDNN, which reads the (small) transposed weight as its weight."""
    return _onednn(grad, weight.t().contiguous())


def _param_grads(grad: torch.Tensor, x: torch.Tensor, weight_needed: bool,
                 bias_needed: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Weight gradient ``gᵀ x`` (on MKL) and bias gradient ``Σ_rows g``, each only when needed."""
    return grad.t().mm(x) if weight_needed else None, grad.sum(0) if bias_needed else None


class _OneDNNLinear(torch.autograd.Function):
    """``relu?(x Wᵀ + b)`` for 2-D fp32 CPU tensors ``x [N, in]``, ``W [out, in]``, ``b [out] | None``."""

    @staticmethod
    def forward(ctx, x, weight, bias, relu: bool):
        y = _onednn(x, weight, bias, relu)  # [N, out]
        ctx.save_for_backward(x, weight, y if relu else None)  # ReLU's backward needs only its output
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight, y = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if y is not None:
            grad = torch.ops.aten.threshold_backward(grad, y, 0)
        grad_x = _input_grad(grad, weight) if needs[0] else None
        return (grad_x, *_param_grads(grad, x, needs[1], ctx.has_bias and needs[2]), None)


class _OneDNNReLUMLP(torch.autograd.Function):
    """``relu(x W1ᵀ + b1) W2ᵀ + b2`` for 2-D fp32 CPU tensors. One function rather than two
    :class:`_OneDNNLinear` so that its backward can apply ReLU's mask in place on the hidden layer's
    gradient, which it has just computed itself (as two functions, ReLU's backward would write a fresh
    tensor the size of the wide hidden layer)."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2):
        h = _onednn(x, w1, b1, relu=True)  # [N, hidden]
        ctx.save_for_backward(x, w1, h, w2)
        ctx.has_bias = b1 is not None, b2 is not None
        return _onednn(h, w2, b2)  # [N, out]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, w1, h, w2 = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_w2, grad_b2 = _param_grads(grad, h, needs[3], ctx.has_bias[1] and needs[4])
        grad_h = _input_grad(grad, w2)
        torch.ops.aten.threshold_backward.grad_input(grad_h, h, 0, grad_input=grad_h)  # ReLU's mask, in place
        grad_x = _input_grad(grad_h, w1) if needs[0] else None
        grad_w1, grad_b1 = _param_grads(grad_h, x, needs[1], ctx.has_bias[0] and needs[2])
        return grad_x, grad_w1, grad_b1, grad_w2, grad_b2


def _onednn_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``x Wᵀ`` takes the fast path (module docstring); the op is looked up last, when all else fits."""
    return (fast_kernels_enabled() and x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32
            and x.numel() * weight.shape[0] >= ONEDNN_MIN_MACS and not torch.is_autocast_enabled("cpu")
            and onednn_linear_available())


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, relu: bool = False) -> torch.Tensor:
    """``x [..., in] -> [..., out]``: ``x Wᵀ + b``, then ReLU when ``relu`` (module docstring for the paths)."""
    if _onednn_applies(x, weight):
        y = _OneDNNLinear.apply(x.reshape(-1, x.shape[-1]), weight, bias, relu)
        return y.view(*x.shape[:-1], weight.shape[0])
    y = F.linear(x, weight, bias)
    return torch.relu(y) if relu else y


def relu_mlp(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor | None, w2: torch.Tensor,
             b2: torch.Tensor | None) -> torch.Tensor:
    """``x [..., in] -> [..., out]``: ``relu(x W1ᵀ + b1) W2ᵀ + b2`` (module docstring for the paths)."""
    if _onednn_applies(x, w1):
        y = _OneDNNReLUMLP.apply(x.reshape(-1, x.shape[-1]), w1, b1, w2, b2)
        return y.view(*x.shape[:-1], w2.shape[0])
    return F.linear(torch.relu(F.linear(x, w1, b1)), w2, b2)
