"""The causal transformer every Decision Transformer in offmarl runs on (GPT-2-like, pre-LayerNorm).

Architecture (Radford et al. 2019, GPT-2, as used by kzl's decision-transformer, ``gym/decision_transformer/
models/decision_transformer.py``; Tseng et al., *Offline Multi-Agent RL with Knowledge Distillation*, App. A.2/B.1):

    x = Dropout(LayerNorm_emb(tokens + TimeEmbed(timestep)))       # no positional embedding, as kzl
    x = x + Dropout(Proj(Attn(LN1(x))))                            # causal multi-head self-attention
    x = x + Dropout(W2 act(W1 LN2(x)))                              # 4x wide MLP, ReLU by default (kzl)
    out = LN_f(x)

Masks: ``key_mask [B, L]`` marks real tokens; a query attends to the real keys at or before it. With LEFT
padding the pad keys come first, so a pad query would see no key at all and its softmax row would be NaN;
every query therefore also attends to itself (the diagonal). Real queries never see pads, so pad contents
cannot reach a real position; outputs at pad positions are finite and meaningless (losses mask them).

Attention runs on ``torch.nn.functional.scaled_dot_product_attention`` (its ``is_causal`` fast path when
nothing is padded). Departure for speed, same math: when attention dropout is active (training with
``dropout > 0``) the softmax is computed explicitly (:func:`softmax_attention`), because SDPA's CPU dropout
draws one value of torch's per-element Bernoulli generator per attention weight, where :func:`dropout`
draws 16 bits. With one head (kzl's configuration) and the fast kernels on (:mod:`offmarl.nets.kernels`),
:class:`_OneHeadAttention` computes the same in one autograd function over views of the fused projection:
same dropout draws, outputs and gradients equal to the explicit path's up to rounding; with the fast
kernels off, or in a PyTorch without ``torch._softmax_backward_data``, the explicit path runs. The linear
layers and the ReLU MLP run on :mod:`offmarl.nets.linear` (large fp32 CPU products on oneDNN's matmul,
ReLU fused, when the fast kernels are on). All dropouts use :func:`dropout` / :func:`residual_dropout`,
which draw 16 random bits per element from 64-bit words (4x fewer generator calls; the drop probability is
rounded to a multiple of 2^-16, e.g. 0.1 -> 0.100006); on the CPU the words come from numpy's SFC64
generator seeded from torch's (:func:`_random_words`).

Precision: under ``torch.autocast(..., torch.bfloat16)`` the token embeddings come out of bf16 matmuls
and the whole residual stream stays bf16 (LayerNorm statistics are accumulated in fp32 by the kernel);
parameters, optimizer state and the losses stay fp32. Departure from plain autocast, where the fp32
timestep embedding would promote the residual stream to fp32 and every block would cast it back.

``out_rows``: only these token positions are needed after the last block (a Decision Transformer reads
its o_t tokens only), so the last block computes queries, MLP and final LayerNorm for them alone -- the
same numbers for those rows, a sixth fewer FLOPs for 3 layers.

All weights carry a member axis (``offmarl.nets.ensemble``): ``members=E`` is ``E`` independent
transformers in one batched call (one per agent).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from offmarl.nets.ensemble import EnsembleEmbedding, EnsembleLayerNorm, EnsembleLinear, two_layers
from offmarl.nets.kernels import fast_kernels_enabled, private_op
from offmarl.nets.mlp import activation_layer

_GRID = 65536  # dropout thresholds live on a 16-bit grid
SOFTMAX_BACKWARD_OP = "torch._softmax_backward_data"  # what _OneHeadAttention's backward needs


def _random_words(n: int, device: torch.device) -> torch.Tensor:
    """``n`` uniformly random int64 words. On the CPU from numpy's SFC64 generator seeded by one draw of
    torch's global generator (so ``torch.manual_seed`` still fixes every mask): it fills words several times
    faster than torch's CPU generator (Mersenne Twister), whose draws were the dropout's largest cost."""
    if device.type == "cpu":
        seed = int(torch.randint(0, 2 ** 62, (1,)))
        return torch.from_numpy(np.random.SFC64(seed).random_raw(n).view(np.int64))
    return torch.empty(n, dtype=torch.int64, device=device).random_(-2 ** 63, 2 ** 63 - 1)


def _keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """The inverted-dropout multiplier for ``x``: ``1 / (1 - p')`` where kept, 0 where dropped, shaped and
    typed like ``x``; ``p' = round(p * 2^16) / 2^16`` (16 random bits per element)."""
    threshold = int(round(p * _GRID))
    bits = _random_words((x.numel() + 3) // 4, x.device).view(torch.int16)[: x.numel()].view(x.shape)
    # int16 bits are uniform over [-2^15, 2^15); the comparison runs in place (0/1 int16): a bool result
    # is several times slower on CPU, and torch.where slower still
    keep, scale = bits.ge_(threshold - _GRID // 2), _GRID / (_GRID - threshold)
    if x.dtype == torch.get_default_dtype():  # int16 times a Python float: x's dtype, in one pass
        return torch.mul(keep, scale)
    return keep.to(x.dtype).mul_(scale)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout with probability ``p`` rounded to a multiple of 2^-16 (see the module docstring)."""
    if not training or p <= 0.0:
        return x
    return x * _keep_mask(x, p)


class _ResidualDropout(torch.autograd.Function):
    """``x + keep * y``; its backward is one pass (``g * keep``), where autograd's ``addcmul`` backward
    would also multiply by its ``value`` in a second one."""

    @staticmethod
    def forward(ctx, x, y, keep):
        ctx.save_for_backward(keep)
        return torch.addcmul(x, y, keep)

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return grad, grad * keep, None


def residual_dropout(x: torch.Tensor, y: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``x + dropout(y)`` in one fused op."""
    if not training or p <= 0.0:
        return x + y
    return _ResidualDropout.apply(x, y, _keep_mask(y, p))


def attention_mask(key_mask: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor | None:
    """``[B, 1, L, L]`` bool (True = may attend): causal, real keys only, diagonal always; None if no padding.

    ``allowed [L, L]`` bool replaces the causal pattern (e.g. block-causal: the tokens of one step see each
    other); without padding it is returned as it is."""
    if bool(key_mask.all()):
        return allowed
    L = key_mask.shape[-1]
    causal = torch.ones(L, L, dtype=torch.bool, device=key_mask.device).tril_() if allowed is None else allowed
    eye = torch.eye(L, dtype=torch.bool, device=key_mask.device)
    return ((causal & key_mask[:, None, :]) | eye).unsqueeze(1)


def _mask_bias(mask: torch.Tensor, N: int, H: int, dtype: torch.dtype) -> torch.Tensor:
    """``mask`` (bool, True = may attend; 4-D broadcastable to ``[N, H, Lq, L]``, or 2-D ``[Lq, L]``) as an
    additive 0 / -inf bias ``[N * H, Lq, L]`` (a 2-D mask stays 2-D: it broadcasts in ``baddbmm``)."""
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))
    if bias.dim() == 4:
        bias = bias.expand(N, H, *mask.shape[-2:]).reshape(N * H, *mask.shape[-2:])
    return bias


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                      p: float) -> torch.Tensor:
    """``softmax(q kᵀ / √dh + mask) v`` with :func:`dropout` on the attention weights (what SDPA computes,
    with a cheaper dropout); ``q [N, H, Lq, dh]``, ``k, v [N, H, L, dh]``, ``mask`` as in :meth:`Block.attend`."""
    if mask is None:
        mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril_()
    N, H, Lq, dh = q.shape
    L = k.shape[-2]
    bias = _mask_bias(mask, N, H, q.dtype)
    # the mask as 0 / -inf added inside the matmul (no masking pass over the scores nor their gradient),
    # then scaled in place (-inf stays -inf); baddbmm's alpha would cost a pass over q's and k's gradients
    scores = torch.baddbmm(bias, q.reshape(N * H, Lq, dh), k.reshape(N * H, L, dh).transpose(1, 2)).mul_(dh ** -0.5)
    probs = torch.softmax(scores, dim=-1).view(N, H, Lq, L)
    return torch.matmul(dropout(probs, p), v)


def _split_qkv(qkv: torch.Tensor, rows: slice | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Views ``q [N, Lq, d]``, ``k, v [N, L, d]`` of one head's fused projection ``qkv [N, L, 3d]``."""
    q, k, v = qkv.split(qkv.shape[-1] // 3, dim=-1)
    return (q if rows is None else q[:, rows]), k, v


class _OneHeadAttention(torch.autograd.Function):
    """:func:`softmax_attention` with dropout for one head, read straight from the fused projection
    ``qkv [N, L, 3d]`` (q, k, v are strided views of it; ``rows`` selects the query rows) -> ``[N, Lq, d]``.
    Same math in fewer passes than autograd through the general path, whose 4-D matmuls and head
    reshapes copy q, k, v and their gradients. Its backward concatenates dq, dk, dv as autograd's backward
    of the split would (writing them into one preallocated gradient instead is slower: ``bmm`` into a
    strided output loops over the batch). Runs in ``qkv``'s dtype with autocast off (what autocast
    computes these ops in anyway). :meth:`Block.attend` uses it only with the fast kernels on
    (:mod:`offmarl.nets.kernels`) and in a PyTorch that has ``torch._softmax_backward_data``."""

    @staticmethod
    def forward(ctx, qkv, bias, rows, p):
        with torch.autocast(qkv.device.type, enabled=False):
            q, k, v = _split_qkv(qkv, rows)
            scores = torch.baddbmm(bias, q, k.transpose(1, 2)).mul_(q.shape[-1] ** -0.5)  # [N, Lq, L]
            probs = torch.softmax(scores, dim=-1)
            keep = _keep_mask(probs, p)
            dropped = probs * keep
            ctx.save_for_backward(qkv, probs, keep, dropped)
            ctx.rows = rows
            return torch.bmm(dropped, v)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # grad [N, Lq, d]
        qkv, probs, keep, dropped = ctx.saved_tensors
        with torch.autocast(qkv.device.type, enabled=False):
            grad = grad.to(qkv.dtype)
            q, k, v = _split_qkv(qkv, ctx.rows)
            grad_v = torch.bmm(dropped.transpose(1, 2), grad)  # [N, L, d]
            grad_probs = torch.bmm(grad, v.transpose(1, 2)).mul_(keep)  # [N, Lq, L]
            grad_scores = private_op(SOFTMAX_BACKWARD_OP)(grad_probs, probs, -1, probs.dtype)
            grad_scores.mul_(q.shape[-1] ** -0.5)  # [N, Lq, L]
            if ctx.rows is None:
                grad_q = torch.bmm(grad_scores, k)
            else:
                grad_q = torch.zeros_like(grad_v)  # queries the caller did not keep get no gradient
                grad_q[:, ctx.rows] = torch.bmm(grad_scores, k)
            grad_k = torch.bmm(grad_scores.transpose(1, 2), q)
        return torch.cat([grad_q, grad_k, grad_v], dim=-1), None, None, None


class Block(nn.Module):
    """One pre-LN transformer block (attention + MLP, residual, dropout)."""

    def __init__(self, members: int, hidden: int, n_heads: int, dropout: float, activation: str, n_layers: int):
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"hidden size {hidden} is not divisible by n_heads {n_heads}")
        self.n_heads, self.dropout = n_heads, dropout
        proj_std = 0.02 / (2 * n_layers) ** 0.5  # GPT-2's scaled init of the residual projections
        self.ln1 = EnsembleLayerNorm(members, hidden)
        self.qkv = EnsembleLinear(members, hidden, 3 * hidden)
        self.proj = EnsembleLinear(members, hidden, hidden, std=proj_std)
        self.ln2 = EnsembleLayerNorm(members, hidden)
        self.fc = EnsembleLinear(members, hidden, 4 * hidden)
        self.act = activation_layer(activation)
        self.out = EnsembleLinear(members, 4 * hidden, hidden, std=proj_std)

    def attend(self, qkv: torch.Tensor, mask: torch.Tensor | None, rows: slice | None) -> torch.Tensor:
        """``qkv [N, L, 3d]`` (the fused projection), ``mask`` bool broadcastable to ``[N, H, L, L]`` (None:
        plain causal), ``rows``: the query rows to keep (None: all) -> ``[N, Lq, d]``."""
        N, L, d3 = qkv.shape
        d, H = d3 // 3, self.n_heads
        p = self.dropout if self.training else 0.0
        one_head = p > 0.0 and H == 1 and fast_kernels_enabled() and private_op(SOFTMAX_BACKWARD_OP) is not None
        if mask is None and (rows is not None or one_head):
            mask = torch.ones(L, L, dtype=torch.bool, device=qkv.device).tril_()
        if rows is not None:
            mask = mask[..., rows, :]
        if one_head:
            return _OneHeadAttention.apply(qkv, _mask_bias(mask, N, 1, qkv.dtype), rows, p)
        q, k, v = (t.view(N, L, H, d // H).transpose(1, 2) for t in qkv.split(d, dim=-1))  # [N, H, L, dh]
        if rows is not None:
            q = q[:, :, rows]
        if p == 0.0:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        else:
            a = softmax_attention(q, k, v, mask, p)
        return a.transpose(1, 2).reshape(N, -1, d)  # [N, Lq, d]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, member: int | None,
                rows: slice | None = None) -> torch.Tensor:
        E, B, L, d = x.shape
        qkv = self.qkv(self.ln1(x, member), member).view(E * B, L, 3 * d)
        if rows is not None:  # keep only the query rows the caller needs
            x = x[:, :, rows]
        if mask is not None and mask.dim() == 4 and mask.shape[0] > 1 and E > 1:
            mask = mask.repeat(E, 1, 1, 1)  # [E * B, 1, L, L]; the same key mask for every member
        a = self.attend(qkv, mask, rows)  # [E * B, Lq, d]
        x = residual_dropout(x, self.proj(a.view(E, B, -1, d), member), self.dropout, self.training)
        h = two_layers(self.fc, self.out, self.ln2(x, member), member, self.act)
        return residual_dropout(x, h, self.dropout, self.training)


class CausalTransformer(nn.Module):
    """``E`` stacked GPT-2-like causal transformers over token embeddings (see the module docstring).

    ``forward(tokens [E, B, L, d], timesteps [E or 1, B, L] int64, key_mask [B, L] bool | None, member,
    out_rows, allowed)`` returns ``[E, B, L, d]`` (``[E, B, Lq, d]`` for the positions ``out_rows`` when given).
    ``allowed [L, L]`` bool (True = query row may attend key column) replaces the causal mask.
    Timesteps index a learned embedding of size ``max_timestep`` (clamped).
    """

    def __init__(self, hidden: int, n_layers: int, n_heads: int, max_timestep: int, dropout: float = 0.1,
                 activation: str = "relu", members: int = 1):
        super().__init__()
        self.max_timestep, self.dropout = max_timestep, dropout
        self.time_embed = EnsembleEmbedding(members, max_timestep, hidden)
        self.embed_ln = EnsembleLayerNorm(members, hidden)
        self.blocks = nn.ModuleList(Block(members, hidden, n_heads, dropout, activation, n_layers)
                                    for _ in range(n_layers))
        self.ln_f = EnsembleLayerNorm(members, hidden)

    def forward(self, tokens: torch.Tensor, timesteps: torch.Tensor, key_mask: torch.Tensor | None = None,
                member: int | None = None, out_rows: slice | None = None,
                allowed: torch.Tensor | None = None) -> torch.Tensor:
        t = timesteps.clamp(0, self.max_timestep - 1)
        # under bf16 autocast the tokens are bf16; the residual stream stays in their dtype
        x = tokens + self.time_embed(t, member).to(tokens.dtype)
        x = dropout(self.embed_ln(x, member), self.dropout, self.training)
        mask = allowed if key_mask is None else attention_mask(key_mask, allowed)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, mask, member, out_rows if i == last else None)
        return self.ln_f(x, member)
