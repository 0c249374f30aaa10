"""The multi-layer perceptron every algorithm builds on.

``MLP(in_dim, hidden, out_dim, n_layers, activation)`` is ``n_layers`` linear layers with ``activation``
between them (none after the last), so ``n_layers=3`` is in → hidden → hidden → out: the "3-layer MLP"
of Tseng et al. App. B.2 and of most offline-RL papers.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


def activation_layer(name: str) -> nn.Module:
    """A fresh activation module by name (``relu``, ``gelu``, ``tanh``, ``elu``, ``leaky_relu``, ``silu``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """``n_layers`` linear layers, ``activation`` between them, applied to the last dimension.

    Shapes: ``[..., in_dim] -> [..., out_dim]``. ``n_layers=1`` is a single linear map.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, n_layers: int = 3, activation: str = "relu"):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"MLP needs n_layers >= 1, got {n_layers}")
        widths = [in_dim] + [hidden] * (n_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            if i > 0:
                layers.append(activation_layer(activation))
            layers.append(nn.Linear(a, b))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
