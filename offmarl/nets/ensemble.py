"""Layers holding ``E`` independent copies ("members") of their weights, evaluated in one call.

offmarl trains one network per agent (IDT, the students of Tseng et al. distillation, the teacher's
agent-specific heads). Instead of a Python loop over ``n`` modules, every layer stores its weights with a
leading member axis and maps ``[E, ..., in] -> [E, ..., out]`` with one batched matmul. Member ``e``'s
output depends only on member ``e``'s input and weights, so the members are exactly independent networks:
their gradients never mix, and an elementwise optimizer (Adam/AdamW) over the stacked tensors equals ``E``
separate optimizers (gradient clipping must then be per member, see
``offmarl.core.optim.clip_grad_norm_per_member``).

Conventions for every layer's ``forward(x, member=None)``:
    * ``member=None``: ``x`` is ``[E, ..., in]`` (one slice per member) or ``[1, ..., in]`` (one input
      shared by all members, e.g. the teacher's token feeding ``n`` agent heads) -> ``[E, ..., out]``.
    * ``member=e``: ``x`` is ``[1, ..., in]`` and only member ``e``'s weights are used -> ``[1, ..., out]``
      (a decentralized policy for agent ``e`` reads nothing of the other members).

Initialisation follows GPT-2 (normal, std 0.02; zero biases; LayerNorm gain 1), as kzl's decision
transformer does through Hugging Face's GPT-2 init; ``EnsembleLinear(..., std=None)`` uses
``torch.nn.Linear``'s default instead (kzl's prediction heads are plain ``nn.Linear``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from offmarl.nets.linear import linear, relu_mlp

INIT_STD = 0.02


class EnsembleLinear(nn.Module):
    """``E`` independent affine maps ``y_e = x_e W_e^T + b_e``; weight ``[E, out, in]``, bias ``[E, out]``."""

    def __init__(self, members: int, in_features: int, out_features: int, bias: bool = True,
                 std: float | None = INIT_STD):
        super().__init__()
        if members < 1:
            raise ValueError(f"EnsembleLinear needs members >= 1, got {members}")
        self.members, self.in_features, self.out_features = members, in_features, out_features
        if std is None:  # torch.nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias
            bound = in_features ** -0.5
            self.weight = nn.Parameter(torch.empty(members, out_features, in_features).uniform_(-bound, bound))
            self.bias = nn.Parameter(torch.empty(members, out_features).uniform_(-bound, bound)) if bias else None
        else:
            self.weight = nn.Parameter(torch.randn(members, out_features, in_features) * std)
            self.bias = nn.Parameter(torch.zeros(members, out_features)) if bias else None

    def single(self, member: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The 2-D weight and 1-D bias of the one map that ``forward(x, member)`` applies: member ``member``'s,
        or the only one (``E == 1``, as views: their backward needs no scatter into the stacked gradient);
        None when the call would apply every member (``E > 1``, ``member=None``)."""
        if member is None and self.members > 1:
            return None
        if member is None:
            return (self.weight.view(self.out_features, self.in_features),
                    None if self.bias is None else self.bias.view(-1))
        return self.weight[member], None if self.bias is None else self.bias[member]

    def forward(self, x: torch.Tensor, member: int | None = None, activation: nn.Module | None = None) -> torch.Tensor:
        """``activation``: applied to the output; an ``nn.ReLU`` is fused into the matmul where
        :func:`offmarl.nets.linear.linear` can."""
        E = self.members
        relu = isinstance(activation, nn.ReLU)
        if activation is not None and not relu:
            return activation(self.forward(x, member))
        single = self.single(member)
        if single is not None:
            return linear(x, *single, relu)
        if x.shape[0] == 1:  # one input shared by all members: a single matmul against the stacked weights
            y = linear(x[0], self.weight.reshape(E * self.out_features, self.in_features),
                       None if self.bias is None else self.bias.reshape(-1), relu)  # [..., E * out]
            return y.unflatten(-1, (E, self.out_features)).movedim(-2, 0)
        if x.shape[0] != E:
            raise ValueError(f"EnsembleLinear with {E} members got input with leading dim {x.shape[0]}")
        flat = x.reshape(E, -1, self.in_features)  # [E, N, in]
        w = self.weight.transpose(1, 2)  # [E, in, out]
        y = torch.bmm(flat, w) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(1), flat, w)
        y = y.reshape(*x.shape[:-1], self.out_features)
        return torch.relu(y) if relu else y

    def extra_repr(self) -> str:
        return f"members={self.members}, in={self.in_features}, out={self.out_features}, bias={self.bias is not None}"


