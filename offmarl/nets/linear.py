"""One affine map ``y = x Wᵀ + b`` (optionally followed by ReLU) for the layers of offmarl's own networks.

Same math as ``torch.nn.functional.linear`` (+ ``relu``); what differs is which CPU kernels compute it.
On the CPU in fp32 (no autocast) the forward and the input gradient run on oneDNN's matmul
(``torch.ops.mkldnn._linear_pointwise``, the op PyTorch's own inductor emits for CPU linears) and the
weight gradient on MKL's (``torch.mm``), because that is the faster kernel for each product at the shapes
of our transformers (``[B·L, 128] x [128, 512]`` and the like): measured on the 2-core AMD EPYC (Zen 3,
AVX2) machines of this project, where oneDNN runs the MLP's forward and input-gradient products 10-45 %
faster than MKL's ``addmm`` (the q/k/v projection about alike), while MKL is the faster one for the
weight gradient ``gᵀ x`` (its inputs are transposed views, which oneDNN copies). The ReLU is fused into
oneDNN's matmul as a post-op (no separate pass over the wide activations, no stored pre-activation), and
the bias is added inside the matmul (no broadcast copy). On an AVX-512 AMD EPYC (Zen 5, where MKL
runs AVX2 code and oneDNN AVX-512) oneDNN is 1.5-2.3x MKL for the forward and input gradient (up to
2.9x with the fused ReLU), and for the weight gradient from 0.93x (q/k/v) to 1.7x (the MLP's second
layer): the split is kept there too.
``BENCHMARKS.md`` has the figures (the Zen 3 runs in its history: ``git show 9b027a1:BENCHMARKS.md``).

Everything else (products smaller than ``ONEDNN_MIN_MACS`` multiply-adds, CUDA, bf16/fp16 or autocast, a
PyTorch without oneDNN) takes ``F.linear``: under bf16 autocast PyTorch already runs the matmuls on oneDNN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
# oneDNN costs ~30-70 us more per call than MKL, which only large products repay (rows x in x out
# multiply-adds; measured with benchmarks/linear_kernels.py --rows): the DT's training batches at kzl's
# size are above it (q/k/v 185 M, MLP 247 M), a policy's forward during evaluation below
ONEDNN_MIN_MACS = 2 ** 26


def _onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, relu: bool = False) -> torch.Tensor:
    """oneDNN's ``relu?(x Wᵀ + b)`` for 2-D tensors."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu" if relu else "none", [], "")


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
    return (_ONEDNN and x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32
            and x.numel() * weight.shape[0] >= ONEDNN_MIN_MACS and not torch.is_autocast_enabled("cpu"))


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, relu: bool = False) -> torch.Tensor:
    """``x [..., in] -> [..., out]``: ``x Wᵀ + b``, then ReLU when ``relu`` (module docstring for kernels)."""
    if _onednn_applies(x, weight):
        y = _OneDNNLinear.apply(x.reshape(-1, x.shape[-1]), weight, bias, relu)
        return y.view(*x.shape[:-1], weight.shape[0])
    y = F.linear(x, weight, bias)
    return torch.relu(y) if relu else y


def relu_mlp(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor | None, w2: torch.Tensor,
             b2: torch.Tensor | None) -> torch.Tensor:
    """``x [..., in] -> [..., out]``: ``relu(x W1ᵀ + b1) W2ᵀ + b2`` (module docstring for kernels)."""
    if _onednn_applies(x, w1):
        y = _OneDNNReLUMLP.apply(x.reshape(-1, x.shape[-1]), w1, b1, w2, b2)
        return y.view(*x.shape[:-1], w2.shape[0])
    return F.linear(torch.relu(F.linear(x, w1, b1)), w2, b2)
