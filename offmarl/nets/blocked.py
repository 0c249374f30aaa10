"""Two pieces of the transformer block computed in cache-sized blocks of rows: the ReLU feed-forward
sublayer (:func:`relu_mlp`) and the query/key/value projection (:func:`qkv_projection`).

Why: on a CPU, beyond their matmuls, these layers cost memory traffic over their wide activations
(``[N, 4d]`` hidden units, ``[N, 3d]`` queries/keys/values; several MB each, in main memory rather than
cache). Eager PyTorch makes several passes over each: the MLP writes its pre-activation, reads it to
write the ReLU output, and in backward writes the hidden gradient, reads it to write the masked gradient,
then reads that three times (two matmuls and the bias sum); the projection's backward concatenates the
three gradients into a fresh ``[N, 3d]`` tensor before its matmuls read it. Here both walk ``rows`` rows
at a time (one block's wide tensor ~1 MB, so it stays in a core's 2 MB L2 cache): in backward a block's
hidden or concatenated gradient is made, used by the matmuls and dropped without leaving the cache; in
forward the ReLU output (which backward needs) is written once. Same FLOPs and the same functions; only
the weight gradients are summed block by block (a different float summation order). Measured in
BENCHMARKS.md ("Decision Transformer training speed"). The LayerNorm before each stays outside: fusing
it in too (recomputed per block in backward) measured 9 % slower than leaving it to PyTorch.

Shapes carry the member axis of :mod:`offmarl.nets.ensemble` (``E`` independent networks): ``z [E, N, d]``,
weights ``[E, out, in]``, biases ``[E, out]``. Both run in the input's dtype (bf16 under autocast, where
offmarl's residual stream is bf16; see :mod:`offmarl.nets.transformer`) and accumulate weight gradients in
the weights' dtype.
"""

from __future__ import annotations

import torch

_BLOCK_BYTES = 1 << 20  # one block's wide activation: half of a 2 MB L2 cache


def rows_per_block(members: int, width: int, itemsize: int) -> int:
    """How many rows of a ``[members, N, width]`` activation fill one block (at least 16)."""
    return max(16, _BLOCK_BYTES // (members * width * itemsize))


def _accumulate(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """``acc += a @ b`` (batched), inside the matmul when the dtypes agree."""
    if acc.dtype == a.dtype:
        acc.baddbmm_(a, b)
    else:
        acc.add_(torch.bmm(a, b))


class _BlockedReLUMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, w1, b1, w2, b2):
        E, N, _ = z.shape
        rows = rows_per_block(E, w1.shape[1], z.element_size())
        with torch.autocast(z.device.type, enabled=False):  # everything runs in z's dtype (module docstring)
            w1c, b1c, w2c, b2c = (t.to(z.dtype) for t in (w1, b1, w2, b2))
            out = torch.empty_like(z)
            hidden = []
            for s in range(0, N, rows):
                h = torch.baddbmm(b1c.unsqueeze(1), z[:, s:s + rows], w1c.transpose(1, 2)).relu_()  # [E, r, f]
                torch.baddbmm(b2c.unsqueeze(1), h, w2c.transpose(1, 2), out=out[:, s:s + rows])
                hidden.append(h)
        ctx.rows, ctx.weight_dtype = rows, w1.dtype
        ctx.save_for_backward(z, w1c, w2c, *hidden)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        z, w1c, w2c, *hidden = ctx.saved_tensors
        rows, wdt = ctx.rows, ctx.weight_dtype
        with torch.autocast(z.device.type, enabled=False):
            grad_out = grad_out.to(z.dtype)
            grad_z = torch.empty_like(z)
            grad_w1 = torch.zeros(w1c.shape, dtype=wdt, device=z.device)
            grad_w2 = torch.zeros(w2c.shape, dtype=wdt, device=z.device)
            grad_b1 = torch.zeros(w1c.shape[:2], dtype=wdt, device=z.device)
            for i, h in enumerate(hidden):
                block = slice(i * rows, (i + 1) * rows)
                g = grad_out[:, block]  # [E, r, d]
                gh = torch.bmm(g, w2c)  # [E, r, f]: the hidden gradient, in cache
                torch.ops.aten.threshold_backward.grad_input(gh, h, 0.0, grad_input=gh)  # ReLU's mask, in place
                _accumulate(grad_w2, g.transpose(1, 2), h)
                _accumulate(grad_w1, gh.transpose(1, 2), z[:, block])
                grad_b1.add_(gh.sum(1, dtype=wdt))
                torch.bmm(gh, w1c, out=grad_z[:, block])
            grad_b2 = grad_out.sum(1, dtype=wdt)
        return grad_z, grad_w1, grad_b1, grad_w2, grad_b2


def relu_mlp(z: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """``relu(z W1ᵀ + b1) W2ᵀ + b2`` per member: ``z [E, N, d]``, ``w1 [E, f, d]``, ``b1 [E, f]``,
    ``w2 [E, d, f]``, ``b2 [E, d]`` -> ``[E, N, d]``."""
    return _BlockedReLUMLP.apply(z, w1, b1, w2, b2)


class _BlockedQKV(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, w, b):
        E, N, _ = z.shape
        rows = rows_per_block(E, w.shape[1], z.element_size())
        with torch.autocast(z.device.type, enabled=False):
            wc, bc = w.to(z.dtype), b.to(z.dtype)
            out = torch.empty(E, N, w.shape[1], dtype=z.dtype, device=z.device)  # [E, N, 3d]
            for s in range(0, N, rows):  # the bias copy and the matmul's update of a block meet in cache
                torch.baddbmm(bc.unsqueeze(1), z[:, s:s + rows], wc.transpose(1, 2), out=out[:, s:s + rows])
        ctx.rows, ctx.weight_dtype = rows, w.dtype
        ctx.save_for_backward(z, wc)
        return out.chunk(3, dim=-1)

    @staticmethod
    def backward(ctx, grad_q, grad_k, grad_v):
        z, wc = ctx.saved_tensors
        rows, wdt = ctx.rows, ctx.weight_dtype
        grads = [g.to(z.dtype) for g in (grad_q, grad_k, grad_v)]  # an unused output's arrives as zeros
        with torch.autocast(z.device.type, enabled=False):
            grad_z = torch.empty_like(z)
            grad_w = torch.zeros(wc.shape, dtype=wdt, device=z.device)
            grad_b = torch.zeros(wc.shape[:2], dtype=wdt, device=z.device)
            for s in range(0, z.shape[1], rows):
                g = torch.cat([part[:, s:s + rows] for part in grads], dim=-1)  # [E, r, 3d], in cache
                _accumulate(grad_w, g.transpose(1, 2), z[:, s:s + rows])
                grad_b.add_(g.sum(1, dtype=wdt))
                torch.bmm(g, wc, out=grad_z[:, s:s + rows])
        return grad_z, grad_w, grad_b


def qkv_projection(z: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries, keys and values ``[E, N, d]`` each (views of one ``z Wᵀ + b``): ``z [E, N, d]``,
    ``w [E, 3d, d]``, ``b [E, 3d]``."""
    return _BlockedQKV.apply(z, w, b)
