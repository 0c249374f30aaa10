"""The one optimizer factory of every algorithm.

``make_optimizer(name, params, lr, weight_decay)``: ``adamw`` | ``adam`` | ``rmsprop`` (pymarl's α = 0.99,
ε = 1e-5). Same update rules as ``torch.optim``'s defaults, in their fastest form: Adam and AdamW run
``fused`` (one kernel over every parameter tensor, instead of about ten small ops per tensor, whose
per-call overhead dominated the small networks of this library: +6 % on a distill student update,
measured A/B in one process), RMSprop ``foreach``. The fused kernels round differently in the last bits, so
a run trained before this change is not bit-reproduced by it; a checkpoint written by the unfused
optimizer resumes unfused (``load_state_dict`` restores the saved ``fused`` flag), so a resumed run stays
bit-exact.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

OPTIMIZERS = ("adamw", "adam", "rmsprop")


def _fusable(params: list[nn.Parameter]) -> bool:
    """torch's fused Adam kernels take floating-point tensors on a CPU or CUDA device."""
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def make_optimizer(name: str, params: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0
                   ) -> torch.optim.Optimizer:
    """A ``torch.optim`` optimizer over ``params`` (module docstring)."""
    params = list(params)
    if not params:
        raise ValueError(f"make_optimizer({name!r}): no parameters to optimize")
    if name in ("adamw", "adam"):
        cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
        return cls(params, lr=lr, weight_decay=weight_decay, fused=_fusable(params) or None)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=1e-5, weight_decay=weight_decay, foreach=True)
    raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
