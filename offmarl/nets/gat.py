"""A graph attention layer over a fully connected graph of agents (Veličković et al. 2018, *Graph Attention
Networks*, Eq. 1-4 with one head), as SIT's critic aggregates the global embedding (Tian et al., *Learning
from Good Trajectories in Offline MARL*, "Conservative Policy Learning with GAT-Based Critic", Eq. 8):

    w_ij = softmax_j( LeakyReLU( W_2ᵀ [W_1 o_i ; W_1 o_j] ) )        (j over all N nodes, i itself included)
    e_i  = Σ_j w_ij W_1 o_j

``W_1 [in, E]`` (no bias, as printed) embeds each node, ``W_2 [2E]`` scores a pair. Because ``W_2ᵀ [x; y]`` =
``a_srcᵀ x + a_dstᵀ y``, the ``[N, N]`` scores are one broadcast sum of two per-node scalars. LeakyReLU's
negative slope is GAT's 0.2 (SIT does not give one).

Properties (tests/test_gat.py): each row of weights sums to 1 over the nodes; node i's output is a function
of o_i and of the *set* of the other nodes -- permuting the others permutes nothing in it -- and permuting
the nodes permutes the outputs the same way.

Groups. ``groups=G > 1`` holds G independent layers (one per agent's critic, SIT's φ_i) in one module:
``x [..., G, N, in]`` -> ``[..., G, N, E]``, group g's weights applied to slice g; every parameter has the
leading axis G, so ``OptimizerWrapper(per_member=True)`` clips each group alone. ``groups=1`` is one layer
over ``x [..., N, in]``.

``mask [..., (G,) N]`` (bool, optional): nodes that exist (e.g. a padded agent); masked nodes get weight 0 as
neighbours (they still get an output row). This module imports nothing of offmarl.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GraphAttention(nn.Module):
    """One-head graph attention over all nodes (module docstring). ``forward`` returns the embeddings;
    ``attention`` the weights."""

    def __init__(self, in_dim: int, embed_dim: int, groups: int = 1, negative_slope: float = 0.2):
        super().__init__()
        if groups < 1 or in_dim < 1 or embed_dim < 1:
            raise ValueError(f"GraphAttention needs groups, in_dim and embed_dim >= 1, got {groups}, {in_dim}, "
                             f"{embed_dim}")
        self.groups, self.in_dim, self.embed_dim, self.negative_slope = groups, in_dim, embed_dim, negative_slope
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's initialisation, per group
        self.w1 = nn.Parameter(torch.empty(groups, in_dim, embed_dim).uniform_(-bound, bound))
        bound = 1.0 / math.sqrt(2 * embed_dim)
        self.w2 = nn.Parameter(torch.empty(groups, 2, embed_dim).uniform_(-bound, bound))  # [a_src; a_dst]

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """``W_1 o`` of every node: ``[..., (G,) N, in] -> [..., (G,) N, E]``."""
        if self.groups == 1:
            return torch.matmul(x, self.w1[0])
        if x.dim() < 3 or x.shape[-3] != self.groups:
            raise ValueError(f"GraphAttention with {self.groups} groups needs x [..., {self.groups}, N, in], "
                             f"got {list(x.shape)}")
        return torch.einsum("...gnd,gde->...gne", x, self.w1)

    def _score(self, h: torch.Tensor, side: int) -> torch.Tensor:
        """``a_srcᵀ h`` (side 0) or ``a_dstᵀ h`` (side 1) of each row of ``h [..., (G,) R, E]`` -> ``[..., (G,) R]``."""
        if self.groups == 1:
            return torch.matmul(h, self.w2[0, side])
        return torch.einsum("...gne,ge->...gn", h, self.w2[:, side])

    def _weights(self, h: torch.Tensor, mask: torch.Tensor | None, query: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """Attention weights ``[..., (G,) Q, N]`` (row i: node i's weights over the nodes j) from the
        embeddings ``h`` of the N nodes, for every node (Q = N) or for the ``query [..., (G,) Q, E]`` rows."""
        src = self._score(h if query is None else query, 0)  # [..., Q]
        scores = F.leaky_relu(src.unsqueeze(-1) + self._score(h, 1).unsqueeze(-2), self.negative_slope)  # [..., Q, N]
        if mask is not None:
            scores = scores.masked_fill(~mask.bool().unsqueeze(-2), float("-inf"))
        return torch.softmax(scores, dim=-1)

    def attention(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The weights w_ij ``[..., (G,) N, N]`` of nodes ``x [..., (G,) N, in]``."""
        return self._weights(self._embed(x), mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, node: torch.Tensor | None = None
                ) -> torch.Tensor:
        """e_i for every node: ``x [..., (G,) N, in] -> [..., (G,) N, E]``; or, given ``node`` (indices
        broadcastable to ``x.shape[:-2]``), e_i of that one node only -> ``[..., (G,) E]``: its row of
        weights alone, not the ``[N, N]`` matrix (a critic that reads one node's embedding)."""
        h = self._embed(x)
        if node is None:
            return torch.matmul(self._weights(h, mask), h)
        index = node.expand(h.shape[:-2]).unsqueeze(-1).unsqueeze(-1)  # [..., 1, 1]
        query = h.gather(-2, index.expand(*h.shape[:-2], 1, h.shape[-1]))  # [..., 1, E]
        weights = self._weights(h, mask, query=query)  # [..., 1, N]
        return torch.matmul(weights, h).squeeze(-2)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, in={self.in_dim}, embed={self.embed_dim}, negative_slope={self.negative_slope}"