def two_layers(first: EnsembleLinear, second: EnsembleLinear, x: torch.Tensor, member: int | None,
               activation: nn.Module) -> torch.Tensor:
    """``second(activation(first(x)))``; with ReLU and one map per layer, as one
    :func:`offmarl.nets.linear.relu_mlp` (whose backward needs no fresh tensor for ReLU's gradient)."""
    a, b = first.single(member), second.single(member)
    if isinstance(activation, nn.ReLU) and a is not None and b is not None:
        return relu_mlp(x, *a, *b)
    return second(first(x, member, activation), member)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last dimension with a gain/bias ``[E, d]`` per member."""

    def __init__(self, members: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.members, self.dim, self.eps = members, dim, eps
        self.weight = nn.Parameter(torch.ones(members, dim))
        self.bias = nn.Parameter(torch.zeros(members, dim))

    def forward(self, x: torch.Tensor, member: int | None = None) -> torch.Tensor:
        if member is not None:
            return F.layer_norm(x, (self.dim,), self.weight[member], self.bias[member], self.eps)
        if self.members == 1:
            return F.layer_norm(x, (self.dim,), self.weight.view(-1), self.bias.view(-1), self.eps)
        view = (self.members,) + (1,) * (x.dim() - 2) + (self.dim,)
        weight, bias = self.weight.view(view).to(x.dtype), self.bias.view(view).to(x.dtype)  # keep x's dtype
        return torch.addcmul(bias, F.layer_norm(x, (self.dim,), eps=self.eps), weight)


class EnsembleEmbedding(nn.Module):
    """A lookup table ``[E, num, d]`` per member; ``index`` is ``[E or 1, ...]`` int64 -> ``[E, ..., d]``."""

    def __init__(self, members: int, num: int, dim: int, std: float = INIT_STD):
        super().__init__()
        self.members, self.num, self.dim = members, num, dim
        self.weight = nn.Parameter(torch.randn(members, num, dim) * std)

    def forward(self, index: torch.Tensor, member: int | None = None) -> torch.Tensor:
        if member is not None:
            return F.embedding(index, self.weight[member])
        if self.members == 1:
            return F.embedding(index, self.weight.view(self.num, self.dim))
        offsets = torch.arange(self.members, device=index.device).view((-1,) + (1,) * (index.dim() - 1)) * self.num
        return F.embedding(index + offsets, self.weight.reshape(-1, self.dim))  # index broadcasts over members


class EnsembleMLP(nn.Module):
    """``n_layers`` :class:`EnsembleLinear` layers (``E`` members) with ReLU between them (none after the last):
    ``[E or 1, ..., in] -> [E, ..., out]``; ``torch.nn.Linear``'s initialisation (``std=None``), drawn
    independently per member, so the members of an ensemble start apart."""

    def __init__(self, members: int, in_dim: int, hidden: int, out_dim: int, n_layers: int = 2):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"EnsembleMLP needs n_layers >= 1, got {n_layers}")
        widths = [in_dim] + [hidden] * (n_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(EnsembleLinear(members, a, b, std=None) for a, b in zip(widths[:-1], widths[1:]))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, member: int | None = None) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = layer(x, member, self.relu)
        return self.layers[-1](x, member)
